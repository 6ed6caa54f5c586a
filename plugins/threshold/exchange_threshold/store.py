"""Records sealed at rest under a passphrase: a node's identity key and key shares, the coordinator's key records.

As the kernel's software keystore does: the key-encryption key is derived from a passphrase (read from an environment
variable) with Argon2id, once per process; each record is sealed with AES-256-GCM under a fresh nonce, the record's
name bound as associated data (a file renamed or moved to another name fails authentication). ``store.json`` holds the
KDF parameters, the salt and an encrypted check value that tells a wrong passphrase from a damaged file. Records are
written atomically and never replaced; a record can be deleted (a node drops the share of an epoch a refresh ended).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from exchange_framework.custody.keystore import KdfCost
from exchange_framework.interfaces import SigningError

__all__ = ["DEFAULT_PASSPHRASE_ENV", "SealedStore", "StoreError", "read_passphrase"]

DEFAULT_PASSPHRASE_ENV = "EXCHANGE_THRESHOLD_PASSPHRASE"
FORMAT = "exchange-threshold-store"
_CHECK = b"exchange-threshold store check v1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,2}")


class StoreError(SigningError):
    """The store cannot be opened or a record is damaged: no or wrong passphrase, altered files."""


def read_passphrase(env: str) -> bytes:
    """Return the passphrase in environment variable ``env``; raise :class:`StoreError` if it is unset or empty."""
    value = os.environ.get(env, "")
    if not value:
        raise StoreError(f"the store passphrase is not set: export it in the environment variable {env}")
    return value.encode()


class SealedStore:
    """A directory of AES-256-GCM sealed records under an Argon2id passphrase-derived key."""

    def __init__(self, root: Path, passphrase: bytes, *, kdf: KdfCost | None = None) -> None:
        self.root = root
        header = root / "store.json"
        if not header.exists():
            cost = kdf or KdfCost()
            salt = secrets.token_bytes(16)
            self._aead = AESGCM(_derive(passphrase, salt, cost))
            nonce = secrets.token_bytes(12)
            record = {
                "format": FORMAT,
                "version": 1,
                "kdf": {"name": "argon2id", **cost.model_dump(), "salt": salt.hex()},
                "check": (nonce + self._aead.encrypt(nonce, _CHECK, b"check")).hex(),
            }
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not _write_new(header, json.dumps(record, indent=2).encode()):
                raise StoreError(f"{header} was created concurrently; open it again")
            return
        try:
            record = json.loads(header.read_text())
            if record["format"] != FORMAT or record["kdf"]["name"] != "argon2id":
                raise ValueError("not a threshold store")
            k = record["kdf"]
            cost = KdfCost(memory_kib=k["memory_kib"], iterations=k["iterations"], lanes=k["lanes"])
            salt, check = bytes.fromhex(k["salt"]), bytes.fromhex(record["check"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{header} is damaged or not a threshold store: {exc}") from exc
        self._aead = AESGCM(_derive(passphrase, salt, cost))
        try:
            self._aead.decrypt(check[:12], check[12:], b"check")
        except InvalidTag:
            raise StoreError(f"wrong passphrase for the store at {root} (or its store.json was altered)") from None

    def put(self, name: str, data: bytes) -> bool:
        """Seal ``data`` as record ``name``; return False (and change nothing) if the record exists."""
        path = self._path(name)
        nonce = secrets.token_bytes(12)
        return _write_new(path, nonce + self._aead.encrypt(nonce, data, _aad(name)))

    def get(self, name: str) -> bytes | None:
        """Return record ``name``, or None if there is none; raise :class:`StoreError` if it fails authentication."""
        path = self._path(name)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], _aad(name))
        except (InvalidTag, ValueError):
            raise StoreError(f"record {name!r} at {path} failed authentication: altered or moved") from None

    def delete(self, name: str) -> bool:
        """Remove record ``name`` durably (a share of an epoch a refresh replaced); return whether it existed."""
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the removal survives a crash
        finally:
            os.close(fd)
        return True

    def names(self, prefix: str) -> list[str]:
        """Names of the records under the folder ``prefix``."""
        folder = self._path(prefix + "/x").parent
        return sorted(f"{prefix}/{p.stem}" for p in folder.glob("*.sealed")) if folder.is_dir() else []

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise StoreError(f"invalid record name {name!r}")
        return self.root / f"{name}.sealed"


def _aad(name: str) -> bytes:
    return b"exchange-threshold/record/v1\x00" + name.encode()


def _derive(passphrase: bytes, salt: bytes, cost: KdfCost) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=cost.iterations, lanes=cost.lanes, memory_cost=cost.memory_kib)
    return kdf.derive(passphrase)


def _write_new(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless it exists; return whether this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces an existing record
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)
