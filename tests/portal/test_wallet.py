"""Wallet pages on the real wallet service and the dev chain: deposit stages, whitelist, withdrawals with 2FA."""

from __future__ import annotations

import time
from collections.abc import Iterator

import coincurve
import pyotp
import pytest
from exchange_devchain.tx import address_of

from exchange_framework.wallet import WithdrawalStage
from tests.api.conftest import Exchange
from tests.api.test_wallet_api import until
from tests.portal.conftest import PortalClient


@pytest.fixture
def alice(chain_exchange: Exchange) -> Iterator[PortalClient]:
    client = PortalClient(chain_exchange.url)
    client.login(chain_exchange.alice.email)
    yield client
    client.close()


def enable_2fa(ex: Exchange, account: int) -> pyotp.TOTP:
    secret = pyotp.random_base32()
    ex.server.ctx.identity.set_totp_secret(account, secret)
    return pyotp.TOTP(secret)


def whitelist(client: PortalClient, address: str, label: str = "cold") -> None:
    response = client.post("/wallet/whitelist", {"asset": "ETH", "address": address, "label": label})
    assert response.status_code == 303, response.text[:2000]


def outside_address() -> str:
    return address_of(coincurve.PrivateKey().public_key.format())


def test_deposit_stage_and_confirmations_are_shown(chain_exchange: Exchange, alice: PortalClient) -> None:
    wallet = chain_exchange.server.ctx.extras["wallet"]
    chain = wallet.adapters["devchain"].node
    page = alice.get("/wallet/ETH").text
    address = page.split('id="deposit-address">', 1)[1].split("<", 1)[0]
    assert address == wallet.deposit_address(chain_exchange.alice.account, "ETH")[0]
    assert "<svg" in page and "No deposits yet." in page
    chain.faucet(address, 2 * 10**18)
    chain.mine(1)
    until(lambda: wallet.deposits(chain_exchange.alice.account))
    page = alice.get("/wallet/ETH").text
    assert "stage-confirming" in page and "1 of 3 confirmations" in page
    assert "credited automatically at the required confirmations" in page
    chain.mine(2)
    until(lambda: wallet.deposits(chain_exchange.alice.account)[0].stage == "credited")
    page = alice.get("/wallet/ETH").text
    assert "stage-credited" in page and "3 of 3 confirmations" in page and "Credited to your balance." in page
    assert "Available: <strong>102 ETH</strong>" in page
    assert "stage-credited" in alice.get("/wallet").text  # the overview lists recent deposits too


def test_withdrawal_needs_two_factor_then_a_code_then_works(chain_exchange: Exchange, alice: PortalClient) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    address = outside_address()
    whitelist(alice, address)
    entry = wallet.whitelist(ex.alice.account)[0]
    form = {"entry": str(entry.id), "amount": "1.5", "code": "123456"}

    refused = alice.post("/wallet/ETH/withdraw", form, page="/wallet/ETH")
    assert refused.status_code == 400
    assert "Withdrawals need two-factor authentication: turn it on" in refused.text
    assert "withdraw-needs-2fa" in alice.get("/wallet/ETH").text

    totp = enable_2fa(ex, ex.alice.account)
    wrong = alice.post("/wallet/ETH/withdraw", form, page="/wallet/ETH")
    assert wrong.status_code == 400 and "That two-factor code is not right" in wrong.text
    assert wallet.withdrawals(ex.alice.account) == []
    before = ex.server.ctx.node.balances.balances(ex.alice.account)["ETH"]
    too_much = alice.post("/wallet/ETH/withdraw", {**form, "amount": "5000", "code": totp.now()}, page="/wallet/ETH")
    assert too_much.status_code == 400 and "insufficient ETH balance for this withdrawal" in too_much.text
    assert ex.server.ctx.node.balances.balances(ex.alice.account)["ETH"] == before  # nothing held

    ok = alice.post("/wallet/ETH/withdraw", {**form, "code": totp.at(time.time() + 30)}, page="/wallet/ETH")
    assert ok.status_code == 303
    assert "of 1.5 ETH requested; stage: " in alice.follow(ok).text
    withdrawals = wallet.withdrawals(ex.alice.account)
    assert withdrawals[0].address == address and withdrawals[0].amount == "1.5"
    assert withdrawals[0].stage not in (WithdrawalStage.REJECTED, WithdrawalStage.FAILED)
    history = alice.get("/wallet/withdrawals").text
    assert history.count('class="withdrawal-row') == len(withdrawals) and address in history


