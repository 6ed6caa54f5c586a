"""``exchange bench pipeline``: the engine benchmark's order flow through the durable journal (group commit).

A producer thread submits commands in chunks with a bounded number in flight; the sequencer's writer thread
journals each batch with one write and one fsync, then the engine applies it. Ack latency is measured from
submission to the end of the batch's application (the moment its tickets resolve).
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from exchange_framework.bench.engine_bench import build_stream, new_engine
from exchange_framework.bench.stats import summary
from exchange_framework.engine.commands import Command, encode_command
from exchange_framework.engine.snapshot import state_hash
from exchange_framework.sequencer import FileJournal, JournalRecord, Sequencer, Ticket

CHUNK = 256
IN_FLIGHT = 4_096  # commands submitted but not yet acknowledged, at most


def run(
    ops: int, seed: int, directory: Path | None = None, fsync: bool = True, window: int = IN_FLIGHT
) -> dict[str, Any]:
    fund, flow = build_stream(ops, seed)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        journal = FileJournal(Path(tmp) / "bench.journal", fsync=fsync)
        sequencer = Sequencer(journal)
        engine = new_engine()
        seq = 0
        for command in fund:  # funding is set-up, not measured
            seq += 1
            engine.apply(seq, command)
        sequencer.append_batch([encode_command(c) for c in fund])
        engine.events.clear()

        commands: list[Command] = flow
        first_seq = seq + 1
        submitted_ns = [0] * len(commands)
        latencies = [0] * len(commands)
        batches = [0]
        clock = time.perf_counter_ns
        events = engine.events
        apply = engine.apply

        def on_durable(records: list[JournalRecord]) -> None:
            for record in records:
                apply(record.seq, commands[record.seq - first_seq])
            events.clear()
            now = clock()
            for record in records:
                index = record.seq - first_seq
                latencies[index] = now - submitted_ns[index]
            batches[0] += 1

        gc.collect()
        gc.freeze()
        sequencer.start(on_durable)
        start = time.perf_counter()
        tickets: list[Ticket] = []
        for begin in range(0, len(commands), CHUNK):
            chunk = commands[begin : begin + CHUNK]
            if begin >= window:
                tickets[(begin - window) // CHUNK].wait(timeout=60)
            payloads = [encode_command(c) for c in chunk]
            now = clock()
            for i in range(begin, begin + len(chunk)):
                submitted_ns[i] = now
            tickets.append(sequencer.submit_many(payloads)[-1])
        tickets[-1].wait(timeout=120)
        seconds = time.perf_counter() - start
        sequencer.stop()
        gc.unfreeze()
        journal_bytes = journal.path.stat().st_size
        journal.close()
        final_hash = state_hash(engine)
    return summary(
        "pipeline",
        len(commands),
        seconds,
        latencies,
        seed=seed,
        fsync=fsync,
        batches=batches[0],
        commands_per_batch=round(len(commands) / max(batches[0], 1), 1),
        journal_bytes=journal_bytes,
        trades=engine.next_trade_id - 1,
        state_hash=final_hash,
        window=window,
        latency_note="p50/p99/p999 are ack latencies: submission to durable-and-applied, with --window in flight",
    )
