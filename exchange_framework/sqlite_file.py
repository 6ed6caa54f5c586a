"""A small SQLite database file shared by the threads of one process: the base of the kernel's local stores.

WAL journal and ``synchronous=FULL`` (a committed transaction survives a crash), one connection guarded by a
re-entrant lock, and short ``BEGIN IMMEDIATE`` transactions that are all or nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

__all__ = ["SqliteFile"]


class SqliteFile:
    """A SQLite file (``":memory:"`` for a throwaway one) with ``schema`` applied, safe to share between threads."""

    def __init__(self, path: str | PathLike[str], schema: str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(schema)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block of writes atomically (all or nothing, durable on return)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())
