"""Ledger tables: assets, accounts, balances, entries, postings and consumer cursors.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from exchange_framework.ledger.models import Amount

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=120), nullable=False),
        sa.Column("customer", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "ledger_assets",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("symbol"),
    )
    op.create_table(
        "ledger_cursors",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "ledger_balances",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.Boolean(), nullable=False),
        sa.Column("balance", Amount(), nullable=False),
        sa.CheckConstraint("NOT customer OR CAST(balance AS NUMERIC) >= 0", name="customer_balance_not_negative"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["asset"],
            ["ledger_assets.symbol"],
        ),
        sa.PrimaryKeyConstraint("account_id", "asset"),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("amount", Amount(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_postings_account_asset_seq", ["account_id", "asset", "seq"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ledger_postings", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_postings_account_asset_seq")

    op.drop_table("ledger_postings")
    op.drop_table("ledger_balances")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_cursors")
    op.drop_table("ledger_assets")
    op.drop_table("ledger_accounts")
