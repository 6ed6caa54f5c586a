"""Deposits and withdrawals through the API on the dev chain, driven by the real ccxt client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ccxt
import coincurve
import pytest
from exchange_devchain.tx import address_of

from exchange_framework.api.app import create_app
from exchange_framework.config import DEMO_CONFIG, parse_config
from exchange_framework.wallet import WithdrawalStage
from tests.api.client import Rest
from tests.api.conftest import Exchange, make_user
from tests.api.server import serve
from tests.api.test_ccxt import client
from tests.wallet.screening import Screening


def until(condition: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
    return result


@pytest.fixture
def chain_exchange(tmp_path: Path, installed_entry_points: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exchange]:
    monkeypatch.setenv("EXCHANGE_KEYSTORE_PASSPHRASE", "a test passphrase")
    data = tmp_path / "data"
    text = DEMO_CONFIG.read_text(encoding="utf-8").replace("var/demo", str(data))
    # The demo's dev chain mines on its own and polls slowly; here the test mines and the wallet polls fast.
    text = text.replace("block_time = 2", "block_time = 0").replace('poll_seconds = "1"', 'poll_seconds = "0.05"')
    text = text.replace('assets = ["BTC", "ETH", "USDT"]', 'assets = ["ETH", "USDT"]')
    text = text.replace(
        "[plugins.settings.software_keystore]\n",
        "[plugins.settings.software_keystore]\nkdf_memory_kib = 64\nkdf_iterations = 1\nkdf_lanes = 1\n",
    )
    text += '\n[plugins]\nenabled = ["devchain"]  # of the installed plugin distributions, only the dev chain\n'
    config = parse_config(text, root=tmp_path)
    from exchange_framework.interfaces import Decision
    from exchange_framework.plugins import make_plugin_manager

    pm = make_plugin_manager(config)
    pm.register(Screening(Decision.allow(provider="test")), name="test-screening")
    app = create_app(config, pm=pm, settle_every=0.2)
    with serve(app) as server:
        alice = make_user(server, "alice@example.com")
        server.ctx.identity.set_kyc(alice.account, tier=1, status="approved")
        bob = make_user(server, "bob@example.com")
        yield Exchange(server, alice, bob)


def test_deposit_and_withdraw_with_ccxt(chain_exchange: Exchange) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    chain = wallet.adapters["devchain"].node
    identity = ex.server.ctx.identity
    withdraw_key = identity.create_api_key(ex.alice.account, scopes=["read", "withdraw"])
    alice = client(ex, ex.alice)
    alice.options["fetchCurrencies"] = True

    currencies = alice.fetch_currencies()
    assert currencies["ETH"]["networks"]["devchain"]["deposit"] is True

    address = alice.fetch_deposit_address("ETH")
    assert address["address"] == wallet.deposit_address(ex.alice.account, "ETH")[0]
    chain.faucet(address["address"], 2 * 10**18)
    chain.mine(1)
    pending = until(lambda: [d for d in alice.fetch_deposits("ETH") if d["info"]["stage"] == "confirming"])
    assert pending[0]["status"] == "pending" and pending[0]["info"]["confirmTimes"] == "1/3"
    chain.mine(2)
    done = until(lambda: [d for d in alice.fetch_deposits("ETH") if d["status"] == "ok"])
    assert done[0]["amount"] == 2 and done[0]["info"]["stage"] == "credited"
    assert alice.fetch_balance()["ETH"]["free"] == 102  # 100 seeded + 2 deposited

    chain.faucet(address_of(wallet.hot_public_key), 50 * 10**18)
    chain.mine(1)
    outside = address_of(coincurve.PrivateKey().public_key.format())
    refused = client(ex, ex.alice)
    refused.apiKey, refused.secret = withdraw_key.key, withdraw_key.secret
    with pytest.raises(ccxt.ExchangeError, match="whitelist"):
        refused.withdraw("ETH", 1, outside, params={"network": "devchain"})
    wallet.add_to_whitelist(ex.alice.account, asset="ETH", address=outside)  # the portal's job (2FA)
    # The trading key has no withdraw scope. (ccxt reports -2015 as DDoSProtection once the key has worked before.)
    with pytest.raises((ccxt.AuthenticationError, ccxt.DDoSProtection), match="lacks the 'withdraw' permission"):
        alice.withdraw("ETH", 1, outside)
    result = refused.withdraw("ETH", 1.5, outside, params={"network": "devchain"})
    withdrawal_id = int(result["id"])
    pending_w = until(lambda: [w for w in alice.fetch_withdrawals("ETH") if w["info"]["stage"] == "awaiting_approval"])
    assert pending_w[0]["status"] == "pending" and pending_w[0]["amount"] == 1.5

    ex.server.call(lambda: wallet.approve_withdrawal(withdrawal_id, operator="ops@example.com", approve=True))
    until(lambda: wallet.withdrawals(ex.alice.account)[0].stage is WithdrawalStage.BROADCAST)
    chain.mine(3)
    final = until(lambda: [w for w in alice.fetch_withdrawals("ETH") if w["status"] == "ok"])
    assert final[0]["txid"] and final[0]["info"]["stage"] == "completed"
    assert chain.balance(outside, "ETH") == 15 * 10**17
    assert alice.fetch_balance()["ETH"]["total"] == pytest.approx(100.5)


def test_wallet_endpoints_without_chains(exchange: Exchange) -> None:
    alice = client(exchange, exchange.alice)
    with pytest.raises(ccxt.ExchangeError, match="not enabled"):
        alice.fetch_deposit_address("ETH")
    rest = Rest(exchange.url, exchange.alice.key)  # our extensions are not in ccxt's endpoint list
    try:
        keys = rest.signed("GET", "/sapi/v1/account/apiKeys").json()
        assert {k["apiKey"] for k in keys} == {exchange.alice.key.key, exchange.alice.read_only.key}
        assert all("secret" not in k for k in keys)
        assert rest.signed("GET", "/sapi/v1/account/kyc").json() == {"tier": 0, "status": "none", "canWithdraw": False}
        assert rest.signed("GET", "/sapi/v1/account/status").json() == {"data": "Normal"}
        restrictions = rest.signed("GET", "/sapi/v1/account/apiRestrictions").json()
        assert restrictions["enableSpotAndMarginTrading"] and not restrictions["enableWithdrawals"]
        bob_key = exchange.bob.key.key
        assert rest.signed("DELETE", "/sapi/v1/account/apiKeys", apiKey=bob_key).json()["code"] == -1130
        revoked = rest.signed("DELETE", "/sapi/v1/account/apiKeys", apiKey=exchange.alice.read_only.key)
        assert revoked.json() == {}
        assert exchange.server.ctx.identity.api_key(exchange.bob.key.key) is not None  # bob's key untouched
    finally:
        rest.close()
