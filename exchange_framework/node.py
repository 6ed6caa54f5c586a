"""A running exchange on one machine: the shard, the read models the API serves, and settlement in the background.

The node owns the asyncio side of the kernel. Commands are submitted from coroutines and journalled by the shard's
group-commit writer thread; every applied batch comes back to the event loop in journal order, where it updates the
read models (orders, balances, market data) and then wakes the coroutines that submitted those commands. So when
:meth:`ExchangeNode.submit` returns, every read model already shows the command's effect.

On start the read models are rebuilt by replaying the journal (they are not the system of record), while the
engine itself recovers from its newest snapshot plus the journal's tail. Settlement posts the journal to the ledger
every ``settle_every`` seconds, on its own thread and event loop so that it never stalls the API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pluggy

from exchange_framework.config import AuditSettings, ExchangeConfig, JournalSettings, LedgerSettings
from exchange_framework.engine.commands import Command, decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event
from exchange_framework.interfaces import LedgerStore
from exchange_framework.ledger.settlement import Settlement
from exchange_framework.plugins import collect_registered, make_plugin_manager
from exchange_framework.sequencer import JournalRecord
from exchange_framework.shard import Progress, Shard
from exchange_framework.views import BalanceView, OrderView

__all__ = ["Applied", "BatchListener", "CommandListener", "ExchangeNode", "NodeClosed", "with_data_dir"]

_log = logging.getLogger(__name__)

BatchListener = Callable[[int, Sequence[Event]], object]
"""Called on the event loop with a journal timestamp (ns) and the events of the commands stamped with it."""
CommandListener = Callable[[int, int, Command, Sequence[Event]], object]
"""Called on the event loop after the read models applied one live command: (seq, ts_ns, command, events)."""


class NodeClosed(RuntimeError):
    """The node is not running: it was not started, or it is shutting down."""


@dataclass(frozen=True, slots=True)
class Applied:
    """A command's outcome: its sequence number, the journal's timestamp of it, and the events it caused."""

    seq: int
    ts_ns: int
    events: list[Event]


def with_data_dir(config: ExchangeConfig, data_dir: Path) -> ExchangeConfig:
    """Return ``config`` with its journal, audit log (and an SQLite ledger) moved into ``data_dir``."""
    journal = JournalSettings(path=str(data_dir.resolve() / "commands.journal"), fsync=config.journal.fsync)
    audit = AuditSettings(path=str(data_dir.resolve() / "audit.log"), fsync=config.audit.fsync)
    ledger = config.ledger
    if ledger.url.startswith("sqlite:"):
        ledger = LedgerSettings(url="sqlite:///" + str(data_dir.resolve() / "ledger.db"))
    moved = config.model_copy(update={"journal": journal, "ledger": ledger, "audit": audit})
    moved._source = config._source
    return moved


class ExchangeNode:
    """The kernel of one running exchange, for the API, the portal and the admin console.

    Create it, ``await start()``, then :meth:`submit` commands and read :attr:`orders` and :attr:`balances`
    (and anything registered with :meth:`add_listener`) from the same event loop. ``await close()`` stops it.
    """

    def __init__(
        self,
        config: ExchangeConfig,
        *,
        pm: pluggy.PluginManager | None = None,
        settle_every: float = 1.0,
        snapshot_every: int = 100_000,
    ) -> None:
        self.config = config
        self.pm = pm if pm is not None else make_plugin_manager(config)
        self.data_dir = config.journal_path().parent
        self.settle_every = settle_every
        self.snapshot_every = snapshot_every
        self.markets = config.engine_markets()
        self.assets = config.engine_assets()
        self.orders = OrderView({m: (s.base, s.quote) for m, s in self.markets.items()})
        self.balances = BalanceView(dict(self.markets))
        self._listeners: list[BatchListener] = []
        self._history_listeners: list[BatchListener] = []
        self._command_listeners: list[CommandListener] = []
        self._waiters: deque[asyncio.Future[Applied]] = deque()
        self._shard: Shard | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._settle_thread: threading.Thread | None = None
        self._settle_stop = threading.Event()
        self._closing = False
        self.settled_seq = 0

    # -- lifecycle
    def add_listener(self, listener: BatchListener, *, history: BatchListener | None = None) -> None:
        """Feed ``listener(ts_ns, events)`` every live batch; the history replayed at start goes to ``history``
        (default: the same listener), so a live-only consumer such as a stream publisher can skip it."""
        self._listeners.append(listener)
        self._history_listeners.append(history if history is not None else listener)

    def add_command_listener(self, listener: CommandListener) -> None:
        """Also call ``listener(seq, ts_ns, command, events)`` for every live command, once the read models show
        it (user data streams); it does not see the history replayed at start."""
        self._command_listeners.append(listener)

    @property
    def shard(self) -> Shard:
        """The running shard (raises :class:`NodeClosed` before :meth:`start`)."""
        if self._shard is None:
            raise NodeClosed("the exchange node is not running: call start() first")
        return self._shard

    @property
    def engine(self) -> MatchingEngine:
        """The live engine. Read it only for what the read models do not offer; it changes on the writer thread."""
        return self.shard.engine

    async def start(self, *, progress: Progress | None = None) -> None:
        """Recover the engine, rebuild the read models from the journal, then accept commands."""
        self._loop = asyncio.get_running_loop()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shard = await asyncio.to_thread(
            Shard,
            self.config,
            pm=self.pm,
            snapshot_dir=self.data_dir / "snapshots",
            progress=progress,
            snapshot_every=self.snapshot_every,
        )
        self._shard = shard
        try:
            await asyncio.to_thread(self._rebuild_views, shard)
            shard.on_applied = self._from_writer
            shard.start()
            if self.settle_every > 0:
                ready: concurrent.futures.Future[None] = concurrent.futures.Future()
                self._settle_thread = threading.Thread(
                    target=lambda: asyncio.run(self._settle_in_thread(ready)), name="settlement", daemon=True
                )
                self._settle_thread.start()
                await asyncio.wrap_future(ready)  # the ledger's schema is in place, or start-up fails here
        except BaseException:
            shard.close()
            self._shard = None
            raise

    def _rebuild_views(self, shard: Shard) -> None:
        """Replay the journal up to the recovered engine's seq into a scratch engine, feeding every read model."""
        engine = MatchingEngine(self.assets, self.markets)
        last = shard.engine.last_seq
        for record in shard.journal.read(1):
            if record.seq > last:
                break
            command = decode_command(record.payload)
            engine.apply(record.seq, command)
            self._feed(record.seq, record.ts_ns, command, engine.events)
            for listener in self._history_listeners:
                listener(record.ts_ns, engine.events)
            engine.events.clear()

    def _open_ledger(self) -> LedgerStore:
        backends = collect_registered(self.pm, "register_ledger_stores", config=self.config)
        store: LedgerStore = backends[self.config.backends.ledger].open(self.config)
        return store

    async def close(self) -> None:
        """Stop accepting commands, finish what is queued, settle once more and close everything."""
        if self._closing:
            return
        self._closing = True
        if self._shard is not None:
            await asyncio.to_thread(self._shard.sequencer.stop)
            await asyncio.sleep(0)  # deliver what the writer handed over while stopping
            if self._settle_thread is not None:  # it settles once more, then closes the ledger
                self._settle_stop.set()
                await asyncio.to_thread(self._settle_thread.join)
            await asyncio.to_thread(self._shard.close)
            self._shard = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(NodeClosed("the exchange node stopped before the command was applied"))

    # -- commands
    async def submit(self, command: Command) -> Applied:
        """Journal ``command`` durably, apply it, and return its outcome (read models already updated)."""
        if self._closing or self._shard is None or self._loop is None:
            raise NodeClosed("the exchange node is not accepting commands")
        waiter: asyncio.Future[Applied] = self._loop.create_future()
        # Same order in both queues: the shard applies commands exactly in submission order.
        self._waiters.append(waiter)
        try:
            self._shard.submit(command)
        except BaseException:
            self._waiters.pop()
            raise
        return await waiter

    def _from_writer(
        self, records: Sequence[JournalRecord], commands: Sequence[Command], events: Sequence[Event]
    ) -> None:
        """On the writer thread: hand the applied batch to the event loop, in order."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._deliver, records, commands, events)

    def _deliver(self, records: Sequence[JournalRecord], commands: Sequence[Command], events: Sequence[Event]) -> None:
        """On the event loop: update the read models, then wake the submitters, one command at a time."""
        i = 0
        n = len(events)
        for record, command in zip(records, commands, strict=True):
            seq = record.seq
            j = i
            while j < n and events[j].seq == seq:
                j += 1
            mine = list(events[i:j])
            i = j
            self._feed(seq, record.ts_ns, command, mine)
            for command_listener in self._command_listeners:
                try:
                    command_listener(seq, record.ts_ns, command, mine)
                except Exception:  # a listener's bug must not stop the others or the node
                    _log.exception("command listener %r failed", command_listener)
            waiter = self._waiters.popleft()
            if not waiter.done():  # the submitter may have been cancelled; the command still happened
                waiter.set_result(Applied(seq, record.ts_ns, mine))
        if records:
            ts = records[-1].ts_ns
            for listener in self._listeners:
                try:
                    listener(ts, events)
                except Exception:  # a listener's bug must not stop the others or the node
                    _log.exception("event listener %r failed", listener)

    def _feed(self, seq: int, ts_ns: int, command: Command, events: Sequence[Event]) -> None:
        self.orders.apply(seq, ts_ns, command, events)
        self.balances.apply(seq, events)

    # -- settlement
    async def _settle_in_thread(self, ready: concurrent.futures.Future[None]) -> None:
        """Settlement on its own thread and event loop, so that replaying the journal for the ledger never stalls the
        API's loop: every ``settle_every`` seconds, and once more when the node closes."""
        assert self._shard is not None
        store = self._open_ledger()
        try:
            try:
                await store.create_schema()
                settlement = Settlement(self.config, store, self._shard.journal, snapshots=self._shard.snapshots)
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(None)
            while True:
                stopping = self._settle_stop.is_set()
                try:
                    self.settled_seq = await settlement.run()
                except Exception:
                    _log.exception("settlement failed; retrying in %.1f s", self.settle_every)
                if stopping:
                    return
                await asyncio.to_thread(self._settle_stop.wait, self.settle_every)
        finally:
            await store.close()
