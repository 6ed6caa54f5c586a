"""The identity tables (sqlmodel): users, API keys and portal sessions."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class IdentityModel(SQLModel, registry=registry()):
    """Base of the identity tables: their own metadata, apart from the ledger's (they live in another database)."""


class UserRow(IdentityModel, table=True):
    """A person or company with an exchange account; ``id`` is the engine's account number."""

    __tablename__ = "users"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    email: str = Field(unique=True, index=True, max_length=254)
    password_hash: str
    totp_secret: str | None = None  # sealed (identity/sealing.py), never plaintext
    role: str = Field(default="user", max_length=32)
    kyc_tier: int = 0
    kyc_status: str = Field(default="none", max_length=32)
    country: str = Field(default="", max_length=2)
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    disabled: bool = False


class ApiKeyRow(IdentityModel, table=True):
    """An API key: the public ``key`` sent in ``X-MBX-APIKEY`` and the secret the client signs requests with."""

    __tablename__ = "api_keys"

    key: str = Field(primary_key=True, max_length=64)
    secret: str = Field(max_length=200)  # sealed (identity/sealing.py), never plaintext
    account: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    label: str = Field(default="", max_length=80)
    scopes: str = Field(default="read", max_length=64)  # comma-separated Scope values
    allowed_ips: str = Field(default="", max_length=1000)  # comma-separated; empty: any address
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked: bool = False


class SessionRow(IdentityModel, table=True):
    """A portal login; the browser holds the token, the database only its SHA-256."""

    __tablename__ = "sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    account: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_seen_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    user_agent: str = Field(default="", max_length=300)
    ip: str = Field(default="", max_length=64)
    revoked: bool = False
