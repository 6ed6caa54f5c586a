"""The development chain and its adapter: blocks, mempool, signatures, nonces, reorgs, persistence, the plugin."""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path

import coincurve
import pytest
from exchange_devchain import DevChain, DevChainAdapter, NodeUnavailable, address_of, sign_digest
from exchange_devchain.node import STATE_FILE
from exchange_devchain.plugin import DEV_XPUB, adapter_from_settings
from exchange_devchain.tx import SignedTransfer, TransferBody, digest_of, encode_body, encode_tx

from exchange_framework.config import parse_config
from exchange_framework.interfaces import ChainAdapter, TxState, UnsignedTransaction
from exchange_framework.plugins import collect_registered, make_plugin_manager
from tests.crash import run_and_kill

HOT_KEY = hashlib.sha256(b"devchain test hot wallet").digest()
HOT_PUB = coincurve.PrivateKey(HOT_KEY).public_key.format()
HOT = address_of(HOT_PUB)
OTHER_KEY = hashlib.sha256(b"someone else").digest()
DEST = address_of(coincurve.PrivateKey(OTHER_KEY).public_key.format())


@pytest.fixture
def node(tmp_path: Path) -> DevChain:
    return DevChain(tmp_path / "chain")


@pytest.fixture
def adapter(node: DevChain) -> DevChainAdapter:
    return DevChainAdapter(node, xpub=DEV_XPUB)


def fund_hot(node: DevChain, amount: int = 1_000_000, asset: str = "DEV") -> None:
    node.faucet(HOT, amount, asset)
    node.mine()


def withdraw(adapter: DevChainAdapter, amount: int, asset: str = "DEV", dest: str = DEST) -> tuple[bytes, str]:
    unsigned = adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination=dest, asset=asset, amount=amount)
    signed = adapter.assemble(unsigned, [sign_digest(HOT_KEY, d) for d in unsigned.digests])
    return signed, adapter.broadcast(signed)


def test_blocks_link_to_their_parents(node: DevChain) -> None:
    node.mine(3)
    blocks = node.blocks(0, 10)
    assert [b.height for b in blocks] == [0, 1, 2, 3]
    assert all(child.parent_hash == parent.hash for parent, child in itertools.pairwise(blocks))
    assert len({b.hash for b in blocks}) == 4


def test_faucet_confirms_and_counts_confirmations(node: DevChain, adapter: DevChainAdapter) -> None:
    txid = node.faucet(HOT, 500)
    assert adapter.transaction_status(txid).state is TxState.PENDING
    assert node.balance(HOT, "DEV") == 0
    node.mine()
    status = adapter.transaction_status(txid)
    assert (status.state, status.confirmations, status.block_height) == (TxState.CONFIRMED, 1, 1)
    node.mine(2)
    assert adapter.transaction_status(txid).confirmations == 3
    assert node.balance(HOT, "DEV") == 500


def test_withdrawal_moves_funds_and_pays_the_fee(node: DevChain, adapter: DevChainAdapter) -> None:
    fund_hot(node)
    fund_hot(node, 700, "DUSD")
    _, native = withdraw(adapter, 10_000)
    _, token = withdraw(adapter, 300, "DUSD")
    node.mine()
    assert adapter.transaction_status(native).state is TxState.CONFIRMED
    assert adapter.transaction_status(token).state is TxState.CONFIRMED
    assert node.balance(DEST, "DEV") == 10_000
    assert node.balance(DEST, "DUSD") == 300
    assert node.balance(HOT, "DEV") == 1_000_000 - 10_000 - 2 * node.min_fee
    assert node.balance(HOT, "DUSD") == 400


def test_decode_reads_the_payload_not_the_request(adapter: DevChainAdapter, node: DevChain) -> None:
    fund_hot(node)
    unsigned = adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination=DEST, asset="DEV", amount=42)
    decoded = adapter.decode(unsigned)
    assert (decoded.chain, decoded.chain_id, decoded.asset, decoded.amount) == ("devchain", "devchain-1", "DEV", 42)
    assert (decoded.source, decoded.destination, decoded.fee, decoded.fee_asset) == (HOT, DEST, node.min_fee, "DEV")
    # a payload swapped under the same digests is refused, not described
    forged = TransferBody("devchain-1", 0, HOT_PUB, HOT, "DEV", 999_999, 1_000)
    with pytest.raises(ValueError, match="digests"):
        adapter.decode(UnsignedTransaction("devchain", encode_body(forged), unsigned.digests, "hot"))
    with pytest.raises(ValueError, match="not a devchain transfer"):
        adapter.decode(UnsignedTransaction("devchain", b"\x93garbage", unsigned.digests, "hot"))


def test_broadcast_is_idempotent(adapter: DevChainAdapter, node: DevChain) -> None:
    fund_hot(node)
    signed, txid = withdraw(adapter, 5_000)
    assert adapter.broadcast(signed) == txid
    node.mine()
    assert adapter.broadcast(signed) == txid
    node.mine()
    assert node.balance(DEST, "DEV") == 5_000
    assert [b.txids for b in node.blocks(2, 5)] == [(txid,), ()]


