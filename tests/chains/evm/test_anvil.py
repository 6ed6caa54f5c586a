"""The EVM adapter on a real anvil node: deposits to depth, reorgs, withdrawals, nonces, fee bumps and node faults."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bip_utils import Bip32Slip10Secp256k1
from eth_account import Account
from exchange_evm import EvmAdapter, InsufficientFunds, NodeFault, NonceBook, parse_settings, watch
from exchange_evm.anvil import AnvilNode
from exchange_evm.codec import parse_signed, unpack_payload
from exchange_evm.devtoken import balance_slot

from exchange_framework.funding.deposits import DepositTracker
from exchange_framework.funding.store import DepositStore, Stage
from exchange_framework.interfaces import Decision, TxState, UnsignedTransaction

from .conftest import (
    HOT_ADDRESS,
    HOT_KEY,
    HOT_PUBLIC,
    MNEMONIC,
    OUTSIDE,
    PAYER_ADDRESS,
    PUBLISHED,
    TOKEN,
    TOKEN_SYMBOL,
    XPUB_ACCOUNT,
    XPUB_CHAIN,
    AnvilChain,
    Engine,
    network,
    sign,
)


@pytest.fixture
def tracked(adapter: EvmAdapter, tmp_path: Path) -> Iterator[tuple[DepositTracker, Engine]]:
    engine = Engine(["ETH", TOKEN_SYMBOL])
    store = DepositStore(tmp_path / "deposits.db")
    tracker = DepositTracker(
        adapter,
        store,
        submit=engine,
        screen=lambda request: Decision.allow(provider="test"),
        start_height=adapter.tip_height() + 1,
    )
    yield tracker, engine
    store.close()


def token_balance(chain: AnvilChain, holder: str) -> int:
    data = "0x70a08231" + "00" * 12 + holder[2:].lower()
    return int(chain.rpc.call("eth_call", {"to": TOKEN, "data": data}, "latest"), 16)


def withdraw(
    adapter: EvmAdapter, asset: str, amount: int, destination: str = OUTSIDE
) -> tuple[UnsignedTransaction, str]:
    unsigned = adapter.build_withdrawal(
        key_id="hot-1", public_key=HOT_PUBLIC, destination=destination, asset=asset, amount=amount
    )
    signed = adapter.assemble(unsigned, [sign(HOT_KEY, unsigned.digests[0])])
    return unsigned, adapter.broadcast(signed)


# -- addresses ----------------------------------------------------------------------------------------------------


def test_deposit_addresses_follow_bip44_from_either_xpub() -> None:
    """m/44'/60'/0'/0/i from the chain xpub (the published vector at i = 0) or the account xpub; EIP-55."""
    chain_level = EvmAdapter(network("http://127.0.0.1:9", xpub=XPUB_CHAIN), nonce_book=NonceBook(":memory:"))
    account_level = EvmAdapter(network("http://127.0.0.1:9", xpub=XPUB_ACCOUNT), nonce_book=NonceBook(":memory:"))
    assert chain_level.address_at(0) == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    for index, published in PUBLISHED.items():
        assert chain_level.address_at(index) == account_level.address_at(index) == published
    Account.enable_unaudited_hdwallet_features()
    for account in (1, 7, 1000):
        independent = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{account}").address
        assert chain_level.deposit_address(account).address == independent
        assert chain_level.validate_address(independent)
        assert not chain_level.validate_address(independent.lower())
    master = str(Bip32Slip10Secp256k1.FromSeed(bytes(32)).PublicKey().ToExtended())
    with pytest.raises(ValueError, match="depth 0"):
        EvmAdapter(network("http://127.0.0.1:9", xpub=master), nonce_book=NonceBook(":memory:"))
    with pytest.raises(ValueError, match="ids must be"):
        chain_level.deposit_address(0)


# -- deposits -----------------------------------------------------------------------------------------------------


