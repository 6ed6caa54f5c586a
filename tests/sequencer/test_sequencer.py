"""Sequencer: contiguous numbering, group commit, acknowledgement only after durability, failure handling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from exchange_framework.sequencer import (
    FileJournal,
    JournalError,
    JournalRecord,
    Sequencer,
    SequencerError,
    Ticket,
)


class WatchedJournal:
    """A FileJournal that logs when each append is durable and can hold or fail appends on request."""

    def __init__(self, path: Path, events: list[tuple[str, int]] | None = None) -> None:
        self.inner = FileJournal(path)
        self.events = events if events is not None else []
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_with: Exception | None = None

    @property
    def last_seq(self) -> int:
        return self.inner.last_seq

    def append(self, records: Sequence[JournalRecord]) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        self.inner.append(records)
        self.batches.append([r.seq for r in records])
        self.events.append(("durable", records[-1].seq))

    def read(self, from_seq: int = 1) -> Iterator[JournalRecord]:
        return self.inner.read(from_seq)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[WatchedJournal]:
    journal = WatchedJournal(tmp_path / "journal")
    yield journal
    journal.gate.set()
    journal.close()


@pytest.fixture
def sequencers() -> Iterator[list[Sequencer]]:
    """Sequencers to stop at the end of the test, whatever happened."""
    made: list[Sequencer] = []
    yield made
    for sequencer in made:
        sequencer.stop(timeout=10)


def started(
    journal: WatchedJournal,
    made: list[Sequencer],
    on_durable: Callable[[list[JournalRecord]], None] | None = None,
    *,
    clock: Callable[[], int] = time.time_ns,
    max_batch: int = 4096,
) -> tuple[Sequencer, list[JournalRecord]]:
    applied: list[JournalRecord] = []
    sequencer = Sequencer(journal, clock=clock, max_batch=max_batch)
    made.append(sequencer)
    sequencer.start(on_durable or applied.extend)
    return sequencer, applied


def test_append_batch_is_durable_and_numbered_from_the_journal(tmp_path: Path) -> None:
    with FileJournal(tmp_path / "journal") as journal:
        sequencer = Sequencer(journal, clock=lambda: 42)
        assert sequencer.append_batch([]) == []
        first = sequencer.append_batch([b"a", b"b"])
        assert first == [JournalRecord(1, 42, b"a"), JournalRecord(2, 42, b"b")]
        assert journal.last_seq == 2
    with FileJournal(tmp_path / "journal") as journal:
        sequencer = Sequencer(journal, clock=lambda: 43)
        assert sequencer.last_seq == 2
        assert sequencer.append_batch([b"c"]) == [JournalRecord(3, 43, b"c")]
        assert [r.payload for r in journal.read()] == [b"a", b"b", b"c"]


def test_timestamps_never_go_backwards_even_when_the_clock_does(tmp_path: Path) -> None:
    readings = iter([100, 50, 200, 10, 300])
    with FileJournal(tmp_path / "journal") as journal:
        sequencer = Sequencer(journal, clock=lambda: next(readings))
        stamps = [r.ts_ns for _ in range(5) for r in sequencer.append_batch([b"x", b"y"])]
        assert stamps == [100, 100, 100, 100, 200, 200, 200, 200, 300, 300]
    with FileJournal(tmp_path / "journal") as journal:  # the clock is behind the journal after a restart
        sequencer = Sequencer(journal, clock=lambda: 5)
        assert sequencer.append_batch([b"z"])[0].ts_ns == 300


def test_group_commit_timestamps_never_go_backwards(journal: WatchedJournal, sequencers: list[Sequencer]) -> None:
    readings = iter(range(10_000_000, 0, -1))  # a clock that only goes backwards
    sequencer, applied = started(journal, sequencers, clock=lambda: next(readings))
    for n in range(50):
        sequencer.submit(b"%d" % n).wait(10)
    stamps = [r.ts_ns for r in applied]
    assert stamps == sorted(stamps)
    assert stamps[0] == 10_000_000


def test_concurrent_submitters_get_contiguous_seqs_in_journal_order(
    journal: WatchedJournal, sequencers: list[Sequencer]
) -> None:
    journal.inner.append([JournalRecord(1, 0, b"before")])
    sequencer, applied = started(journal, sequencers, max_batch=64)
    threads_count, per_thread = 8, 600
    results: dict[int, list[tuple[bytes, JournalRecord]]] = {}

    def submitter(thread: int) -> None:
        payloads = [f"t{thread}-{n}".encode() for n in range(per_thread)]
        tickets: list[Ticket] = []
        for start in range(0, per_thread, 50):
            chunk = payloads[start : start + 50]
            if thread % 2:
                tickets += sequencer.submit_many(chunk)
            else:
                tickets += [sequencer.submit(p) for p in chunk]
        results[thread] = [(p, t.wait(30)) for p, t in zip(payloads, tickets, strict=True)]

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sequencer.stop()

    total = threads_count * per_thread
    acked = [record for pairs in results.values() for _, record in pairs]
    assert sorted(r.seq for r in acked) == list(range(2, total + 2))
    for pairs in results.values():
        assert all(payload == record.payload for payload, record in pairs)
        seqs = [record.seq for _, record in pairs]
        assert seqs == sorted(seqs), "one thread's submissions keep their order"
    assert [r.seq for r in applied] == list(range(2, total + 2))
    assert list(journal.read(2)) == applied
    assert all(len(batch) <= 64 for batch in journal.batches)
    assert len(journal.batches) < total, "group commit puts several payloads in one write"


def test_tickets_resolve_only_after_the_journal_is_durable_and_the_batch_applied(
    journal: WatchedJournal, sequencers: list[Sequencer]
) -> None:
    events = journal.events

    def on_durable(batch: list[JournalRecord]) -> None:
        events.append(("applied", batch[-1].seq))

    sequencer, _ = started(journal, sequencers, on_durable)
    journal.gate.clear()
    held = sequencer.submit(b"held")
    assert journal.entered.wait(10)
    queued = sequencer.submit_many([b"queued-1", b"queued-2"])
    with pytest.raises(TimeoutError):
        held.wait(timeout=0.05)
    assert not held.done()
    assert not any(t.done() for t in queued)
    journal.gate.set()
    assert held.wait(10).seq == 1
    events.append(("acked", 1))

    def waiter(tickets: list[Ticket]) -> None:
        for ticket in tickets:
            seq = ticket.wait(10).seq
            events.append(("acked", seq))

    tickets = queued + sequencer.submit_many([b"%d" % n for n in range(2000)])
    threads = [threading.Thread(target=waiter, args=(tickets[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, (kind, seq) in enumerate(events):
        if kind == "acked":
            durable = next(i for i, (k, s) in enumerate(events) if k == "durable" and s >= seq)
            applied = next(i for i, (k, s) in enumerate(events) if k == "applied" and s >= seq)
            assert durable < applied < index, (seq, events[: index + 1])


def test_a_failed_write_is_not_acknowledged_and_nothing_after_it_is(
    journal: WatchedJournal, sequencers: list[Sequencer], caplog: pytest.LogCaptureFixture
) -> None:
    sequencer, applied = started(journal, sequencers)
    assert sequencer.submit(b"good").wait(10).seq == 1
    journal.gate.clear()
    journal.entered.clear()
    journal.fail_with = JournalError("disk on fire")
    failing = sequencer.submit(b"fails")
    assert journal.entered.wait(10)
    behind = sequencer.submit_many([b"behind-1", b"behind-2"])  # queued for the next batch
    journal.gate.set()
    for ticket in [failing, *behind]:
        with pytest.raises(SequencerError, match="disk on fire") as caught:
            ticket.wait(10)
        assert isinstance(caught.value, JournalError)
        assert caught.value.__cause__ is journal.fail_with
    with pytest.raises(SequencerError, match="stopped after a failure"):
        sequencer.submit(b"later")
    with pytest.raises(SequencerError):
        sequencer.submit_many([b"later"])
    assert [r.payload for r in applied] == [b"good"]
    assert sequencer.last_seq == journal.last_seq == 1
    assert "sequencer writer stopped" in caplog.text


def test_a_failed_fsync_on_a_file_journal_is_not_acknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exchange_framework.sequencer import file_journal

    path = tmp_path / "journal"
    with FileJournal(path) as journal, Sequencer(journal) as sequencer:
        applied: list[JournalRecord] = []
        sequencer.start(applied.extend)
        sequencer.submit(b"good").wait(10)

        def failing_sync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(file_journal, "datasync", failing_sync)
        with pytest.raises(SequencerError, match="Input/output error"):
            sequencer.submit(b"bad").wait(10)
        monkeypatch.undo()
        with pytest.raises(SequencerError):
            sequencer.submit(b"later")
    with FileJournal(path) as journal:
        assert [r.payload for r in journal.read()] == [b"good"]
    assert [r.payload for r in applied] == [b"good"]


def test_an_on_durable_failure_stops_the_sequencer(journal: WatchedJournal, sequencers: list[Sequencer]) -> None:
    def on_durable(batch: list[JournalRecord]) -> None:
        if any(r.payload == b"boom" for r in batch):
            raise ValueError("engine bug")

    sequencer, _ = started(journal, sequencers, on_durable)
    assert sequencer.submit(b"fine").wait(10).seq == 1
    with pytest.raises(SequencerError, match="engine bug"):
        sequencer.submit(b"boom").wait(10)
    with pytest.raises(SequencerError):
        sequencer.submit(b"after")
    assert journal.last_seq == 2, "the record was durable before the engine failed; replay will meet it again"


def test_stop_flushes_what_is_queued_and_refuses_more(journal: WatchedJournal, sequencers: list[Sequencer]) -> None:
    sequencer, applied = started(journal, sequencers, max_batch=100)
    journal.gate.clear()
    tickets = sequencer.submit_many([b"%d" % n for n in range(1000)])
    stopper = threading.Thread(target=sequencer.stop)
    stopper.start()
    journal.gate.set()
    stopper.join()
    assert [t.wait(0).seq for t in tickets] == list(range(1, 1001))
    assert len(applied) == 1000
    assert max(len(b) for b in journal.batches) <= 100
    with pytest.raises(SequencerError, match="stopped"):
        sequencer.submit(b"late")
    sequencer.stop()


def test_misuse_is_refused(journal: WatchedJournal, sequencers: list[Sequencer]) -> None:
    with pytest.raises(ValueError):
        Sequencer(journal, max_batch=0)
    sequencer = Sequencer(journal)
    sequencers.append(sequencer)
    with pytest.raises(RuntimeError, match="start"):
        sequencer.submit(b"too early")
    sequencer.start(lambda batch: None)
    with pytest.raises(RuntimeError, match="starts once"):
        sequencer.start(lambda batch: None)
    with pytest.raises(RuntimeError, match="append_batch"):
        sequencer.append_batch([b"x"])


def test_several_threads_may_wait_on_one_ticket(journal: WatchedJournal, sequencers: list[Sequencer]) -> None:
    sequencer, _ = started(journal, sequencers)
    journal.gate.clear()
    ticket = sequencer.submit(b"shared")
    seen: list[int] = []
    waiters = [threading.Thread(target=lambda: seen.append(ticket.wait(10).seq)) for _ in range(5)]
    for waiter in waiters:
        waiter.start()
    with pytest.raises(TimeoutError):
        ticket.wait(0)
    journal.gate.set()
    for waiter in waiters:
        waiter.join()
    assert seen == [1] * 5
