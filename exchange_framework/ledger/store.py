"""The SQL ledger store: SQLite (embedded default) and PostgreSQL (asyncpg), one code path.

:meth:`SqlLedgerStore.apply` writes a batch of entries in one database transaction: the entries, their postings,
the new balances and the consumer's high-water mark. Anything wrong (an entry that does not balance, an unknown
asset, a customer balance that would go negative) raises before commit, and nothing of the batch is written.
Entries at or below the high-water mark are skipped, so re-delivering a batch after a crash is harmless.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import event, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
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
from exchange_framework.ledger.postings import Entry, check_balanced, is_customer

ACCOUNTS = LedgerAccount.__table__  # type: ignore[attr-defined]
ASSETS = LedgerAsset.__table__  # type: ignore[attr-defined]
BALANCES = LedgerBalance.__table__  # type: ignore[attr-defined]
CURSORS = LedgerCursor.__table__  # type: ignore[attr-defined]
ENTRIES = LedgerEntry.__table__  # type: ignore[attr-defined]
POSTINGS = LedgerPosting.__table__  # type: ignore[attr-defined]


class LedgerError(Exception):
    """The ledger refused a batch; nothing of it was written."""


class Overdraft(LedgerError):
    """A customer account would go negative."""


class UnknownAsset(LedgerError):
    """A posting names an asset the ledger does not know."""


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
    cursor.close()


class SqlLedgerStore:
    """The ledger in a SQL database reached through SQLAlchemy's async engine."""

    name = "sql"

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(self.url, echo=echo)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._account_ids: dict[str, int] = {}
        self._assets: set[str] = set()

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
        for entry in entries:
            check_balanced(entry.postings)
        async with self.engine.begin() as conn:
            cursor = await self._lock_cursor(conn, consumer)
            todo = [e for e in entries if e.seq > cursor]
            if not todo:
                return cursor
            previous = cursor
            for entry in todo:
                if entry.seq <= previous:
                    raise LedgerError(f"entries must come in ascending sequence order: {entry.seq} after {previous}")
                previous = entry.seq
            new_ids = await self._account_ids_for(conn, {p.account for e in todo for p in e.postings})
            ids = self._account_ids | new_ids
            deltas: dict[tuple[int, str], int] = defaultdict(int)
            rows = []
            for entry in todo:
                for p in entry.postings:
                    if p.asset not in self._assets:
                        raise UnknownAsset(f"seq {entry.seq}: unknown asset {p.asset!r} (posting to {p.account})")
                    account_id = ids[p.account]
                    deltas[(account_id, p.asset)] += p.amount
                    rows.append({"seq": entry.seq, "account_id": account_id, "asset": p.asset, "amount": p.amount})
            await conn.execute(ENTRIES.insert(), [{"seq": e.seq} for e in todo])
            if rows:
                await conn.execute(POSTINGS.insert(), rows)
            await self._update_balances(conn, deltas, {v: k for k, v in ids.items()})
            last = todo[-1].seq
            await self._set_cursor(conn, consumer, cursor, last)
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

    async def _account_ids_for(self, conn: AsyncConnection, codes: Iterable[str]) -> dict[str, int]:
        """Ids of accounts not yet cached, creating the missing ones."""
        missing = [c for c in codes if c not in self._account_ids]
        if not missing:
            return {}
        found = {
            r.code: r.id
            for r in await conn.execute(select(ACCOUNTS.c.code, ACCOUNTS.c.id).where(ACCOUNTS.c.code.in_(missing)))
        }
        new = [c for c in missing if c not in found]
        if new:
            await conn.execute(ACCOUNTS.insert(), [{"code": c, "customer": is_customer(c)} for c in new])
            found.update(
                {
                    r.code: r.id
                    for r in await conn.execute(select(ACCOUNTS.c.code, ACCOUNTS.c.id).where(ACCOUNTS.c.code.in_(new)))
                }
            )
        return found

    async def _update_balances(
        self, conn: AsyncConnection, deltas: Mapping[tuple[int, str], int], codes: Mapping[int, str]
    ) -> None:
        keys = [k for k, v in deltas.items() if v]
        if not keys:
            return
        query = select(BALANCES.c.account_id, BALANCES.c.asset, BALANCES.c.balance).where(
            tuple_(BALANCES.c.account_id, BALANCES.c.asset).in_(keys)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update()
        current = {(r.account_id, r.asset): r.balance for r in await conn.execute(query)}
        rows = []
        for key in keys:
            account_id, asset = key
            code = codes[account_id]
            balance = current.get(key, 0) + deltas[key]
            customer = is_customer(code)
            if customer and balance < 0:
                raise Overdraft(
                    f"{code} would hold {balance} {asset} (atomic units): a customer balance cannot go negative"
                )
            rows.append({"account_id": account_id, "asset": asset, "customer": customer, "balance": balance})
        insert = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(BALANCES)
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=[BALANCES.c.account_id, BALANCES.c.asset], set_={"balance": insert.excluded.balance}
            ),
            rows,
        )

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