def test_bad_signature_and_wrong_chain_id_are_refused(adapter: DevChainAdapter, node: DevChain) -> None:
    fund_hot(node)
    unsigned = adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination=DEST, asset="DEV", amount=7)
    wrong_key = sign_digest(OTHER_KEY, unsigned.digests[0])
    with pytest.raises(ValueError, match="does not verify"):
        adapter.assemble(unsigned, [wrong_key])
    body = TransferBody("devchain-1", 0, HOT_PUB, DEST, "DEV", 7, 1_000)
    with pytest.raises(ValueError, match="signature does not verify"):
        adapter.broadcast(encode_tx(SignedTransfer(body, wrong_key)))
    foreign = TransferBody("otherchain-9", 0, HOT_PUB, DEST, "DEV", 7, 1_000)
    signed_foreign = SignedTransfer(foreign, sign_digest(HOT_KEY, digest_of(encode_body(foreign))))
    with pytest.raises(ValueError, match="chain 'otherchain-9'"):
        adapter.broadcast(encode_tx(signed_foreign))
    with pytest.raises(ValueError, match="not a devchain transaction"):
        adapter.broadcast(b"garbage")
    assert node.next_nonce(HOT) == 0  # nothing was accepted


def test_concurrent_builds_get_distinct_nonces_and_both_confirm(adapter: DevChainAdapter, node: DevChain) -> None:
    fund_hot(node)
    first = adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination=DEST, asset="DEV", amount=1)
    second = adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination=DEST, asset="DEV", amount=2)
    for unsigned in (first, second):
        adapter.broadcast(adapter.assemble(unsigned, [sign_digest(HOT_KEY, unsigned.digests[0])]))
    node.mine()
    assert node.balance(DEST, "DEV") == 3
    assert node.next_nonce(HOT) == 2


def test_withdrawal_beyond_the_balance_names_the_shortfall(adapter: DevChainAdapter, node: DevChain) -> None:
    fund_hot(node, 5_000)
    with pytest.raises(ValueError, match="needs 5500"):
        adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination=DEST, asset="DEV", amount=4_500)
    with pytest.raises(ValueError, match="unknown asset"):
        adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination=DEST, asset="BTC", amount=1)
    with pytest.raises(ValueError, match="not a devchain address"):
        adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination="0xabc", asset="DEV", amount=1)


def test_reorg_replaces_blocks_and_reincludes_or_drops(node: DevChain, adapter: DevChainAdapter) -> None:
    node.mine(2)
    kept = node.faucet(DEST, 10)
    gone = node.faucet(DEST, 20)
    node.mine()
    old = node.blocks(0, 10)
    branch = node.reorg(2, drop=[gone])
    new = node.blocks(0, 10)
    assert len(branch) == 3 and len(new) == 5
    assert new[:2] == old[:2]
    assert {b.hash for b in new[2:]}.isdisjoint(b.hash for b in old[2:])
    assert all(child.parent_hash == parent.hash for parent, child in itertools.pairwise(new))
    assert adapter.transaction_status(kept).state is TxState.CONFIRMED
    assert adapter.transaction_status(gone).state is TxState.DROPPED
    assert node.balance(DEST, "DEV") == 10


def test_reorg_can_leave_transactions_waiting(node: DevChain, adapter: DevChainAdapter) -> None:
    txid = node.faucet(DEST, 10)
    node.mine()
    node.reorg(1, new_blocks=2, include_mempool=False)
    assert adapter.transaction_status(txid).state is TxState.PENDING
    node.mine()
    assert adapter.transaction_status(txid).block_height == 3


def test_state_survives_a_restart(tmp_path: Path) -> None:
    node = DevChain(tmp_path)
    fund_hot(node)
    adapter = DevChainAdapter(node, xpub=DEV_XPUB)
    _, pending = withdraw(adapter, 100)
    assert (tmp_path / STATE_FILE).exists()
    again = DevChain(tmp_path)
    assert again.blocks(0, 10) == node.blocks(0, 10)
    assert again.balance(HOT, "DEV") == 1_000_000
    assert again.status(pending).state is TxState.PENDING
    again.mine()
    assert again.balance(DEST, "DEV") == 100
    with pytest.raises(ValueError, match="holds chain 'devchain-1'"):
        DevChain(tmp_path, chain_id="devchain-2")


def test_unreachable_node_raises_for_every_query(node: DevChain, adapter: DevChainAdapter) -> None:
    node.set_reachable(False)
    for call in (
        adapter.tip_height,
        lambda: adapter.block_header(0),
        lambda: adapter.scan(0, [DEST]),
        lambda: adapter.transaction_status("00"),
        lambda: adapter.broadcast(b"x"),
    ):
        with pytest.raises(NodeUnavailable):
            call()
    node.set_reachable(True)
    assert adapter.tip_height() == 0


