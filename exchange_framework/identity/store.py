"""The identity store: users with strong password hashes, API keys with scopes and IP allow-lists, sessions.

Passwords are hashed with Argon2id (``argon2-cffi``: the password-hashing competition's winner, maintained, and
it re-hashes when parameters change). API keys and secrets come from :mod:`secrets`. Sessions are stored as the
SHA-256 of the browser's token, so a database leak does not leak logins. API keys are read on every signed
request, so they are cached in memory; every change goes through this store, which keeps the cache exact.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func
from sqlmodel import Session, create_engine, select

from exchange_framework.identity.models import ApiKeyRow, IdentityModel, SessionRow, UserRow
from exchange_framework.identity.sealing import SecretSealer, is_sealed, sealing_key_for

__all__ = ["ApiKeyInfo", "IdentityError", "IdentityStore", "Scope", "SessionInfo", "UserInfo"]

FIRST_ACCOUNT = 1001  # engine accounts below this are left to operators (market makers, tests)
MIN_PASSWORD_LENGTH = 10
ROLES = ("user", "administrator", "compliance", "custody", "support")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class IdentityError(ValueError):
    """A request about users, keys or sessions that cannot be done; the message says what to change."""


class Scope(StrEnum):
    """What an API key may do."""

    READ = "read"
    TRADE = "trade"
    WITHDRAW = "withdraw"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as the rest of the exchange sees it (never the password hash or the two-factor secret)."""

    id: int
    email: str
    role: str
    kyc_tier: int
    kyc_status: str
    country: str
    has_totp: bool
    created_ns: int
    disabled: bool


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key with its secret (needed to check request signatures), scopes and allowed client addresses."""

    key: str
    secret: str
    account: int
    label: str
    scopes: frozenset[Scope]
    allowed_ips: tuple[str, ...]
    created_ns: int
    revoked: bool

    def allows_ip(self, ip: str) -> bool:
        """Whether a request from ``ip`` may use this key (any address when the allow-list is empty)."""
        if not self.allowed_ips:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False) for net in self.allowed_ips)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A portal login session (``token_hash`` identifies it without revealing the browser's token)."""

    token_hash: str
    account: int
    created_ns: int
    last_seen_ns: int
    user_agent: str
    ip: str


def _user_info(row: UserRow) -> UserInfo:
    assert row.id is not None
    return UserInfo(
        id=row.id,
        email=row.email,
        role=row.role,
        kyc_tier=row.kyc_tier,
        kyc_status=row.kyc_status,
        country=row.country,
        has_totp=row.totp_secret is not None,
        created_ns=row.created_ns,
        disabled=row.disabled,
    )


def _key_info(row: ApiKeyRow, secret: str) -> ApiKeyInfo:
    return ApiKeyInfo(
        key=row.key,
        secret=secret,
        account=row.account,
        label=row.label,
        scopes=frozenset(Scope(s) for s in row.scopes.split(",") if s),
        allowed_ips=tuple(ip for ip in row.allowed_ips.split(",") if ip),
        created_ns=row.created_ns,
        revoked=row.revoked,
    )


def _key_context(key: str) -> str:
    return f"api_keys.secret:{key}"


def _totp_context(account: int) -> str:
    return f"users.totp_secret:{account}"