def test_native_and_token_deposits_are_credited_once_at_depth(
    chain: AnvilChain, adapter: EvmAdapter, tracked: tuple[DepositTracker, Engine]
) -> None:
    tracker, engine = tracked
    eth_to, token_to = tracker.deposit_address(11), tracker.deposit_address(12)
    eth_tx = chain.deposit(eth_to, "ETH", 3 * 10**17)
    token_tx = chain.deposit(token_to, TOKEN_SYMBOL, 12_345_678)
    chain.deposit(adapter.deposit_address(99), "ETH", 5)  # an address nobody watches
    chain.mine()
    tracker.poll()
    deposits = {d.txid: d for d in tracker.store.deposits(chain="anvil")}
    assert set(deposits) == {eth_tx, token_tx}
    assert (deposits[eth_tx].asset, deposits[eth_tx].amount, deposits[eth_tx].index) == ("ETH", 3 * 10**17, 0)
    assert (deposits[token_tx].asset, deposits[token_tx].amount) == (TOKEN_SYMBOL, 12_345_678)
    assert all(d.stage is Stage.CONFIRMING and d.confirmations == 1 for d in deposits.values())
    chain.mine(1)
    tracker.poll()
    assert engine.credits == []
    chain.mine(1)
    assert not tracker.poll().paused
    assert {d.stage for d in tracker.store.deposits(chain="anvil")} == {Stage.CREDITED}
    chain.mine(2)
    tracker.poll()
    assert sorted((c.asset, c.amount) for c in engine.credits) == [("DUSD", 12_345_678), ("ETH", 3 * 10**17)]
    height = tracker.store.deposits(txid=token_tx)[0].block_height
    assert height is not None
    block = adapter.scan(height, {token_to.address}, max_blocks=1)[0]
    (transfer,) = block.transfers
    assert transfer.source_addresses == (PAYER_ADDRESS,) and transfer.address == token_to.address


def test_reverted_token_transfer_is_not_a_deposit(chain: AnvilChain, adapter: EvmAdapter) -> None:
    """A transfer beyond the payer's balance reverts: no Transfer log, nothing found; a real one is found."""
    to = adapter.deposit_address(5)
    start = chain.tip() + 1
    reverted = chain.send(HOT_KEY, to.address, TOKEN_SYMBOL, 10**13)  # the hot wallet holds 10**12
    paid = chain.send(HOT_KEY, to.address, TOKEN_SYMBOL, 10**6)
    chain.mine()
    receipt = chain.rpc.call("eth_getTransactionReceipt", reverted)
    assert receipt["status"] == "0x0"
    transfers = [t for b in adapter.scan(start, {to.address}) for t in b.transfers]
    assert [(t.txid, t.amount) for t in transfers] == [(paid, 10**6)]


def test_reorg_orphans_an_unconfirmed_deposit_and_a_remined_one_is_credited_once(
    chain: AnvilChain, adapter: EvmAdapter, tracked: tuple[DepositTracker, Engine]
) -> None:
    tracker, engine = tracked
    txid = chain.deposit(tracker.deposit_address(21), "ETH", 10**16)
    kept = chain.send(HOT_KEY, tracker.deposit_address(22).address, TOKEN_SYMBOL, 777)  # another payer
    chain.mine()
    tracker.poll()
    raw = chain._raw(txid)
    original = tracker.store.deposits(txid=txid)[0].block_hash
    chain.reorg(1, drop=[txid])
    result = tracker.poll()
    assert result.reorged_blocks == 1 and not result.paused
    (orphaned,) = tracker.store.deposits(txid=txid)
    assert orphaned.stage is Stage.ORPHANED and orphaned.confirmations == 0
    (moved,) = tracker.store.deposits(txid=kept)  # re-mined in the replacement block: same deposit, new block
    assert moved.stage is Stage.CONFIRMING and moved.block_hash != original
    chain.mine(3)
    tracker.poll()
    assert [(c.asset, c.amount) for c in engine.credits] == [(TOKEN_SYMBOL, 777)]
    # The dropped payment is mined again later, elsewhere: it is the same deposit, credited once.
    chain.rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
    chain.mine(3)
    tracker.poll()
    chain.mine(2)
    tracker.poll()
    (again,) = tracker.store.deposits(txid=txid)
    assert again.stage is Stage.CREDITED and again.block_hash not in ("", original)
    assert sorted((c.asset, c.amount) for c in engine.credits) == [("DUSD", 777), ("ETH", 10**16)]


