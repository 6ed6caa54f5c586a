"""End to end on anvil: deposit -> screening -> credit at depth -> sweep into the hot wallet -> trade -> withdrawal ->
policy -> HSM signature -> broadcast -> confirmed -> final debit -> ``exchange ledger check`` (custody reconciled)."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coincurve
import pytest
from bip_utils import Bip32Slip10Secp256k1, Bip39SeedGenerator
from eth_account import Account
from exchange_evm.address import address_of_public_key, keccak256
from exchange_evm.anvil import AnvilNode
from exchange_evm.codec import encode_unsigned, parse_signed
from exchange_hsm_pkcs11 import Pkcs11Signer

from exchange_framework.custody.signing import verify_secp256k1
from exchange_framework.interfaces import KeyScheme
from exchange_framework.ledger.postings import available, held
from exchange_framework.wallet import WithdrawalStage
from exchange_framework.wallet import setup as wallet_setup
from exchange_framework.wallet.custody import SweepStage
from exchange_framework.wallet.deposit_keys import XPRV_ENV_PREFIX

from .conftest import (
    HOT_KEY_ID,
    Approvers,
    HsmToken,
    base_config,
    create_hot_key,
    create_users,
    custody_config,
    final_stage,
    ledger_balances,
    ledger_check,
    running_exchange,
    token_public_key,
    trade,
    until,
    whitelist,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("installed_entry_points")]

CHAIN_ID = 31337
CONFIRMATIONS = 3
ETH = 10**18
# BIP39's published "abandon ... about" test phrase; deposit addresses are children of the account key m/44'/60'/0'.
_SEED = Bip39SeedGenerator(" ".join(["abandon"] * 11 + ["about"])).Generate()
_ACCOUNT = Bip32Slip10Secp256k1.FromSeed(_SEED).DerivePath("m/44'/60'/0'")
XPUB = str(_ACCOUNT.PublicKey().ToExtended())
XPRV = str(_ACCOUNT.PrivateKey().ToExtended())  # the deposit root the sweeper signs with (a software key)
PAYER_KEY = hashlib.sha256(b"e2e evm depositor").digest()
PAYER = Account.from_key(PAYER_KEY).address
DESTINATION = Account.from_key(hashlib.sha256(b"e2e evm customer's own wallet").digest()).address

ASSETS = """\
    [assets.ETH]
    decimals = 18

    [assets.USDT]
    decimals = 6
    """
MARKETS = """\
    [markets."ETH-USDT"]
    base = "ETH"
    quote = "USDT"
    tick_size = "0.01"
    lot_size = "0.0001"
    """


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilNode]:
    """One anvil for the module (automine off: blocks are mined when the test says)."""
    node = AnvilNode(chain_id=CHAIN_ID).start()
    try:
        yield node
    finally:
        node.stop()


def evm_settings(anvil: AnvilNode, root: Path, hot_address: str | None) -> str:
    hot = f'hot_wallet_address = "{hot_address}"\nhot_wallet_key_id = "{HOT_KEY_ID}"\n' if hot_address else ""
    return (
        textwrap.dedent(
            f"""\
            [plugins.settings.evm]
            data_dir = "{root / "data" / "evm"}"

            [[plugins.settings.evm.networks]]
            name = "anvil"
            chain_id = {CHAIN_ID}
            rpc_url = "{anvil.url}"
            confirmations = {CONFIRMATIONS}
            native_symbol = "ETH"
            xpub = "{XPUB}"
            """
        )
        + hot
    )


def custody(hot_address: str) -> str:
    return f"""\
        [custody.networks.anvil]
        chain_id = "{CHAIN_ID}"
        max_fee = "0.01"
        fee_asset = "ETH"

        [[custody.wallets]]
        chain = "anvil"
        address = "{hot_address}"
        tier = "hot"
        key_id = "{HOT_KEY_ID}"

        [[custody.rules]]
        name = "hot ETH to whitelisted addresses"
        action = "allow"
        chain = "anvil"
        asset = "ETH"
        tier = "hot"
        max_amount = "5"
        """


def mine(anvil: AnvilNode, blocks: int = 1) -> None:
    anvil.rpc.call("anvil_mine", hex(blocks))


def pay(anvil: AnvilNode, to: str, wei: int) -> str:
    """The depositor pays ``to`` from their own wallet (signed by eth-account); return the transaction hash."""
    nonce = int(anvil.rpc.call("eth_getTransactionCount", PAYER, "pending"), 16)
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "maxFeePerGas": 10**11,
        "maxPriorityFeePerGas": 10**9,
        "to": to,
        "value": wei,
        "gas": 21_000,
    }
    raw = Account.from_key(PAYER_KEY).sign_transaction(tx).raw_transaction
    return str(anvil.rpc.call("eth_sendRawTransaction", "0x" + raw.hex()))


def balance(anvil: AnvilNode, address: str) -> int:
    return int(anvil.rpc.call("eth_getBalance", address, "latest"), 16)


async def test_eth_deposit_trade_and_hsm_signed_withdrawal_reconcile(
    anvil: AnvilNode, hsm_token: HsmToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweeper funds the hot wallet from deposit addresses: it needs the deposit root, and looks for deposits to
    # sweep every 30 s in a running exchange (here every 0.1 s).
    monkeypatch.setenv(XPRV_ENV_PREFIX + "ANVIL", XPRV)
    monkeypatch.setattr(wallet_setup, "SWEEP_SCAN_SECONDS", 0.1)
    root = tmp_path
    config_path = root / "exchange.toml"
    alice, bob = create_users(root / "data", "alice@example.com", "bob@example.com")
    base = base_config(root, hsm_token, plugins=["evm"], assets=ASSETS, markets=MARKETS)

    # The operator generates the hot key inside the HSM, then configures its address as the hot wallet.
    config_path.write_text(base + evm_settings(anvil, root, None), encoding="utf-8")
    hot_public = create_hot_key(config_path, HOT_KEY_ID, "secp256k1")
    hot_address = address_of_public_key(hot_public)
    approvers = Approvers()
    config_path.write_text(
        base + evm_settings(anvil, root, hot_address) + custody_config(root, approvers, body=custody(hot_address)),
        encoding="utf-8",
    )
    point, attributes = token_public_key(hsm_token, HOT_KEY_ID)
    assert coincurve.PublicKey(point[-65:]).format() == hot_public  # the key lives on the token
    assert attributes == {"LOCAL": True, "SENSITIVE": True, "EXTRACTABLE": False, "NEVER_EXTRACTABLE": True}

    anvil.rpc.call("anvil_setBalance", PAYER, hex(100 * ETH))  # the depositor's own money
    mine(anvil)

    async with running_exchange(config_path) as ex:
        wallet = ex.wallet
        assert isinstance(wallet.signer, Pkcs11Signer) and wallet.signer.token_label == hsm_token.label
        assert wallet.hot_keys[KeyScheme.SECP256K1] == hot_public

        # Deposit: the depositor pays alice's derived address; credited at the 3rd confirmation, not before.
        address, memo = wallet.deposit_address(alice, "ETH")
        assert memo == "" and address != hot_address
        txid = pay(anvil, address, 3 * ETH)
        mine(anvil, CONFIRMATIONS - 1)
        await until(
            lambda: [(d.stage, d.confirmations) for d in wallet.deposits(alice)] == [("confirming", CONFIRMATIONS - 1)],
            "the deposit confirming at N-1",
            show=lambda: (wallet.deposits(alice), wallet.trackers["anvil"].status()),
        )
        assert ex.node.balances.available(alice, "ETH") == 0 and ex.spy.deposits == []
        mine(anvil)
        await until(lambda: [d.stage for d in wallet.deposits(alice)] == ["credited"], "the deposit credited")
        assert ex.node.balances.available(alice, "ETH") == 3 * ETH
        (screened,) = ex.spy.deposits
        assert (screened.account, screened.txid, screened.amount, screened.address) == (alice, txid, 3 * ETH, address)
        assert screened.source_addresses == (PAYER,)

        # The sweeper moves the credited coins into the hot wallet (the hot wallet starts empty).
        assert balance(anvil, hot_address) == 0 and wallet.custody_store is not None
        store = wallet.custody_store
        await until(lambda: [r.stage for r in store.sweeps()] == [SweepStage.BROADCAST], "the sweep sent")
        mine(anvil, CONFIRMATIONS)
        await until(lambda: [r.stage for r in store.sweeps()] == [SweepStage.COMPLETED], "the sweep final")
        (sweep,) = store.sweeps()
        assert (sweep.address, sweep.destination) == (address, hot_address)
        assert balance(anvil, hot_address) == sweep.amount > 2 * ETH

        # Trade: alice sells 1 ETH to bob.
        fill = await trade(ex, seller=alice, buyer=bob, market="ETH-USDT", qty="1", price="2000")
        assert fill.base_amount == 1 * ETH
        assert ex.node.balances.available(alice, "ETH") == 2 * ETH

        # Withdrawal to alice's own wallet, whitelisted in her address book and in the custody policy.
        await whitelist(ex, approvers, chain="anvil", asset="ETH", address=DESTINATION)
        wallet.add_to_whitelist(alice, asset="ETH", address=DESTINATION)
        requested = await wallet.request_withdrawal(alice, asset="ETH", amount="1.5", address=DESTINATION)
        assert ex.node.balances.balances(alice)["ETH"] == (ETH // 2, 3 * ETH // 2)  # available, held
        await until(lambda: wallet.withdrawals(alice)[0].stage is WithdrawalStage.BROADCAST, "the withdrawal broadcast")
        view = wallet.withdrawals(alice)[0]
        assert wallet.policy is not None
        decision = wallet.policy.status(f"w{requested.id}")
        assert decision.rule == "hot ETH to whitelisted addresses"

        # The broadcast transaction is signed by the HSM key: the node and an independent decoder agree.
        raw = bytes.fromhex(str(anvil.rpc.call("eth_getRawTransactionByHash", view.txid))[2:])
        signed = parse_signed(raw)
        digest = keccak256(encode_unsigned(signed.tx))
        signature = signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.y_parity])
        assert verify_secp256k1(hot_public, digest, signature)
        assert Account.recover_transaction(raw) == hot_address
        assert (signed.tx.to, signed.tx.value) == (bytes.fromhex(DESTINATION[2:]), 3 * ETH // 2)

        mine(anvil, CONFIRMATIONS)
        await until(final_stage(ex, requested.id), "the withdrawal final")
        assert wallet.withdrawals(alice)[0].stage is WithdrawalStage.COMPLETED
        assert balance(anvil, DESTINATION) == 3 * ETH // 2
        assert ex.node.balances.balances(alice)["ETH"] == (ETH // 2, 0)

    balances = await ledger_balances(ex.config)
    assert balances.get((available(alice), "ETH"), 0) == ETH // 2
    assert balances.get((held(alice), "ETH"), 0) == 0
    result = await ledger_check(config_path)
    assert result.exit_code == 0 and "ledger check passed" in result.output, result.output
    # Custody reconciles: the omnibus accounts equal what the hot wallet's and the deposit addresses hold on chain.
    assert "custody vs omnibus: ok" in result.output and "UNVERIFIED" not in result.output, result.output
