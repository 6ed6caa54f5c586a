"""The ledger's alembic migrations, on SQLite and PostgreSQL: they build exactly the models' schema, idempotently,
and take it down again."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import exchange_framework.ledger.models  # noqa: F401  (the ledger's tables on SQLModel.metadata)
from exchange_framework.engine.market import AssetSpec
from exchange_framework.ledger.migrate import alembic_config, head_revision, revision_of
from exchange_framework.ledger.store import SqlLedgerStore

LEDGER_TABLES = {
    "ledger_accounts",
    "ledger_assets",
    "ledger_balances",
    "ledger_cursors",
    "ledger_entries",
    "ledger_postings",
}


def _kernel_tables() -> set[str]:
    """Tables of the framework's own models (a test module may register models of its own on the metadata)."""
    return {
        mapper.local_table.name
        for mapper in SQLModel._sa_registry.mappers
        if mapper.class_.__module__.startswith("exchange_framework.")
    }


def _differences(sync: Connection) -> list[Any]:
    tables = _kernel_tables()

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "table" or name in tables

    context = MigrationContext.configure(sync, opts={"compare_type": True, "include_name": include_name})
    return list(compare_metadata(context, SQLModel.metadata))


def _table_names(sync: Connection) -> set[str]:
    return set(inspect(sync).get_table_names())


def test_create_schema_migrates_an_empty_database_to_the_head(ledger_url: str) -> None:
    async def body() -> None:
        store = SqlLedgerStore(ledger_url)
        try:
            assert await revision_of(store.engine) is None
            await store.create_schema()
            assert await revision_of(store.engine) == head_revision()
            async with store.engine.connect() as conn:
                assert await conn.run_sync(_table_names) >= LEDGER_TABLES
        finally:
            await store.close()

    asyncio.run(body())


def test_create_schema_twice_is_a_no_op(ledger_url: str) -> None:
    async def body() -> None:
        store = SqlLedgerStore(ledger_url)
        try:
            await store.create_schema()
            await store.ensure_assets({"BTC": AssetSpec("BTC", 8)})
            await store.create_schema()
            assert await revision_of(store.engine) == head_revision()
        finally:
            await store.close()
        store = SqlLedgerStore(ledger_url)  # and from another process, so to say
        try:
            await store.create_schema()
            assert await revision_of(store.engine) == head_revision()
            assert await store.balances() == {}
            await store.ensure_assets({"BTC": AssetSpec("BTC", 8)})  # still there, with its decimals
        finally:
            await store.close()

    asyncio.run(body())


def test_the_migrated_schema_matches_the_models(ledger_url: str) -> None:
    async def body() -> list[Any]:
        store = SqlLedgerStore(ledger_url)
        try:
            await store.create_schema()
            async with store.engine.connect() as conn:
                return await conn.run_sync(_differences)
        finally:
            await store.close()

    assert _kernel_tables() >= LEDGER_TABLES
    assert asyncio.run(body()) == []


def test_downgrade_to_base_removes_the_tables(ledger_url: str) -> None:
    async def body() -> None:
        store = SqlLedgerStore(ledger_url)
        try:
            await store.create_schema()
            async with store.engine.begin() as conn:
                await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), "base"))
            assert await revision_of(store.engine) is None
            async with store.engine.connect() as conn:
                assert not (await conn.run_sync(_table_names)) & LEDGER_TABLES
            await store.create_schema()  # and back up again
            assert await revision_of(store.engine) == head_revision()
        finally:
            await store.close()

    asyncio.run(body())
