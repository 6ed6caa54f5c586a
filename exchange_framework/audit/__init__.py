"""The audit log: an append-only, hash-chained record of every operator action (design invariant 7).

Kernel code appends through :class:`AuditLog`; :func:`verify` checks a log file end to end. See ``docs/audit.md``.
"""

from exchange_framework.audit.entry import GENESIS_HASH, AuditEntry, AuditFormatError, canonical_json
from exchange_framework.audit.log import AuditLog, Clock
from exchange_framework.audit.sqlite_store import SqliteAuditStore
from exchange_framework.audit.store import (
    AuditError,
    AuditStore,
    CorruptAuditLogError,
    FileAuditStore,
    TornTailError,
    read_entries,
)
from exchange_framework.audit.verify import Problem, ProblemKind, VerifyReport, verify, verify_lines

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditError",
    "AuditFormatError",
    "AuditLog",
    "AuditStore",
    "Clock",
    "CorruptAuditLogError",
    "FileAuditStore",
    "Problem",
    "ProblemKind",
    "SqliteAuditStore",
    "TornTailError",
    "VerifyReport",
    "canonical_json",
    "read_entries",
    "verify",
    "verify_lines",
]