def hash_token(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


class IdentityStore:
    """Users, API keys and sessions in an SQL database (``sqlite:///path`` by default)."""

    def __init__(self, url: str, *, clock: Callable[[], int] | None = None, sealing_key: bytes | None = None) -> None:
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self._sealer = SecretSealer(sealing_key_for(url, sealing_key))  # API-key secrets, two-factor seeds
        self._engine = create_engine(url)
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKeyInfo] | None = None
        self._now: Callable[[], int] = time.time_ns if clock is None else clock

    def create_schema(self) -> None:
        """Create the tables if they do not exist yet, and seal secrets an older version stored in plaintext."""
        IdentityModel.metadata.create_all(self._engine)
        self._seal_plaintext_secrets()

    def _seal_plaintext_secrets(self) -> None:
        with self._lock, Session(self._engine) as db:
            for key_row in db.exec(select(ApiKeyRow)).all():
                if not is_sealed(key_row.secret):
                    key_row.secret = self._sealer.seal(key_row.secret, _key_context(key_row.key))
                    db.add(key_row)
            for user_row in db.exec(select(UserRow).where(UserRow.totp_secret.is_not(None))).all():  # type: ignore[union-attr]
                assert user_row.id is not None and user_row.totp_secret is not None
                if not is_sealed(user_row.totp_secret):
                    user_row.totp_secret = self._sealer.seal(user_row.totp_secret, _totp_context(user_row.id))
                    db.add(user_row)
            db.commit()

    def _open_key(self, row: ApiKeyRow) -> ApiKeyInfo:
        return _key_info(row, self._sealer.open(row.secret, _key_context(row.key)))

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    # -- users
    def create_user(self, email: str, password: str, *, role: str = "user", country: str = "") -> UserInfo:
        """Register a user; raise :class:`IdentityError` for a bad or taken e-mail, a weak password or a bad role."""
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise IdentityError(f"{email!r} is not an e-mail address: use the form name@example.com")
        check_password_strength(password, email)
        if role not in ROLES:
            raise IdentityError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            raise IdentityError(f"country {country!r} must be an ISO 3166-1 alpha-2 code such as 'DE'")
        password_hash = self._hasher.hash(password)
        with self._lock, Session(self._engine) as db:
            if db.exec(select(UserRow).where(UserRow.email == email)).first() is not None:
                raise IdentityError(f"{email} already has an account: log in, or reset the password")
            highest = db.exec(select(func.max(UserRow.id))).one()
            row = UserRow(
                id=max(FIRST_ACCOUNT, (highest or 0) + 1),
                email=email,
                password_hash=password_hash,
                role=role,
                country=country,
                created_ns=self._now(),
            )
            db.add(row)
            db.commit()
            db.refresh(row)
            return _user_info(row)

    def authenticate(self, email: str, password: str) -> UserInfo | None:
        """Return the user if ``password`` is theirs and the account is enabled, else ``None``."""
        with Session(self._engine) as db:
            row = db.exec(select(UserRow).where(UserRow.email == email.strip().lower())).first()
            if row is None:
                self._hasher.hash(password)  # spend the same time as a real check: do not reveal who exists
                return None
            try:
                self._hasher.verify(row.password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return None
            if row.disabled:
                return None
            if self._hasher.check_needs_rehash(row.password_hash):
                row.password_hash = self._hasher.hash(password)
                db.add(row)
                db.commit()
                db.refresh(row)
            return _user_info(row)

    def user(self, account: int) -> UserInfo | None:
        """Return the user with engine account ``account``."""
        with Session(self._engine) as db:
            row = db.get(UserRow, account)
            return None if row is None else _user_info(row)

    def user_by_email(self, email: str) -> UserInfo | None:
        """Return the user registered with ``email``."""
        with Session(self._engine) as db:
            row = db.exec(select(UserRow).where(UserRow.email == email.strip().lower())).first()
            return None if row is None else _user_info(row)

    def users(self, *, offset: int = 0, limit: int = 100) -> list[UserInfo]:
        """Return users in account order, a page at a time."""
        with Session(self._engine) as db:
            rows = db.exec(select(UserRow).order_by(UserRow.id).offset(offset).limit(limit)).all()  # type: ignore[arg-type]
            return [_user_info(r) for r in rows]

    def totp_secret(self, account: int) -> str | None:
        """Return the user's two-factor secret (for checking a code), or ``None`` if two-factor is off."""
        with Session(self._engine) as db:
            row = db.get(UserRow, account)
            if row is None or row.totp_secret is None:
                return None
            return self._sealer.open(row.totp_secret, _totp_context(account))

    def set_totp_secret(self, account: int, secret: str | None) -> None:
        """Turn two-factor on with ``secret`` (after the user proved a code), or off with ``None``."""
        sealed = None if secret is None else self._sealer.seal(secret, _totp_context(account))
        self._update_user(account, totp_secret=sealed)

    def set_kyc(self, account: int, *, tier: int, status: str) -> None:
        """Record a KYC decision: the tier the user reached and the review status."""
        self._update_user(account, kyc_tier=tier, kyc_status=status)

    def set_role(self, account: int, role: str) -> None:
        """Change a user's role (administrators only; the caller checks)."""
        if role not in ROLES:
            raise IdentityError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        self._update_user(account, role=role)

    def _update_user(self, account: int, **values: object) -> None:
        with self._lock, Session(self._engine) as db:
            row = db.get(UserRow, account)
            if row is None:
                raise IdentityError(f"there is no user with account {account}")
            for name, value in values.items():
                setattr(row, name, value)
            db.add(row)
            db.commit()

    # -- API keys
    def create_api_key(
        self,
        account: int,
        *,
        label: str = "",
        scopes: Iterable[Scope | str] = (Scope.READ,),
        allowed_ips: Iterable[str] = (),
    ) -> ApiKeyInfo:
        """Issue a new key for ``account``; its secret is returned here and must be shown to the user once."""
        try:
            scope_set = frozenset(Scope(s) for s in scopes)
        except ValueError as exc:
            raise IdentityError(f"{exc}; scopes are {', '.join(s.value for s in Scope)}") from None
        if not scope_set:
            raise IdentityError("an API key needs at least one scope: read, trade or withdraw")
        ips = []
        for ip in allowed_ips:
            ip = ip.strip()
            if not ip:
                continue
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise IdentityError(
                    f"{ip!r} is not an IP address or network such as 203.0.113.7 or 10.0.0.0/8"
                ) from None
            ips.append(ip)
        if len(label) > 80:
            raise IdentityError("an API key label is at most 80 characters")
        if self.user(account) is None:
            raise IdentityError(f"there is no user with account {account}")
        key, secret = secrets.token_hex(32), secrets.token_hex(32)
        row = ApiKeyRow(
            key=key,
            secret=self._sealer.seal(secret, _key_context(key)),
            account=account,
            label=label,
            scopes=",".join(sorted(scope_set)),
            allowed_ips=",".join(ips),
            created_ns=self._now(),
        )
        with self._lock, Session(self._engine) as db:
            db.add(row)
            db.commit()
            db.refresh(row)
            info = _key_info(row, secret)
            if self._keys is not None:
                self._keys[info.key] = info
            return info

    def api_key(self, key: str) -> ApiKeyInfo | None:
        """Return the live (not revoked) API key ``key``, from memory."""
        keys = self._keys
        if keys is None:
            with self._lock, Session(self._engine) as db:
                rows = db.exec(select(ApiKeyRow).where(ApiKeyRow.revoked == False)).all()  # noqa: E712
                keys = self._keys = {r.key: self._open_key(r) for r in rows}
        return keys.get(key)

    def api_keys(self, account: int) -> list[ApiKeyInfo]:
        """Return ``account``'s keys, revoked ones included, oldest first."""
        with Session(self._engine) as db:
            rows = db.exec(
                select(ApiKeyRow).where(ApiKeyRow.account == account).order_by(ApiKeyRow.created_ns)  # type: ignore[arg-type]
            ).all()
            return [self._open_key(r) for r in rows]

    def revoke_api_key(self, account: int, key: str) -> None:
        """Revoke ``account``'s key ``key`` at once; another account's key is "not found"."""
        with self._lock, Session(self._engine) as db:
            row = db.get(ApiKeyRow, key)
            if row is None or row.account != account:
                raise IdentityError("no such API key on this account")
            row.revoked = True
            db.add(row)
            db.commit()
            if self._keys is not None:
                self._keys.pop(key, None)

    # -- sessions
    def create_session(self, account: int, *, user_agent: str = "", ip: str = "") -> str:
        """Start a portal session; return the token for the browser's cookie (stored only as its hash)."""
        token = secrets.token_urlsafe(32)
        now = self._now()
        with self._lock, Session(self._engine) as db:
            db.add(
                SessionRow(
                    token_hash=hash_token(token),
                    account=account,
                    created_ns=now,
                    last_seen_ns=now,
                    user_agent=user_agent[:300],
                    ip=ip[:64],
                )
            )
            db.commit()
        return token

    def session(self, token: str) -> SessionInfo | None:
        """Return the live session of ``token``, marking it seen now."""
        with Session(self._engine) as db:
            row = db.get(SessionRow, hash_token(token))
            if row is None or row.revoked:
                return None
            row.last_seen_ns = self._now()
            db.add(row)
            db.commit()
            db.refresh(row)
            return SessionInfo(row.token_hash, row.account, row.created_ns, row.last_seen_ns, row.user_agent, row.ip)

    def sessions(self, account: int) -> list[SessionInfo]:
        """Return ``account``'s live sessions, newest first."""
        with Session(self._engine) as db:
            rows = db.exec(
                select(SessionRow)
                .where(SessionRow.account == account, SessionRow.revoked == False)  # noqa: E712
                .order_by(SessionRow.last_seen_ns.desc())  # type: ignore[attr-defined]
            ).all()
            return [
                SessionInfo(r.token_hash, r.account, r.created_ns, r.last_seen_ns, r.user_agent, r.ip) for r in rows
            ]

    def revoke_session(self, account: int, token_hash: str) -> None:
        """End one of ``account``'s sessions (log out there)."""
        with self._lock, Session(self._engine) as db:
            row = db.get(SessionRow, token_hash)
            if row is None or row.account != account:
                raise IdentityError("no such session on this account")
            row.revoked = True
            db.add(row)
            db.commit()


def check_password_strength(password: str, email: str = "") -> None:
    """Refuse passwords that are short, or are the e-mail address, with a message saying what is needed."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise IdentityError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if email and password.lower() in {email.lower(), email.split("@")[0].lower()}:
        raise IdentityError("the password must not be the e-mail address")
    if len(set(password)) < 4:
        raise IdentityError("the password needs more different characters")
