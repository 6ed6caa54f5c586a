"""The adapter on a real litecoind regtest node: deposits and reorgs, withdrawals, fee bumps, faults, the plugin."""

from __future__ import annotations

import base64
import hashlib
import math
from decimal import Decimal
from pathlib import Path

import pytest
from bip_utils import SegwitBech32Encoder
from exchange_bitcoin import FeeTooHigh, InsufficientFunds, NodeMismatch, NodeUnavailable
from exchange_bitcoin.adapter import UtxoChainAdapter
from exchange_bitcoin.coins import fee_for
from exchange_bitcoin.plugin import adapter_from_settings
from exchange_bitcoin.psbt import RBF_SEQUENCE, estimate_vsize, read_psbt
from exchange_bitcoin.regtest import RegtestNode
from exchange_bitcoin.rpc import RpcClient

from exchange_framework.config import parse_config
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import FundsCredited
from exchange_framework.engine.market import AssetSpec
from exchange_framework.funding.deposits import DepositTracker
from exchange_framework.funding.store import DepositStore, Stage
from exchange_framework.interfaces import ChainAdapter, Decision, TxState, UnsignedTransaction
from exchange_framework.plugins import collect_registered, make_plugin_manager

from .conftest import LTC, LitecoinHarness, coins, make_adapter, sign, sink

ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def withdraw(h: LitecoinHarness, amount: int, destination: str | None = None) -> tuple[UnsignedTransaction, bytes, str]:
    unsigned = h.adapter.build_withdrawal(
        key_id=h.hot_key_id,
        public_key=h.hot_public_key,
        destination=destination or h.withdrawal_destination,
        asset="LTC",
        amount=amount,
    )
    signed = h.adapter.assemble(unsigned, [h.sign(h.hot_key_id, d) for d in unsigned.digests])
    return unsigned, signed, h.adapter.broadcast(signed)


class Credits:
    """The kernel's engine fed directly (as the conformance kit does), recording credits."""

    def __init__(self) -> None:
        self.engine = MatchingEngine({"LTC": AssetSpec("LTC", 8)}, {})
        self.seq = 0
        self.credits: list[FundsCredited] = []

    def __call__(self, command: object) -> list[object]:
        self.seq += 1
        self.engine.apply(self.seq, command)  # type: ignore[arg-type]
        events, self.engine.events = self.engine.events, []
        self.credits += [e for e in events if isinstance(e, FundsCredited)]
        return list(events)


def tracker_for(adapter: ChainAdapter, path: Path) -> tuple[DepositTracker, Credits]:
    credits = Credits()
    tracker = DepositTracker(
        adapter,
        DepositStore(path / "deposits.db"),
        submit=credits,  # type: ignore[arg-type]
        screen=lambda request: Decision.allow(provider="test"),
        start_height=adapter.tip_height() + 1,
    )
    return tracker, credits


# -- deposits ----------------------------------------------------------------------------------------------------------


def test_deposit_flip_flopping_between_branches_is_credited_once(harness: LitecoinHarness, tmp_path: Path) -> None:
    node, rpc = harness.node, harness.node.rpc
    tracker, credits = tracker_for(harness.adapter, tmp_path)
    to = tracker.deposit_address(31)
    txid = harness.deposit(to, "LTC", 2_500_000)
    original = node.mine(1)[0]
    tracker.poll()
    (deposit,) = tracker.store.deposits(txid=txid)
    assert (deposit.stage, deposit.confirmations, deposit.amount) == (Stage.CONFIRMING, 1, 2_500_000)

    rpc.call("invalidateblock", original)  # the deposit goes back to the mempool...
    tracker.poll()
    assert tracker.store.deposits(txid=txid)[0].stage is Stage.ORPHANED
    other = node.mine(1, sink())[0]  # ...and is mined in another block
    assert other != original and txid in rpc.call("getblock", other)["tx"]
    tracker.poll()
    assert tracker.store.deposits(txid=txid)[0].stage is Stage.CONFIRMING

    rpc.call("invalidateblock", other)  # back to the first branch
    rpc.call("reconsiderblock", original)
    assert rpc.call("getbestblockhash") == original
    tracker.poll()
    node.mine(harness.adapter.required_confirmations)
    result = tracker.poll()
    assert not result.paused, result.error
    (deposit,) = tracker.store.deposits(txid=txid)
    assert deposit.stage is Stage.CREDITED
    assert [(c.amount, c.account) for c in credits.credits] == [(2_500_000, 31)]
    node.mine(2)
    tracker.poll()
    assert len(credits.credits) == 1
    tracker.store.close()


