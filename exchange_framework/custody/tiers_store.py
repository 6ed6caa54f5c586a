"""Where sweep proposals live: a small SQLite file beside the custody policy state, shared by the running exchange
(which plans and executes) and ``exchange custody tiers`` (which shows, plans and records approvals).

Amounts are decimal text of atomic units (18-decimal assets pass SQLite's 64-bit integers). Approvals are rows of
their own, inserted by whoever records them and marked when the executor has handed them to the policy engine, so
two processes never overwrite each other's approvals.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from os import PathLike

import msgspec

from exchange_framework.custody.rules import Tier
from exchange_framework.sqlite_file import SqliteFile

__all__ = ["OPEN_STAGES", "SweepApproval", "SweepRow", "SweepStage", "SweepStore"]


class SweepStage(StrEnum):
    """Where a sweep proposal stands."""

    PROPOSED = "proposed"  # planned; waits for an operator's approval
    CEREMONY = "ceremony"  # cold -> warm: only the cold-vault ceremony can do it; never executed here
    AWAITING_APPROVAL = "awaiting_approval"  # submitted to the custody policy engine, k-of-n approvals pending
    APPROVED = "approved"  # the policy engine approved it: to be released to the signer
    SIGNED = "signed"
    BROADCAST = "broadcast"  # sent; waiting for the chain's confirmation depth
    COMPLETED = "completed"  # confirmed and recorded on the ledger's custody accounts
    REJECTED = "rejected"  # refused by the policy engine, denied by an operator, or could not be built
    SUPERSEDED = "superseded"  # a newer plan replaced it before it was submitted


OPEN_STAGES = frozenset({SweepStage.AWAITING_APPROVAL, SweepStage.APPROVED, SweepStage.SIGNED, SweepStage.BROADCAST})
"""Stages in which money may be on its way: the planner leaves such an asset and chain alone until they end."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY, asset TEXT NOT NULL, chain TEXT NOT NULL, source TEXT NOT NULL,
    destination TEXT NOT NULL, amount TEXT NOT NULL, ceremony INTEGER NOT NULL, reason TEXT NOT NULL,
    demand TEXT NOT NULL DEFAULT '0', stage TEXT NOT NULL, fee TEXT NOT NULL DEFAULT '0',
    fee_asset TEXT NOT NULL DEFAULT '', txid TEXT NOT NULL DEFAULT '', confirmations INTEGER NOT NULL DEFAULT 0,
    reasons TEXT NOT NULL DEFAULT '[]', unsigned BLOB, signed BLOB, error TEXT NOT NULL DEFAULT '',
    planned_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sweeps_stage ON sweeps (stage, id);
CREATE TABLE IF NOT EXISTS sweep_approvals (
    sweep_id INTEGER NOT NULL, approver TEXT NOT NULL, approve INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '',
    ts_ns INTEGER NOT NULL, handled INTEGER NOT NULL DEFAULT 0, outcome TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sweep_id, approver));
"""

_COLUMNS = (
    "id, asset, chain, source, destination, amount, ceremony, reason, demand, stage, fee, fee_asset, txid, "
    "confirmations, reasons, unsigned, signed, error, planned_ns, updated_ns"
)


class SweepRow(msgspec.Struct):
    """A sweep proposal as stored; amounts in atomic units."""

    id: int
    asset: str
    chain: str
    source: Tier
    destination: Tier
    amount: int
    ceremony: bool
    reason: str
    demand: int
    stage: SweepStage
    fee: int
    fee_asset: str
    txid: str
    confirmations: int
    reasons: list[str]
    unsigned: bytes | None
    signed: bytes | None
    error: str
    planned_ns: int
    updated_ns: int

    @property
    def reference(self) -> str:
        """The reference of the ledger's custody move for this sweep (used once)."""
        return f"sweep:{self.id}"

    @property
    def request_id(self) -> str:
        """The custody policy engine's request id for this sweep."""
        return f"sweep-{self.id}"


class SweepApproval(msgspec.Struct, frozen=True):
    """An operator's recorded approval (or denial) of a sweep, and whether the executor has handled it."""

    sweep_id: int
    approver: str
    approve: bool
    note: str
    ts_ns: int
    handled: bool
    outcome: str


def _row(values: Sequence[object]) -> SweepRow:
    (sid, asset, chain, source, destination, amount, ceremony, reason, demand, stage, fee, fee_asset, txid, confs,
     reasons, unsigned, signed, error, planned, updated) = values  # fmt: skip
    return SweepRow(
        id=int(str(sid)),
        asset=str(asset),
        chain=str(chain),
        source=Tier(str(source)),
        destination=Tier(str(destination)),
        amount=int(str(amount)),
        ceremony=bool(ceremony),
        reason=str(reason),
        demand=int(str(demand)),
        stage=SweepStage(str(stage)),
        fee=int(str(fee)),
        fee_asset=str(fee_asset),
        txid=str(txid),
        confirmations=int(str(confs)),
        reasons=list(json.loads(str(reasons))),
        unsigned=bytes(unsigned) if isinstance(unsigned, bytes | bytearray | memoryview) else None,
        signed=bytes(signed) if isinstance(signed, bytes | bytearray | memoryview) else None,
        error=str(error),
        planned_ns=int(str(planned)),
        updated_ns=int(str(updated)),
    )


