"""An :class:`~exchange_framework.audit.AuditStore` in a SQLite table: the database-backed store, embedded.

Each row keeps an entry's sequence number and its canonical line, exactly as the file store writes it, so the same
verifier checks both (:meth:`SqliteAuditStore.verify`). Appends run in ``BEGIN IMMEDIATE`` transactions, so
several processes can append to one database; the ``seq`` primary key refuses a second entry with the same number.
The same table shape works on a server database (the line as ``bytea``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from exchange_framework.audit.entry import AuditEntry, AuditFormatError, decode_line
from exchange_framework.audit.store import AuditError, CorruptAuditLogError
from exchange_framework.audit.verify import VerifyReport, verify_lines

__all__ = ["SqliteAuditStore"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY, line BLOB NOT NULL)"


class SqliteAuditStore:
    """Audit entries as rows of ``audit_log (seq, line)`` in the SQLite database at ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise AuditError(f"{self.path}: cannot open the audit database: {exc}") from None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise AuditError(f"{self.path}: the audit log is closed")
        return self._db

    def _decode(self, seq: int, line: bytes) -> AuditEntry:
        try:
            return decode_line(line)
        except AuditFormatError as exc:
            raise CorruptAuditLogError(
                f"{self.path}: row seq={seq} is not a valid entry: {exc}; verify the log"
            ) from None

    def last(self) -> AuditEntry | None:
        """Return the newest entry, or None if the log is empty."""
        row = self._conn().execute("SELECT seq, line FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return None
        line = row[1]
        return self._decode(row[0], line.encode() if isinstance(line, str) else bytes(line))

    def append(self, build: Callable[[AuditEntry | None], AuditEntry]) -> AuditEntry:
        """Insert the entry ``build`` makes from the newest one, in one write transaction."""
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                entry = build(self.last())
                db.execute("INSERT INTO audit_log (seq, line) VALUES (?, ?)", (entry.seq, entry.line()[:-1]))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditError(f"{self.path}: cannot append to the audit log: {exc}") from exc
        return entry

    def lines(self) -> Iterator[tuple[int, bytes, bool]]:
        """Yield (seq column, stored line, True) in ``seq`` order, as the verifier reads them."""
        for seq, line in self._conn().execute("SELECT seq, line FROM audit_log ORDER BY seq"):
            yield seq, line.encode() if isinstance(line, str) else bytes(line), True  # TEXT only if edited by hand

    def entries(self) -> Iterator[AuditEntry]:
        """Yield every entry, oldest first."""
        for seq, line, _ in self.lines():
            yield self._decode(seq, line)

    def verify(self, *, expect_head: str | None = None) -> VerifyReport:
        """Check the whole chain, as :func:`~exchange_framework.audit.verify` does for a file."""
        return verify_lines(self.lines(), source=self.path, expect_head=expect_head)

    def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            self._db.close()
            self._db = None
