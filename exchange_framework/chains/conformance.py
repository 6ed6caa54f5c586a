"""The conformance kit every chain adapter runs against its own chain (a local node, regtest or in-process).

Subclass :class:`ChainAdapterConformance` in the adapter's tests and give it a ``chain_harness`` fixture that
returns a :class:`ChainHarness`: the adapter, ways to move the chain (send a deposit, mine, reorganise), a funded
hot wallet key and a signing callable standing in for the custody signer (the kit depends on no custody plugin)::

    import pytest
    from exchange_framework.chains.conformance import ChainAdapterConformance

    class TestMyChainConformance(ChainAdapterConformance):
        @pytest.fixture
        def chain_harness(self, tmp_path):
            return MyChainHarness(tmp_path)  # starts the node, funds the hot wallet

The stories it checks, each a test method: deposit addresses (the adapter's known-answer vectors, deterministic,
valid, distinct per account); build -> decode round trips (decoded fields equal what was asked, decoding reads the
payload); refusals (tampered payloads, bad signatures, bad addresses); scanning (headers linked by parent hash,
transfers with atomic amounts); deposit seen -> credited at depth through the kernel's deposit tracker and engine;
a reorg before depth orphaning the deposit; withdrawal build -> sign -> assemble -> broadcast (twice: one txid)
-> confirmed; two withdrawals built together both confirming (no nonce or input handed out twice). A chain that
cannot reorganise on demand raises ``pytest.skip`` from ``reorg``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from exchange_framework.engine.commands import Command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event, FundsCredited
from exchange_framework.engine.market import AssetSpec
from exchange_framework.funding.deposits import DepositTracker
from exchange_framework.funding.store import DepositStore, Stage
from exchange_framework.interfaces import (
    ChainAdapter,
    Decision,
    DepositAddress,
    ScannedBlock,
    TxState,
    UnsignedTransaction,
)

__all__ = ["ChainAdapterConformance", "ChainHarness"]


class ChainHarness(Protocol):
    """What an adapter's tests hand the kit: the adapter under test and control of its chain."""

    adapter: ChainAdapter
    hot_key_id: str  # the custody key id withdrawals are built for
    hot_public_key: bytes  # its public key; its address must hold enough of every asset in ``amounts``
    withdrawal_destination: str  # a valid address on the chain that is not the hot wallet
    amounts: Mapping[str, int]  # asset -> an amount (atomic units) to deposit and withdraw; the native asset first
    address_vectors: Mapping[int, DepositAddress]  # account -> the address the adapter must derive (known answers)

    def deposit(self, to: DepositAddress, asset: str, amount: int) -> str:
        """Send ``amount`` of ``asset`` to ``to`` from some other wallet; return the txid (not yet mined)."""
        ...

    def mine(self, blocks: int = 1) -> None:
        """Add ``blocks`` blocks to the best chain, including pending transactions."""
        ...

    def reorg(self, depth: int, *, drop: Collection[str]) -> None:
        """Replace the last ``depth`` blocks with a longer branch that leaves out the transactions ``drop``."""
        ...

    def sign(self, key_id: str, digest: bytes) -> bytes:
        """Sign one digest with the custody key ``key_id``, in the format the adapter's ``assemble`` documents."""
        ...


class _Engine:
    """The kernel's matching engine fed as a shard feeds it (without a journal), recording the credits."""

    def __init__(self, assets: Collection[str]) -> None:
        self.engine = MatchingEngine({a: AssetSpec(a, 0) for a in assets}, {})
        self.seq = 0
        self.credits: list[FundsCredited] = []

    def __call__(self, command: Command) -> Sequence[Event]:
        self.seq += 1
        self.engine.apply(self.seq, command)
        events, self.engine.events = self.engine.events, []
        self.credits += [e for e in events if isinstance(e, FundsCredited)]
        return events


