"""Which exchange account each Jumio workflow execution belongs to, and the last decision on it (``jumio.db``)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import msgspec

from exchange_framework.interfaces import Decision, Outcome

__all__ = ["ExecutionRecord", "ExecutionStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jumio_executions (
    reference TEXT PRIMARY KEY,
    account INTEGER NOT NULL,
    status TEXT NOT NULL,
    outcome INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
);
"""


class ExecutionRecord(msgspec.Struct, frozen=True):
    """One workflow execution: its exchange account, Jumio's last status and the decision taken on it."""

    reference: str
    account: int
    status: str
    decision: Decision
    updated_ns: int


class ExecutionStore:
    """Jumio workflow executions in SQLite; one short connection per call, so any thread may use it."""

    def __init__(self, path: Path, *, clock: Callable[[], int] = time.time_ns) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._now = clock
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            yield db

    def save(self, reference: str, account: int, status: str, decision: Decision) -> None:
        """Record an execution's status and the decision on it (insert or update)."""
        with self._db() as db:
            db.execute(
                "INSERT INTO jumio_executions VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (reference) DO UPDATE SET "
                "status = excluded.status, outcome = excluded.outcome, reasons = excluded.reasons, "
                "updated_ns = excluded.updated_ns",
                (reference, account, status, int(decision.outcome), json.dumps(decision.reasons), self._now()),
            )

    def get(self, reference: str) -> ExecutionRecord | None:
        """One execution, or None if the exchange never started it."""
        with self._db() as db:
            row = db.execute(
                "SELECT reference, account, status, outcome, reasons, updated_ns FROM jumio_executions "
                "WHERE reference = ?",
                (reference,),
            ).fetchone()
        if row is None:
            return None
        decision = Decision(Outcome(row[3]), tuple(json.loads(row[4])), "jumio")
        return ExecutionRecord(row[0], int(row[1]), row[2], decision, int(row[5]))
