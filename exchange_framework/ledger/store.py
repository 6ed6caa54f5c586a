"""The SQL ledger store: SQLite (embedded default) and PostgreSQL (asyncpg).

:meth:`SqlLedgerStore.apply` writes a batch of entries in one database transaction: the entries, their postings,
the new balances and the consumer's high-water mark. Anything wrong (an entry that does not balance, a non-integer
amount, entries out of order, an unknown asset, a customer balance that would go negative) raises before commit,
and nothing of the batch is written. Entries at or below the high-water mark are skipped, so re-delivering a batch
after a crash is harmless.

A batch gives the same result as its entries applied one by one: a customer balance may not dip below zero
between two entries of a batch either, even when a later entry of the same batch would bring it back.

Two write paths, one behaviour. Everything that needs no database (order, int amounts, balance, each balance's
net change and lowest point within the batch) is worked out in Python first, in one pass over the postings.

* PostgreSQL (asyncpg) writes set-based on the driver connection, inside SQLAlchemy's transaction: the entries and
  every touched balance (``balance = balance + delta``) in one statement, then the postings with one ``COPY``.
  Overdrafts are refused by the database: the ``customer_balance_not_negative`` CHECK constraint for the final
  balances, and, in the same statement, a check of each customer balance's lowest point within the batch. A refusal
  is explained (which account, how far below zero, at which seq) after the rollback.
* SQLite (amounts are decimal text there, beyond its 64-bit INTEGER) reads the touched balances in one query, adds
  in Python and writes with ``executemany``; the CHECK constraint backs up the Python check. Every transaction
  begins with an explicit ``BEGIN``, so the reads are isolated with the writes and DDL (migrations) is transactional.

On PostgreSQL most of the time goes into the postings' ``COPY``; the postings table has no foreign keys for that
reason (this store writes each posting in the transaction that writes its entry, account and asset).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from exchange_framework.engine.market import AssetSpec
from exchange_framework.ledger.models import (
    LedgerAccount,
    LedgerAsset,
    LedgerBalance,
    LedgerCursor,
    LedgerEntry,
    LedgerPosting,
)
from exchange_framework.ledger.postings import Entry, UnbalancedEntry, check_balanced, is_customer

ACCOUNTS = LedgerAccount.__table__  # type: ignore[attr-defined]
ASSETS = LedgerAsset.__table__  # type: ignore[attr-defined]
BALANCES = LedgerBalance.__table__  # type: ignore[attr-defined]
CURSORS = LedgerCursor.__table__  # type: ignore[attr-defined]
ENTRIES = LedgerEntry.__table__  # type: ignore[attr-defined]
POSTINGS = LedgerPosting.__table__  # type: ignore[attr-defined]

NOT_NEGATIVE = "customer_balance_not_negative"  # the CHECK constraint on ledger_balances
_CHUNK = 500  # bound parameters per IN (...) list: well below SQLite's and PostgreSQL's limits


class LedgerError(Exception):
    """The ledger refused a batch; nothing of it was written."""


class Overdraft(LedgerError):
    """A customer account would go negative."""


class UnknownAsset(LedgerError):
    """A posting names an asset the ledger does not know."""


class UnbalancedBatch(LedgerError, UnbalancedEntry):
    """An entry's postings do not sum to zero per asset, or an amount is not an int (also an UnbalancedEntry)."""


def async_url(url: str) -> str:
    """Map a plain database URL to its async driver: sqlite -> aiosqlite, postgresql -> asyncpg."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql:", "postgres:"):
        if url.startswith(prefix):
            return "postgresql+asyncpg:" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # durable at commit
    cursor.execute("PRAGMA foreign_keys=ON")
    # Throughput, not durability: a bigger page cache (32 MiB, the default is 2) for the postings' index, and a
    # checkpoint every ~40 MB of WAL rather than every 4 MB.
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()
    # The sqlite3 module would open a transaction only at the first write, so a batch's reads (cursor, balances)
    # would not be isolated from its writes. Turn that off and begin every transaction explicitly (below).
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _copy_text(value: str) -> str:
    """``value`` escaped for PostgreSQL's COPY text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


