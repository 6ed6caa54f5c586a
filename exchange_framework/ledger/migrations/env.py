"""Alembic environment: migrations run on the connection handed over by exchange_framework.ledger.migrate."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import exchange_framework.ledger.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
