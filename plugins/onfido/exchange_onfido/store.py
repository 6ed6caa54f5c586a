"""Which account each Onfido check belongs to, and the last decision on it (``onfido.db`` beside the journal)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import msgspec

from exchange_framework.interfaces import Decision, Outcome

__all__ = ["CheckRecord", "CheckStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS onfido_checks (
    check_id TEXT PRIMARY KEY,
    applicant_id TEXT NOT NULL,
    account INTEGER NOT NULL,
    status TEXT NOT NULL,
    outcome INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
);
"""


class CheckRecord(msgspec.Struct, frozen=True):
    """One check: its account, Onfido's last status and the decision taken on it."""

    check_id: str
    applicant_id: str
    account: int
    status: str
    decision: Decision
    updated_ns: int


class CheckStore:
    """Onfido checks in SQLite; one short connection per call, so any thread may use it."""

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

    def add(self, check_id: str, applicant_id: str, account: int, status: str, decision: Decision) -> None:
        """Record a new check."""
        with self._db() as db:
            db.execute(
                "INSERT INTO onfido_checks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    check_id,
                    applicant_id,
                    account,
                    status,
                    int(decision.outcome),
                    json.dumps(decision.reasons),
                    self._now(),
                ),
            )

    def update(self, check_id: str, status: str, decision: Decision) -> None:
        """Record Onfido's latest status of a check and the decision on it."""
        with self._db() as db:
            db.execute(
                "UPDATE onfido_checks SET status = ?, outcome = ?, reasons = ?, updated_ns = ? WHERE check_id = ?",
                (status, int(decision.outcome), json.dumps(decision.reasons), self._now(), check_id),
            )

    def get(self, check_id: str) -> CheckRecord | None:
        """One check, or None if the exchange never started it."""
        with self._db() as db:
            row = db.execute(
                "SELECT check_id, applicant_id, account, status, outcome, reasons, updated_ns FROM onfido_checks "
                "WHERE check_id = ?",
                (check_id,),
            ).fetchone()
        if row is None:
            return None
        decision = Decision(Outcome(row[4]), tuple(json.loads(row[5])), "onfido")
        return CheckRecord(row[0], row[1], int(row[2]), row[3], decision, int(row[6]))
