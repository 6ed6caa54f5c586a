"""The sequencer and its journal: every command gets a sequence number and is durable before it is acknowledged.

The embedded default journal is :class:`FileJournal`; other backends implement the :class:`Journal` protocol.
"""

from __future__ import annotations

from exchange_framework.sequencer.file_journal import FileJournal
from exchange_framework.sequencer.journal import CorruptJournalError, Journal, JournalError, JournalRecord
from exchange_framework.sequencer.recovery import recover
from exchange_framework.sequencer.sequencer import Sequencer, SequencerError, Ticket
from exchange_framework.sequencer.snapshots import SnapshotStore

__all__ = [
    "CorruptJournalError",
    "FileJournal",
    "Journal",
    "JournalError",
    "JournalRecord",
    "Sequencer",
    "SequencerError",
    "SnapshotStore",
    "Ticket",
    "recover",
]
