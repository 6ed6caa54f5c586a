"""SnapshotStore and recover(): newest valid snapshot, fallback on damage, snapshot + tail == full replay."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from exchange_framework.sequencer import FileJournal, JournalError, JournalRecord, SnapshotStore, recover


class RunningHash:
    """A toy deterministic state machine: a hash chained over every record applied, and a count."""

    def __init__(self) -> None:
        self.digest = b"\x00" * 32
        self.count = 0
        self.applied: list[int] = []

    def apply(self, record: JournalRecord) -> None:
        h = hashlib.sha256(self.digest)
        h.update(b"%d:%d:" % (record.seq, record.ts_ns))
        h.update(record.payload)
        self.digest = h.digest()
        self.count += 1
        self.applied.append(record.seq)

    def snapshot(self) -> bytes:
        return self.digest + self.count.to_bytes(8, "little")

    def restore(self, state: bytes) -> None:
        self.digest, self.count = state[:32], int.from_bytes(state[32:], "little")


def test_latest_picks_the_newest_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snapshots")
    assert store.latest() is None
    for seq in (10, 300, 25):
        assert store.save(seq, b"state at %d" % seq) == store.path_for(seq)
    assert store.seqs() == [10, 25, 300]
    assert store.latest() == (300, b"state at 300")
    store.save(300, b"state at 300, again")
    assert store.latest() == (300, b"state at 300, again")
    store.save(301, b"")
    assert store.latest() == (301, b"")
    assert not [p for p in store.directory.iterdir() if p.name.endswith(".tmp")]


def _flip_state_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        _flip_state_byte,
        lambda path: os.truncate(path, path.stat().st_size - 1),
        lambda path: os.truncate(path, 10),
        lambda path: path.write_bytes(b"NOTASNAP" + path.read_bytes()[8:]),
        lambda path: path.rename(path.with_name("snapshot-00000000000000000099.snap")),  # seq differs from name
    ],
    ids=["flipped-byte", "truncated", "truncated-header", "bad-magic", "renamed"],
)
def test_a_damaged_newest_snapshot_falls_back_to_an_older_one(
    tmp_path: Path, damage: Callable[[Path], object], caplog: pytest.LogCaptureFixture
) -> None:
    store = SnapshotStore(tmp_path)
    store.save(5, b"older state")
    newest = store.save(9, b"newest state")
    damage(newest)
    assert store.latest() == (5, b"older state")
    assert "skipping damaged snapshot" in caplog.text


def test_no_valid_snapshot_means_none(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    _flip_state_byte(store.save(1, b"state"))
    assert store.latest() is None


def test_prune_keeps_the_newest_and_removes_leftovers_of_crashed_saves(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    for seq in range(1, 7):
        store.save(seq * 10, b"s%d" % seq)
    leftover = tmp_path / ".snapshot-00000000000000000070.snap.999999999.1.tmp"
    leftover.write_bytes(b"half a snapshot")
    removed = store.prune(keep=2)
    assert sorted(p.name for p in removed) == sorted(
        [store.path_for(s).name for s in (10, 20, 30, 40)] + [leftover.name]
    )
    assert store.seqs() == [50, 60]
    assert not leftover.exists()
    assert store.prune() == []
    with pytest.raises(ValueError):
        store.prune(keep=0)


def _journal_with(path: Path, count: int) -> None:
    with FileJournal(path, fsync=False) as journal:
        records = [JournalRecord(seq, 1_000 + seq // 7, b"command %d" % seq) for seq in range(1, count + 1)]
        for start in range(0, count, 500):
            journal.append(records[start : start + 500])


def test_recovery_from_a_snapshot_and_the_tail_equals_full_replay(tmp_path: Path) -> None:
    journal_path = tmp_path / "journal"
    _journal_with(journal_path, 5000)
    store = SnapshotStore(tmp_path / "snapshots")

    with FileJournal(journal_path) as journal:
        full = RunningHash()
        calls: list[tuple[int, int]] = []
        assert recover(journal, None, full.restore, full.apply, progress=lambda d, t: calls.append((d, t))) == 5000
        assert full.applied == list(range(1, 5001))
        assert calls[-1] == (5000, 5000)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)

        for cut in (2000, 3500):  # take snapshots as a running node would
            machine = RunningHash()
            for record in journal.read():
                if record.seq > cut:
                    break
                machine.apply(record)
            store.save(cut, machine.snapshot())

        resumed = RunningHash()
        assert recover(journal, store, resumed.restore, resumed.apply) == 5000
        assert resumed.applied == list(range(3501, 5001))
        assert resumed.snapshot() == full.snapshot()

        _flip_state_byte(store.path_for(3500))  # the newest snapshot is damaged: use the older one
        fallback = RunningHash()
        assert recover(journal, store, fallback.restore, fallback.apply) == 5000
        assert fallback.applied == list(range(2001, 5001))
        assert fallback.snapshot() == full.snapshot()


def test_recovery_edge_cases(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snapshots")
    with FileJournal(tmp_path / "empty") as journal:
        machine = RunningHash()
        assert recover(journal, store, machine.restore, machine.apply) == 0
        assert machine.applied == []

    _journal_with(tmp_path / "journal", 10)
    with FileJournal(tmp_path / "journal") as journal:
        store.save(10, RunningHash().snapshot())
        machine = RunningHash()
        progress: list[tuple[int, int]] = []
        assert recover(journal, store, machine.restore, machine.apply, progress=lambda *a: progress.append(a)) == 10
        assert machine.applied == []
        assert progress == [(0, 0)]

        store.save(11, b"from a longer journal")
        with pytest.raises(JournalError, match="snapshot belongs to another journal"):
            recover(journal, store, machine.restore, machine.apply)
