"""A core shard: the journal, the sequencer and the engine of a set of markets, wired together.

Start-up is the latest snapshot plus the journal's tail. Commands are acknowledged only once journalled
durably; the engine applies them in journal order on the sequencer's writer thread and hands every event to
the registered event subscribers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import pluggy

from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.commands import Command, decode_command, encode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event
from exchange_framework.engine.snapshot import restore, snapshot
from exchange_framework.plugins import PluginError, collect_registered, make_plugin_manager
from exchange_framework.sequencer import (
    Journal,
    JournalRecord,
    Sequencer,
    SnapshotStore,
    Ticket,
    recover,
)

EventSink = Callable[[Sequence[Event]], None]
AppliedSink = Callable[[Sequence[JournalRecord], Sequence[Command], Sequence[Event]], None]
Progress = Callable[[int, int], None]


def open_journal(config: ExchangeConfig, pm: pluggy.PluginManager) -> Journal:
    """Open the journal of the backend named by ``[backends] journal``."""
    backends = collect_registered(pm, "register_journal_backends", config=config)
    name = config.backends.journal
    backend = backends.get(name)
    if backend is None:
        known = ", ".join(sorted(backends)) or "none"
        raise PluginError(
            f"[backends] journal = {name!r}, but no plugin registers a journal backend of that name "
            f"(registered: {known}); install the plugin or pick a registered name"
        )
    journal: Journal = backend.open(config)
    return journal


class Shard:
    """One engine shard with its journal and snapshots.

    Use :meth:`submit` (group commit, from any thread) after :meth:`start`, or :meth:`execute` for synchronous
    batches. ``on_events`` receives each applied batch's events on the writer thread, in sequence order;
    ``on_applied`` receives the batch's journal records (sequence numbers and timestamps), its commands and its
    events, for consumers that need to know which command caused what (the API's read models).
    Every ``snapshot_every`` commands (0: never) the running shard writes a snapshot, so start-up replays at
    most that many commands after the newest one.
    """

    def __init__(
        self,
        config: ExchangeConfig,
        *,
        journal: Journal | None = None,
        snapshot_dir: Path | None = None,
        pm: pluggy.PluginManager | None = None,
        on_events: EventSink | None = None,
        on_applied: AppliedSink | None = None,
        progress: Progress | None = None,
        snapshot_every: int = 100_000,
    ) -> None:
        self.config = config
        self.pm = pm if pm is not None else make_plugin_manager(config)
        self.journal = journal if journal is not None else open_journal(config, self.pm)
        try:
            directory = snapshot_dir if snapshot_dir is not None else config.journal_path().parent / "snapshots"
            self.snapshots = SnapshotStore(directory)
            self.engine = MatchingEngine(config.engine_assets(), config.engine_markets())
            self.on_events = on_events
            self.on_applied = on_applied
            self.recovered_seq = recover(
                self.journal,
                self.snapshots,
                restore=lambda state: restore(self.engine, state),
                apply=self._replay_record,
                progress=progress,
            )
        except BaseException:
            if journal is None:  # we opened it: do not leave it (and its lock) behind
                self.journal.close()
            raise
        self.engine.events.clear()  # recovery re-creates events that consumers already have
        self.snapshot_every = snapshot_every
        self._snapshot_seq = self.engine.last_seq
        self.sequencer = Sequencer(self.journal)
        self._pending: deque[Command] = deque()  # submitted, not yet applied, in submission order
        self._submit_lock = threading.Lock()

    def _replay_record(self, record: JournalRecord) -> None:
        self.engine.apply(record.seq, decode_command(record.payload))
        self.engine.events.clear()

    # -- synchronous
    def execute(self, commands: Sequence[Command]) -> list[Event]:
        """Journal ``commands`` durably as one batch, apply them, and return their events."""
        records = self.sequencer.append_batch([encode_command(c) for c in commands])
        engine = self.engine
        for record, command in zip(records, commands, strict=True):
            engine.apply(record.seq, command)
        events = engine.events
        engine.events = []
        if self.on_events is not None:
            self.on_events(events)
        if self.on_applied is not None:
            self.on_applied(records, commands, events)
        self._maybe_snapshot()
        return events

    # -- group commit
    def start(self) -> None:
        """Start the group-commit writer; the engine then applies each durable batch on that thread."""
        self.sequencer.start(self._apply_durable)

    def submit(self, command: Command) -> Ticket:
        """Queue a command; its ticket resolves once it is durable and applied."""
        payload = encode_command(command)
        with self._submit_lock:
            self._pending.append(command)  # before submitting: the writer may apply it at once
            try:
                return self.sequencer.submit(payload)
            except BaseException:
                self._pending.pop()  # refused: it must not stand in for the next journalled command
                raise

    def submit_many(self, commands: Sequence[Command]) -> list[Ticket]:
        """Queue several commands in order; one ticket each."""
        payloads = [encode_command(c) for c in commands]
        with self._submit_lock:
            self._pending.extend(commands)
            try:
                return self.sequencer.submit_many(payloads)
            except BaseException:
                for _ in commands:
                    self._pending.pop()
                raise

    def _apply_durable(self, records: list[JournalRecord]) -> None:
        engine = self.engine
        apply = engine.apply
        pending = self._pending
        if self.on_applied is None:
            for record in records:
                apply(record.seq, pending.popleft())
        else:
            commands = [pending.popleft() for _ in records]
            for record, command in zip(records, commands, strict=True):
                apply(record.seq, command)
        events = engine.events
        if events:
            engine.events = []  # the batch now belongs to the subscriber
            if self.on_events is not None:
                self.on_events(events)
        if self.on_applied is not None:
            self.on_applied(records, commands, events if events else ())  # never the engine's own list
        self._maybe_snapshot()  # on the writer thread, between batches: a consistent state

    def _maybe_snapshot(self) -> None:
        if self.snapshot_every and self.engine.last_seq - self._snapshot_seq >= self.snapshot_every:
            self.take_snapshot()

    # -- lifecycle
    def take_snapshot(self) -> Path:
        """Write a snapshot of the engine's state and keep the newest three.

        The shard snapshots by itself every ``snapshot_every`` commands while running; call this yourself only
        when the writer is not running (before :meth:`start` or after :meth:`close`).
        """
        path = self.snapshots.save(self.engine.last_seq, snapshot(self.engine))
        self._snapshot_seq = self.engine.last_seq
        self.snapshots.prune(keep=3)
        return path

    def close(self) -> None:
        """Flush what is queued, stop the writer and close the journal."""
        self.sequencer.stop()
        self.journal.close()

    def __enter__(self) -> Shard:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
