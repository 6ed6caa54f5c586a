"""Outgoing travel rule transfers as this node recorded them: one row per envelope id, written before each send."""

from __future__ import annotations

from os import PathLike

import msgspec

from exchange_framework.sqlite_file import SqliteFile

__all__ = ["OutgoingTransfer", "TransferStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outgoing (
    envelope_id TEXT PRIMARY KEY, withdrawal_id INTEGER NOT NULL, counterparty TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL, code INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0, updated_ns INTEGER NOT NULL);
"""


class OutgoingTransfer(msgspec.Struct):
    """One outgoing transfer: ``state`` is unsent, pending, accepted, rejected or unknown_vasp."""

    envelope_id: str
    withdrawal_id: int
    counterparty: str
    state: str
    code: int = 0
    message: str = ""
    attempts: int = 0
    updated_ns: int = 0


class TransferStore(SqliteFile):
    """Outgoing transfers in a small SQLite file (``":memory:"`` for a throwaway one)."""

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__(path, _SCHEMA)

    def get(self, envelope_id: str) -> OutgoingTransfer | None:
        """The transfer with ``envelope_id``, if recorded."""
        rows = self._query(
            "SELECT envelope_id, withdrawal_id, counterparty, state, code, message, attempts, updated_ns "
            "FROM outgoing WHERE envelope_id = ?",
            (envelope_id,),
        )
        return OutgoingTransfer(*rows[0]) if rows else None  # type: ignore[arg-type]

    def put(self, record: OutgoingTransfer) -> None:
        """Insert or replace ``record`` durably."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO outgoing (envelope_id, withdrawal_id, counterparty, state, code, message, "
                "attempts, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.envelope_id,
                    record.withdrawal_id,
                    record.counterparty,
                    record.state,
                    record.code,
                    record.message,
                    record.attempts,
                    record.updated_ns,
                ),
            )
