"""Where deposit state lives: a small SQLite file next to the ledger, written in short crash-safe transactions.

One store serves every chain. It holds the block headers each chain's tracker has followed (the parent-hash chain
that reorgs are detected against), the watched deposit addresses, every deposit with its stage, each stage change
(so a stuck deposit's story can be read), and alerts. Amounts are stored as decimal text: 18-decimal assets pass
SQLite's 64-bit integers. The read methods here are the query API the REST API, portal and admin console call.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from enum import StrEnum
from os import PathLike

import msgspec

from exchange_framework.interfaces import BlockHeader, DepositAddress
from exchange_framework.sqlite_file import SqliteFile

__all__ = [
    "OPEN_STAGES",
    "Deposit",
    "DepositAlert",
    "DepositStore",
    "Stage",
    "StageChange",
    "deposit_reference",
]


class Stage(StrEnum):
    """Where a deposit stands. Every deposit is always in exactly one stage, visible to its owner and operators."""

    SEEN = "seen"  # found in a block, just recorded
    CONFIRMING = "confirming"  # waiting for n of N confirmations
    SCREENING = "screening"  # at depth: compliance screening, then the credit
    CREDITED = "credited"  # the engine credited it (final; a later deep reorg raises an alert)
    HELD = "held"  # screening held it (or it could not be credited): an operator decides
    REJECTED = "rejected"  # screening or an operator refused it
    ORPHANED = "orphaned"  # a reorg removed its block before it was credited (it comes back if re-mined)


OPEN_STAGES: frozenset[Stage] = frozenset({Stage.SEEN, Stage.CONFIRMING, Stage.SCREENING})


def deposit_reference(chain: str, txid: str, index: int) -> str:
    """Return the engine reference of a deposit's credit: the same deposit always gets the same reference."""
    return f"dep:{chain}:{txid}:{index}"


class Deposit(msgspec.Struct, frozen=True):
    """One deposit as the API shows it. ``amount`` is in ``asset``'s atomic units.

    ``confirmations`` counts on the tracker's view of the best chain (0 when orphaned); ``reasons`` explains a
    hold or rejection; ``reorged_after_credit`` is set while a credited deposit's block is off the best chain.
    """

    chain: str
    txid: str
    index: int
    account: int
    asset: str
    amount: int
    address: str
    memo: str
    source_addresses: tuple[str, ...]
    block_height: int | None
    block_hash: str
    confirmations: int
    required_confirmations: int
    stage: Stage
    reasons: tuple[str, ...]
    reference: str
    reorged_after_credit: bool
    first_seen_ns: int
    updated_ns: int


class StageChange(msgspec.Struct, frozen=True):
    """One step of a deposit's history."""

    stage: Stage
    confirmations: int
    note: str
    at_ns: int


class DepositAlert(msgspec.Struct, frozen=True):
    """Something an operator must look at, such as a credited deposit that a reorg removed."""

    id: int
    chain: str
    txid: str
    index: int
    kind: str
    detail: str
    at_ns: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deposit_blocks (
    chain TEXT NOT NULL, height INTEGER NOT NULL, hash TEXT NOT NULL, parent_hash TEXT NOT NULL,
    PRIMARY KEY (chain, height));
CREATE TABLE IF NOT EXISTS deposit_addresses (
    chain TEXT NOT NULL, account INTEGER NOT NULL, address TEXT NOT NULL, memo TEXT NOT NULL,
    PRIMARY KEY (chain, account), UNIQUE (chain, address, memo));
CREATE TABLE IF NOT EXISTS deposits (
    chain TEXT NOT NULL, txid TEXT NOT NULL, idx INTEGER NOT NULL,
    account INTEGER NOT NULL, asset TEXT NOT NULL, amount TEXT NOT NULL, address TEXT NOT NULL, memo TEXT NOT NULL,
    sources TEXT NOT NULL, block_height INTEGER, block_hash TEXT NOT NULL,
    required INTEGER NOT NULL, stage TEXT NOT NULL, reasons TEXT NOT NULL,
    credit_attempted INTEGER NOT NULL DEFAULT 0, reorged_after_credit INTEGER NOT NULL DEFAULT 0,
    first_seen_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,
    PRIMARY KEY (chain, txid, idx));