@dataclass
class _Plan:
    """What a batch does to balances, worked out in Python before anything is written."""

    entries: Sequence[Entry]
    deltas: dict[tuple[str, str], int] = field(default_factory=dict)  # (account, asset) -> net change
    # customer (account, asset) -> lowest running change within the batch, where it goes below zero
    lows: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> _Plan:
        """Check the batch (ascending int sequence numbers, int amounts, every entry balanced per asset) and work
        out what it does to balances, in one pass over the postings; raise before anything is written."""
        plan = cls(entries)
        deltas, lows = plan.deltas, plan.lows
        get = deltas.get
        previous: int | None = None
        for entry in entries:
            seq = entry.seq
            if type(seq) is not int:
                raise LedgerError(f"sequence numbers are ints, not {type(seq).__name__}: {seq!r}")
            if type(entry.ts_ns) is not int:
                raise LedgerError(f"seq {seq}: the timestamp is int nanoseconds, not {entry.ts_ns!r}")
            if previous is not None and seq <= previous:
                raise LedgerError(f"entries must come in ascending sequence order: {seq} after {previous}")
            previous = seq
            totals: dict[str, int] = {}
            for p in entry.postings:
                amount = p.amount
                if type(amount) is not int:
                    _refuse_unbalanced(entry)
                asset = p.asset
                totals[asset] = totals.get(asset, 0) + amount
                key = (p.account, asset)
                running = get(key, 0) + amount
                deltas[key] = running
                if amount < 0 and running < 0 and running < lows.get(key, 0) and is_customer(p.account):
                    lows[key] = running
            if any(totals.values()):
                _refuse_unbalanced(entry)
        return plan

    def dips(self) -> dict[tuple[str, str], int]:
        """Lows below both zero and the final change: the CHECK constraint on the final balance misses these."""
        return {key: low for key, low in self.lows.items() if low < self.deltas[key]}

    def overdrafts(self, old: Mapping[tuple[str, str], int]) -> list[str]:
        """Why the batch would overdraw a customer, given the balances before it (empty: it would not)."""
        problems = []
        for key, low in self.lows.items():
            before = old.get(key, 0)
            if before + low < 0:
                account, asset = key
                problems.append(
                    f"{account} would hold {before + low} {asset} (atomic units) at seq {self._seq_of_low(key)}, "
                    f"from {before}: a customer balance cannot go negative"
                )
        return problems

    def _seq_of_low(self, key: tuple[str, str]) -> int:
        running, lowest, seq = 0, 0, 0
        for entry in self.entries:
            for p in entry.postings:
                if (p.account, p.asset) == key:
                    running += p.amount
                    if running < lowest:
                        lowest, seq = running, entry.seq
        return seq


class _Overdrawn(Exception):
    """PostgreSQL refused the batch's balances; raised inside the transaction, explained after rollback."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _refuse_unbalanced(entry: Entry) -> NoReturn:
    """Raise with :func:`check_balanced`'s own words, naming the entry."""
    try:
        check_balanced(entry.postings)
    except UnbalancedEntry as error:
        raise UnbalancedBatch(f"seq {entry.seq}: {error}") from None
    raise UnbalancedBatch(f"seq {entry.seq}: postings do not balance")  # not reached: check_balanced agrees


# PostgreSQL: the batch's entries and every touched balance in one statement. Existing balances add the delta, new
# ones take it (not INSERT ... ON CONFLICT: PostgreSQL checks the CHECK constraint on the proposed row, the bare delta,
# even when the row will be updated instead). The CHECK constraint refuses a negative final customer balance. The rows
# returned are customers whose lowest point inside the batch (``low``, sent only where it lies below the final change)
# would be negative: before + low < 0, with before = after - delta of the row as updated (right even if another
# writer changed the row meanwhile).
_PG_BALANCES = """
WITH d AS (
    SELECT account_id, asset, customer, delta::numeric AS delta, low::numeric AS low
    FROM unnest($1::integer[], $2::text[], $3::boolean[], $4::text[], $5::text[])
        AS t(account_id, asset, customer, delta, low)
), entries AS (
    INSERT INTO ledger_entries (seq, ts_ns) SELECT * FROM unnest($6::bigint[], $7::bigint[])
), updated AS (
    UPDATE ledger_balances AS b SET balance = b.balance + d.delta
    FROM d WHERE b.account_id = d.account_id AND b.asset = d.asset
    RETURNING b.account_id, b.asset, b.balance - d.delta AS before, d.low
), inserted AS (
    INSERT INTO ledger_balances (account_id, asset, customer, balance)
    SELECT account_id, asset, customer, delta FROM d
    WHERE NOT EXISTS (SELECT FROM ledger_balances AS b WHERE b.account_id = d.account_id AND b.asset = d.asset)
    RETURNING account_id, asset
)
SELECT account_id, asset, before::text FROM updated WHERE low IS NOT NULL AND before + low < 0
UNION ALL
SELECT d.account_id, d.asset, '0' FROM inserted JOIN d USING (account_id, asset) WHERE d.low IS NOT NULL
"""
_PG_POSTING_COLUMNS = ["seq", "account_id", "asset", "amount"]

