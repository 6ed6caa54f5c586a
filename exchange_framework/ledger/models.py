"""The ledger's tables (sqlmodel). Amounts are integers of any size: NUMERIC(78, 0) on PostgreSQL, decimal text on
SQLite (whose INTEGER stops at 2**63, below 10 ETH in wei)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Integer, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class Amount(TypeDecorator[int]):
    """An exact integer amount in atomic units, however large."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if type(value) is not int:
            raise TypeError(f"ledger amounts are int atomic units, not {type(value).__name__}: {value!r}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class LedgerAsset(SQLModel, table=True):
    __tablename__ = "ledger_assets"

    symbol: str = Field(primary_key=True, max_length=32)
    decimals: int


class LedgerAccount(SQLModel, table=True):
    """A ledger account; ``customer`` accounts may never go negative."""

    __tablename__ = "ledger_accounts"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=120)
    customer: bool


class LedgerBalance(SQLModel, table=True):
    """The running balance of one account in one asset (the sum of its postings)."""

    __tablename__ = "ledger_balances"
    # The sign of the exact amount, read as text on both databases: never through floating point (migration 0002).
    __table_args__ = (
        CheckConstraint(
            "NOT customer OR substr(CAST(balance AS TEXT), 1, 1) <> '-'", name="customer_balance_not_negative"
        ),
    )

    account_id: int = Field(foreign_key="ledger_accounts.id", primary_key=True)
    asset: str = Field(foreign_key="ledger_assets.symbol", primary_key=True, max_length=32)
    customer: bool
    balance: int = Field(sa_column=Column(Amount(), nullable=False))


class LedgerEntry(SQLModel, table=True):
    """One balanced entry: everything one sequenced command changed."""

    __tablename__ = "ledger_entries"

    seq: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    # when the sequencer stamped the command (ns since the epoch): statements, 30-day volumes
    ts_ns: int = Field(sa_column=Column(BigInteger(), nullable=False, server_default="0"))


class LedgerPosting(SQLModel, table=True):
    """One posting. No foreign keys: the store writes a posting only in the transaction that writes its entry,
    account and asset, and three index look-ups per posting were most of PostgreSQL's settlement time."""

    __tablename__ = "ledger_postings"
    __table_args__ = (Index("ix_ledger_postings_account_asset_seq", "account_id", "asset", "seq"),)

    id: int | None = Field(
        default=None,
        # SQLite only autoincrements an INTEGER PRIMARY KEY
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    )
    seq: int = Field(sa_column=Column(BigInteger(), nullable=False))
    account_id: int
    asset: str = Field(max_length=32)
    amount: int = Field(sa_column=Column(Amount(), nullable=False))


class LedgerCursor(SQLModel, table=True):
    """How far a consumer has applied the event stream: written in the same transaction as the postings."""

    __tablename__ = "ledger_cursors"

    consumer: str = Field(primary_key=True, max_length=64)
    last_seq: int = Field(sa_column=Column(BigInteger(), nullable=False))
