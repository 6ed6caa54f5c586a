"""End to end on the development chain: deposit -> screening -> credit at depth -> trade -> withdrawal -> policy ->
HSM signature -> broadcast -> confirmed -> final debit -> ``exchange ledger check``."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import coincurve
import pytest
from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.node import DevChain
from exchange_devchain.tx import (
    SignedTransfer,
    TransferBody,
    address_of,
    digest_of,
    encode_body,
    encode_tx,
    sign_digest,
)
from exchange_hsm_pkcs11 import Pkcs11Signer

from exchange_framework.custody.signing import verify_secp256k1
from exchange_framework.interfaces import KeyScheme
from exchange_framework.ledger.postings import available, held
from exchange_framework.wallet import WithdrawalStage

from .conftest import (
    HOT_KEY_ID,
    TREASURY_EMAIL,
    Approvers,
    HsmToken,
    base_config,
    create_hot_key,
    create_users,
    custody_config,
    final_stage,
    fund_hot_wallet,
    ledger_balances,
    ledger_check,
    running_exchange,
    token_public_key,
    trade,
    until,
    whitelist,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("installed_entry_points")]

DEV = 10**18
CONFIRMATIONS = 3
CHAIN_ID = "devchain-e2e"
MIN_FEE = 1_000
PAYER_KEY = coincurve.PrivateKey(hashlib.sha256(b"e2e devchain depositor").digest())
PAYER = address_of(PAYER_KEY.public_key.format())
DESTINATION = address_of(coincurve.PrivateKey(hashlib.sha256(b"e2e devchain own wallet").digest()).public_key.format())

ASSETS = """\
    [assets.DEV]
    decimals = 18

    [assets.USDT]
    decimals = 6
    """
MARKETS = """\
    [markets."DEV-USDT"]
    base = "DEV"
    quote = "USDT"
    tick_size = "0.01"
    lot_size = "0.0001"
    """


def devchain_settings(root: Path) -> str:
    return textwrap.dedent(
        f"""\
        [plugins.settings.devchain]
        data_dir = "{root / "data" / "devchain"}"
        chain_id = "{CHAIN_ID}"
        native_asset = "DEV"
        assets = ["DEV"]
        confirmations = {CONFIRMATIONS}
        min_fee = {MIN_FEE}
        """
    )


def custody(hot_address: str) -> str:
    return f"""\
        [custody.networks.devchain]
        chain_id = "{CHAIN_ID}"

        [[custody.wallets]]
        chain = "devchain"
        address = "{hot_address}"
        tier = "hot"
        key_id = "{HOT_KEY_ID}"

        [[custody.rules]]
        name = "hot DEV to whitelisted addresses"
        action = "allow"
        chain = "devchain"
        asset = "DEV"
        tier = "hot"
        """


def pay(chain: DevChain, to: str, amount: int) -> str:
    """The depositor pays ``to`` with a transfer signed by their own key; return its txid."""
    body = TransferBody(CHAIN_ID, chain.next_nonce(PAYER), PAYER_KEY.public_key.format(), to, "DEV", amount, MIN_FEE)
    signature = sign_digest(PAYER_KEY.secret, digest_of(encode_body(body)))
    return chain.submit(encode_tx(SignedTransfer(body, signature[:64])))


async def test_dev_deposit_trade_and_hsm_signed_withdrawal_reconcile(hsm_token: HsmToken, tmp_path: Path) -> None:
    root = tmp_path
    config_path = root / "exchange.toml"
    alice, bob, _ = create_users(root / "data", "alice@example.com", "bob@example.com", TREASURY_EMAIL)
    base = base_config(root, hsm_token, plugins=["devchain"], assets=ASSETS, markets=MARKETS)

    config_path.write_text(base + devchain_settings(root), encoding="utf-8")
    hot_public = create_hot_key(config_path, HOT_KEY_ID, "secp256k1")
    hot_address = address_of(hot_public)
    approvers = Approvers()
    config_path.write_text(
        base + devchain_settings(root) + custody_config(root, approvers, body=custody(hot_address)), encoding="utf-8"
    )
    point, _ = token_public_key(hsm_token, HOT_KEY_ID)
    assert coincurve.PublicKey(point[-65:]).format() == hot_public

    async with running_exchange(config_path) as ex:
        wallet = ex.wallet
        adapter = wallet.adapters["devchain"]
        assert isinstance(adapter, DevChainAdapter)
        chain = adapter.node
        assert isinstance(wallet.signer, Pkcs11Signer) and wallet.signer.token_label == hsm_token.label
        assert wallet.hot_keys[KeyScheme.SECP256K1] == hot_public
        # Sweeping deposit addresses into the hot wallet is not used here: the exchange funds its hot wallet with
        # its own money (the faucet stands for that payment), recorded on the ledger (fund_hot_wallet).
        funding = chain.faucet(hot_address, 10 * DEV)
        await fund_hot_wallet(ex, chain="devchain", asset="DEV", amount=10 * DEV, reference=funding)
        chain.faucet(PAYER, 10 * DEV)
        chain.mine()

        address, _ = wallet.deposit_address(alice, "DEV")
        txid = pay(chain, address, 4 * DEV)
        chain.mine(CONFIRMATIONS - 1)
        await until(
            lambda: [(d.stage, d.confirmations) for d in wallet.deposits(alice)] == [("confirming", CONFIRMATIONS - 1)],
            "the deposit confirming at N-1",
            show=lambda: (wallet.deposits(alice), wallet.trackers["devchain"].status()),
        )
        assert ex.node.balances.available(alice, "DEV") == 0 and ex.spy.deposits == []
        chain.mine()
        await until(lambda: [d.stage for d in wallet.deposits(alice)] == ["credited"], "the deposit credited")
        (screened,) = ex.spy.deposits
        assert (screened.account, screened.txid, screened.amount, screened.address) == (alice, txid, 4 * DEV, address)
        assert screened.source_addresses == (PAYER,)

        await trade(ex, seller=alice, buyer=bob, market="DEV-USDT", qty="1", price="10")
        assert ex.node.balances.available(alice, "DEV") == 3 * DEV

        await whitelist(ex, approvers, chain="devchain", asset="DEV", address=DESTINATION)
        wallet.add_to_whitelist(alice, asset="DEV", address=DESTINATION)
        requested = await wallet.request_withdrawal(alice, asset="DEV", amount="2", address=DESTINATION)
        await until(
            lambda: wallet.withdrawals(alice)[0].stage is WithdrawalStage.BROADCAST,
            "the withdrawal broadcast",
            show=lambda: wallet.withdrawals(alice)[0],
        )
        sent = chain.transaction(wallet.withdrawals(alice)[0].txid)
        assert isinstance(sent, SignedTransfer) and sent.body.sender == hot_public
        digest = digest_of(encode_body(sent.body))
        assert verify_secp256k1(hot_public, digest, sent.signature)  # the HSM key signed what was broadcast
        chain.mine(CONFIRMATIONS)
        await until(final_stage(ex, requested.id), "the withdrawal final", show=lambda: wallet.withdrawals(alice)[0])
        assert wallet.withdrawals(alice)[0].stage is WithdrawalStage.COMPLETED
        assert chain.balance(DESTINATION, "DEV") == 2 * DEV
        assert ex.node.balances.balances(alice)["DEV"] == (DEV, 0)

    balances = await ledger_balances(ex.config)
    assert balances.get((available(alice), "DEV"), 0) == DEV
    assert balances.get((held(alice), "DEV"), 0) == 0
    result = await ledger_check(config_path)
    assert result.exit_code == 0 and "ledger check passed" in result.output, result.output
    # Custody reconciles: the omnibus accounts equal what the hot wallet's and the deposit addresses hold on chain.
    assert "custody vs omnibus: ok" in result.output and "UNVERIFIED" not in result.output, result.output