_SQLITE_READ_BALANCES = (
    "SELECT j.key, b.balance FROM json_each(?) AS j JOIN ledger_balances AS b "
    "ON b.account_id = json_extract(j.value, '$[0]') AND b.asset = json_extract(j.value, '$[1]')"
)
_SQLITE_ENTRIES = "INSERT INTO ledger_entries (seq, ts_ns) VALUES (?, ?)"
_SQLITE_POSTINGS = "INSERT INTO ledger_postings (seq, account_id, asset, amount) VALUES (?, ?, ?, ?)"
_SQLITE_BALANCES = (
    "INSERT INTO ledger_balances (account_id, asset, customer, balance) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (account_id, asset) DO UPDATE SET balance = excluded.balance"
)


class SqlLedgerStore:
    """The ledger in a SQL database reached through SQLAlchemy's async engine."""

    name = "sql"

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(self.url, echo=echo)
        self.dialect = self.engine.dialect.name
        if (self.dialect, self.engine.dialect.driver) not in (("sqlite", "aiosqlite"), ("postgresql", "asyncpg")):
            raise LedgerError(
                f"the SQL ledger runs on SQLite (aiosqlite) or PostgreSQL (asyncpg), not {self.dialect} "
                f"({self.engine.dialect.driver})"
            )
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._account_ids: dict[str, int] = {}  # committed accounts only
        self._assets: set[str] = set()
        self._copy_assets: dict[str, str] = {}

    async def close(self) -> None:
        await self.engine.dispose()

    # -- set-up
    async def create_schema(self) -> None:
        """Bring the schema to the newest migration."""
        from exchange_framework.ledger.migrate import upgrade

        await upgrade(self.engine)

    async def ensure_assets(self, assets: Mapping[str, AssetSpec]) -> None:
        """Register assets (idempotent); an asset's decimals never change."""
        async with self.engine.begin() as conn:
            rows = {r.symbol: r.decimals for r in await conn.execute(select(ASSETS))}
            for symbol, spec in assets.items():
                if symbol in rows:
                    if rows[symbol] != spec.decimals:
                        raise LedgerError(
                            f"asset {symbol} has {rows[symbol]} decimals in the ledger but {spec.decimals} in the "
                            "config: an asset's atomic unit can never change"
                        )
                    continue
                await conn.execute(ASSETS.insert().values(symbol=symbol, decimals=spec.decimals))
        self._assets = set(rows) | set(assets)

    # -- writing
    async def last_seq(self, consumer: str = "settlement") -> int:
        """The high-water mark of ``consumer``: every entry up to it is applied."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(select(CURSORS.c.last_seq).where(CURSORS.c.consumer == consumer))
        return int(value or 0)

    async def apply(self, entries: Sequence[Entry], consumer: str = "settlement") -> int:
        """Write ``entries`` (ascending seq) in one transaction; return the new high-water mark."""
        plan = _Plan.of(entries)
        try:
            async with self.engine.begin() as conn:
                cursor = await self._lock_cursor(conn, consumer)
                if entries and entries[0].seq <= cursor:  # re-delivered: skip what is applied already
                    plan = _Plan.of(entries[bisect.bisect_right([e.seq for e in entries], cursor) :])
                todo = plan.entries
                if not todo:
                    return max(cursor, 0)
                await self._check_assets(conn, plan)
                new_ids = await self._account_ids_for(conn, {account for account, _ in plan.deltas})
                ids = {**self._account_ids, **new_ids} if new_ids else self._account_ids
                if self.dialect == "postgresql":
                    await self._write_postgresql(conn, plan, ids)
                else:
                    await self._write_sqlite(conn, plan, ids)
                last = todo[-1].seq
                await self._set_cursor(conn, consumer, cursor, last)
        except _Overdrawn as refused:
            raise Overdraft(await self._explain_overdraft(plan, refused.detail)) from None
        self._account_ids.update(new_ids)  # only once committed
        return last

    async def _lock_cursor(self, conn: AsyncConnection, consumer: str) -> int:
        query = select(CURSORS.c.last_seq).where(CURSORS.c.consumer == consumer)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        value = await conn.scalar(query)
        return int(value) if value is not None else -1

    async def _set_cursor(self, conn: AsyncConnection, consumer: str, previous: int, last: int) -> None:
        if previous < 0:
            await conn.execute(CURSORS.insert().values(consumer=consumer, last_seq=last))
        else:
            await conn.execute(CURSORS.update().where(CURSORS.c.consumer == consumer).values(last_seq=last))

    async def _check_assets(self, conn: AsyncConnection, plan: _Plan) -> None:
        assets = {asset for _, asset in plan.deltas}
        if assets <= self._assets:
            return
        self._assets |= set(await conn.scalars(select(ASSETS.c.symbol)))  # another store may have added some
        unknown = assets - self._assets
        for entry in plan.entries:
            for p in entry.postings:
                if p.asset in unknown:
                    raise UnknownAsset(f"seq {entry.seq}: unknown asset {p.asset!r} (posting to {p.account})")

    async def _account_ids_for(self, conn: AsyncConnection, codes: Iterable[str]) -> dict[str, int]:
        """Ids of accounts not yet cached, creating the missing ones."""
        missing = sorted(c for c in codes if c not in self._account_ids)
        if not missing:
            return {}
        found = await self._select_account_ids(conn, missing)
        new = [c for c in missing if c not in found]
        if new:
            await conn.execute(ACCOUNTS.insert(), [{"code": c, "customer": is_customer(c)} for c in new])
            found.update(await self._select_account_ids(conn, new))
        return found

    async def _select_account_ids(self, conn: AsyncConnection, codes: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for begin in range(0, len(codes), _CHUNK):
            query = select(ACCOUNTS.c.code, ACCOUNTS.c.id).where(ACCOUNTS.c.code.in_(codes[begin : begin + _CHUNK]))
            found.update({r.code: r.id for r in await conn.execute(query)})
        return found

    # -- PostgreSQL: set-based statements and COPY on the asyncpg connection, inside SQLAlchemy's transaction
    async def _write_postgresql(self, conn: AsyncConnection, plan: _Plan, ids: Mapping[str, int]) -> None:
        raw = (await conn.get_raw_connection()).driver_connection
        if raw is None or not raw.is_in_transaction():
            raise RuntimeError("the ledger must write inside the transaction SQLAlchemy began")

        # Entries and balances first, in one statement: an overdraft is refused before any posting is sent.
        account_ids, assets, customers, deltas, lows = [], [], [], [], []
        dips = plan.dips()
        for key, delta in plan.deltas.items():
            low = dips.get(key)
            if delta or low is not None:
                account, asset = key
                account_ids.append(ids[account])
                assets.append(asset)
                customers.append(is_customer(account))
                deltas.append(str(delta))
                lows.append(None if low is None else str(low))
        seqs = [e.seq for e in plan.entries]
        stamps = [e.ts_ns for e in plan.entries]
        balances = asyncio.ensure_future(
            raw.fetch(_PG_BALANCES, account_ids, assets, customers, deltas, lows, seqs, stamps)
        )
        try:
            await asyncio.sleep(0)  # the statement is on its way: the server works while the COPY data is made
            data = self._copy_postings(plan, ids)
        except BaseException:
            balances.cancel()
            with contextlib.suppress(BaseException):
                await balances
            raise
        await self._check_balances(balances)
        if data:
            await raw.copy_to_table(
                POSTINGS.name,
                source=memoryview(data),  # a buffer: plain bytes would be taken for a path
                columns=_PG_POSTING_COLUMNS,
                format="text",
            )

    @staticmethod
    async def _check_balances(balances: Awaitable[list[Any]]) -> None:
        import asyncpg

        try:
            dipped = await balances
        except asyncpg.CheckViolationError as error:
            if error.constraint_name != NOT_NEGATIVE:
                raise
            raise _Overdrawn(f"{error}: {error.detail}") from None
        if dipped:
            raise _Overdrawn(f"{len(dipped)} customer balance(s) would dip below zero within the batch")

    def _copy_postings(self, plan: _Plan, ids: Mapping[str, int]) -> bytes:
        """The batch's postings in COPY text format."""
        copy_assets = self._copy_assets
        if len(copy_assets) < len(self._assets):
            copy_assets.update({asset: _copy_text(asset) for asset in self._assets})
        lines: list[str] = []
        add = lines.append
        for entry in plan.entries:
            seq = entry.seq
            for p in entry.postings:
                add(f"{seq}\t{ids[p.account]}\t{copy_assets[p.asset]}\t{p.amount}\n")
        return "".join(lines).encode()

    # -- SQLite: read the touched balances, add in Python (amounts are decimal text), executemany
    async def _write_sqlite(self, conn: AsyncConnection, plan: _Plan, ids: Mapping[str, int]) -> None:
        deltas, lows = plan.deltas, plan.lows
        keys = [key for key, delta in deltas.items() if delta or key in lows]
        old = await self._sqlite_balances(conn, keys, ids)
        problems = plan.overdrafts(old)
        if problems:
            raise Overdraft("; ".join(problems))

        await conn.exec_driver_sql(_SQLITE_ENTRIES, [(e.seq, e.ts_ns) for e in plan.entries])
        rows = [(e.seq, ids[p.account], p.asset, str(p.amount)) for e in plan.entries for p in e.postings]
        if rows:
            await conn.exec_driver_sql(_SQLITE_POSTINGS, rows)
        balances = [
            (ids[key[0]], key[1], is_customer(key[0]), str(old.get(key, 0) + deltas[key]))
            for key in keys
            if deltas[key]
        ]
        if balances:
            await conn.exec_driver_sql(_SQLITE_BALANCES, balances)

    async def _sqlite_balances(
        self, conn: AsyncConnection, keys: Sequence[tuple[str, str]], ids: Mapping[str, int]
    ) -> dict[tuple[str, str], int]:
        """The current balances of ``keys`` in one query (the keys go in as one JSON array, whatever their number)."""
        if not keys:
            return {}
        wanted = json.dumps([[ids[account], asset] for account, asset in keys])
        rows: Sequence[Any] = (await conn.exec_driver_sql(_SQLITE_READ_BALANCES, (wanted,))).all()
        return {keys[index]: int(balance) for index, balance in rows}

    async def _read_balances(
        self, conn: AsyncConnection, keys: Sequence[tuple[str, str]], ids: Mapping[str, int]
    ) -> dict[tuple[str, str], int]:
        """The current balances of ``keys`` (missing: none yet)."""
        codes = {ids[account]: account for account, _ in keys}
        wanted = set(keys)
        account_ids = sorted(codes)
        old: dict[tuple[str, str], int] = {}
        for begin in range(0, len(account_ids), _CHUNK):
            chunk = account_ids[begin : begin + _CHUNK]
            query = select(BALANCES.c.account_id, BALANCES.c.asset, BALANCES.c.balance).where(
                BALANCES.c.account_id.in_(chunk)
            )
            for account_id, asset, balance in await conn.execute(query):
                key = (codes[account_id], asset)
                if key in wanted:
                    old[key] = balance
        return old

    async def _explain_overdraft(self, plan: _Plan, detail: str) -> str:
        """After PostgreSQL refused a batch (and it was rolled back): which customer, how far below zero."""
        try:
            async with self.engine.connect() as conn:
                uncached = [a for a, _ in plan.lows if a not in self._account_ids]
                ids = {**self._account_ids, **await self._select_account_ids(conn, uncached)}
                old = await self._read_balances(conn, [key for key in plan.lows if key[0] in ids], ids)
        except SQLAlchemyError:  # the explanation is best effort; the refusal stands
            return f"a customer balance cannot go negative ({detail})"
        problems = plan.overdrafts(old)
        return "; ".join(problems) if problems else f"a customer balance cannot go negative ({detail})"

    # -- reading
    async def balances(self, *, account: str | None = None, asset: str | None = None) -> dict[tuple[str, str], int]:
        """Balances by (account code, asset), optionally for one account or asset."""
        query = select(ACCOUNTS.c.code, BALANCES.c.asset, BALANCES.c.balance).join(
            ACCOUNTS, ACCOUNTS.c.id == BALANCES.c.account_id
        )
        if account is not None:
            query = query.where(ACCOUNTS.c.code == account)
        if asset is not None:
            query = query.where(BALANCES.c.asset == asset)
        async with self.engine.connect() as conn:
            return {(r.code, r.asset): r.balance for r in await conn.execute(query)}

    async def history(
        self, account: str, asset: str, *, after_id: int = 0, limit: int = 100
    ) -> list[tuple[int, int, int]]:
        """One account's postings in one asset as (posting id, seq, amount), oldest first, after ``after_id``."""
        query = (
            select(POSTINGS.c.id, POSTINGS.c.seq, POSTINGS.c.amount)
            .join(ACCOUNTS, ACCOUNTS.c.id == POSTINGS.c.account_id)
            .where(ACCOUNTS.c.code == account, POSTINGS.c.asset == asset, POSTINGS.c.id > after_id)
            .order_by(POSTINGS.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [(r.id, r.seq, r.amount) for r in await conn.execute(query)]
