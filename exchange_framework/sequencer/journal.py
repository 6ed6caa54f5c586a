"""The journal: the durable, ordered record of every command, and the interface its backends implement.

The engine reaches a journal only through :class:`Journal`, so the embedded file journal
(:class:`~exchange_framework.sequencer.file_journal.FileJournal`) and a Kafka backend are interchangeable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import msgspec


class JournalRecord(msgspec.Struct, frozen=True, gc=False):
    """One journalled command: its sequence number, the sequencer's timestamp and the encoded command."""

    seq: int
    ts_ns: int
    payload: bytes


class JournalError(Exception):
    """The journal cannot be opened, read or appended to."""


class CorruptJournalError(JournalError):
    """A journal record failed verification somewhere other than the torn tail of a crashed write."""

    def __init__(self, path: str, offset: int, seq: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.seq = seq
        self.reason = reason
        super().__init__(
            f"corrupt journal {path}: record seq {seq} at byte offset {offset}: {reason}. "
            "The journal is the system of record and is never skipped over: stop every process using it, keep a "
            "copy of this file, and restore the journal from a replica or backup; only if you accept losing "
            f"seq {seq} and everything after it, truncate a copy of the file to {offset} bytes and start from that."
        )


@runtime_checkable
class Journal(Protocol):
    """An append-only, durable log of :class:`JournalRecord` with contiguous sequence numbers from 1."""

    @property
    def last_seq(self) -> int:
        """The sequence number of the last durable record, 0 when the journal is empty."""
        ...

    def append(self, records: Sequence[JournalRecord]) -> None:
        """Write ``records`` (seq ``last_seq + 1``, ``+ 2``, ...) and make them durable before returning.

        Raises :class:`JournalError` if the records do not continue the sequence or the write fails; after a
        failed write the journal refuses further appends (reopen it to recover from what is on disk).
        """
        ...

    def read(self, from_seq: int = 1) -> Iterator[JournalRecord]:
        """Yield the records from ``from_seq`` to the ``last_seq`` of the moment of the call, in order."""
        ...

    def close(self) -> None:
        """Release the journal; closing twice is harmless."""
        ...