class ChainAdapterConformance:
    """Conformance tests for a :class:`~exchange_framework.interfaces.ChainAdapter` (subclass it; see the module)."""

    # -- helpers -------------------------------------------------------------------------------------------------

    @staticmethod
    def _tracker(h: ChainHarness, tmp_path: Path) -> tuple[DepositTracker, _Engine]:
        engine = _Engine(h.amounts)
        store = DepositStore(tmp_path / f"conformance-{h.adapter.name}.db")
        tracker = DepositTracker(
            h.adapter,
            store,
            submit=engine,
            screen=lambda request: Decision.allow(provider="conformance"),
            start_height=h.adapter.tip_height() + 1,
        )
        return tracker, engine

    @staticmethod
    def _build(h: ChainHarness, asset: str, amount: int) -> UnsignedTransaction:
        return h.adapter.build_withdrawal(
            key_id=h.hot_key_id,
            public_key=h.hot_public_key,
            destination=h.withdrawal_destination,
            asset=asset,
            amount=amount,
        )

    # -- addresses -----------------------------------------------------------------------------------------------

    def test_deposit_addresses_match_the_adapters_vectors(self, chain_harness: ChainHarness) -> None:
        """The adapter derives exactly the addresses its own known-answer vectors list."""
        assert chain_harness.address_vectors, "supply at least one (account, address) vector"
        for account, expected in chain_harness.address_vectors.items():
            assert chain_harness.adapter.deposit_address(account) == expected

    def test_deposit_addresses_are_deterministic_valid_and_distinct(self, chain_harness: ChainHarness) -> None:
        """Every account gets one valid address (and memo), the same every time, different from every other's."""
        adapter = chain_harness.adapter
        addresses = [adapter.deposit_address(account) for account in range(1, 51)]
        assert all(isinstance(a, DepositAddress) and adapter.validate_address(a.address) for a in addresses)
        assert len({(a.address, a.memo) for a in addresses}) == 50
        assert [adapter.deposit_address(account) for account in range(1, 51)] == addresses

    def test_validate_address_refuses_malformed_addresses(self, chain_harness: ChainHarness) -> None:
        """Empty strings, garbage and a valid address with one character changed are all refused."""
        adapter = chain_harness.adapter
        good = adapter.deposit_address(1).address
        flipped = good[:-1] + ("1" if good[-1] != "1" else "2")
        for bad in ("", "not an address", good + "x", flipped):
            assert not adapter.validate_address(bad), bad
        assert adapter.validate_address(chain_harness.withdrawal_destination)

    # -- withdrawals: build, decode, refuse ----------------------------------------------------------------------

    def test_build_decode_round_trip(self, chain_harness: ChainHarness) -> None:
        """Decoding a built withdrawal gives back what was asked, on this chain's id, with a positive fee bound."""
        h = chain_harness
        for asset, amount in h.amounts.items():
            unsigned = self._build(h, asset, amount)
            assert unsigned.chain == h.adapter.name and unsigned.key_id == h.hot_key_id
            assert unsigned.digests and all(len(d) == 32 for d in unsigned.digests)
            decoded = h.adapter.decode(unsigned)
            assert (decoded.chain, decoded.chain_id) == (h.adapter.name, h.adapter.chain_id)
            assert (decoded.asset, decoded.amount, decoded.destination) == (asset, amount, h.withdrawal_destination)
            assert decoded.fee_asset == h.adapter.native_asset and decoded.fee > 0
            assert h.adapter.validate_address(decoded.source)

    def test_decode_reads_the_payload_and_refuses_garbage(self, chain_harness: ChainHarness) -> None:
        """A payload that does not parse, or whose digests are not its own, is refused with ValueError."""
        h = chain_harness
        asset, amount = next(iter(h.amounts.items()))
        unsigned = self._build(h, asset, amount)
        with pytest.raises(ValueError):
            h.adapter.decode(UnsignedTransaction(unsigned.chain, b"\x00garbage", unsigned.digests, unsigned.key_id))
        other = self._build(h, asset, amount + 1)
        with pytest.raises(ValueError):
            h.adapter.decode(UnsignedTransaction(unsigned.chain, other.payload, unsigned.digests, unsigned.key_id))

    def test_build_refuses_bad_requests(self, chain_harness: ChainHarness) -> None:
        """A bad destination, an unknown asset or a non-positive amount is a ValueError, not a transaction."""
        h = chain_harness
        asset = next(iter(h.amounts))
        for destination, bad_asset, amount in (
            ("not an address", asset, 1),
            (h.withdrawal_destination, "NO-SUCH-ASSET", 1),
            (h.withdrawal_destination, asset, 0),
            (h.withdrawal_destination, asset, -5),
        ):
            with pytest.raises(ValueError):
                h.adapter.build_withdrawal(
                    key_id=h.hot_key_id,
                    public_key=h.hot_public_key,
                    destination=destination,
                    asset=bad_asset,
                    amount=amount,
                )

    def test_assemble_refuses_a_signature_over_another_digest(self, chain_harness: ChainHarness) -> None:
        """A signature that does not sign this transaction's digest is refused before anything is broadcast."""
        h = chain_harness
        asset, amount = next(iter(h.amounts.items()))
        unsigned = self._build(h, asset, amount)
        wrong = [h.sign(h.hot_key_id, bytes(32 - len(b"other")) + b"other") for _ in unsigned.digests]
        with pytest.raises(ValueError):
            h.adapter.assemble(unsigned, wrong)

    # -- watching ------------------------------------------------------------------------------------------------

    def test_scan_returns_linked_headers_and_the_transfer(self, chain_harness: ChainHarness) -> None:
        """Scanned blocks are consecutive, linked by parent hash, and carry the deposit with its atomic amount."""
        h = chain_harness
        asset, amount = next(iter(h.amounts.items()))
        to = h.adapter.deposit_address(4242)
        start = h.adapter.tip_height() + 1
        txid = h.deposit(to, asset, amount)
        h.mine(2)
        blocks = h.adapter.scan(start, {to.address})
        assert [b.header.height for b in blocks] == [start, start + 1]
        assert all(isinstance(b, ScannedBlock) for b in blocks)
        previous = h.adapter.block_header(start - 1)
        assert previous is not None and blocks[0].header.parent_hash == previous.hash
        assert blocks[1].header.parent_hash == blocks[0].header.hash
        assert h.adapter.block_header(start) == blocks[0].header
        assert h.adapter.block_header(h.adapter.tip_height() + 1) is None
        found = [t for b in blocks for t in b.transfers if t.txid == txid]
        assert [(t.asset, t.amount, t.address, t.memo) for t in found] == [(asset, amount, to.address, to.memo)]

    def test_deposit_is_seen_then_credited_at_depth(self, chain_harness: ChainHarness, tmp_path: Path) -> None:
        """Through the kernel's tracker: confirming below depth, credited once at the adapter's depth."""
        h = chain_harness
        tracker, engine = self._tracker(h, tmp_path)
        required = h.adapter.required_confirmations
        credited: dict[str, int] = {}
        for n, (asset, amount) in enumerate(h.amounts.items()):
            txid = h.deposit(tracker.deposit_address(100 + n), asset, amount)
            credited[txid] = amount
        h.mine(1)
        tracker.poll()
        deposits = tracker.store.deposits(chain=h.adapter.name)
        assert {d.txid for d in deposits} == set(credited)
        expected_stage = Stage.CREDITED if required == 1 else Stage.CONFIRMING
        assert all(d.stage is expected_stage and d.confirmations == 1 for d in deposits)
        h.mine(required - 1)
        result = tracker.poll()
        assert not result.paused, result.error
        assert {d.stage for d in tracker.store.deposits(chain=h.adapter.name)} == {Stage.CREDITED}
        h.mine(1)
        tracker.poll()
        assert sorted(c.amount for c in engine.credits) == sorted(credited.values())
        tracker.store.close()

    def test_reorg_before_depth_orphans_the_deposit(self, chain_harness: ChainHarness, tmp_path: Path) -> None:
        """A deposit whose block is replaced before it reaches depth is orphaned and never credited."""
        h = chain_harness
        required = h.adapter.required_confirmations
        tracker, engine = self._tracker(h, tmp_path)
        asset, amount = next(iter(h.amounts.items()))
        txid = h.deposit(tracker.deposit_address(77), asset, amount)
        h.mine(1)
        tracker.poll()
        h.reorg(1, drop=[txid])
        h.mine(required)
        result = tracker.poll()
        assert not result.paused, result.error
        (deposit,) = tracker.store.deposits(txid=txid)
        assert deposit.stage is Stage.ORPHANED and deposit.confirmations == 0
        assert engine.credits == []
        tracker.store.close()

    # -- withdrawals to finality ---------------------------------------------------------------------------------

    def test_withdrawal_is_broadcast_once_and_confirmed(self, chain_harness: ChainHarness) -> None:
        """build -> sign -> assemble -> broadcast (twice, one txid) -> pending -> confirmed at depth."""
        h = chain_harness
        for asset, amount in h.amounts.items():
            unsigned = self._build(h, asset, amount)
            signatures = [h.sign(unsigned.key_id, digest) for digest in unsigned.digests]
            signed = h.adapter.assemble(unsigned, signatures)
            txid = h.adapter.broadcast(signed)
            assert h.adapter.broadcast(signed) == txid
            assert h.adapter.transaction_status(txid).state in (TxState.PENDING, TxState.CONFIRMED)
            h.mine(h.adapter.required_confirmations)
            status = h.adapter.transaction_status(txid)
            assert status.state is TxState.CONFIRMED
            assert status.confirmations >= h.adapter.required_confirmations
            assert h.adapter.broadcast(signed) == txid
        assert h.adapter.transaction_status("00" * 32).state is TxState.UNKNOWN

    def test_withdrawals_built_together_both_confirm(self, chain_harness: ChainHarness) -> None:
        """Two withdrawals built before either is broadcast get different nonces or inputs, and both confirm."""
        h = chain_harness
        asset, amount = next(iter(h.amounts.items()))
        built = [self._build(h, asset, amount), self._build(h, asset, amount + 1)]
        txids = []
        for unsigned in built:
            signed = h.adapter.assemble(unsigned, [h.sign(unsigned.key_id, digest) for digest in unsigned.digests])
            txids.append(h.adapter.broadcast(signed))
        assert txids[0] != txids[1]
        h.mine(h.adapter.required_confirmations)
        for txid in txids:
            assert h.adapter.transaction_status(txid).state is TxState.CONFIRMED
