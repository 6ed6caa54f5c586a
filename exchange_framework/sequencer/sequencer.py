"""The sequencer: gives each command its sequence number and timestamp and journals it before acknowledging it.

Two ways in. :meth:`Sequencer.append_batch` is synchronous (recovery tools, tests, batch jobs). Group commit
(:meth:`Sequencer.start`, :meth:`Sequencer.submit`) runs one writer thread that takes everything queued, journals
it with one write and one fsync, hands the batch to ``on_durable`` (where the engine applies it, single-threaded,
in journal order) and only then resolves the :class:`Ticket` of each payload.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from exchange_framework.sequencer.journal import Journal, JournalError, JournalRecord

__all__ = ["Sequencer", "SequencerError", "Ticket"]

_log = logging.getLogger(__name__)


class SequencerError(JournalError):
    """A payload was not acknowledged: the sequencer failed or was stopped. ``__cause__`` is the failure."""


class Ticket:
    """A submitted payload's claim on acknowledgement; :meth:`wait` returns its record once it is durable."""

    __slots__ = ("_error", "_lock", "_payload", "_record", "_waiter")

    def __init__(self, payload: bytes, lock: threading.Lock) -> None:
        self._payload = payload
        self._lock = lock  # the sequencer's, guarding _record, _error and _waiter
        self._record: JournalRecord | None = None
        self._error: BaseException | None = None
        self._waiter: threading.Lock | None = None  # made by the first wait() that has to block

    def done(self) -> bool:
        """Whether the payload is acknowledged or has failed."""
        return self._record is not None or self._error is not None

    def wait(self, timeout: float | None = None) -> JournalRecord:
        """Return the payload's record once it is durable and applied.

        Raises :class:`SequencerError` if it will never be acknowledged, ``TimeoutError`` if ``timeout`` seconds
        pass first (the payload may still be acknowledged later).
        """
        record = self._record
        if record is not None:
            return record
        with self._lock:
            waiter = None
            if self._record is None and self._error is None:
                waiter = self._waiter
                if waiter is None:
                    waiter = self._waiter = threading.Lock()
                    waiter.acquire()
        if waiter is not None:
            if not waiter.acquire(timeout=-1 if timeout is None else timeout):
                raise TimeoutError(f"payload not acknowledged within {timeout} s")
            waiter.release()  # let any other thread waiting on this ticket through
        record = self._record
        if record is not None:
            return record
        raise SequencerError(f"payload not acknowledged: the sequencer failed: {self._error}") from self._error

    def _resolve(self, record: JournalRecord | None, error: BaseException | None) -> None:
        # called by the writer with the sequencer's ticket lock held
        self._record = record
        self._error = error
        if self._waiter is not None:
            self._waiter.release()


