"""The policy engine's persisted state: a small SQLite database, one transaction per change.

Tables: ``requests`` (one row per withdrawal request, its record as JSON, updated in place) and ``blobs`` (the
whitelist state and the velocity events still in a window, each one JSON value). A decision writes one request
row and the velocity blob in one transaction, so its cost does not grow with the number of past requests (a
whole-file JSON state did: 15 ms per decision after 5,000 requests). With ``fsync`` the database runs in WAL mode
with ``synchronous=FULL``: a committed change survives a crash. One process at a time may use the state (an
exclusive lock on ``<path>.lock``); ``path=None`` keeps everything in memory (tests).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import msgspec

from exchange_framework.custody.velocity import VelocityEvent
from exchange_framework.custody.whitelist import WhitelistState

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    from exchange_framework.custody.policy import WithdrawalRecord

__all__ = ["SCHEMA_VERSION", "PolicyStore", "StateError"]

T = TypeVar("T")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    submitted_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_status ON requests (status, submitted_ns);
CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
_OPEN = ("pending", "approved")


class StateError(Exception):
    """The policy state cannot be locked, read or written."""


class PolicyStore:
    """Reads and writes the policy engine's state (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str] | None, *, fsync: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self._lock_fd = -1
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
                if sys.platform != "win32":
                    try:
                        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise StateError(
                            f"{self.path}: the custody policy state is in use by another process"
                        ) from None
            self._db = sqlite3.connect(
                str(self.path) if self.path is not None else ":memory:",
                isolation_level=None,
                check_same_thread=False,  # the engine's lock serialises every use
                timeout=1.0,  # nobody else should write (the .lock file): a busy database is a failure
            )
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
            self._db.executescript(_SCHEMA)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise StateError(f"{self.path}: custody policy state version {version}, expected {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self.close()
            raise StateError(f"{self.path}: cannot open the custody policy state: {exc}") from None
        except BaseException:
            self.close()
            raise

    # -- reading -------------------------------------------------------------------------------------------------

    def _blob(self, name: str, kind: type[T], default: T) -> T:
        row = self._db.execute("SELECT value FROM blobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return default
        return msgspec.json.decode(row[0], type=kind)

    def whitelist(self) -> WhitelistState:
        """Return the saved whitelist state (empty if none)."""
        return self._read(lambda: self._blob("whitelist", WhitelistState, WhitelistState()))

    def velocity(self) -> list[VelocityEvent]:
        """Return the saved velocity events."""
        return self._read(lambda: self._blob("velocity", list[VelocityEvent], []))

    def open_requests(self) -> dict[str, WithdrawalRecord]:
        """Return the requests still pending or approved, by id."""
        from exchange_framework.custody.policy import WithdrawalRecord

        rows = self._read(
            lambda: self._db.execute("SELECT record FROM requests WHERE status IN (?, ?)", _OPEN).fetchall()
        )
        records = (self._decode(row[0], WithdrawalRecord) for row in rows)
        return {r.request_id: r for r in records}

    def request(self, request_id: str) -> WithdrawalRecord | None:
        """Return one request, or None."""
        from exchange_framework.custody.policy import WithdrawalRecord

        row = self._read(
            lambda: self._db.execute("SELECT record FROM requests WHERE request_id = ?", (request_id,)).fetchone()
        )
        return None if row is None else self._decode(row[0], WithdrawalRecord)

    def requests(self, status: str | None = None) -> list[WithdrawalRecord]:
        """Return every request (or those with ``status``), oldest first."""
        from exchange_framework.custody.policy import WithdrawalRecord

        query = "SELECT record FROM requests WHERE ? IS NULL OR status = ? ORDER BY submitted_ns, request_id"
        args = (status, status)
        rows = self._read(lambda: self._db.execute(query, args).fetchall())
        return [self._decode(row[0], WithdrawalRecord) for row in rows]

    def _read(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except (sqlite3.Error, msgspec.DecodeError) as exc:
            raise StateError(f"{self.path}: cannot read the custody policy state: {exc}") from None

    def _decode(self, data: bytes, kind: type[T]) -> T:
        try:
            return msgspec.json.decode(data, type=kind)
        except msgspec.DecodeError as exc:
            raise StateError(f"{self.path}: a saved request is not valid: {exc}") from None

    # -- writing -------------------------------------------------------------------------------------------------

    def save(
        self,
        *,
        record: WithdrawalRecord | None = None,
        whitelist: WhitelistState | None = None,
        velocity: list[VelocityEvent] | None = None,
    ) -> None:
        """Write what changed in one transaction (all of it, or none of it)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if record is not None:
                    self._db.execute(
                        "INSERT INTO requests (request_id, submitted_ns, status, record) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (request_id) DO UPDATE SET status = excluded.status, record = excluded.record",
                        (record.request_id, record.submitted_ns, record.status.value, msgspec.json.encode(record)),
                    )
                for name, value in (("whitelist", whitelist), ("velocity", velocity)):
                    if value is not None:
                        self._db.execute(
                            "INSERT INTO blobs (name, value) VALUES (?, ?) "
                            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                            (name, msgspec.json.encode(value)),
                        )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot save the custody policy state: {exc}") from exc

    def close(self) -> None:
        """Close the database and release the lock."""
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None  # type: ignore[assignment]
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