def test_scan_reports_each_output_with_its_index_and_the_payers_address(harness: LitecoinHarness) -> None:
    a, b = harness.adapter.deposit_address(41).address, harness.adapter.deposit_address(42).address
    start = harness.adapter.tip_height() + 1
    txid = str(harness.node.wallet("sendmany", "", {a: coins(1_000_000), b: coins(2_000_000)}))
    _, _, from_hot = withdraw(harness, 3_000_000, destination=a)
    harness.mine(1)
    (block,) = harness.adapter.scan(start, [a, b, "not an address"])
    vouts = rpc_vouts(harness, txid)
    found = {(t.txid, t.index): t for t in block.transfers}
    assert found[(txid, vouts[a])].amount == 1_000_000 and found[(txid, vouts[a])].address == a
    assert found[(txid, vouts[b])].amount == 2_000_000
    assert found[(from_hot, 0)].amount == 3_000_000
    assert found[(from_hot, 0)].source_addresses == (harness.hot_address,)
    assert len(found) == 3
    assert harness.adapter.scan(start + 1, [a]) == []


def rpc_vouts(h: LitecoinHarness, txid: str) -> dict[str, int]:
    tx = h.node.rpc.call("getrawtransaction", txid, True)
    return {o["scriptPubKey"]["addresses"][0]: o["n"] for o in tx["vout"] if "addresses" in o["scriptPubKey"]}


# -- withdrawals -------------------------------------------------------------------------------------------------------


def test_withdrawal_pays_the_destination_with_change_back_and_the_decoded_fee(harness: LitecoinHarness) -> None:
    rate = harness.adapter.fee_rate()  # estimatesmartfee once the node has seen enough, else the fallback
    assert rate >= 1000
    unsigned = harness.adapter.build_withdrawal(
        key_id=harness.hot_key_id,
        public_key=harness.hot_public_key,
        destination=harness.withdrawal_destination,
        asset="LTC",
        amount=12_345_678,
    )
    decoded = harness.adapter.decode(unsigned)
    withdrawal = read_psbt(unsigned.payload)
    assert (decoded.source, decoded.destination, decoded.amount) == (
        harness.hot_address,
        harness.withdrawal_destination,
        12_345_678,
    )
    assert decoded.chain_id == "litecoin-regtest" and decoded.fee_asset == "LTC"
    assert len(withdrawal.inputs) == 1 and withdrawal.change > 0
    assert decoded.fee == sum(s.value for s in withdrawal.inputs) - 12_345_678 - withdrawal.change
    vsize = estimate_vsize(1, [withdrawal.destination_script, withdrawal.destination_script[:2] + bytes(20)])
    assert decoded.fee == math.ceil(rate * vsize / 1000)
    assert all(i.sequence == RBF_SEQUENCE for i in withdrawal.psbt.inputs)

    signed = harness.adapter.assemble(unsigned, [harness.sign(harness.hot_key_id, d) for d in unsigned.digests])
    txid = harness.adapter.broadcast(signed)
    entry = harness.node.rpc.call("getmempoolentry", txid)
    assert entry["bip125-replaceable"] is True
    assert int(Decimal(entry["fees"]["base"]) * 10**8) == decoded.fee
    assert entry["vsize"] <= vsize  # the estimate is an upper bound (72-byte signatures)
    assert harness.adapter.transaction_status(txid).state is TxState.PENDING
    harness.mine(3)
    status = harness.adapter.transaction_status(txid)
    assert (status.state, status.confirmations) == (TxState.CONFIRMED, 3)
    assert status.block_height == harness.adapter.tip_height() - 2
    paid = harness.node.rpc.call("gettxout", txid, 0)
    assert int(Decimal(paid["value"]) * 10**8) == 12_345_678
    change = harness.node.rpc.call("gettxout", txid, 1)
    assert change["scriptPubKey"]["addresses"] == [harness.hot_address]


