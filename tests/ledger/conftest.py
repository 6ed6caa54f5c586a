"""Ledger fixtures: every ledger test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange_framework.testing.postgres import ThrowawayPostgres, postgres_for_tests


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    """One PostgreSQL server per test worker (DATABASE_URL's, or a throwaway cluster)."""
    with postgres_for_tests() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    cluster: ThrowawayPostgres = request.getfixturevalue("postgres")
    return cluster.create_database()
