"""End to end on a Litecoin regtest node: deposit -> screening -> credit at depth -> trade -> withdrawal -> policy
(two treasury approvals) -> HSM signature -> broadcast -> confirmed -> final debit -> ``exchange ledger check``."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import coincurve
import pytest
from embit.ec import PublicKey  # type: ignore[import-untyped]  # embit ships no type information
from embit.script import p2pkh  # type: ignore[import-untyped]
from embit.transaction import SIGHASH, Transaction  # type: ignore[import-untyped]
from exchange_bitcoin.adapter import UtxoChainAdapter
from exchange_bitcoin.address import p2wpkh_address, p2wpkh_script
from exchange_bitcoin.network import PRESETS
from exchange_bitcoin.regtest import RegtestNode
from exchange_hsm_pkcs11 import Pkcs11Signer

from exchange_framework.interfaces import KeyScheme
from exchange_framework.ledger.postings import available, held
from exchange_framework.wallet import WithdrawalStage, WithdrawalView
from tests.chains.bitcoin.test_address import BIP84_ZPUB

from .conftest import (
    HOT_KEY_ID,
    TREASURY,
    TREASURY_EMAIL,
    Approvers,
    Exchange,
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

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.usefixtures("installed_entry_points")]

LTC = PRESETS["litecoin-regtest"]
COIN = 10**8
CONFIRMATIONS = 3
RPC_PASSWORD_ENV = "EXCHANGE_E2E_LTC_RPC_PASSWORD"
CHANGE_KEY_IDS = (f"{HOT_KEY_ID}-change-1", f"{HOT_KEY_ID}-change-2")  # the pool of change keys, in the HSM

ASSETS = """\
    [assets.LTC]
    decimals = 8

    [assets.USDT]
    decimals = 6
    """
MARKETS = """\
    [markets."LTC-USDT"]
    base = "LTC"
    quote = "USDT"
    tick_size = "0.01"
    lot_size = "0.0001"
    """


@pytest.fixture(scope="module")
def ltc_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegtestNode]:
    """One regtest node for the module, its miner wallet holding mature coins (the depositors' money)."""
    node = RegtestNode(tmp_path_factory.mktemp("e2e-litecoind")).start()
    try:
        node.mine(110)
        yield node
    finally:
        node.stop()


def coins(atomic: int) -> str:
    return str(Decimal(atomic) / COIN)


def litecoin_settings(node: RegtestNode, change_keys: dict[str, bytes]) -> str:
    pool = "".join(f'"{key_id}" = "{key.hex()}"\n' for key_id, key in change_keys.items())
    return (
        textwrap.dedent(
            f"""\
            [plugins.settings.bitcoin.networks.litecoin]
            preset = "litecoin-regtest"
            url = "{node.url}"
            rpc_user = "{node.user}"
            rpc_password_env = "{RPC_PASSWORD_ENV}"
            deposit_xpub = "{BIP84_ZPUB}"
            hot_key_id = "{HOT_KEY_ID}"
            confirmations = {CONFIRMATIONS}

            [plugins.settings.bitcoin.networks.litecoin.change_keys]
            """
        )
        + pool
        + "\n"
    )


def custody(wallets: dict[str, bytes]) -> str:
    """The hot key and every change key are hot wallets of the policy, each with its key."""
    entries = "".join(
        f"""
        [[custody.wallets]]
        chain = "litecoin"
        address = "{p2wpkh_address(key, LTC)}"
        tier = "hot"
        key_id = "{key_id}"
        """
        for key_id, key in wallets.items()
    )
    return f"""\
        [custody.networks.litecoin]
        chain_id = "litecoin-regtest"
        max_fee = "0.001"
        fee_asset = "LTC"
        {entries}

        [[custody.rules]]
        name = "hot LTC to whitelisted addresses, two treasury approvals"
        action = "approve"
        chain = "litecoin"
        asset = "LTC"
        tier = "hot"
        approvals = 2
        group = "treasury"
        """


def prevout(node: RegtestNode, txid: str, vout: int) -> dict[str, Any]:
    output: dict[str, Any] = node.rpc.call("getrawtransaction", txid, True)["vout"][vout]
    return output


def address_of(output: dict[str, Any]) -> str:
    """The address an output of ``getrawtransaction`` pays (0.21 lists ``addresses``; later versions ``address``)."""
    script = output["scriptPubKey"]
    return str(script.get("address") or script["addresses"][0])


def check_hsm_signatures(node: RegtestNode, txid: str, hot_public: bytes) -> Transaction:
    """Every input of the mined transaction is a P2WPKH spend by the HSM key whose BIP143 signature verifies."""
    tx = Transaction.from_string(str(node.rpc.call("getrawtransaction", txid)))
    key = coincurve.PublicKey(hot_public)
    for i, txin in enumerate(tx.vin):
        signature, public = (bytes(item) for item in txin.witness.items)
        assert public == hot_public and signature[-1] == SIGHASH.ALL
        value = int(Decimal(str(prevout(node, txin.txid.hex(), txin.vout)["value"])) * COIN)
        digest = tx.sighash_segwit(i, p2pkh(PublicKey.parse(hot_public)), value, SIGHASH.ALL)
        assert key.verify(signature[:-1], digest, hasher=None), f"input {i}'s signature does not verify"
    return tx


def outputs(tx: Transaction) -> dict[str, int]:
    """Output script (hex) -> value."""
    return {out.script_pubkey.data.hex(): out.value for out in tx.vout}


def funding_vout(node: RegtestNode, txid: str) -> int:
    """The output of the miner's funding transaction that pays the hot wallet (the one that is not change)."""
    details = node.wallet("gettransaction", txid)["details"]
    (sent,) = [d for d in details if d["category"] == "send"]
    return int(sent["vout"])


async def approved_and_final(ex: Exchange, node: RegtestNode, withdrawal_id: int, approver: str) -> WithdrawalView:
    """Give the last approval, wait for the broadcast, mine to depth and wait for the final debit."""
    await ex.wallet.approve_withdrawal(withdrawal_id, operator=approver, approve=True)

    def view() -> WithdrawalView:
        return next(v for v in ex.wallet.withdrawals() if v.id == withdrawal_id)

    await until(lambda: view().stage is WithdrawalStage.BROADCAST, "the withdrawal broadcast", show=view)
    node.mine(CONFIRMATIONS)
    await until(final_stage(ex, withdrawal_id), "the withdrawal final", show=view)
    assert view().stage is WithdrawalStage.COMPLETED, view()
    return view()


async def test_ltc_deposit_trade_and_approved_hsm_signed_withdrawal_reconcile(
    ltc_node: RegtestNode, hsm_token: HsmToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = ltc_node
    monkeypatch.setenv(RPC_PASSWORD_ENV, node.password)
    root = tmp_path
    config_path = root / "exchange.toml"
    alice, bob, _ = create_users(root / "data", "alice@example.com", "bob@example.com", TREASURY_EMAIL)
    base = base_config(root, hsm_token, plugins=["bitcoin"], assets=ASSETS, markets=MARKETS)

    # The operator generates the hot key and a pool of change keys inside the HSM, then configures their addresses
    # in the custody policy and the change keys in the chain's settings.
    config_path.write_text(base + litecoin_settings(node, {}), encoding="utf-8")
    hot_public = create_hot_key(config_path, HOT_KEY_ID, "secp256k1")
    hot_address = p2wpkh_address(hot_public, LTC)
    change_keys = {key_id: create_hot_key(config_path, key_id, "secp256k1") for key_id in CHANGE_KEY_IDS}
    change_addresses = [p2wpkh_address(key, LTC) for key in change_keys.values()]
    approvers = Approvers()
    config_path.write_text(
        base
        + litecoin_settings(node, change_keys)
        + custody_config(root, approvers, body=custody({HOT_KEY_ID: hot_public, **change_keys})),
        encoding="utf-8",
    )
    point, attributes = token_public_key(hsm_token, HOT_KEY_ID)
    assert coincurve.PublicKey(point[-65:]).format() == hot_public
    assert attributes == {"LOCAL": True, "SENSITIVE": True, "EXTRACTABLE": False, "NEVER_EXTRACTABLE": True}

    # Sweeping deposit addresses into the hot wallet is not available here: the exchange funds its hot wallet with its
    # own money (the miner's payment stands for it, recorded on the ledger below with fund_hot_wallet), with
    # one output of 2 LTC (so the second withdrawal below can only be paid from the first one's change).
    funding_txid = str(node.wallet("sendtoaddress", hot_address, "2"))
    node.mine(1)

    async with running_exchange(config_path) as ex:
        wallet = ex.wallet
        assert isinstance(wallet.signer, Pkcs11Signer) and wallet.signer.token_label == hsm_token.label
        assert wallet.hot_keys[KeyScheme.SECP256K1] == hot_public
        await fund_hot_wallet(ex, chain="litecoin", asset="LTC", amount=2 * COIN, reference=funding_txid)

        # Deposit from the miner's wallet to alice's BIP84 address; credited at the 3rd confirmation, not before.
        address, _ = wallet.deposit_address(alice, "LTC")
        txid = str(node.wallet("sendtoaddress", address, coins(25 * COIN // 10)))
        paid = node.rpc.call("getrawtransaction", txid, True)
        sources = {address_of(prevout(node, i["txid"], i["vout"])) for i in paid["vin"]}
        node.mine(CONFIRMATIONS - 1)
        await until(
            lambda: [(d.stage, d.confirmations) for d in wallet.deposits(alice)] == [("confirming", CONFIRMATIONS - 1)],
            "the deposit confirming at N-1",
            show=lambda: (wallet.deposits(alice), wallet.trackers["litecoin"].status()),
        )
        assert ex.node.balances.available(alice, "LTC") == 0 and ex.spy.deposits == []
        node.mine(1)
        await until(lambda: [d.stage for d in wallet.deposits(alice)] == ["credited"], "the deposit credited")
        assert ex.node.balances.available(alice, "LTC") == 25 * COIN // 10
        (screened,) = ex.spy.deposits
        assert (screened.account, screened.txid, screened.amount, screened.address) == (
            alice,
            txid,
            25 * COIN // 10,
            address,
        )
        assert set(screened.source_addresses) == sources and sources

        # Trade: alice sells 1 LTC to bob.
        fill = await trade(ex, seller=alice, buyer=bob, market="LTC-USDT", qty="1", price="100")
        assert fill.base_amount == COIN
        assert ex.node.balances.available(alice, "LTC") == 15 * COIN // 10

        # Withdrawal of 1.2 LTC to alice's wallet elsewhere: the policy wants two treasury approvals first.
        destination = str(node.wallet("getnewaddress", "", "bech32"))
        await whitelist(ex, approvers, chain="litecoin", asset="LTC", address=destination)
        wallet.add_to_whitelist(alice, asset="LTC", address=destination)
        amount = 12 * COIN // 10
        requested = await wallet.request_withdrawal(alice, asset="LTC", amount="1.2", address=destination)
        await until(
            lambda: wallet.withdrawals(alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL,
            "the withdrawal waiting for approvals",
            show=lambda: wallet.withdrawals(alice)[0],
        )
        await wallet.approve_withdrawal(requested.id, operator=TREASURY[0], approve=True)
        view = wallet.withdrawals(alice)[0]
        assert view.stage is WithdrawalStage.AWAITING_APPROVAL and view.approvals == (TREASURY[0],)
        assert view.txid == ""  # nothing signed or sent with one approval of two
        first = await approved_and_final(ex, node, requested.id, TREASURY[1])
        assert ex.node.balances.balances(alice)["LTC"] == (3 * COIN // 10, 0)

        # What the policy engine checked: the destination and amount asked for; the change is not a destination.
        assert wallet.policy is not None
        decoded = wallet.policy.status(f"w{requested.id}").decoded
        assert (decoded.source, decoded.destination, decoded.amount) == (hot_address, destination, amount)

        # The mined transaction: signed by the HSM hot key, paying the destination exactly the amount and the change
        # (2 LTC - amount - fee) to the first change key's fresh address, where it is counted and spendable.
        tx = check_hsm_signatures(node, first.txid, hot_public)
        assert [(txin.txid.hex(), txin.vout) for txin in tx.vin] == [(funding_txid, funding_vout(node, funding_txid))]
        destination_script = node.wallet("getaddressinfo", destination)["scriptPubKey"]
        change = 2 * COIN - amount - decoded.fee
        first_change = p2wpkh_script(change_keys[CHANGE_KEY_IDS[0]])
        assert outputs(tx) == {destination_script: amount, first_change.hex(): change}
        adapter = wallet.adapters["litecoin"]
        assert isinstance(adapter, UtxoChainAdapter)
        assert adapter.hot_wallet_balance(hot_public) == change

        # A second withdrawal can only be paid from that change: signed in the HSM by the change key, its own
        # change to the next fresh address.
        second_amount = COIN // 4
        requested = await wallet.request_withdrawal(alice, asset="LTC", amount="0.25", address=destination)
        await until(
            lambda: wallet.withdrawals(alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL,
            "the second withdrawal waiting for approvals",
            show=lambda: wallet.withdrawals(alice)[0],
        )
        decoded = wallet.policy.status(f"w{requested.id}").decoded
        assert (decoded.source, decoded.destination, decoded.amount) == (
            change_addresses[0],
            destination,
            second_amount,
        )
        await wallet.approve_withdrawal(requested.id, operator=TREASURY[2], approve=True)
        second = await approved_and_final(ex, node, requested.id, TREASURY[0])
        tx = check_hsm_signatures(node, second.txid, change_keys[CHANGE_KEY_IDS[0]])
        first_tx = Transaction.from_string(str(node.rpc.call("getrawtransaction", first.txid)))
        change_vout = [out.script_pubkey.data for out in first_tx.vout].index(first_change)
        assert [(txin.txid.hex(), txin.vout) for txin in tx.vin] == [(first.txid, change_vout)]
        second_change = p2wpkh_script(change_keys[CHANGE_KEY_IDS[1]]).hex()
        assert outputs(tx) == {destination_script: second_amount, second_change: change - second_amount - decoded.fee}
        assert adapter.hot_wallet_balance(hot_public) == change - second_amount - decoded.fee
        assert ex.node.balances.balances(alice)["LTC"] == (3 * COIN // 10 - second_amount, 0)

    balances = await ledger_balances(ex.config)
    assert balances.get((available(alice), "LTC"), 0) == 3 * COIN // 10 - second_amount
    assert balances.get((held(alice), "LTC"), 0) == 0
    result = await ledger_check(config_path)
    assert result.exit_code == 0 and "ledger check passed" in result.output, result.output
    # Custody reconciles: the omnibus accounts equal what the hot wallet's and the deposit addresses hold on chain.
    assert "custody vs omnibus: ok" in result.output and "UNVERIFIED" not in result.output, result.output
