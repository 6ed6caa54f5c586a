"""Secrets the exchange must read back (API-key secrets, two-factor seeds) are sealed in the identity database.

A signed request is checked by recomputing its HMAC, so the server needs each API key's secret itself, and a
two-factor code is checked against the seed: neither can be stored as a one-way hash like passwords and session
tokens. They are sealed with AES-256-GCM (``cryptography``'s AESGCM) under a key kept outside the database, so a
copy of the database alone (a backup, a dump, a stolen file) reveals no secret. Each sealed value is bound to the
row it belongs to (the associated data names the table, column and row), so a sealed value moved to another row
does not open.

The sealing key comes from, in order: the ``key`` argument, the ``EXCHANGE_IDENTITY_KEY`` environment variable
(64 hex digits), or a key file beside an SQLite database (``identity.key`` for ``identity.db``, created on first
use, readable only by its owner). A throwaway in-memory database gets a throwaway key. Any other database must be
given a key: it refuses to start without one.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_ENV", "SealedSecretError", "SecretSealer", "sealing_key_for"]

KEY_ENV = "EXCHANGE_IDENTITY_KEY"
PREFIX = "v1:"
NONCE_BYTES = 12


class SealedSecretError(ValueError):
    """A sealed secret cannot be opened (wrong key, or the value was altered or moved), or no key is available."""


class SecretSealer:
    """Seals and opens short secrets with AES-256-GCM, each bound to a context string (table, column, row)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SealedSecretError(f"the identity sealing key must be 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> str:
        """The stored form of ``plaintext``: ``v1:`` and the base64 of nonce, ciphertext and tag."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, context: str) -> str:
        """The plaintext of a value :meth:`seal` made for the same ``context``."""
        if not is_sealed(stored):
            raise SealedSecretError(f"{context}: the stored value is not sealed")
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX) :].encode("ascii"))
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealedSecretError(
                f"{context}: the sealed secret does not open with this key (a different {KEY_ENV} or key file "
                "than the one it was sealed with, or the value was altered)"
            ) from exc


def is_sealed(stored: str) -> bool:
    """Whether ``stored`` is a sealed value (older databases hold plaintext, sealed on the next start)."""
    return stored.startswith(PREFIX)


def _parse_hex_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise SealedSecretError(f"{where} must hold 64 hex digits (32 random bytes)") from None
    if len(key) != 32:
        raise SealedSecretError(f"{where} must hold 64 hex digits (32 random bytes), found {len(key) * 2}")
    return key


def _key_file(path: Path) -> bytes:
    """Read the key file at ``path``, creating it (owner-only, atomically) when it does not exist."""
    try:
        return _parse_hex_key(path.read_text(), f"the identity key file {path}")
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32).hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(scratch, path)  # fails if another process created it first: then theirs is the key
    except FileExistsError:
        pass
    finally:
        scratch.unlink()
    return _parse_hex_key(path.read_text(), f"the identity key file {path}")


def sealing_key_for(url: str, key: bytes | None = None) -> bytes:
    """The sealing key for the identity database at ``url`` (see the module's docstring for where it comes from)."""
    if key is not None:
        return key
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return _parse_hex_key(from_env, KEY_ENV)
    if url in ("sqlite://", "sqlite:///:memory:"):
        return secrets.token_bytes(32)
    if url.startswith("sqlite:///"):
        database = Path(url[len("sqlite:///") :])
        return _key_file(database.with_suffix(".key"))
    raise SealedSecretError(
        f"set {KEY_ENV} to 64 hex digits (e.g. from `python -c 'import secrets; print(secrets.token_hex(32))'`): "
        "API-key secrets and two-factor seeds are sealed with it, and this identity database is not a local file "
        "beside which a key file could be kept"
    )