def test_withdrawal_cancel_and_users_kept_apart(chain_exchange: Exchange, alice: PortalClient) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    chain = wallet.adapters["devchain"].node
    chain.faucet(address_of(wallet.hot_public_key), 50 * 10**18)  # the hot wallet pays withdrawals
    chain.mine(1)
    whitelist(alice, outside_address())
    entry = wallet.whitelist(ex.alice.account)[0]
    totp = enable_2fa(ex, ex.alice.account)
    response = alice.post(
        "/wallet/ETH/withdraw", {"entry": str(entry.id), "amount": "1.5", "code": totp.now()}, page="/wallet/ETH"
    )
    assert response.status_code == 303
    moving = (WithdrawalStage.REQUESTED, WithdrawalStage.SCREENING)
    withdrawal = until(lambda: [w for w in wallet.withdrawals(ex.alice.account) if w.stage not in moving])[0]
    assert withdrawal.stage is WithdrawalStage.AWAITING_APPROVAL, withdrawal

    bob = PortalClient(ex.url)
    try:
        bob.login(ex.bob.email)
        assert "No withdrawals yet." in bob.get("/wallet/withdrawals").text
        assert entry.address not in bob.get("/wallet/whitelist").text
        refused = bob.post(f"/wallet/withdrawals/{withdrawal.id}/cancel", {}, page="/wallet/withdrawals")
        assert refused.status_code == 404
        refused = bob.post(f"/wallet/whitelist/{entry.id}/remove", {}, page="/wallet/whitelist")
        assert refused.status_code == 404
    finally:
        bob.close()
    assert wallet.withdrawals(ex.alice.account)[0].stage is WithdrawalStage.AWAITING_APPROVAL

    page = alice.get("/wallet/withdrawals").text
    assert "Waiting for operator approval." in page and "0 of " in page
    cancelled = alice.post(f"/wallet/withdrawals/{withdrawal.id}/cancel", {}, page="/wallet/withdrawals")
    assert f"Withdrawal {withdrawal.id} cancelled." in alice.follow(cancelled).text
    assert wallet.withdrawals(ex.alice.account)[0].stage is WithdrawalStage.CANCELLED
    removed = alice.post(f"/wallet/whitelist/{entry.id}/remove", {}, page="/wallet/whitelist")
    assert "removed from your whitelist" in alice.follow(removed).text
    assert wallet.whitelist(ex.alice.account) == []


def test_whitelist_and_address_errors_say_what_to_fix(chain_exchange: Exchange, alice: PortalClient) -> None:
    response = alice.post("/wallet/whitelist", {"asset": "ETH", "address": "not an address", "label": "x"})
    assert response.status_code == 400 and 'class="form-error"' in response.text
    assert chain_exchange.server.ctx.extras["wallet"].whitelist(chain_exchange.alice.account) == []
    assert alice.get("/wallet/NOPE").status_code == 404
    totp = enable_2fa(chain_exchange, chain_exchange.alice.account)
    form = {"entry": "999", "amount": "1", "code": totp.now()}
    response = alice.post("/wallet/ETH/withdraw", form, page="/wallet/ETH")
    assert response.status_code == 400 and "Choose one of your whitelisted addresses" in response.text
    assert chain_exchange.server.ctx.extras["wallet"].withdrawals(chain_exchange.alice.account) == []


def test_wallet_without_a_wallet_service_shows_balances_and_says_so(exchange: Exchange) -> None:
    client = PortalClient(exchange.url)
    try:
        client.login(exchange.alice.email)
        page = client.get("/wallet").text
        assert "Deposits and withdrawals are not configured" in page
        assert '<td>BTC</td><td class="num">10</td>' in page
        missing = client.get("/wallet/ETH")
        assert missing.status_code == 404 and "not configured on this exchange" in missing.text
    finally:
        client.close()


def test_a_refused_withdrawal_is_not_left_requested(chain_exchange: Exchange, alice: PortalClient) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    whitelist(alice, outside_address())
    entry = wallet.whitelist(ex.alice.account)[0]
    totp = enable_2fa(ex, ex.alice.account)
    form = {"entry": str(entry.id), "amount": "5000", "code": totp.now()}
    assert alice.post("/wallet/ETH/withdraw", form, page="/wallet/ETH").status_code == 400
    time.sleep(0.5)  # let the wallet's processing rounds run
    assert [w.stage for w in wallet.withdrawals(ex.alice.account)] == [WithdrawalStage.REJECTED]