def test_deposit_addresses_are_deterministic_distinct_and_valid(adapter: DevChainAdapter) -> None:
    addresses = [adapter.deposit_address(a) for a in range(1, 30)]
    assert len({a.address for a in addresses}) == 29
    assert all(adapter.validate_address(a.address) and a.memo == "" for a in addresses)
    assert adapter.deposit_address(5) == DevChainAdapter(DevChain(None), xpub=DEV_XPUB).deposit_address(5)
    assert not adapter.validate_address(addresses[0].address[:-1] + ("q" if addresses[0].address[-1] != "q" else "p"))
    assert not adapter.validate_address(addresses[0].address.upper())


def test_scan_reports_transfers_to_watched_addresses(node: DevChain, adapter: DevChainAdapter) -> None:
    fund_hot(node)
    watched = adapter.deposit_address(1001).address
    _, txid = withdraw(adapter, 777, dest=watched)
    node.faucet(DEST, 5)
    node.mine()
    (block,) = adapter.scan(2, {watched})
    (transfer,) = block.transfers
    assert (transfer.txid, transfer.index, transfer.asset, transfer.amount) == (txid, 0, "DEV", 777)
    assert transfer.source_addresses == (HOT,)
    assert block.header == adapter.block_header(2)
    assert adapter.scan(3, {watched}) == []


def test_plugin_registers_the_adapter_from_settings(tmp_path: Path, installed_entry_points: None) -> None:
    config = parse_config(
        '[brand]\nname = "T"\n[plugins.settings.devchain]\ndata_dir = "chaindata"\nconfirmations = 2\n',
        root=tmp_path,
    )
    config._source = tmp_path / "exchange.toml"
    pm = make_plugin_manager(config)
    adapter = collect_registered(pm, "register_chain_adapters", config=config)["devchain"]
    assert isinstance(adapter, ChainAdapter)
    assert adapter.required_confirmations == 2
    assert not (tmp_path / "chaindata").exists()  # registering opens nothing
    assert adapter.tip_height() == 0
    assert (tmp_path / "chaindata" / STATE_FILE).exists()


def test_plugin_settings_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"unknown key.*confirmation"):
        adapter_from_settings({"confirmation": 3})
    with pytest.raises(ValueError, match="confirmations must be an integer"):
        adapter_from_settings({"confirmations": "3"})


def test_malleated_signatures_are_refused(adapter: DevChainAdapter, node: DevChain) -> None:
    fund_hot(node)
    unsigned = adapter.build_withdrawal(key_id="hot", public_key=HOT_PUB, destination=DEST, asset="DEV", amount=7)
    good = sign_digest(HOT_KEY, unsigned.digests[0])
    assert len(good) == 65
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = good[:32] + (order - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + bytes([good[64] ^ 1])
    wrong_v = good[:64] + bytes([good[64] ^ 1])
    for bad in (high_s, wrong_v, good[:64] + b"\x05", good[:40]):
        with pytest.raises(ValueError, match="does not verify"):
            adapter.assemble(unsigned, [bad])
    assert adapter.assemble(unsigned, [good]) == adapter.assemble(unsigned, [good[:64]])


@pytest.mark.parametrize("kill_after", [0.05, 0.3])
def test_a_killed_node_reloads_every_block_it_reported(tmp_path: Path, kill_after: float) -> None:
    worker = Path(__file__).with_name("devchain_crash_worker.py")
    lines = run_and_kill(worker, [str(tmp_path / "chain")], tmp_path / "stderr", kill_after=kill_after)
    reported = int(lines[-1])
    node = DevChain(tmp_path / "chain")
    blocks = node.blocks(0, 10**6)
    assert node.height() >= reported
    assert all(child.parent_hash == parent.hash for parent, child in itertools.pairwise(blocks))
    crash_wallet = address_of(coincurve.PrivateKey(hashlib.sha256(b"crash").digest()).public_key.format())
    assert node.balance(crash_wallet, "DEV") == node.height()  # one mint of 1 per block, none lost or doubled
    node.mine()  # and it goes on


def test_block_time_mines_in_the_background(tmp_path: Path) -> None:
    adapter = adapter_from_settings({"data_dir": str(tmp_path / "timed"), "block_time": 0.02})
    deadline = time.monotonic() + 30
    while adapter.tip_height() < 3:
        assert time.monotonic() < deadline, "no blocks were mined in the background"
        time.sleep(0.01)
    adapter.node._miner.set()  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="block_time"):
        adapter_from_settings({"block_time": "fast"})


def test_exchange_devchain_commands(tmp_path: Path, installed_entry_points: None) -> None:
    from click.testing import CliRunner

    from exchange_framework.cli import main

    config = tmp_path / "exchange.toml"
    config.write_text('[brand]\nname = "T"\n[plugins.settings.devchain]\ndata_dir = "chain"\n', encoding="utf-8")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, ["--config", str(config), "devchain", *args])
        assert result.exit_code == 0, result.output
        return result.output

    txid = run("faucet", DEST, "500").strip()
    assert run("mine", "2").splitlines()[0].endswith("(1 transactions)")
    assert DevChain(tmp_path / "chain").status(txid).confirmations == 2
    assert "height 2" in run("status")
    assert len(run("reorg", "1").splitlines()) == 2
    bad = runner.invoke(main, ["--config", str(config), "devchain", "faucet", "nope", "5"])
    assert bad.exit_code == 2 and "not a devchain address" in bad.output