def test_rbf_bump_replaces_the_withdrawal_and_the_original_is_dropped(harness: LitecoinHarness) -> None:
    original, _, old_txid = withdraw(harness, 5_000_000)
    bumped = harness.adapter.bump_fee(original)
    old, new = harness.adapter.decode(original), harness.adapter.decode(bumped)
    assert (new.destination, new.amount) == (old.destination, old.amount) and new.fee > old.fee
    assert [s.txid for s in read_psbt(bumped.payload).inputs] == [s.txid for s in read_psbt(original.payload).inputs]
    signed = harness.adapter.assemble(bumped, [harness.sign(harness.hot_key_id, d) for d in bumped.digests])
    new_txid = harness.adapter.broadcast(signed)
    assert new_txid != old_txid
    assert harness.adapter.transaction_status(new_txid).state is TxState.PENDING
    assert harness.adapter.transaction_status(old_txid).state is TxState.DROPPED
    harness.mine(1)
    assert harness.adapter.transaction_status(new_txid).state is TxState.CONFIRMED
    assert harness.adapter.transaction_status(old_txid).state is TxState.DROPPED
    with pytest.raises(ValueError, match="refused"):
        harness.adapter.broadcast(
            harness.adapter.assemble(original, [harness.sign(harness.hot_key_id, d) for d in original.digests])
        )


def test_a_bump_paying_less_than_bip125_requires_is_refused_by_the_node(harness: LitecoinHarness) -> None:
    original, _, _ = withdraw(harness, 5_000_000)
    withdrawal = read_psbt(original.payload)
    from exchange_bitcoin.psbt import build_psbt

    same_fee = build_psbt(
        chain_id=withdrawal.chain_id,
        public_key=withdrawal.public_key,
        spends=withdrawal.inputs,
        destination_script=withdrawal.destination_script,
        amount=withdrawal.amount,
        change=withdrawal.change - 1,  # one more atom of fee: less than the incremental relay fee
    )
    unsigned = UnsignedTransaction("litecoin", same_fee.serialize(), read_psbt(same_fee.serialize()).digests, "ltc-hot")
    signed = harness.adapter.assemble(unsigned, [harness.sign("ltc-hot", d) for d in unsigned.digests])
    with pytest.raises(ValueError, match="insufficient fee"):
        harness.adapter.broadcast(signed)


def test_inputs_are_never_handed_out_twice_until_released(ltc_node: RegtestNode) -> None:
    h = LitecoinHarness(ltc_node, funding=(30_000_000, 30_000_000))
    try:
        first = h.adapter.build_withdrawal(
            key_id="ltc-hot",
            public_key=h.hot_public_key,
            destination=h.withdrawal_destination,
            asset="LTC",
            amount=10**7,
        )
        second = h.adapter.build_withdrawal(
            key_id="ltc-hot",
            public_key=h.hot_public_key,
            destination=h.withdrawal_destination,
            asset="LTC",
            amount=10**7,
        )
        spent = [{(s.txid, s.vout) for s in read_psbt(u.payload).inputs} for u in (first, second)]
        assert not spent[0] & spent[1]
        with pytest.raises(InsufficientFunds, match=r"2 more reserved.*short by"):
            h.adapter.build_withdrawal(
                key_id="ltc-hot",
                public_key=h.hot_public_key,
                destination=h.withdrawal_destination,
                asset="LTC",
                amount=10**7,
            )
        h.adapter.release(first)
        third = h.adapter.build_withdrawal(
            key_id="ltc-hot",
            public_key=h.hot_public_key,
            destination=h.withdrawal_destination,
            asset="LTC",
            amount=10**7,
        )
        assert {(s.txid, s.vout) for s in read_psbt(third.payload).inputs} == spent[0]
        with pytest.raises(InsufficientFunds, match="short by"):
            h.adapter.build_withdrawal(
                key_id="ltc-hot",
                public_key=h.hot_public_key,
                destination=h.withdrawal_destination,
                asset="LTC",
                amount=10**9,
            )
    finally:
        h.adapter.close()


