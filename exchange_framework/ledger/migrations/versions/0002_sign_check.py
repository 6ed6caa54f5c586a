"""The no-overdraft CHECK compares the balance's sign as text, never through floating point.

On SQLite the balance is decimal text, and ``CAST(balance AS NUMERIC)`` went through a (long) double: a process
whose x87 floating-point state native code had left dirty cast large values to NaN, and a CHECK that evaluates to
NULL passes. The sign of the exact text is what matters, on SQLite and PostgreSQL alike.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NAME = "customer_balance_not_negative"
OLD = "NOT customer OR CAST(balance AS NUMERIC) >= 0"
NEW = "NOT customer OR substr(CAST(balance AS TEXT), 1, 1) <> '-'"


def upgrade() -> None:
    with op.batch_alter_table("ledger_balances", recreate="auto") as batch:
        batch.drop_constraint(NAME, type_="check")
        batch.create_check_constraint(NAME, NEW)


def downgrade() -> None:
    with op.batch_alter_table("ledger_balances", recreate="auto") as batch:
        batch.drop_constraint(NAME, type_="check")
        batch.create_check_constraint(NAME, OLD)
