"""Recovery: rebuild engine state from the newest valid snapshot plus the journal records after it."""

from __future__ import annotations

from collections.abc import Callable

from exchange_framework.sequencer.journal import Journal, JournalError, JournalRecord
from exchange_framework.sequencer.snapshots import SnapshotStore

__all__ = ["recover"]

_PROGRESS_EVERY = 4096


def recover(
    journal: Journal,
    snapshots: SnapshotStore | None,
    restore: Callable[[bytes], None],
    apply: Callable[[JournalRecord], None],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Restore the newest valid snapshot, apply every later journal record in order; return the last seq applied.

    Returns the snapshot's seq when no record follows it, 0 for an empty journal without a snapshot.
    ``progress(done, total)`` is called every few thousand records and once at the end.
    Raises :class:`JournalError` if the snapshot is newer than the journal (it belongs to another journal).
    """
    latest = snapshots.latest() if snapshots is not None else None
    base = latest[0] if latest is not None else 0
    last = journal.last_seq
    if base > last:
        raise JournalError(
            f"the newest snapshot is at seq {base} but the journal ends at seq {last}: the snapshot belongs to "
            "another journal, or the journal lost records; point recovery at the matching journal, or remove "
            "the snapshots to replay this journal from the start"
        )
    if latest is not None:
        restore(latest[1])
    total = last - base
    step = max(1, min(_PROGRESS_EVERY, total // 100))
    expected = base + 1
    if total:
        for record in journal.read(expected):
            if record.seq != expected:
                raise JournalError(f"journal yielded seq {record.seq} where {expected} belongs")
            apply(record)
            done = expected - base
            if progress is not None and done % step == 0 and done != total:
                progress(done, total)
            if expected == last:
                break
            expected += 1
        else:
            raise JournalError(f"the journal ended at seq {expected - 1}, before its last_seq {last}")
    if progress is not None:
        progress(total, total)
    return last