def test_broadcast_again_after_every_output_is_spent_still_answers_the_txid(ltc_node: RegtestNode) -> None:
    a = LitecoinHarness(ltc_node, funding=(100_000_000,))
    b = LitecoinHarness(ltc_node, funding=())
    try:
        _, first, txid = withdraw(a, 50_000_000, destination=b.hot_address)
        a.mine(1)
        withdraw(a, 30_000_000)  # spends the change
        b.adapter.min_input_confirmations = 1
        withdraw(b, 40_000_000)  # spends the payment
        a.mine(1)
        assert ltc_node.rpc.call("gettxout", txid, 0) is None and ltc_node.rpc.call("gettxout", txid, 1) is None
        assert a.adapter.broadcast(first) == txid
    finally:
        a.adapter.close()
        b.adapter.close()


def test_taproot_destinations_are_paid(harness: LitecoinHarness) -> None:
    # BIP86's first output key ("abandon ... about", m/86'/0'/0'/0/0), with Litecoin regtest's HRP: bech32m v1.
    output_key = bytes.fromhex("a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c")
    destination = str(SegwitBech32Encoder.Encode(LTC.hrp, 1, output_key))
    assert destination.startswith("rltc1p") and harness.adapter.validate_address(destination)
    unsigned, _, txid = withdraw(harness, 1_000_000, destination=destination)
    assert harness.adapter.decode(unsigned).destination == destination
    harness.mine(1)
    assert harness.node.rpc.call("gettxout", txid, 0)["scriptPubKey"]["hex"] == "5120" + output_key.hex()