def test_scan_filters_logs_locally_when_too_many_addresses_are_watched(
    chain: AnvilChain, adapter: EvmAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched = {adapter.deposit_address(a).address for a in range(1, 6)}
    start = chain.tip() + 1
    chain.deposit(adapter.deposit_address(3), TOKEN_SYMBOL, 42)
    chain.deposit(adapter.deposit_address(77), TOKEN_SYMBOL, 43)
    chain.mine()
    at_node = adapter.scan(start, watched)
    monkeypatch.setattr(watch, "TOPIC_FILTER_LIMIT", 0)
    local = adapter.scan(start, watched)
    assert at_node == local and [t.amount for b in local for t in b.transfers] == [42]


# -- withdrawals --------------------------------------------------------------------------------------------------


def test_native_and_token_withdrawals_reach_the_destination(chain: AnvilChain, adapter: EvmAdapter) -> None:
    destination = Account.create().address
    unsigned, eth_txid = withdraw(adapter, "ETH", 10**17, destination)
    decoded = adapter.decode(unsigned)
    assert (decoded.source, decoded.destination, decoded.chain_id) == (HOT_ADDRESS, destination, "31337")
    _, token_txid = withdraw(adapter, TOKEN_SYMBOL, 2_500_000, destination)
    assert {adapter.transaction_status(t).state for t in (eth_txid, token_txid)} == {TxState.PENDING}
    chain.mine(3)
    for txid in (eth_txid, token_txid):
        status = adapter.transaction_status(txid)
        assert status.state is TxState.CONFIRMED and status.confirmations == 3
    assert int(chain.rpc.call("eth_getBalance", destination, "latest"), 16) == 10**17
    assert token_balance(chain, destination) == 2_500_000
    nonces = [parse_signed(chain._raw(t)).tx.nonce for t in (eth_txid, token_txid)]
    assert nonces == [0, 1]


def test_a_reverted_token_withdrawal_is_dropped_once_final(chain: AnvilChain, adapter: EvmAdapter) -> None:
    """The tokens leave the hot wallet between build and mining: the transfer reverts and moves nothing."""
    _, txid = withdraw(adapter, TOKEN_SYMBOL, 1_000)
    chain.rpc.call("anvil_setStorageAt", TOKEN, balance_slot(HOT_ADDRESS), "0x" + bytes(32).hex())
    chain.mine()
    status = adapter.transaction_status(txid)
    assert status.state is TxState.PENDING and status.block_height == chain.tip()  # mined, reverted, not final
    chain.mine(2)
    status = adapter.transaction_status(txid)
    assert status.state is TxState.DROPPED and status.confirmations == 0 and status.block_hash
    assert token_balance(chain, OUTSIDE) == 0


def test_legacy_network_builds_eip155_transactions(chain: AnvilChain, tmp_path: Path) -> None:
    adapter = EvmAdapter(network(chain.node.url, legacy=True), nonce_book=NonceBook(tmp_path / "n.sqlite"))
    try:
        unsigned, txid = withdraw(adapter, "ETH", 12345)
        _, _, tx = unpack_payload(unsigned.payload)
        assert tx.type == 0 and tx.max_fee == tx.max_priority_fee
        raw = chain._raw(txid)
        assert raw[0] >= 0xC0 and parse_signed(raw).tx.chain_id == 31337
        chain.mine()
        assert adapter.transaction_status(txid).state is TxState.CONFIRMED
    finally:
        adapter.close()


def test_broadcast_is_idempotent_and_survives_the_node_forgetting(chain: AnvilChain, adapter: EvmAdapter) -> None:
    unsigned = adapter.build_withdrawal(
        key_id="hot-1", public_key=HOT_PUBLIC, destination=OUTSIDE, asset="ETH", amount=10**15
    )
    signed = adapter.assemble(unsigned, [sign(HOT_KEY, unsigned.digests[0])])
    txid = adapter.broadcast(signed)
    assert adapter.broadcast(signed) == txid  # "already known"
    chain.rpc.call("anvil_dropTransaction", txid)  # the node forgets it (as a busy mempool may)
    assert chain.rpc.call("eth_getTransactionByHash", txid) is None
    assert adapter.transaction_status(txid).state is TxState.PENDING  # sent again: its nonce was still open
    assert chain.rpc.call("eth_getTransactionByHash", txid) is not None
    chain.mine()
    assert adapter.broadcast(signed) == txid  # mined: "nonce too low", but the node has this very transaction
    assert adapter.transaction_status(txid).state is TxState.CONFIRMED
    assert adapter.transaction_status("0x" + "ab" * 32).state is TxState.UNKNOWN


def test_fee_bump_replaces_the_transaction_and_the_original_is_dropped(chain: AnvilChain, adapter: EvmAdapter) -> None:
    first, first_txid = withdraw(adapter, "ETH", 10**15)
    bumped = adapter.bump_fee(first)
    before, after = adapter.decode(first), adapter.decode(bumped)
    assert (after.amount, after.destination) == (before.amount, before.destination)
    assert after.fee >= before.fee * 9 // 8
    assert unpack_payload(bumped.payload)[2].nonce == unpack_payload(first.payload)[2].nonce
    with pytest.raises(ValueError, match="replacement floor"):
        adapter.bump_fee(first, max_fee=unpack_payload(first.payload)[2].max_fee)
    second_txid = adapter.broadcast(adapter.assemble(bumped, [sign(HOT_KEY, bumped.digests[0])]))
    chain.mine(2)
    assert adapter.transaction_status(second_txid).state is TxState.CONFIRMED
    assert adapter.transaction_status(first_txid).state is TxState.PENDING  # replaced, but not yet final
    chain.mine(1)
    assert adapter.transaction_status(first_txid).state is TxState.DROPPED  # the replacement is 3 deep
    assert int(chain.rpc.call("eth_getBalance", OUTSIDE, "latest"), 16) == 10**15  # paid once


def test_nonces_are_never_handed_out_twice_even_across_restarts(chain: AnvilChain, tmp_path: Path) -> None:
    path = tmp_path / "book.sqlite"
    clock = [1_000.0]

    def open_adapter() -> EvmAdapter:
        book = NonceBook(path, hold_seconds=60, clock=lambda: clock[0])
        return EvmAdapter(network(chain.node.url), nonce_book=book)

    def nonce(unsigned: UnsignedTransaction) -> int:
        return unpack_payload(unsigned.payload)[2].nonce

    first = open_adapter()
    build: dict[str, Any] = {
        "key_id": "hot-1",
        "public_key": HOT_PUBLIC,
        "destination": OUTSIDE,
        "asset": "ETH",
        "amount": 1,
    }
    a = first.build_withdrawal(**build)
    b = first.build_withdrawal(**build)
    first.broadcast(first.assemble(b, [sign(HOT_KEY, b.digests[0])]))
    first.nonce_book.close()
    first.close()
    second = open_adapter()  # a restart: the node's pending count is 0 (nonce 0 never sent), the book remembers
    try:
        c = second.build_withdrawal(**build)
        assert [nonce(a), nonce(b), nonce(c)] == [0, 1, 2]
        assert second.release(a) and not second.release(a)  # the policy refused a: its nonce is free again
        assert nonce(second.build_withdrawal(**build)) == 0
        clock[0] += 61  # reservations that were never broadcast expire; broadcast nonces never do
        assert [nonce(second.build_withdrawal(**build)) for _ in range(2)] == [0, 2]
        assert second.nonce_book.reserved(HOT_ADDRESS) == {0: "reserved", 1: "used", 2: "reserved"}
    finally:
        second.nonce_book.close()
        second.close()


def test_build_refuses_what_the_wallet_cannot_pay_and_wrong_wallets(chain: AnvilChain, adapter: EvmAdapter) -> None:
    build: dict[str, Any] = {"key_id": "hot-1", "public_key": HOT_PUBLIC, "destination": OUTSIDE}
    with pytest.raises(InsufficientFunds, match="short by"):
        adapter.build_withdrawal(**build, asset="ETH", amount=10**24)
    with pytest.raises(InsufficientFunds, match="short by"):
        adapter.build_withdrawal(**build, asset=TOKEN_SYMBOL, amount=10**13)
    with pytest.raises(ValueError, match="cannot estimate gas"):  # the dev token reverts a plain payment
        adapter.build_withdrawal(key_id="hot-1", public_key=HOT_PUBLIC, destination=TOKEN, asset="ETH", amount=1)
    with pytest.raises(ValueError, match="memo"):
        adapter.build_withdrawal(**build, asset="ETH", amount=1, memo="x")
    strict = EvmAdapter(
        network(chain.node.url, hot_wallet_address=PAYER_ADDRESS, hot_wallet_key_id="hot-1"),
        nonce_book=NonceBook(":memory:"),
    )
    with pytest.raises(ValueError, match="not the configured hot wallet"):
        strict.build_withdrawal(**build, asset="ETH", amount=1)
    built = adapter.build_withdrawal(**build, asset="ETH", amount=1)
    with pytest.raises(ValueError, match="not the hot wallet"):
        strict.decode(UnsignedTransaction("anvil", built.payload, built.digests, "hot-1"))
    adapter.release(built)
    assert adapter.nonce_book.reserved(HOT_ADDRESS) == {}  # nothing was reserved by a refused build


def test_a_refused_broadcast_frees_its_nonce(chain: AnvilChain, adapter: EvmAdapter) -> None:
    unsigned = adapter.build_withdrawal(
        key_id="hot-1", public_key=HOT_PUBLIC, destination=OUTSIDE, asset="ETH", amount=10**18
    )
    chain.rpc.call("anvil_setBalance", HOT_ADDRESS, "0x1")  # the funds left before the broadcast
    with pytest.raises(ValueError, match="refused"):
        adapter.broadcast(adapter.assemble(unsigned, [sign(HOT_KEY, unsigned.digests[0])]))
    assert adapter.nonce_book.reserved(HOT_ADDRESS) == {}


# -- node faults --------------------------------------------------------------------------------------------------


def test_node_down_pauses_the_tracker_and_a_restart_resumes(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    node = AnvilNode(state_file=state).start()
    book = NonceBook(tmp_path / "nonces.sqlite")
    adapter = EvmAdapter(network(node.url), nonce_book=book)
    store = DepositStore(tmp_path / "deposits.db")
    engine = Engine(["ETH", TOKEN_SYMBOL])
    try:
        node.rpc.call("anvil_mine", "0x1")
        tracker = DepositTracker(adapter, store, submit=engine, screen=lambda r: Decision.allow(), start_height=2)
        chain = AnvilChain(node)
        chain.deposit(tracker.deposit_address(3), "ETH", 10**16)
        chain.mine()
        assert not tracker.poll().paused
        node.stop()
        result = tracker.poll()
        assert result.paused and "NodeFault" in result.error and "unreachable" in result.error
        with pytest.raises(NodeFault):
            adapter.tip_height()
        node.start()
        chain.mine(3)
        result = tracker.poll()
        assert not result.paused, result.error
        assert [(c.asset, c.amount) for c in engine.credits] == [("ETH", 10**16)]
    finally:
        store.close()
        adapter.close()
        book.close()
        node.stop()


def _wait_until_stopped(pid: int) -> None:
    """Until every thread of ``pid`` is stopped (state T)."""

    def states() -> set[str]:
        return {
            (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in Path(f"/proc/{pid}/task").iterdir()
        }

    deadline = time.monotonic() + 10
    while states() != {"T"}:
        assert time.monotonic() < deadline, "anvil did not stop"
        time.sleep(0.005)


def test_a_hung_node_times_out_as_a_node_fault(chain: AnvilChain, tmp_path: Path) -> None:
    """A node that accepts connections but never answers (SIGSTOP) is a NodeFault after rpc_timeout."""
    adapter = EvmAdapter(network(chain.node.url, rpc_timeout=0.3), nonce_book=NonceBook(tmp_path / "n.sqlite"))
    process = chain.node.process
    assert process is not None
    try:
        assert adapter.tip_height() >= 0
        process.send_signal(signal.SIGSTOP)
        _wait_until_stopped(process.pid)  # kill() only queues the signal: on a busy machine anvil may answer first
        try:
            with pytest.raises(NodeFault, match="Timeout"):
                adapter.scan(1, {OUTSIDE})
        finally:
            process.send_signal(signal.SIGCONT)
        assert adapter.tip_height() >= 0
    finally:
        adapter.close()


# -- plugin -------------------------------------------------------------------------------------------------------


def test_plugin_registers_one_adapter_per_network(tmp_path: Path, installed_entry_points: None) -> None:
    from exchange_framework.chains import chain_adapters
    from exchange_framework.config import parse_config
    from exchange_framework.interfaces import ChainAdapter
    from exchange_framework.plugins import make_plugin_manager

    text = f"""
[brand]
name = "T"
[plugins.settings.evm]
data_dir = "evmdata"
[[plugins.settings.evm.networks]]
name = "ethereum"
chain_id = 1
rpc_url = "http://127.0.0.1:9"
confirmations = 12
native_symbol = "ETH"
xpub = "{XPUB_ACCOUNT}"
[[plugins.settings.evm.networks.tokens]]
symbol = "USDC"
contract = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
decimals = 6
[[plugins.settings.evm.networks]]
name = "polygon"
chain_id = 137
rpc_url = "http://127.0.0.1:9"
confirmations = 64
native_symbol = "POL"
xpub = "{XPUB_CHAIN}"
"""
    config = parse_config(text, root=tmp_path)
    adapters = chain_adapters(make_plugin_manager(config), config)
    ethereum, polygon = adapters["ethereum"], adapters["polygon"]
    assert isinstance(ethereum, ChainAdapter) and isinstance(polygon, EvmAdapter)
    assert (ethereum.chain_id, ethereum.required_confirmations, polygon.native_asset) == ("1", 12, "POL")
    assert ethereum.deposit_address(1) == polygon.deposit_address(1)  # the same key on every EVM network
    assert not (tmp_path / "evmdata").exists()  # registering opens nothing


def test_settings_errors_name_the_key() -> None:
    good = {"name": "eth", "chain_id": 1, "rpc_url": "http://x", "confirmations": 3, "native_symbol": "ETH"}
    with pytest.raises(ValueError, match=r"networks\.0\.xpub"):
        parse_settings({"networks": [good]})
    with pytest.raises(ValueError, match=r"networks\.0\.confirmation"):
        parse_settings({"networks": [{**good, "xpub": XPUB_CHAIN, "confirmation": 3}]})
    with pytest.raises(ValueError, match=r"chain_id"):
        parse_settings({"networks": [{**good, "xpub": XPUB_CHAIN, "chain_id": "1"}]})
    with pytest.raises(ValueError, match="EIP-55"):
        lower = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
        token = {"symbol": "USDC", "contract": lower, "decimals": 6}
        parse_settings({"networks": [{**good, "xpub": XPUB_CHAIN, "tokens": [token]}]})
    with pytest.raises(ValueError, match="unique"):
        parse_settings({"networks": [{**good, "xpub": XPUB_CHAIN}, {**good, "xpub": XPUB_CHAIN}]})
    assert parse_settings({}).networks == ()