class SweepStore(SqliteFile):
    """Sweep proposals and their approvals in one SQLite file (``":memory:"`` for a throwaway store)."""

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__(path, _SCHEMA)

    def insert(
        self,
        *,
        asset: str,
        chain: str,
        source: Tier,
        destination: Tier,
        amount: int,
        ceremony: bool,
        reason: str,
        demand: int,
        now_ns: int,
    ) -> SweepRow:
        """Record a new proposal (stage ``proposed``, or ``ceremony`` for cold -> warm) and return it."""
        stage = SweepStage.CEREMONY if ceremony else SweepStage.PROPOSED
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO sweeps (asset, chain, source, destination, amount, ceremony, reason, demand, stage, "
                "planned_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    asset,
                    chain,
                    source.value,
                    destination.value,
                    str(amount),
                    int(ceremony),
                    reason,
                    str(demand),
                    stage.value,
                    now_ns,
                    now_ns,
                ),
            )
            sweep_id = int(cursor.lastrowid or 0)
        row = self.sweep(sweep_id)
        assert row is not None
        return row

    def save(self, row: SweepRow, now_ns: int) -> None:
        """Write ``row``'s mutable fields durably."""
        row.updated_ns = now_ns
        with self.transaction() as db:
            db.execute(
                "UPDATE sweeps SET stage = ?, fee = ?, fee_asset = ?, txid = ?, confirmations = ?, reasons = ?, "
                "unsigned = ?, signed = ?, error = ?, updated_ns = ? WHERE id = ?",
                (
                    row.stage.value,
                    str(row.fee),
                    row.fee_asset,
                    row.txid,
                    row.confirmations,
                    json.dumps(row.reasons),
                    row.unsigned,
                    row.signed,
                    row.error,
                    now_ns,
                    row.id,
                ),
            )

    def supersede(self, sweep_id: int, reason: str, now_ns: int) -> bool:
        """Mark a proposal that was never submitted as superseded; whether it still was one."""
        with self.transaction() as db:
            found = db.execute(
                "SELECT reasons FROM sweeps WHERE id = ? AND stage IN (?, ?)",
                (sweep_id, SweepStage.PROPOSED.value, SweepStage.CEREMONY.value),
            ).fetchone()
            if found is None:
                return False
            reasons = [*json.loads(str(found[0])), reason]
            db.execute(
                "UPDATE sweeps SET stage = ?, reasons = ?, updated_ns = ? WHERE id = ?",
                (SweepStage.SUPERSEDED.value, json.dumps(reasons), now_ns, sweep_id),
            )
            return True

    def sweep(self, sweep_id: int) -> SweepRow | None:
        """One proposal by id."""
        found = self._query(f"SELECT {_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,))
        return _row(found[0]) if found else None

    def sweeps(
        self, *, stages: Sequence[SweepStage] | None = None, limit: int = 100, oldest_first: bool = False
    ) -> list[SweepRow]:
        """Proposals newest first (or oldest first), optionally only those in ``stages``."""
        sql = f"SELECT {_COLUMNS} FROM sweeps"
        params: list[object] = []
        if stages is not None:
            sql += f" WHERE stage IN ({', '.join('?' for _ in stages)})"
            params.extend(s.value for s in stages)
        sql += f" ORDER BY id {'ASC' if oldest_first else 'DESC'} LIMIT ?"
        params.append(limit)
        return [_row(r) for r in self._query(sql, params)]

    # -- approvals
    def record_approval(self, sweep_id: int, *, approver: str, approve: bool, note: str, now_ns: int) -> bool:
        """Record ``approver``'s approval or denial; False if they already recorded one for this sweep."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO sweep_approvals (sweep_id, approver, approve, note, ts_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (sweep_id, approver, int(approve), note, now_ns),
            )
            return cursor.rowcount > 0

    def approvals(self, sweep_id: int | None = None, *, pending_only: bool = False) -> list[SweepApproval]:
        """Recorded approvals (of one sweep, or all), oldest first; ``pending_only``: those not handled yet."""
        sql = "SELECT sweep_id, approver, approve, note, ts_ns, handled, outcome FROM sweep_approvals WHERE 1 = 1"
        params: list[object] = []
        if sweep_id is not None:
            sql += " AND sweep_id = ?"
            params.append(sweep_id)
        if pending_only:
            sql += " AND handled = 0"
        sql += " ORDER BY ts_ns, sweep_id, approver"
        return [
            SweepApproval(int(str(s)), str(a), bool(ok), str(n), int(str(ts)), bool(h), str(o))
            for s, a, ok, n, ts, h, o in self._query(sql, params)
        ]

    def mark_handled(self, sweep_id: int, approver: str, outcome: str) -> None:
        """Record that the executor handed this approval to the policy engine, and what came of it."""
        with self.transaction() as db:
            db.execute(
                "UPDATE sweep_approvals SET handled = 1, outcome = ? WHERE sweep_id = ? AND approver = ?",
                (outcome, sweep_id, approver),
            )
