"""Travel rule transfers as this node recorded them: outgoing ones (one row per envelope id, written before each
send) and incoming ones with the decision we answered (kept: they are the travel rule data we received)."""

from __future__ import annotations

from os import PathLike

import msgspec

from exchange_framework.sqlite_file import SqliteFile

__all__ = ["IncomingTransfer", "OutgoingTransfer", "TransferStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outgoing (
    envelope_id TEXT PRIMARY KEY, withdrawal_id INTEGER NOT NULL, counterparty TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL, code INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0, updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS incoming (
    peer TEXT NOT NULL, envelope_id TEXT NOT NULL, accepted INTEGER NOT NULL, code INTEGER NOT NULL,
    message TEXT NOT NULL, beneficiary_accounts TEXT NOT NULL, originator_names TEXT NOT NULL,
    received_ns INTEGER NOT NULL, PRIMARY KEY (peer, envelope_id));
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


class IncomingTransfer(msgspec.Struct, frozen=True):
    """A transfer a peer announced to us and what we answered (``code`` 0 and ``accepted`` when accepted)."""

    envelope_id: str
    peer: str
    accepted: bool
    code: int
    message: str
    beneficiary_accounts: tuple[str, ...] = ()
    originator_names: tuple[str, ...] = ()


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

    def put_incoming(self, record: IncomingTransfer, now_ns: int) -> None:
        """Record what we answered to an incoming transfer (the first answer for an envelope id stands)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO incoming (peer, envelope_id, accepted, code, message, beneficiary_accounts, "
                "originator_names, received_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.peer,
                    record.envelope_id,
                    int(record.accepted),
                    record.code,
                    record.message,
                    msgspec.json.encode(record.beneficiary_accounts).decode(),
                    msgspec.json.encode(record.originator_names).decode(),
                    now_ns,
                ),
            )

    def incoming(self, peer: str, envelope_id: str) -> IncomingTransfer | None:
        """What we answered ``peer`` for ``envelope_id``, if anything."""
        rows = self._query(
            "SELECT envelope_id, peer, accepted, code, message, beneficiary_accounts, originator_names FROM incoming "
            "WHERE peer = ? AND envelope_id = ?",
            (peer, envelope_id),
        )
        if not rows:
            return None
        eid, who, accepted, code, message, accounts, names = rows[0]
        return IncomingTransfer(
            str(eid),
            str(who),
            bool(accepted),
            int(str(code)),
            str(message),
            tuple(msgspec.json.decode(str(accounts))),
            tuple(msgspec.json.decode(str(names))),
        )

    def outgoing(self, *, limit: int = 100) -> list[OutgoingTransfer]:
        """The latest outgoing transfers, newest first."""
        rows = self._query(
            "SELECT envelope_id, withdrawal_id, counterparty, state, code, message, attempts, updated_ns "
            "FROM outgoing ORDER BY updated_ns DESC LIMIT ?",
            (limit,),
        )
        return [OutgoingTransfer(*r) for r in rows]  # type: ignore[arg-type]

    def incoming_list(self, *, limit: int = 100) -> list[tuple[int, IncomingTransfer]]:
        """The latest incoming transfers with when they arrived (ns), newest first."""
        rows = self._query(
            "SELECT peer, envelope_id, received_ns FROM incoming ORDER BY received_ns DESC LIMIT ?", (limit,)
        )
        found = [(int(str(ns)), self.incoming(str(peer), str(eid))) for peer, eid, ns in rows]
        return [(ns, record) for ns, record in found if record is not None]
