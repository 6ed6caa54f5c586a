"""Crash-test writer: submits commands through the group-commit Sequencer and prints each acknowledgement.

Run as ``python crash_writer.py JOURNAL [COUNT]``. It opens (and so recovers) the journal, continues the payload
counter from the last record, prints ``start LAST_SEQ``, then has several threads submit ``cmd-<n>`` payloads in
bursts; a line ``ack <seq> <payload>`` is written only after that payload's ticket resolved. With COUNT it stops
cleanly after COUNT more commands and prints ``done LAST_SEQ``; without it, it runs until it is killed.
"""

from __future__ import annotations

import random
import sys
import threading

from exchange_framework.sequencer import FileJournal, JournalRecord, Sequencer

PRODUCERS = 4


def main(argv: list[str]) -> int:
    journal = FileJournal(argv[0])
    limit = int(argv[1]) if len(argv) > 1 else 0
    last_seq = journal.last_seq
    counter = 0
    for record in journal.read(last_seq) if last_seq else ():
        counter = int(record.payload.removeprefix(b"cmd-"))
    if counter != last_seq:
        print(f"last payload counter {counter} does not match last seq {last_seq}", file=sys.stderr)
        return 2
    sequencer = Sequencer(journal, max_batch=512)
    applied = [last_seq]

    def on_durable(batch: list[JournalRecord]) -> None:  # the engine's place: records arrive in seq order
        if batch[0].seq != applied[0] + 1:
            raise AssertionError(f"batch starts at {batch[0].seq} after {applied[0]}")
        applied[0] = batch[-1].seq

    sequencer.start(on_durable)
    out = sys.stdout
    out.write(f"start {last_seq}\n")
    out.flush()
    submit_lock = threading.Lock()
    print_lock = threading.Lock()
    end = last_seq + limit if limit else None

    def producer(seed: int) -> None:
        nonlocal counter
        rng = random.Random(seed)
        while True:
            with submit_lock:  # payload numbers are given in submission order, so cmd-<n> lands at seq n
                first = counter + 1
                size = rng.randint(1, 40)
                if end is not None:
                    size = min(size, end - counter)
                    if size <= 0:
                        return
                counter += size
                tickets = sequencer.submit_many([b"cmd-%d" % n for n in range(first, first + size)])
            lines = []
            for ticket in tickets:
                record = ticket.wait()
                lines.append(f"ack {record.seq} {record.payload.decode()}\n")
            with print_lock:
                out.write("".join(lines))
                out.flush()

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sequencer.stop()
    out.write(f"done {journal.last_seq}\n")
    out.flush()
    journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