class Sequencer:
    """Assign contiguous sequence numbers and non-decreasing timestamps to payloads and journal them durably.

    ``clock`` returns nanoseconds; a clock that goes backwards is held at the last timestamp issued (or the last
    one in the journal). Each batch gets one timestamp. ``max_batch`` bounds a group-commit batch.
    """

    def __init__(self, journal: Journal, *, clock: Callable[[], int] = time.time_ns, max_batch: int = 4096) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._journal = journal
        self._clock = clock
        self._max_batch = max_batch
        self._last_seq = journal.last_seq
        self._last_ts = 0
        if self._last_seq:
            for record in journal.read(self._last_seq):
                self._last_ts = record.ts_ns
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)  # the writer waits on it for work
        self._ticket_lock = threading.Lock()
        self._pending: list[Ticket] = []
        self._idle = False
        self._closed = False
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def last_seq(self) -> int:
        """The sequence number of the last durable record."""
        return self._last_seq

    def _stamp(self, payloads: Iterable[bytes]) -> list[JournalRecord]:
        ts = self._clock()
        if ts < self._last_ts:
            ts = self._last_ts
        record = JournalRecord
        return [record(seq, ts, payload) for seq, payload in enumerate(payloads, self._last_seq + 1)]

    def _commit(self, records: list[JournalRecord]) -> None:
        self._journal.append(records)
        self._last_seq = records[-1].seq
        self._last_ts = records[-1].ts_ns

    # -- synchronous -----------------------------------------------------------------------------------------

    def append_batch(self, payloads: Sequence[bytes]) -> list[JournalRecord]:
        """Journal ``payloads`` as one batch; they are durable when this returns.

        Not for use while the group-commit writer runs: the engine would not see these records.
        """
        if self._thread is not None:
            raise RuntimeError("append_batch cannot be used while the group-commit writer runs; use submit()")
        if self._failure is not None:
            raise self._refusal()
        if not payloads:
            return []
        records = self._stamp(payloads)
        try:
            self._commit(records)
        except BaseException as exc:
            self._failure = exc
            raise
        return records

    # -- group commit ----------------------------------------------------------------------------------------

    def start(self, on_durable: Callable[[list[JournalRecord]], None]) -> None:
        """Start the writer thread; it calls ``on_durable(batch)`` after each batch is durable."""
        with self._lock:
            if self._thread is not None or self._closed:
                raise RuntimeError("a sequencer starts once")
            self._thread = threading.Thread(target=self._run, args=(on_durable,), name="sequencer-writer", daemon=True)
        self._thread.start()

    def submit(self, payload: bytes) -> Ticket:
        """Queue ``payload`` for the next batch and return its ticket."""
        ticket = Ticket(payload, self._ticket_lock)
        with self._lock:
            if self._closed or self._thread is None:
                raise self._refusal()
            self._pending.append(ticket)
            if self._idle:
                self._wakeup.notify()
        return ticket

    def submit_many(self, payloads: Iterable[bytes]) -> list[Ticket]:
        """Queue ``payloads`` in order (consecutive sequence numbers) and return their tickets."""
        ticket_lock = self._ticket_lock
        tickets = [Ticket(payload, ticket_lock) for payload in payloads]
        with self._lock:
            if self._closed or self._thread is None:
                raise self._refusal()
            self._pending.extend(tickets)
            if self._idle:
                self._wakeup.notify()
        return tickets

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new payloads, journal and acknowledge those already queued, and join the writer thread."""
        with self._lock:
            self._closed = True
            self._wakeup.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the sequencer writer did not finish within {timeout} s")

    def _refusal(self) -> Exception:
        if self._failure is not None:
            error = SequencerError(f"the sequencer stopped after a failure: {self._failure}")
            error.__cause__ = self._failure
            return error
        if self._thread is None and not self._closed:
            return RuntimeError("call Sequencer.start() before submitting")
        return SequencerError("the sequencer is stopped")

    def _run(self, on_durable: Callable[[list[JournalRecord]], None]) -> None:
        lock = self._lock
        wakeup = self._wakeup
        ticket_lock = self._ticket_lock
        max_batch = self._max_batch
        while True:
            with lock:
                while not self._pending and not self._closed:
                    self._idle = True
                    wakeup.wait()
                self._idle = False
                queued = self._pending
                if not queued:
                    return  # stopped and drained
                self._pending = []
            for start in range(0, len(queued), max_batch):
                tickets = queued if len(queued) <= max_batch else queued[start : start + max_batch]
                try:
                    records = self._stamp([ticket._payload for ticket in tickets])
                    self._commit(records)
                    on_durable(records)
                except BaseException as exc:
                    self._fail(exc, queued[start:])
                    return
                with ticket_lock:
                    for ticket, record in zip(tickets, records, strict=True):
                        ticket._resolve(record, None)

    def _fail(self, exc: BaseException, tickets: list[Ticket]) -> None:
        _log.error("sequencer writer stopped at seq %d: %r", self._last_seq, exc)
        with self._lock:
            self._failure = exc
            self._closed = True
            tickets = tickets + self._pending
            self._pending = []
        with self._ticket_lock:
            for ticket in tickets:
                ticket._resolve(None, exc)

    def __enter__(self) -> Sequencer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