CREATE INDEX IF NOT EXISTS deposits_by_account ON deposits (account, first_seen_ns);
CREATE INDEX IF NOT EXISTS deposits_by_stage ON deposits (chain, stage);
CREATE INDEX IF NOT EXISTS deposits_by_txid ON deposits (txid);
CREATE TABLE IF NOT EXISTS deposit_history (
    chain TEXT NOT NULL, txid TEXT NOT NULL, idx INTEGER NOT NULL,
    at_ns INTEGER NOT NULL, stage TEXT NOT NULL, confirmations INTEGER NOT NULL, note TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deposit_history_by_deposit ON deposit_history (chain, txid, idx);
CREATE TABLE IF NOT EXISTS deposit_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, chain TEXT NOT NULL, txid TEXT NOT NULL, idx INTEGER NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL, at_ns INTEGER NOT NULL);
"""

_DEPOSIT_COLUMNS = (
    "chain, txid, idx, account, asset, amount, address, memo, sources, block_height, block_hash, required, stage, "
    "reasons, credit_attempted, reorged_after_credit, first_seen_ns, updated_ns"
)


class DepositRow(msgspec.Struct):
    """A deposit as stored (the tracker's working copy; the API sees :class:`Deposit`)."""

    chain: str
    txid: str
    index: int
    account: int
    asset: str
    amount: int
    address: str
    memo: str
    source_addresses: tuple[str, ...]
    block_height: int | None
    block_hash: str
    required: int
    stage: Stage
    reasons: tuple[str, ...]
    credit_attempted: bool
    reorged_after_credit: bool
    first_seen_ns: int
    updated_ns: int


def _row(values: Sequence[object]) -> DepositRow:
    (chain, txid, idx, account, asset, amount, address, memo, sources, height, block_hash, required, stage, reasons,
     attempted, reorged, first, updated) = values  # fmt: skip
    return DepositRow(
        str(chain),
        str(txid),
        int(idx),  # type: ignore[call-overload]  # sqlite3 returns untyped values
        int(account),  # type: ignore[call-overload]
        str(asset),
        int(str(amount)),
        str(address),
        str(memo),
        tuple(json.loads(str(sources))),
        None if height is None else int(height),  # type: ignore[call-overload]
        str(block_hash),
        int(required),  # type: ignore[call-overload]
        Stage(str(stage)),
        tuple(json.loads(str(reasons))),
        bool(attempted),
        bool(reorged),
        int(first),  # type: ignore[call-overload]
        int(updated),  # type: ignore[call-overload]
    )


class DepositStore(SqliteFile):
    """Deposit state in a SQLite file (``":memory:"`` for a throwaway store); safe to share between threads."""

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__(path, _SCHEMA)

    # -- block headers -------------------------------------------------------------------------------------------

    def tip(self, chain: str) -> BlockHeader | None:
        """Return the highest block header the chain's tracker has processed."""
        rows = self._query(
            "SELECT height, hash, parent_hash FROM deposit_blocks WHERE chain = ? ORDER BY height DESC LIMIT 1",
            (chain,),
        )
        return BlockHeader(int(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None  # type: ignore[call-overload]

    def header(self, chain: str, height: int) -> BlockHeader | None:
        """Return the processed header at ``height``, if the store still has it."""
        rows = self._query(
            "SELECT hash, parent_hash FROM deposit_blocks WHERE chain = ? AND height = ?", (chain, height)
        )
        return BlockHeader(height, str(rows[0][0]), str(rows[0][1])) if rows else None

    def lowest_height(self, chain: str) -> int | None:
        """Return the lowest height whose header is still kept."""
        rows = self._query("SELECT MIN(height) FROM deposit_blocks WHERE chain = ?", (chain,))
        return None if rows[0][0] is None else int(rows[0][0])  # type: ignore[call-overload]

    # -- addresses -----------------------------------------------------------------------------------------------

    def watched(self, chain: str) -> dict[tuple[str, str], int]:
        """Return the chain's watched ``(address, memo)`` pairs and their accounts."""
        rows = self._query("SELECT address, memo, account FROM deposit_addresses WHERE chain = ?", (chain,))
        return {(str(a), str(m)): int(acct) for a, m, acct in rows}  # type: ignore[call-overload]

    def watched_version(self, chain: str) -> tuple[int, int]:
        """Return a cheap marker that changes whenever an address is added to the chain's watch list."""
        rows = self._query("SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM deposit_addresses WHERE chain = ?", (chain,))
        return int(rows[0][0]), int(rows[0][1])  # type: ignore[call-overload]

    def deposit_address(self, chain: str, account: int) -> DepositAddress | None:
        """Return the deposit address handed out to ``account`` on ``chain``, if any."""
        rows = self._query(
            "SELECT address, memo FROM deposit_addresses WHERE chain = ? AND account = ?", (chain, account)
        )
        return DepositAddress(str(rows[0][0]), str(rows[0][1])) if rows else None

    # -- deposits ------------------------------------------------------------------------------------------------

    def rows(self, chain: str, stages: Sequence[Stage] | None = None, *, above: int | None = None) -> list[DepositRow]:
        """Return the chain's stored deposits, optionally only in ``stages`` or in blocks above ``above``."""
        sql = f"SELECT {_DEPOSIT_COLUMNS} FROM deposits WHERE chain = ?"
        params: list[object] = [chain]
        if stages is not None:
            sql += f" AND stage IN ({','.join('?' * len(stages))})"
            params += [str(s) for s in stages]
        if above is not None:
            sql += " AND block_height > ?"
            params.append(above)
        return [_row(r) for r in self._query(sql + " ORDER BY block_height, txid, idx", params)]

    def row(self, chain: str, txid: str, index: int) -> DepositRow | None:
        """Return one stored deposit."""
        rows = self._query(
            f"SELECT {_DEPOSIT_COLUMNS} FROM deposits WHERE chain = ? AND txid = ? AND idx = ?", (chain, txid, index)
        )
        return _row(rows[0]) if rows else None

    def _view(self, row: DepositRow, tips: dict[str, int | None]) -> Deposit:
        if row.chain not in tips:
            tip = self.tip(row.chain)
            tips[row.chain] = tip.height if tip is not None else None
        tip_height = tips[row.chain]
        on_chain = row.block_height is not None and row.stage is not Stage.ORPHANED and not row.reorged_after_credit
        confirmations = (
            max(tip_height - row.block_height + 1, 0)  # type: ignore[operator]
            if on_chain and tip_height is not None
            else 0
        )
        return Deposit(
            chain=row.chain,
            txid=row.txid,
            index=row.index,
            account=row.account,
            asset=row.asset,
            amount=row.amount,
            address=row.address,
            memo=row.memo,
            source_addresses=row.source_addresses,
            block_height=row.block_height,
            block_hash=row.block_hash,
            confirmations=confirmations,
            required_confirmations=row.required,
            stage=row.stage,
            reasons=row.reasons,
            reference=deposit_reference(row.chain, row.txid, row.index),
            reorged_after_credit=row.reorged_after_credit,
            first_seen_ns=row.first_seen_ns,
            updated_ns=row.updated_ns,
        )

    def deposit(self, chain: str, txid: str, index: int) -> Deposit | None:
        """Return one deposit by its chain, txid and output/log index."""
        row = self.row(chain, txid, index)
        return self._view(row, {}) if row is not None else None

    def deposits(
        self,
        *,
        account: int | None = None,
        chain: str | None = None,
        txid: str | None = None,
        stage: Stage | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Deposit]:
        """Return deposits matching every given filter, newest first (``limit`` at most 1000)."""
        if not 0 < limit <= 1000 or offset < 0:
            raise ValueError("limit must be 1 to 1000 and offset not negative")
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (("account", account), ("chain", chain), ("txid", txid)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if stage is not None:
            clauses.append("stage = ?")
            params.append(str(Stage(stage)))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT {_DEPOSIT_COLUMNS} FROM deposits{where} ORDER BY first_seen_ns DESC, txid, idx LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        tips: dict[str, int | None] = {}
        return [self._view(_row(r), tips) for r in rows]

    def stage_counts(self, *, chain: str | None = None, updated_before_ns: int | None = None) -> dict[Stage, int]:
        """Count deposits per stage (only those last changed before ``updated_before_ns``: the stuck ones)."""
        clauses: list[str] = []
        params: list[object] = []
        if chain is not None:
            clauses.append("chain = ?")
            params.append(chain)
        if updated_before_ns is not None:
            clauses.append("updated_ns < ?")
            params.append(updated_before_ns)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT stage, COUNT(*) FROM deposits{where} GROUP BY stage", params)
        counts = dict.fromkeys(Stage, 0)
        for stage, count in rows:
            counts[Stage(str(stage))] = int(count)  # type: ignore[call-overload]
        return counts

    def history(self, chain: str, txid: str, index: int) -> list[StageChange]:
        """Return every stage change of one deposit, oldest first."""
        rows = self._query(
            "SELECT stage, confirmations, note, at_ns FROM deposit_history WHERE chain = ? AND txid = ? AND idx = ? "
            "ORDER BY rowid",
            (chain, txid, index),
        )
        return [StageChange(Stage(str(s)), int(c), str(n), int(t)) for s, c, n, t in rows]  # type: ignore[call-overload]

    def alerts(self, *, chain: str | None = None, limit: int = 100) -> list[DepositAlert]:
        """Return alerts, newest first."""
        sql = "SELECT id, chain, txid, idx, kind, detail, at_ns FROM deposit_alerts"
        params: list[object] = []
        if chain is not None:
            sql += " WHERE chain = ?"
            params.append(chain)
        rows = self._query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [
            DepositAlert(int(i), str(c), str(t), int(x), str(k), str(d), int(a))  # type: ignore[call-overload]
            for i, c, t, x, k, d, a in rows
        ]


# -- writes (used inside DepositStore.transaction() by the tracker) ------------------------------------------------


def insert_header(db: sqlite3.Connection, chain: str, header: BlockHeader) -> None:
    """Record a processed block header."""
    db.execute(
        "INSERT OR REPLACE INTO deposit_blocks (chain, height, hash, parent_hash) VALUES (?, ?, ?, ?)",
        (chain, header.height, header.hash, header.parent_hash),
    )


def delete_headers_above(db: sqlite3.Connection, chain: str, height: int) -> None:
    """Forget processed headers above ``height`` (a reorg)."""
    db.execute("DELETE FROM deposit_blocks WHERE chain = ? AND height > ?", (chain, height))


def prune_headers_below(db: sqlite3.Connection, chain: str, height: int) -> None:
    """Forget headers below ``height``: reorgs deeper than what is kept are reported, not followed."""
    db.execute("DELETE FROM deposit_blocks WHERE chain = ? AND height < ?", (chain, height))


def insert_address(db: sqlite3.Connection, chain: str, account: int, address: DepositAddress) -> None:
    """Watch ``address`` for ``account`` (idempotent)."""
    db.execute(
        "INSERT OR IGNORE INTO deposit_addresses (chain, account, address, memo) VALUES (?, ?, ?, ?)",
        (chain, account, address.address, address.memo),
    )


def save_row(db: sqlite3.Connection, row: DepositRow) -> None:
    """Insert or replace a deposit."""
    db.execute(
        f"INSERT OR REPLACE INTO deposits ({_DEPOSIT_COLUMNS}) VALUES ({','.join('?' * 18)})",
        (
            row.chain,
            row.txid,
            row.index,
            row.account,
            row.asset,
            str(row.amount),
            row.address,
            row.memo,
            json.dumps(list(row.source_addresses)),
            row.block_height,
            row.block_hash,
            row.required,
            str(row.stage),
            json.dumps(list(row.reasons)),
            int(row.credit_attempted),
            int(row.reorged_after_credit),
            row.first_seen_ns,
            row.updated_ns,
        ),
    )


def add_history(db: sqlite3.Connection, row: DepositRow, confirmations: int, note: str) -> None:
    """Append a stage change to a deposit's history."""
    db.execute(
        "INSERT INTO deposit_history (chain, txid, idx, at_ns, stage, confirmations, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (row.chain, row.txid, row.index, row.updated_ns, str(row.stage), confirmations, note),
    )


def add_alert(db: sqlite3.Connection, row: DepositRow, kind: str, detail: str) -> None:
    """Record an alert about a deposit."""
    add_chain_alert(db, row.chain, kind, detail, row.updated_ns, txid=row.txid, index=row.index)


def add_chain_alert(
    db: sqlite3.Connection, chain: str, kind: str, detail: str, at_ns: int, *, txid: str = "", index: int = 0
) -> None:
    """Record an alert about a chain (``txid`` empty) or one of its deposits."""
    db.execute(
        "INSERT INTO deposit_alerts (chain, txid, idx, kind, detail, at_ns) VALUES (?, ?, ?, ?, ?, ?)",
        (chain, txid, index, kind, detail, at_ns),
    )
