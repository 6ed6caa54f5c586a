"""The hot wallet's nonce book: which nonces were handed out and which transactions were broadcast, on disk.

A nonce handed out by ``build_withdrawal`` is *reserved*; it stays reserved until its transaction is broadcast
(then it is *used* for good) or until ``hold_seconds`` pass without a broadcast (a withdrawal the policy refused,
say), so an abandoned build does not leave a gap that blocks every later withdrawal. The book is a SQLite file
(WAL, synchronous=FULL), so a restart never hands out a nonce again. Broadcast transactions are kept with their
raw bytes: ``transaction_status`` can tell a replaced transaction (its nonce used by another) from one the node
forgot (sent again), and fee bumping finds what it replaces.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

__all__ = ["BroadcastRecord", "NonceBook"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (
    address TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'used')),
    since REAL NOT NULL,
    PRIMARY KEY (address, nonce)
);
CREATE TABLE IF NOT EXISTS broadcasts (
    txid TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    raw BLOB NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS broadcasts_by_nonce ON broadcasts (address, nonce);
"""


class BroadcastRecord(msgspec.Struct, frozen=True):
    """A transaction this adapter broadcast: who paid, with which nonce, and its raw signed bytes."""

    txid: str
    address: str
    nonce: int
    raw: bytes


class NonceBook:
    """Nonce reservations and broadcast records for one network, in a SQLite file (``:memory:`` for tests)."""

    def __init__(
        self, path: str | Path, *, hold_seconds: float = 900.0, clock: Callable[[], float] = time.time
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.hold_seconds = hold_seconds
        self.clock = clock

    def reserve(self, address: str, node_next: int) -> int:
        """Reserve and return the lowest nonce at or above ``node_next`` (the node's pending count) not in use."""
        key = address.lower()
        now = self.clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "DELETE FROM nonces WHERE address = ? AND state = 'reserved' AND since < ?",
                    (key, now - self.hold_seconds),
                )
                taken = {
                    n
                    for (n,) in self._db.execute(
                        "SELECT nonce FROM nonces WHERE address = ? AND nonce >= ?", (key, node_next)
                    )
                }
                nonce = node_next
                while nonce in taken:
                    nonce += 1
                self._db.execute(
                    "INSERT INTO nonces (address, nonce, state, since) VALUES (?, ?, 'reserved', ?)", (key, nonce, now)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return nonce

    def release(self, address: str, nonce: int) -> bool:
        """Free a reserved nonce whose transaction will never be broadcast; return whether one was freed."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM nonces WHERE address = ? AND nonce = ? AND state = 'reserved'", (address.lower(), nonce)
            )
        return cursor.rowcount > 0

    def record_broadcast(self, txid: str, address: str, nonce: int, raw: bytes) -> None:
        """Mark ``nonce`` used and remember the transaction (idempotent), before it is sent to the node."""
        key = address.lower()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO nonces (address, nonce, state, since) VALUES (?, ?, 'used', ?) "
                    "ON CONFLICT (address, nonce) DO UPDATE SET state = 'used'",
                    (key, nonce, self.clock()),
                )
                self._db.execute(
                    "INSERT OR IGNORE INTO broadcasts (txid, address, nonce, raw, at) VALUES (?, ?, ?, ?, ?)",
                    (txid.lower(), key, nonce, raw, self.clock()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def forget_broadcast(self, txid: str) -> None:
        """Undo :meth:`record_broadcast` for a transaction the node refused; its nonce is free unless another
        broadcast transaction uses it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT address, nonce FROM broadcasts WHERE txid = ?", (txid.lower(),)
                ).fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM broadcasts WHERE txid = ?", (txid.lower(),))
                    others = self._db.execute(
                        "SELECT 1 FROM broadcasts WHERE address = ? AND nonce = ?", (row[0], row[1])
                    ).fetchone()
                    if others is None:
                        self._db.execute("DELETE FROM nonces WHERE address = ? AND nonce = ?", (row[0], row[1]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def broadcast(self, txid: str) -> BroadcastRecord | None:
        """Return the record of a transaction this adapter broadcast, or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT txid, address, nonce, raw FROM broadcasts WHERE txid = ?", (txid.lower(),)
            ).fetchone()
        return BroadcastRecord(row[0], row[1], row[2], bytes(row[3])) if row is not None else None

    def reserved(self, address: str) -> dict[int, str]:
        """Return ``{nonce: state}`` for ``address`` (for operators and tests)."""
        with self._lock:
            rows = self._db.execute("SELECT nonce, state FROM nonces WHERE address = ?", (address.lower(),))
            return {n: s for n, s in rows}

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
