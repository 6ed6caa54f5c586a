"""Throughput check for the file journal and group commit: ``python -m exchange_framework.sequencer.bench``.

Measures on the file system of ``--dir``: the latency of one durable append (write + fsync), synchronous batches,
pipelined group commit (producers queue bursts without waiting) and closed-loop group commit (request threads
that each submit one payload and wait for its acknowledgement), and full replay speed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from exchange_framework.sequencer.file_journal import FileJournal
from exchange_framework.sequencer.journal import JournalRecord
from exchange_framework.sequencer.sequencer import Sequencer, Ticket


class _TimedJournal:
    """Wraps a FileJournal and records how long each durable append takes."""

    def __init__(self, inner: FileJournal) -> None:
        self.inner = inner
        self.append_seconds: list[float] = []

    @property
    def last_seq(self) -> int:
        return self.inner.last_seq

    def append(self, records: Sequence[JournalRecord]) -> None:
        start = time.perf_counter()
        self.inner.append(records)
        self.append_seconds.append(time.perf_counter() - start)

    def read(self, from_seq: int = 1) -> Iterator[JournalRecord]:
        return self.inner.read(from_seq)

    def close(self) -> None:
        self.inner.close()


def _payloads(count: int, size: int, offset: int = 0) -> list[bytes]:
    pad = b"x" * max(0, size - 12)
    return [b"%012d" % n + pad for n in range(offset, offset + count)]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _report_group(name: str, count: int, seconds: float, journal: _TimedJournal, batches: int) -> None:
    appends = journal.append_seconds
    print(
        f"{name}: {count / seconds:,.0f} records/s, {batches / seconds:,.0f} batches/s, "
        f"{count / batches:,.1f} records/batch, append (write+fsync) mean {statistics.fmean(appends) * 1e6:,.0f} us "
        f"p99 {_percentile(appends, 0.99) * 1e6:,.0f} us"
    )


def run(directory: Path, count: int, size: int, threads: int, fsync: bool) -> None:
    """Run every measurement in ``directory`` and print the figures."""
    with FileJournal(directory / "latency.journal", fsync=fsync) as journal:
        latencies = []
        for seq in range(1, 2001):
            start = time.perf_counter()
            journal.append([JournalRecord(seq, 0, b"x" * size)])
            latencies.append(time.perf_counter() - start)
        print(
            f"single-record durable append: mean {statistics.fmean(latencies) * 1e6:,.0f} us, "
            f"p50 {_percentile(latencies, 0.5) * 1e6:,.0f} us, p99 {_percentile(latencies, 0.99) * 1e6:,.0f} us"
        )

    with FileJournal(directory / "sync.journal", fsync=fsync) as journal:
        sequencer = Sequencer(journal)
        payloads = _payloads(count, size)
        start = time.perf_counter()
        for first in range(0, count, 1000):
            sequencer.append_batch(payloads[first : first + 1000])
        seconds = time.perf_counter() - start
        print(f"append_batch, 1000 per batch: {count / seconds:,.0f} records/s")

    timed = _TimedJournal(FileJournal(directory / "pipelined.journal", fsync=fsync))
    try:
        batches = [0]

        def count_batch(batch: list[JournalRecord]) -> None:
            batches[0] += 1

        with Sequencer(timed) as sequencer:
            sequencer.start(count_batch)
            payloads = _payloads(count, size)
            start = time.perf_counter()
            tickets: list[Ticket] = []
            for first in range(0, count, 100):
                tickets += sequencer.submit_many(payloads[first : first + 100])
            for ticket in tickets:
                ticket.wait()
            seconds = time.perf_counter() - start
        _report_group("group commit, pipelined (submit_many bursts of 100)", count, seconds, timed, batches[0])
    finally:
        timed.close()

    timed = _TimedJournal(FileJournal(directory / "closed-loop.journal", fsync=fsync))
    try:
        batches = [0]
        per_thread = count // threads
        with Sequencer(timed) as sequencer:
            sequencer.start(count_batch)

            def client(index: int) -> None:
                for payload in _payloads(per_thread, size, index * per_thread):
                    sequencer.submit(payload).wait()

            workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
            start = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            seconds = time.perf_counter() - start
        _report_group(
            f"group commit, closed loop ({threads} threads, submit + wait each)",
            per_thread * threads,
            seconds,
            timed,
            batches[0],
        )
    finally:
        timed.close()

    start = time.perf_counter()
    with FileJournal(directory / "pipelined.journal") as journal:
        opened = time.perf_counter()
        replayed = sum(1 for _ in journal.read())
    end = time.perf_counter()
    print(
        f"reopen (verify {replayed:,} records): {replayed / (opened - start):,.0f} records/s; "
        f"replay: {replayed / (end - opened):,.0f} records/s"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the measurements in a temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200_000, help="payloads per measurement")
    parser.add_argument("--size", type=int, default=60, help="payload size in bytes")
    parser.add_argument("--threads", type=int, default=64, help="client threads in the closed-loop run")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the journals (default: a temp dir)")
    parser.add_argument("--no-fsync", action="store_true", help="skip fsync (shows the cost of durability)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        run(Path(directory), args.count, args.size, args.threads, not args.no_fsync)


if __name__ == "__main__":
    main()
