"""Crash safety of a whole Shard: SIGKILL a trading process again and again, restart it on the same directory.

Each restart recovers from the newest snapshot plus the journal's tail. In the end the journal must hold every
acknowledged command once, and snapshot + tail must give exactly the state of a full replay from seq 1.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from exchange_framework.config import DEMO_CONFIG, ExchangeConfig, load_config
from exchange_framework.engine.commands import CreditFunds, DebitFunds, decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import FundsCredited, FundsDebited
from exchange_framework.engine.snapshot import snapshot, state_hash
from exchange_framework.sequencer import FileJournal, SnapshotStore
from exchange_framework.shard import Shard
from tests.crash import run_and_kill
from tests.engine.helpers import check_invariants

WORKER = Path(__file__).with_name("shard_crash_worker.py")
ITERATIONS = 24
FUNDING = 40  # commands: 20 accounts x 2 assets


def run_worker(directory: Path, stderr: Path, *, kill_after: float | None, wait_ready: bool = True) -> list[str]:
    """Run the worker; SIGKILL it ``kill_after`` s after its start line (or after launch); return its whole lines."""
    args = [str(directory)] + ([] if kill_after is not None else ["3000"])
    return run_and_kill(WORKER, args, stderr, kill_after=kill_after, wait_ready=wait_ready)


class Acks:
    """What the workers acknowledged, checked line by line as it comes in."""

    def __init__(self) -> None:
        self.last = 0  # highest acknowledged seq
        self.ranges: list[tuple[int, int]] = []
        self.snapshots: list[int] = []
        self.restarts_from_snapshot = 0
        self.torn_tails = 0

    def take(self, lines: list[str], *, clean: bool = False) -> int:
        """Check one run's lines; return the seq it recovered to."""
        kind, recovered, newest_snapshot, torn_bytes = lines[0].split()
        assert kind == "start"
        recovered_seq = int(recovered)
        assert recovered_seq >= self.last, f"acknowledged seq {self.last} lost: recovery stopped at {recovered_seq}"
        self.restarts_from_snapshot += int(newest_snapshot) > 0
        self.torn_tails += int(torn_bytes) > 0
        expected = recovered_seq + 1
        for line in lines[1:]:
            kind, *fields = line.split()
            if kind == "ack":
                first, last = map(int, fields)
                assert first == expected and last >= first, f"ack {first}..{last} where {expected} was next"
                self.ranges.append((first, last))
                self.last = last
                expected = last + 1
            elif kind == "snap":
                assert int(fields[0]) == expected - 1, "a snapshot holds exactly what was acknowledged"
                self.snapshots.append(int(fields[0]))
            else:
                assert clean and kind == "done" and line is lines[-1], line
                assert int(fields[0]) == self.last
        return recovered_seq


def new_engine(config: ExchangeConfig) -> MatchingEngine:
    return MatchingEngine(config.engine_assets(), config.engine_markets())


def full_replay(config: ExchangeConfig, directory: Path) -> tuple[MatchingEngine, dict[str, int], int]:
    """Replay the whole journal into a fresh engine; check seqs and the newest snapshot on the way.

    Returns the engine, credits minus debits per asset, and the journal's last seq.
    """
    latest = SnapshotStore(directory / "snapshots").latest()
    assert latest is not None, "the workers took snapshots"
    engine = new_engine(config)
    net_in: dict[str, int] = defaultdict(int)
    journalled: dict[str, int] = defaultdict(int)
    with FileJournal(directory / "commands.journal", fsync=False) as journal:
        last = journal.last_seq
        expected = 1
        for record in journal.read():
            assert record.seq == expected, "journal seqs are contiguous from 1"
            command = decode_command(record.payload)
            if isinstance(command, CreditFunds):
                journalled[command.asset] += command.amount
            elif isinstance(command, DebitFunds):
                journalled[command.asset] -= command.amount
            engine.apply(record.seq, command)
            for event in engine.events:
                if isinstance(event, FundsCredited):
                    net_in[event.asset] += event.amount
                elif isinstance(event, FundsDebited):
                    net_in[event.asset] -= event.amount
            engine.events.clear()
            if record.seq == latest[0]:
                assert snapshot(engine) == latest[1], f"the snapshot at seq {latest[0]} is the replayed state there"
            expected += 1
        assert expected == last + 1
    assert net_in == journalled, "every journalled credit was applied, once"
    return engine, dict(net_in), last


@pytest.mark.slow
def test_shard_survives_sigkill_with_snapshots(tmp_path: Path) -> None:
    rng = random.Random(20_240_612)
    directory = tmp_path / "shard"
    stderr = tmp_path / "worker.stderr"
    acks = Acks()
    started = time.monotonic()
    early_kills = 0
    for _ in range(ITERATIONS):
        early = rng.random() < 0.15  # now and then kill it while it starts up and recovers
        early_kills += early
        delay = rng.uniform(0.0, 0.3) if early else rng.uniform(0.0, 0.25)
        lines = run_worker(directory, stderr, kill_after=delay, wait_ready=not early)
        if lines:
            acks.take(lines)
    assert acks.last > 20 * FUNDING, "the workers were killed under load"
    assert len(acks.snapshots) >= 3
    assert acks.restarts_from_snapshot >= 3, "restarts recovered from snapshots, not only from the journal"

    lines = run_worker(directory, stderr, kill_after=None)  # a clean run continues where the crashes left off
    recovered = acks.take(lines, clean=True)
    assert acks.last == recovered + 3000

    config = load_config(DEMO_CONFIG)
    engine, net_in, last = full_replay(config, directory)
    assert last == acks.last, "after the clean run, the journal ends at its last acknowledged seq"
    for first, end in acks.ranges:
        assert 1 <= first <= end <= last
    check_invariants(engine, net_in)

    with (
        FileJournal(directory / "commands.journal", fsync=False) as journal,
        Shard(config, journal=journal, snapshot_dir=directory / "snapshots") as shard,
    ):
        assert shard.recovered_seq == last == shard.engine.last_seq
        assert state_hash(shard.engine) == state_hash(engine), "snapshot + tail equals a full replay"
        check_invariants(shard.engine, net_in)
    print(
        f"{ITERATIONS} kills ({early_kills} during start-up), {len(acks.snapshots)} snapshots, "
        f"{acks.torn_tails} torn tails cut, "
        f"journal at {last}, {time.monotonic() - started:.1f} s"
    )
