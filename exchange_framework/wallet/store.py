"""Where withdrawals and customer whitelists live: a small SQLite file beside the journal, short durable transactions.

Amounts are decimal text of atomic units (18-decimal assets pass SQLite's 64-bit integers). Every stage change is
written before the step that follows it has any effect outside this file, so a crash at any moment leaves each
withdrawal in a stage from which the processor can safely go on (see :mod:`exchange_framework.wallet.service`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from os import PathLike

import msgspec

from exchange_framework.sqlite_file import SqliteFile
from exchange_framework.wallet.types import WithdrawalStage

__all__ = ["OPEN_STAGES", "WalletStore", "WhitelistRow", "WithdrawalRow"]

OPEN_STAGES = frozenset(
    {
        WithdrawalStage.REQUESTED,
        WithdrawalStage.SCREENING,
        WithdrawalStage.TRAVEL_RULE,
        WithdrawalStage.AWAITING_APPROVAL,
        WithdrawalStage.APPROVED,
        WithdrawalStage.SIGNED,
        WithdrawalStage.BROADCAST,
    }
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS withdrawals (
    id INTEGER PRIMARY KEY, account INTEGER NOT NULL, chain TEXT NOT NULL, asset TEXT NOT NULL,
    amount TEXT NOT NULL, fee TEXT NOT NULL DEFAULT '0', address TEXT NOT NULL, memo TEXT NOT NULL DEFAULT '',
    stage TEXT NOT NULL, txid TEXT NOT NULL DEFAULT '', confirmations INTEGER NOT NULL DEFAULT 0,
    reasons TEXT NOT NULL DEFAULT '[]', approvals TEXT NOT NULL DEFAULT '[]',
    required_approvals INTEGER NOT NULL DEFAULT 0, screened INTEGER NOT NULL DEFAULT 0,
    unsigned BLOB, signed BLOB, error TEXT NOT NULL DEFAULT '',
    requested_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS withdrawals_account ON withdrawals (account, id);
CREATE INDEX IF NOT EXISTS withdrawals_stage ON withdrawals (stage, id);
CREATE TABLE IF NOT EXISTS whitelist (
    id INTEGER PRIMARY KEY, account INTEGER NOT NULL, chain TEXT NOT NULL, asset TEXT NOT NULL,
    address TEXT NOT NULL, memo TEXT NOT NULL DEFAULT '', label TEXT NOT NULL DEFAULT '',
    added_ns INTEGER NOT NULL, usable_from_ns INTEGER NOT NULL, removed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS whitelist_account ON whitelist (account, id);
"""

_COLUMNS = (
    "id, account, chain, asset, amount, fee, address, memo, stage, txid, confirmations, reasons, approvals, "
    "required_approvals, screened, unsigned, signed, error, requested_ns, updated_ns, travel_rule, beneficiary_name, "
    "beneficiary_vasp"
)
# Added after the first release: files made before them get the columns on open.
_ADDED_COLUMNS = ("travel_rule", "beneficiary_name", "beneficiary_vasp")


class WithdrawalRow(msgspec.Struct):
    """A withdrawal as stored; amounts in atomic units."""

    id: int
    account: int
    chain: str
    asset: str
    amount: int
    fee: int
    address: str
    memo: str
    stage: WithdrawalStage
    txid: str
    confirmations: int
    reasons: list[str]
    approvals: list[str]
    required_approvals: int
    screened: bool
    unsigned: bytes | None
    signed: bytes | None
    error: str
    requested_ns: int
    updated_ns: int
    travel_rule: str = ""  # "" not checked yet, "not_required", "required", "accepted", "cleared by <operator>"
    beneficiary_name: str = ""  # as the customer declared them for the travel rule
    beneficiary_vasp: str = ""

    @property
    def reference(self) -> str:
        """The engine reference of the funds held for this withdrawal."""
        return f"wd:{self.id}"


class WhitelistRow(msgspec.Struct, frozen=True):
    """A customer's whitelisted withdrawal address."""

    id: int
    account: int
    chain: str
    asset: str
    address: str
    memo: str
    label: str
    added_ns: int
    usable_from_ns: int


def _withdrawal(values: Sequence[object]) -> WithdrawalRow:
    (wid, account, chain, asset, amount, fee, address, memo, stage, txid, confs, reasons, approvals, required,
     screened, unsigned, signed, error, requested, updated, travel_rule, beneficiary_name,
     beneficiary_vasp) = values  # fmt: skip
    return WithdrawalRow(
        id=int(wid),  # type: ignore[call-overload]
        account=int(account),  # type: ignore[call-overload]
        chain=str(chain),
        asset=str(asset),
        amount=int(str(amount)),
        fee=int(str(fee)),
        address=str(address),
        memo=str(memo),
        stage=WithdrawalStage(str(stage)),
        txid=str(txid),
        confirmations=int(confs),  # type: ignore[call-overload]
        reasons=list(json.loads(str(reasons))),
        approvals=list(json.loads(str(approvals))),
        required_approvals=int(required),  # type: ignore[call-overload]
        screened=bool(screened),
        unsigned=bytes(unsigned) if unsigned is not None else None,  # type: ignore[call-overload]
        signed=bytes(signed) if signed is not None else None,  # type: ignore[call-overload]
        error=str(error),
        requested_ns=int(requested),  # type: ignore[call-overload]
        updated_ns=int(updated),  # type: ignore[call-overload]
        travel_rule=str(travel_rule),
        beneficiary_name=str(beneficiary_name),
        beneficiary_vasp=str(beneficiary_vasp),
    )