def test_tampered_payloads_and_bad_signatures_are_refused(harness: LitecoinHarness) -> None:
    unsigned = harness.adapter.build_withdrawal(
        key_id="ltc-hot",
        public_key=harness.hot_public_key,
        destination=harness.withdrawal_destination,
        asset="LTC",
        amount=10**6,
    )
    payload = bytearray(unsigned.payload)
    amount_at = bytes(payload).find((10**6).to_bytes(8, "little"))
    payload[amount_at] ^= 1  # pay the destination one atom more in the unsigned transaction
    with pytest.raises(ValueError, match="digests do not match"):
        harness.adapter.decode(UnsignedTransaction("litecoin", bytes(payload), unsigned.digests, "ltc-hot"))
    with pytest.raises(ValueError, match="built for chain"):
        harness.adapter.decode(UnsignedTransaction("bitcoin", unsigned.payload, unsigned.digests, "ltc-hot"))
    good = harness.sign("ltc-hot", unsigned.digests[0])
    high_s = good[:32] + (ORDER - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + bytes([good[64] ^ 1])
    other_key = sign(hashlib.sha256(b"someone else").digest(), unsigned.digests[0])
    for bad in (high_s, good[:64] + bytes([good[64] ^ 1]), other_key, good[:40]):
        with pytest.raises(ValueError, match="does not verify"):
            harness.adapter.assemble(unsigned, [bad])
    with pytest.raises(ValueError, match="expected 1 signatures"):
        harness.adapter.assemble(unsigned, [good, good])
    with pytest.raises(ValueError, match="memo"):
        harness.adapter.build_withdrawal(
            key_id="ltc-hot",
            public_key=harness.hot_public_key,
            destination=harness.withdrawal_destination,
            asset="LTC",
            amount=10**6,
            memo="x",
        )
    with pytest.raises(ValueError, match="dust"):
        harness.adapter.build_withdrawal(
            key_id="ltc-hot",
            public_key=harness.hot_public_key,
            destination=harness.withdrawal_destination,
            asset="LTC",
            amount=100,
        )
    with pytest.raises(ValueError, match="hot wallet itself"):
        harness.adapter.build_withdrawal(
            key_id="ltc-hot",
            public_key=harness.hot_public_key,
            destination=harness.hot_address,
            asset="LTC",
            amount=10**6,
        )
    with pytest.raises(ValueError, match="refused"):
        harness.adapter.broadcast(harness.adapter.assemble(unsigned, [good])[:-5] + b"\x00" * 5)


# -- node faults and configuration -------------------------------------------------------------------------------------


def test_node_stopped_is_a_node_fault_and_a_restart_resumes(tmp_path: Path) -> None:
    # The node waits up to rpcservertimeout (30 s by default) for kept-alive RPC clients, such as the adapter, on stop.
    node = RegtestNode(tmp_path / "node", extra_config="rpcservertimeout=3\n").start()
    try:
        node.mine(2)
        adapter = make_adapter(node, confirmations=1)
        tracker, _ = tracker_for(adapter, tmp_path)
        assert adapter.tip_height() == 2
        node.stop()
        with pytest.raises(NodeUnavailable, match="unreachable"):
            adapter.tip_height()
        with pytest.raises(NodeUnavailable):
            adapter.scan(1, [adapter.deposit_address(1).address])
        result = tracker.poll()
        assert result.paused and "NodeUnavailable" in result.error and tracker.status().paused
        node.start()
        node.mine(1)
        assert adapter.tip_height() == 3
        result = tracker.poll()
        assert not result.paused and not tracker.status().paused
        tracker.store.close()
        adapter.close()
    finally:
        node.stop()


def test_an_adapter_for_another_network_refuses_the_node(ltc_node: RegtestNode) -> None:
    from exchange_bitcoin.network import PRESETS

    from .test_address import BIP84_ZPUB

    rpc = RpcClient(ltc_node.url, user=ltc_node.user, password=ltc_node.password)
    adapter = UtxoChainAdapter(rpc, PRESETS["litecoin-mainnet"], name="litecoin", deposit_xpub=BIP84_ZPUB)
    with pytest.raises(NodeMismatch, match="regtest"):
        adapter.tip_height()
    rpc.close()
    wrong = RpcClient(ltc_node.url, user=ltc_node.user, password="wrong")
    with pytest.raises(NodeUnavailable, match="credentials"):
        wrong.call("getblockcount")
    wrong.close()


def test_plugin_registers_one_adapter_per_network(
    ltc_node: RegtestNode, tmp_path: Path, installed_entry_points: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_address import BIP84_ZPUB

    monkeypatch.setenv("LTC_RPC_TEST_PASSWORD", ltc_node.password)
    config = parse_config(
        '[brand]\nname = "T"\n[plugins]\nenabled = ["bitcoin"]\n'  # this distribution's entry point only
        "[plugins.settings.bitcoin.networks.litecoin]\n"
        f'preset = "litecoin-regtest"\nurl = "{ltc_node.url}"\nrpc_user = "{ltc_node.user}"\n'
        f'rpc_password_env = "LTC_RPC_TEST_PASSWORD"\ndeposit_xpub = "{BIP84_ZPUB}"\nconfirmations = 2\n'
        "[plugins.settings.bitcoin.networks.bitcoin]\n"
        f'preset = "bitcoin-mainnet"\nurl = "http://127.0.0.1:1"\nrpc_cookie_file = "nowhere/.cookie"\n'
        f'deposit_xpub = "{BIP84_ZPUB}"\n',
        root=tmp_path,
    )
    pm = make_plugin_manager(config)
    adapters = collect_registered(pm, "register_chain_adapters", config=config)
    litecoin, bitcoin = adapters["litecoin"], adapters["bitcoin"]
    assert isinstance(litecoin, ChainAdapter) and isinstance(bitcoin, ChainAdapter)
    assert (litecoin.native_asset, litecoin.required_confirmations, litecoin.chain_id) == ("LTC", 2, "litecoin-regtest")
    assert bitcoin.deposit_address(1).address == "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"
    assert litecoin.tip_height() == ltc_node.rpc.call("getblockcount")
    with pytest.raises(NodeUnavailable, match="cookie"):
        bitcoin.tip_height()
    for adapter in (litecoin, bitcoin):
        adapter.close()  # type: ignore[attr-defined]


def test_plugin_settings_errors_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from .test_address import BIP84_ZPRV, BIP84_ZPUB

    base = {
        "preset": "litecoin-regtest",
        "url": "http://127.0.0.1:1",
        "rpc_cookie_file": "c",
        "deposit_xpub": BIP84_ZPUB,
    }
    with pytest.raises(ValueError, match=r"unknown key\(s\) confirmation"):
        adapter_from_settings("ltc", {**base, "confirmation": 3})
    with pytest.raises(ValueError, match="needs deposit_xpub"):
        adapter_from_settings("ltc", {k: v for k, v in base.items() if k != "deposit_xpub"})
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_VARIABLE"):
        adapter_from_settings("ltc", {**base, "rpc_password_env": "NO_SUCH_VARIABLE"})
    with pytest.raises(ValueError, match="confirmations must be an integer"):
        adapter_from_settings("ltc", {**base, "confirmations": "6"})
    with pytest.raises(ValueError, match="PRIVATE"):
        adapter_from_settings("ltc", {**base, "deposit_xpub": BIP84_ZPRV})


def test_the_nodes_own_psbt_parser_reads_what_decode_reports(harness: LitecoinHarness) -> None:
    unsigned = harness.adapter.build_withdrawal(
        key_id="ltc-hot",
        public_key=harness.hot_public_key,
        destination=harness.withdrawal_destination,
        asset="LTC",
        amount=7_654_321,
    )
    decoded = harness.adapter.decode(unsigned)
    psbt = base64.b64encode(unsigned.payload).decode()
    node_view = harness.node.rpc.call("decodepsbt", psbt)
    assert int(Decimal(node_view["fee"]) * 10**8) == decoded.fee
    outputs = node_view["tx"]["vout"]
    assert int(Decimal(outputs[0]["value"]) * 10**8) == 7_654_321
    assert outputs[0]["scriptPubKey"]["addresses"] == [decoded.destination]
    assert outputs[1]["scriptPubKey"]["addresses"] == [harness.hot_address]
    assert [d["pubkey"] for d in node_view["outputs"][1]["bip32_derivs"]] == [harness.hot_public_key.hex()]
    assert all(i["sequence"] == 0xFFFFFFFD for i in node_view["tx"]["vin"])
    assert len(node_view["unknown"]) == 1 and b"litecoin-regtest".hex() in node_view["unknown"].values()
    analysis = harness.node.rpc.call("analyzepsbt", psbt)
    assert analysis["next"] == "signer"
    assert all(i["has_utxo"] and not i["is_final"] for i in analysis["inputs"])


def test_a_withdrawal_without_change_cannot_be_bumped(ltc_node: RegtestNode) -> None:
    h = LitecoinHarness(ltc_node, funding=(20_000_000,))
    try:
        rate = h.adapter.fee_rate()
        destination_script = bytes.fromhex("0014") + bytes(20)
        amount = 20_000_000 - fee_for(rate, 1, [destination_script]) - 100  # 100 left over: below dust
        unsigned, _, _ = withdraw(h, amount)
        assert read_psbt(unsigned.payload).change == 0
        assert h.adapter.decode(unsigned).fee == 20_000_000 - amount
        with pytest.raises(ValueError, match="cannot bump"):
            h.adapter.bump_fee(unsigned)
    finally:
        h.adapter.close()


def test_a_fee_rate_above_the_cap_builds_nothing_and_reserves_nothing(harness: LitecoinHarness) -> None:
    capped = make_adapter(harness.node, max_fee_rate=999)  # below even the node's relay fee (1,000 per kvB)
    try:
        with pytest.raises(FeeTooHigh, match="max_fee_rate 999"):
            capped.build_withdrawal(
                key_id="ltc-hot",
                public_key=harness.hot_public_key,
                destination=harness.withdrawal_destination,
                asset="LTC",
                amount=10**6,
            )
        assert capped._reserved == {}
    finally:
        capped.close()
    unsigned, _, _ = withdraw(harness, 10**6)
    with pytest.raises(FeeTooHigh):
        harness.adapter.bump_fee(unsigned, fee_rate=harness.adapter.max_fee_rate + 1)
