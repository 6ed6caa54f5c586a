"""Crash safety with real processes: SIGKILL a writer under load, again and again, on one journal file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from exchange_framework.sequencer import FileJournal
from exchange_framework.sequencer.file_journal import FILE_MAGIC, HEADER
from tests.crash import run_and_kill

WRITER = Path(__file__).with_name("crash_writer.py")
ITERATIONS = 30


def run_writer(journal: Path, stderr: Path, *, kill_after: float | None, wait_ready: bool = True) -> list[str]:
    """Run the writer; SIGKILL it ``kill_after`` seconds after it is ready (or after start); return its lines."""
    args = [str(journal)] + ([] if kill_after is not None else ["3000"])
    return run_and_kill(WRITER, args, stderr, kill_after=kill_after, wait_ready=wait_ready)


def check_journal(path: Path, acked: dict[int, str], verified: int = 0) -> tuple[int, int]:
    """Recover the journal and check it holds every acknowledged command; return (last_seq, torn bytes cut).

    Records up to ``verified`` were checked before (opening the journal re-verifies their checksums).
    """
    with FileJournal(path) as journal:
        assert journal.last_seq >= verified, "the journal lost records that were already verified"
        expected = verified + 1
        for record in journal.read(expected):
            assert record.seq == expected, "seqs contiguous from 1"
            assert record.payload == b"cmd-%d" % record.seq, "no duplicated or misplaced command"
            expected += 1
        assert expected == journal.last_seq + 1
        for seq in acked:
            assert seq <= journal.last_seq, f"acknowledged seq {seq} lost (journal ends at {journal.last_seq})"
        return journal.last_seq, journal.recovered_tail_bytes


def record_end(seq: int) -> int:
    """The byte offset where record ``seq`` ends: every record is a 24-byte header and ``cmd-<seq>``."""
    return len(FILE_MAGIC) + sum(HEADER.size + 4 + len(str(n)) for n in range(1, seq + 1))


def tear_tail(path: Path, keep_seq: int, rng: random.Random) -> None:
    """Do what a power failure may do to bytes after record ``keep_seq``: cut them or leave junk after them."""
    safe = record_end(keep_seq)
    size = path.stat().st_size
    if size > safe and rng.random() < 0.5:
        os.truncate(path, rng.randrange(safe, size))
    else:
        with path.open("ab") as f:
            f.write(b"\x00" * rng.randint(1, 4096) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 300)))


@pytest.mark.slow
def test_acknowledged_commands_survive_sigkill_under_load(tmp_path: Path) -> None:
    rng = random.Random(20_240_611)
    journal = tmp_path / "journal"
    stderr = tmp_path / "writer.stderr"
    acked: dict[int, str] = {}
    verified = torn_tails = 0
    for iteration in range(ITERATIONS):
        if iteration:
            verified, torn = check_journal(journal, acked, verified)
            torn_tails += torn > 0
        early = rng.random() < 0.15  # now and then kill it while it starts up and recovers the journal
        lines = run_writer(journal, stderr, kill_after=rng.uniform(0.0, 0.1 if early else 0.3), wait_ready=not early)
        if lines:
            assert lines[0] == f"start {verified}\n", "a restarted writer continues from the recovered last seq"
            for line in lines[1:]:
                kind, seq, payload = line.split()
                assert kind == "ack"
                assert int(seq) not in acked, f"seq {seq} acknowledged twice"
                assert payload == f"cmd-{seq}"
                acked[int(seq)] = payload
        if iteration % 3 == 2:
            tear_tail(journal, max(verified, max(acked, default=0)), rng)  # spare acknowledged and verified records
    last_seq, torn = check_journal(journal, acked)
    torn_tails += torn > 0
    assert len(acked) > 1000, "the writers were killed under load"
    assert torn_tails >= ITERATIONS // 3

    lines = run_writer(journal, stderr, kill_after=None)  # and a clean run continues where the crashes left off
    assert lines[0] == f"start {last_seq}\n"
    assert lines[-1] == f"done {last_seq + 3000}\n"
    acked.update((int(s), p) for _, s, p in (line.split() for line in lines[1:-1]))
    assert len(lines) == 3002
    assert check_journal(journal, acked) == (last_seq + 3000, 0)
    print(f"{ITERATIONS} kills, {torn_tails} torn tails cut, {len(acked)} acknowledged, journal at {last_seq + 3000}")