class WalletStore(SqliteFile):
    """Withdrawals and whitelists in one SQLite file (``":memory:"`` for a throwaway store); thread-safe."""

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__(path, _SCHEMA)
        with self._lock:
            columns = {str(c[1]) for c in self._db.execute("PRAGMA table_info(withdrawals)").fetchall()}
            for column in _ADDED_COLUMNS:
                if column not in columns:
                    self._db.execute(f"ALTER TABLE withdrawals ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")

    # -- withdrawals
    def insert_withdrawal(
        self,
        *,
        account: int,
        chain: str,
        asset: str,
        amount: int,
        address: str,
        memo: str,
        now_ns: int,
        beneficiary_name: str = "",
        beneficiary_vasp: str = "",
    ) -> WithdrawalRow:
        """Record a new withdrawal in stage ``requested`` and return it with its id."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO withdrawals (account, chain, asset, amount, address, memo, stage, requested_ns, "
                "updated_ns, beneficiary_name, beneficiary_vasp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account,
                    chain,
                    asset,
                    str(amount),
                    address,
                    memo,
                    WithdrawalStage.REQUESTED.value,
                    now_ns,
                    now_ns,
                    beneficiary_name,
                    beneficiary_vasp,
                ),
            )
            wid = cursor.lastrowid
        row = self.withdrawal(int(wid or 0))
        assert row is not None
        return row

    def save(self, row: WithdrawalRow, now_ns: int) -> None:
        """Write ``row``'s mutable fields (stage, transaction, approvals, reasons, error) durably."""
        row.updated_ns = now_ns
        with self.transaction() as db:
            db.execute(
                "UPDATE withdrawals SET stage = ?, fee = ?, txid = ?, confirmations = ?, reasons = ?, approvals = ?, "
                "required_approvals = ?, screened = ?, unsigned = ?, signed = ?, error = ?, updated_ns = ?, "
                "travel_rule = ? WHERE id = ?",
                (
                    row.stage.value,
                    str(row.fee),
                    row.txid,
                    row.confirmations,
                    json.dumps(row.reasons),
                    json.dumps(row.approvals),
                    row.required_approvals,
                    int(row.screened),
                    row.unsigned,
                    row.signed,
                    row.error,
                    now_ns,
                    row.travel_rule,
                    row.id,
                ),
            )

    def withdrawal(self, withdrawal_id: int) -> WithdrawalRow | None:
        """One withdrawal by id."""
        with self._lock:
            found = self._db.execute(f"SELECT {_COLUMNS} FROM withdrawals WHERE id = ?", (withdrawal_id,)).fetchone()
        return _withdrawal(found) if found else None

    def withdrawals(
        self,
        *,
        account: int | None = None,
        stages: Sequence[WithdrawalStage] | None = None,
        limit: int = 100,
        oldest_first: bool = False,
    ) -> list[WithdrawalRow]:
        """Withdrawals, newest first (or oldest first), optionally of one account or in some stages."""
        sql = f"SELECT {_COLUMNS} FROM withdrawals WHERE 1 = 1"
        params: list[object] = []
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        if stages is not None:
            sql += f" AND stage IN ({', '.join('?' for _ in stages)})"
            params.extend(s.value for s in stages)
        sql += f" ORDER BY id {'ASC' if oldest_first else 'DESC'} LIMIT ?"
        params.append(limit)
        with self._lock:
            return [_withdrawal(r) for r in self._db.execute(sql, params).fetchall()]

    # -- whitelist
    def add_whitelist(
        self, *, account: int, chain: str, asset: str, address: str, memo: str, label: str, now_ns: int, usable_ns: int
    ) -> WhitelistRow:
        """Whitelist an address for ``account`` (the same address twice returns the existing entry)."""
        with self.transaction() as db:
            found = db.execute(
                "SELECT id FROM whitelist WHERE account = ? AND chain = ? AND asset = ? AND address = ? AND memo = ? "
                "AND removed = 0",
                (account, chain, asset, address, memo),
            ).fetchone()
            if found is None:
                cursor = db.execute(
                    "INSERT INTO whitelist (account, chain, asset, address, memo, label, added_ns, usable_from_ns) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (account, chain, asset, address, memo, label, now_ns, usable_ns),
                )
                entry_id = int(cursor.lastrowid or 0)
            else:
                entry_id = int(found[0])
        return next(e for e in self.whitelist(account) if e.id == entry_id)

    def remove_whitelist(self, account: int, entry_id: int) -> bool:
        """Remove ``account``'s entry; whether there was one."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE whitelist SET removed = 1 WHERE id = ? AND account = ? AND removed = 0", (entry_id, account)
            )
            return cursor.rowcount > 0

    def whitelist(self, account: int) -> list[WhitelistRow]:
        """``account``'s live whitelist entries, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, account, chain, asset, address, memo, label, added_ns, usable_from_ns FROM whitelist "
                "WHERE account = ? AND removed = 0 ORDER BY id",
                (account,),
            ).fetchall()
        return [WhitelistRow(*r) for r in rows]
