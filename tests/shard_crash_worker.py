"""Crash-test worker: a Shard on the demo config trading a generated order flow until it is killed.

Run as ``python shard_crash_worker.py DIR [COUNT]``. It opens (and so recovers) a Shard on ``DIR/commands.journal``
with its snapshots in ``DIR/snapshots`` and prints ``start RECOVERED_SEQ NEWEST_SNAPSHOT_SEQ TORN_TAIL_BYTES``.
On an empty journal it funds the accounts (``ack 1 40``). Then it submits generated orders in chunks through
group commit, a few chunks in flight, and prints ``ack FIRST LAST`` once the last ticket of a chunk resolved
(every seq of the chunk is then durable and applied). About every :data:`SNAPSHOT_EVERY` commands it waits for
everything in flight, takes a snapshot and prints ``snap SEQ``. With COUNT it stops cleanly after COUNT more
commands and prints ``done LAST_SEQ``; without it, it runs until it is killed. Every line is flushed at once.
"""

from __future__ import annotations

import random
import sys
from collections import deque
from pathlib import Path

from exchange_framework.bench.workload import funding, order_flow
from exchange_framework.config import DEMO_CONFIG, load_config
from exchange_framework.sequencer import FileJournal, SnapshotStore, Ticket
from exchange_framework.shard import Shard

SYMBOL = "BTC-USDT"
ACCOUNTS = 20
BASE_FUNDS = 10 * 10**8  # 10 BTC
QUOTE_FUNDS = 1_000_000 * 10**6  # 1,000,000 USDT
MID = 650_000  # 65000.0 USDT in ticks of 0.1
SPREAD = 325
MAX_LOTS = 500
SEED = 1_000_003
MAX_CHUNK = 256
IN_FLIGHT = 4  # chunks submitted and not yet acknowledged, at most
SNAPSHOT_EVERY = 2_000
KEEP_SNAPSHOTS = 2


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    directory = Path(argv[0])
    limit = int(argv[1]) if len(argv) > 1 else None
    config = load_config(DEMO_CONFIG)
    spec = config.engine_markets()[SYMBOL]
    directory.mkdir(parents=True, exist_ok=True)
    newest_snapshot = max(SnapshotStore(directory / "snapshots").seqs(), default=0)
    journal = FileJournal(directory / "commands.journal")
    shard = Shard(config, journal=journal, snapshot_dir=directory / "snapshots")
    emit(f"start {shard.recovered_seq} {newest_snapshot} {journal.recovered_tail_bytes}")
    if shard.recovered_seq == 0:
        events = shard.execute(funding(spec, ACCOUNTS, BASE_FUNDS, QUOTE_FUNDS))
        emit(f"ack {events[0].seq} {events[-1].seq}")

    first_seq = shard.sequencer.last_seq + 1
    flow = order_flow(
        spec, seed=SEED + first_seq, first_seq=first_seq, accounts=ACCOUNTS, mid=MID, spread=SPREAD, max_lots=MAX_LOTS
    )
    rng = random.Random(first_seq)
    shard.start()
    in_flight: deque[tuple[Ticket, Ticket]] = deque()

    def acknowledge_oldest() -> None:
        first, last = in_flight.popleft()
        last_seq = last.wait(timeout=60).seq
        emit(f"ack {first.wait(timeout=0).seq} {last_seq}")

    done = since_snapshot = 0
    while limit is None or done < limit:
        size = rng.randint(1, MAX_CHUNK) if limit is None else min(rng.randint(1, MAX_CHUNK), limit - done)
        tickets = shard.submit_many([next(flow) for _ in range(size)])
        in_flight.append((tickets[0], tickets[-1]))
        done += size
        since_snapshot += size
        while len(in_flight) > IN_FLIGHT:
            acknowledge_oldest()
        if since_snapshot >= SNAPSHOT_EVERY:
            # Only this thread submits: once its last ticket resolved, the writer has nothing left to apply.
            while in_flight:
                acknowledge_oldest()
            if shard.engine.last_seq != shard.sequencer.last_seq:
                print("snapshot attempted while a batch was being applied", file=sys.stderr)
                return 2
            shard.take_snapshot()
            shard.snapshots.prune(keep=KEEP_SNAPSHOTS)
            emit(f"snap {shard.engine.last_seq}")
            since_snapshot = 0
    while in_flight:
        acknowledge_oldest()
    shard.close()
    emit(f"done {journal.last_seq}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
