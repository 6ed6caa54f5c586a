"""Settlement: the ledger consumer that turns the command journal into balanced ledger entries, in sequence.

Events are not stored anywhere. The engine is deterministic, so an engine replica that replays the journal
produces exactly the events the live shard produced; :class:`~exchange_framework.ledger.postings.PostingRules`
turns each sequence number's events into one :class:`~exchange_framework.ledger.postings.Entry`. Entries are
written in batches, each batch one database transaction together with the consumer's high-water mark, and the
events of one seq always stay in one entry, so both legs of a trade and both fees commit together (DvP).

The high-water mark is the only state settlement keeps. On start-up the replica is rebuilt up to it -- from the
newest valid engine snapshot at or below it, if a snapshot directory is given, then the journal -- and settlement
continues after it. A crash at any moment loses nothing and doubles nothing: a batch is either committed with its
mark or not at all, and entries at or below the mark are never written again.

Every seq gets an entry, also one without postings (a rejected order, a cancel of a filled order), so the
ledger's entries are exactly seq 1 to the mark, whatever the batch sizes were.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

import msgspec

from exchange_framework.engine.commands import decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.engine.snapshot import restore
from exchange_framework.interfaces import LedgerStore
from exchange_framework.ledger.postings import Entry, PostingRules
from exchange_framework.sequencer import Journal, SnapshotStore

__all__ = ["EngineConfig", "Settlement", "SettlementError"]

Progress = Callable[[int, int], None]

_log = logging.getLogger(__name__)
_YIELD_EVERY = 4096  # records replayed between two returns to the event loop


class SettlementError(Exception):
    """Settlement cannot go on: the ledger and the journal disagree."""


class EngineConfig(Protocol):
    """What settlement needs from an exchange's configuration (:class:`~exchange_framework.config.ExchangeConfig`)."""

    def engine_assets(self) -> Mapping[str, AssetSpec]: ...

    def engine_markets(self) -> Mapping[str, MarketSpec]: ...


