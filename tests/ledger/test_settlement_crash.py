"""Crash safety of settlement: SIGKILL a settling process again and again, restart it on the same ledger.

Each restart reads the ledger's high-water mark, rebuilds its engine replica from the journal and carries on. In
the end the crashed ledger must equal a ledger settled without crashes from the same journal: the same entries,
the same postings (seq, account, asset, amount) and the same balances -- nothing lost, nothing doubled.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from exchange_framework.engine.commands import encode_command
from exchange_framework.sequencer import FileJournal, Sequencer
from tests.ledger.test_settlement import (
    Ledger,
    another_ledger_url,
    check_zero_sum,
    demo_commands,
    demo_config,
    open_store,
    read_ledger,
    settle,
)

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("settlement_crash_worker.py")
ORDERS = 6_000
BATCH = 50
KILLS = 16


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo journal: funding plus 6,000 generated orders."""
    path = tmp_path_factory.mktemp("crash") / "commands.journal"
    config = demo_config()
    with FileJournal(path, fsync=False) as journal:
        sequencer = Sequencer(journal)
        commands = demo_commands(config, ORDERS, seed=21)
        for start in range(0, len(commands), 1_000):
            sequencer.append_batch([encode_command(c) for c in commands[start : start + 1_000]])
    return path


def _drain(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_worker(journal: Path, url: str, stderr: Path, *, kill: tuple[int, float] | None) -> tuple[list[str], bool]:
    """Run the worker; return its whole lines and whether it died of SIGKILL.

    ``kill = (lines, delay)`` sends SIGKILL ``delay`` seconds after the worker printed ``lines`` lines (0: after
    launch, while it starts up); ``None`` lets it finish.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    args = [sys.executable, str(WORKER), str(journal), url, str(BATCH)]
    got: queue.Queue[str | None] = queue.Queue()
    seen: list[str | None] = []
    with (
        stderr.open("w") as err,
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO, env=env) as proc,
    ):
        assert proc.stdout is not None
        reader = threading.Thread(target=_drain, args=(proc.stdout, got))
        reader.start()
        try:
            if kill is None:
                assert proc.wait(120) == 0, stderr.read_text()
            else:
                count, delay = kill
                while len(seen) < count and (not seen or seen[-1] is not None):
                    seen.append(got.get(timeout=60))
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(30)
        killed = proc.returncode == -signal.SIGKILL
        if not killed:
            assert proc.returncode == 0, stderr.read_text()
    while True:  # the reader has finished: whatever it read is queued
        try:
            seen.append(got.get_nowait())
        except queue.Empty:
            break
    return [line for line in seen if line is not None and line.endswith("\n")], killed  # a cut line never counts


class Marks:
    """What the workers reported committed, checked line by line."""

    def __init__(self) -> None:
        self.committed = 0  # the highest mark a worker reported
        self.hwm_lines = 0
        self.unreported = 0  # restarts that found a batch committed after the last line before the kill

    def take(self, lines: list[str]) -> None:
        if not lines:
            return
        kind, value = lines[0].split()
        assert kind == "start"
        start = int(value)
        assert start >= self.committed, f"committed mark {self.committed} lost: the restart found {start}"
        self.unreported += start > self.committed
        previous = start
        for line in lines[1:]:
            kind, value = line.split()
            mark = int(value)
            if kind == "hwm":
                assert previous < mark <= previous + BATCH, f"mark {mark} after {previous}"
                self.hwm_lines += 1
            else:
                assert kind == "done" and line is lines[-1], line
                assert mark == previous
            previous = mark
        self.committed = max(self.committed, previous)


@pytest.mark.slow
def test_settlement_survives_sigkill(
    ledger_url: str, journal: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = demo_config()
    backend = ledger_url.split(":", 1)[0]
    rng = random.Random(f"settlement-crash-{backend}")
    started = time.monotonic()

    with FileJournal(journal, read_only=True) as opened:
        last = opened.last_seq

    stderr = tmp_path / "worker.stderr"
    marks = Marks()
    kills = mid_batch_kills = 0
    for _ in range(KILLS):
        roll = rng.random()
        # Kills follow the worker's lines, not the clock alone: a batch of 50 takes a few ms on SQLite.
        if roll < 0.1:
            plan = (0, rng.uniform(0.05, 0.5))  # while it imports, migrates the schema or reads the mark
        elif roll < 0.3:
            plan = (1, rng.uniform(0.0, 0.05))  # while it rebuilds its replica or writes its first batch
        else:
            plan = (1 + rng.randint(1, 4), rng.uniform(0.0, 0.006))  # in the middle of settling, mid-batch
        lines, killed = run_worker(journal, ledger_url, stderr, kill=plan)
        assert killed, f"the worker finished before it was killed ({lines[-1:]}): make the journal longer"
        kills += 1
        mid_batch_kills += plan[0] > 1
        marks.take(lines)
    assert marks.committed < last, "the kills interrupted settlement"
    assert marks.hwm_lines >= KILLS, "the workers committed batches between the kills"
    before_clean_run = marks.committed

    lines, killed = run_worker(journal, ledger_url, stderr, kill=None)  # a clean run finishes the journal
    assert not killed
    marks.take(lines)
    assert lines[-1] == f"done {last}\n"

    reference = settle(config, another_ledger_url(ledger_url, request, tmp_path, "reference"), journal)

    async def crashed() -> Ledger:
        async with open_store(ledger_url) as store:
            return await read_ledger(store)

    ledger = asyncio.run(crashed())
    assert ledger == reference, "the crashed ledger equals one settled without crashes"
    assert reference.mark == last and reference.entries == list(range(1, last + 1))
    check_zero_sum(reference.balances, list(config.assets))
    print(
        f"{backend}: {kills} kills ({mid_batch_kills} mid-settlement), {before_clean_run} seqs settled under "
        f"kills, {marks.unreported} batches committed but killed before reporting, journal at {last}, "
        f"{time.monotonic() - started:.1f} s"
    )