class Settlement:
    """Apply the engine's events to the ledger in sequence, regenerating them by replaying the journal.

    ``store`` must have its schema (:meth:`SqlLedgerStore.create_schema`); :meth:`run` registers the config's
    assets itself. ``snapshots`` (optional) lets a restart restore the engine replica instead of replaying the
    journal from seq 1. ``batch_size`` entries (seqs) are written per database transaction. ``consumer`` names
    the high-water mark in the ledger.

    :attr:`engine` is the replica: after :meth:`run` its state is the engine's state at the returned mark.
    """

    def __init__(
        self,
        config: EngineConfig,
        store: LedgerStore,
        journal: Journal,
        *,
        snapshots: SnapshotStore | None = None,
        batch_size: int = 10_000,
        consumer: str = "settlement",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.store = store
        self.journal = journal
        self.snapshots = snapshots
        self.batch_size = batch_size
        self.consumer = consumer
        self._assets = dict(config.engine_assets())
        self._markets = dict(config.engine_markets())
        self._assets_registered = False
        self.engine = MatchingEngine(self._assets, self._markets)
        self.rules = PostingRules(dict(self._markets))
        self.restored_from = 0
        """Seq of the snapshot the replica was last rebuilt from (0: replayed from seq 1)."""
        self._done_seq = 0  # the replica and the rules have completely processed every seq up to this one

    async def run(self, *, until_seq: int | None = None, progress: Progress | None = None) -> int:
        """Settle the journal records after the ledger's high-water mark up to ``until_seq``; return the new mark.

        ``until_seq`` defaults to the journal's ``last_seq`` (and is capped by it). ``progress(done, total)`` is
        called after every committed batch with the records settled so far in this run and the number to settle.
        Raises :class:`SettlementError` if the ledger is ahead of the journal.
        """
        if until_seq is not None and until_seq < 0:
            raise ValueError(f"until_seq must not be negative, not {until_seq}")
        if not self._assets_registered:
            await self.store.ensure_assets(self._assets)
            self._assets_registered = True
        last = self.journal.last_seq
        mark = await self.store.last_seq(self.consumer)
        if mark > last:
            raise SettlementError(
                f"the ledger has settled up to seq {mark} ({self.consumer!r}) but the journal ends at seq {last}: "
                "the ledger belongs to another journal, or the journal lost records; point settlement at the "
                "journal this ledger was built from"
            )
        await self._catch_up(mark)
        target = last if until_seq is None else min(until_seq, last)
        if target <= mark:
            return mark
        total = target - mark
        start = mark
        engine = self.engine
        events = engine.events
        postings = self.rules.postings
        batch: list[Entry] = []
        expected = mark + 1
        for record in self.journal.read(expected):
            seq = record.seq
            if seq != expected:
                raise SettlementError(f"the journal yielded seq {seq} where {expected} belongs")
            engine.apply(seq, decode_command(record.payload))
            batch.append(Entry(seq, postings(events), record.ts_ns))
            events.clear()
            self._done_seq = seq
            if len(batch) >= self.batch_size or seq == target:
                mark = await self._commit(batch, mark)
                batch = []
                if progress is not None:
                    progress(min(mark, target) - start, total)
            if seq == target:
                break
            expected += 1
        else:
            raise SettlementError(f"the journal ended at seq {expected - 1}, before seq {target}")
        if mark > engine.last_seq:  # another process settled further meanwhile: follow it
            await self._catch_up(mark)
        return mark

    async def _commit(self, batch: list[Entry], mark: int) -> int:
        new_mark = await self.store.apply(batch, self.consumer)
        if new_mark < batch[-1].seq:
            raise SettlementError(
                f"the ledger's high-water mark went back to {new_mark} while seq {mark + 1}..{batch[-1].seq} "
                "were settled: the ledger was changed underneath this settlement"
            )
        if new_mark > batch[-1].seq:
            _log.warning(
                "%s: the ledger's high-water mark is %d, beyond this batch's last seq %d: another process is "
                "settling the same consumer",
                self.consumer,
                new_mark,
                batch[-1].seq,
            )
        return new_mark

    # -- the replica

    async def _catch_up(self, mark: int) -> None:
        """Bring the replica (and the posting rules' order -> asset map) to exactly ``mark``, without posting."""
        if self.engine.last_seq != self._done_seq or self.engine.last_seq > mark:
            # Half-way through a record that raised, or ahead of the ledger (a batch failed after the replica
            # applied it): the events in between are gone, so start over.
            self._reset()
        if self.snapshots is not None and self.engine.last_seq < mark:
            self._restore_snapshot(after=self.engine.last_seq, upto=mark)
        if self.engine.last_seq < mark:
            await self._replay_silently(mark)

    def _reset(self) -> None:
        self.engine = MatchingEngine(self._assets, self._markets)
        self.rules = PostingRules(dict(self._markets))
        self.restored_from = 0
        self._done_seq = 0

    def _restore_snapshot(self, *, after: int, upto: int) -> None:
        """Restore the newest intact snapshot taken after ``after`` and at or before ``upto``, if there is one."""
        assert self.snapshots is not None
        for seq in reversed(self.snapshots.seqs()):
            if seq > upto:
                continue
            if seq <= after:
                return
            state = self.snapshots.load(seq)
            if state is None:
                continue
            engine = MatchingEngine(self._assets, self._markets)
            try:
                restore(engine, state)
            except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
                _log.warning("skipping the snapshot at seq %d: it does not restore (%s)", seq, exc)
                continue
            if engine.last_seq != seq:
                _log.warning("skipping the snapshot at seq %d: it holds the state after seq %d", seq, engine.last_seq)
                continue
            self.engine = engine
            self.rules = PostingRules(dict(self._markets))
            self.rules.remember_open_orders((o.order_id, o.asset) for o in engine.orders.values())
            self.restored_from = self._done_seq = seq
            _log.info("settlement replica restored from the snapshot at seq %d", seq)
            return

    async def _replay_silently(self, mark: int) -> None:
        engine = self.engine
        events = engine.events
        postings = self.rules.postings
        expected = engine.last_seq + 1
        for record in self.journal.read(expected):
            seq = record.seq
            if seq != expected:
                raise SettlementError(f"the journal yielded seq {seq} where {expected} belongs")
            engine.apply(seq, decode_command(record.payload))
            postings(events)  # settled long ago; run only to keep the order -> asset map right
            events.clear()
            self._done_seq = seq
            if seq == mark:
                return
            expected += 1
            if seq % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        raise SettlementError(f"the journal ended at seq {expected - 1}, before the ledger's mark {mark}")
