"""The encrypted software keystore: the embedded default hot-wallet signer for an exchange on one machine.

Keys are generated in this process and stored on disk encrypted; the plaintext key exists only in memory, only
while it signs. Layout of the keystore directory::

    keystore.json          format version, the key-derivation parameters and salt, an encrypted check value
    keys/<key_id>.json     one file per key: scheme, public key, nonce and AES-256-GCM ciphertext of the secret

The key-encryption key is derived from a passphrase (read from an environment variable, never from the config) with
Argon2id (RFC 9106), once per process. Each secret is sealed with AES-256-GCM under a fresh 96-bit nonce; the
associated data binds the key id, the scheme and the public key, so a file renamed, edited or moved to another key
id fails authentication. Every read of a key (its public key included) authenticates the file. A wrong passphrase
and a tampered file are told apart by the check value in ``keystore.json``. Files are written atomically (a
temporary file, fsync, a hard link that fails if the name exists, fsync of the directory) and never replaced.

This is a software boundary: anyone who can read process memory while it signs, or who has the passphrase and the
files, has the keys. Use an HSM (the ``hsm_pkcs11`` plugin) where that is not acceptable.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exchange_framework.custody.signing import DEFAULT_SIGN_ATTEMPTS, check_request, sign_verified
from exchange_framework.interfaces import (
    KeyExistsError,
    KeyScheme,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)

__all__ = [
    "DEFAULT_PASSPHRASE_ENV",
    "KEY_ID_PATTERN",
    "KdfCost",
    "KeystoreCorruptError",
    "KeystoreError",
    "KeystoreSettings",
    "SoftwareKeystore",
    "WrongPassphraseError",
]

FORMAT = "exchange-framework-keystore"
VERSION = 1
DEFAULT_PASSPHRASE_ENV = "EXCHANGE_KEYSTORE_PASSPHRASE"
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CHECK_PLAINTEXT = b"exchange-framework keystore check v1"
_CHECK_AAD = b"exchange-framework/keystore/v1/check"
_NONCE_SIZE = 12
_SALT_SIZE = 16


class KeystoreError(SigningError):
    """The keystore cannot be opened or read: no passphrase, wrong passphrase, damaged files."""


class WrongPassphraseError(KeystoreError):
    """The passphrase does not open this keystore (or its ``keystore.json`` was altered)."""


class KeystoreCorruptError(KeystoreError):
    """A keystore file failed authentication or does not parse: altered, truncated or from another keystore."""


class KdfCost(BaseModel):
    """Argon2id cost for a new keystore (RFC 9106's second recommended option by default: 64 MiB, t=3, p=4).

    Stored in ``keystore.json`` when the keystore is created; an existing keystore keeps its own.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    memory_kib: int = Field(default=65_536, ge=8, le=4 * 1024 * 1024)
    iterations: int = Field(default=3, ge=1, le=100)
    lanes: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _enough_memory(self) -> Self:
        if self.memory_kib < 8 * self.lanes:
            raise ValueError(f"Argon2 needs at least 8 KiB of memory per lane: memory_kib >= {8 * self.lanes}")
        return self


class KeystoreSettings(BaseModel):
    """``[plugins.settings.software_keystore]``: where the keystore lives and how it is unlocked."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    path: str = Field(default="var/keystore", min_length=1)  # relative to the config file's directory
    passphrase_env: str = Field(default=DEFAULT_PASSPHRASE_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kdf_memory_kib: int = Field(default=65_536, ge=8, le=4 * 1024 * 1024)
    kdf_iterations: int = Field(default=3, ge=1, le=100)
    kdf_lanes: int = Field(default=4, ge=1, le=64)
    sign_attempts: int = Field(default=DEFAULT_SIGN_ATTEMPTS, ge=1, le=10)

    @model_validator(mode="after")
    def _enough_memory(self) -> Self:
        if self.kdf_memory_kib < 8 * self.kdf_lanes:
            raise ValueError(f"Argon2 needs at least 8 KiB of memory per lane: kdf_memory_kib >= {8 * self.kdf_lanes}")
        return self

    @classmethod
    def parse(cls, settings: Mapping[str, Any], *, table: str = "[plugins.settings.software_keystore]") -> Self:
        """Validate a settings table; raise ``ValueError`` with one line per problem, naming the key."""
        try:
            return cls.model_validate(dict(settings))
        except ValidationError as exc:
            lines = [f"{table} {'.'.join(map(str, e['loc'])) or '(table)'}: {e['msg']}" for e in exc.errors()]
            raise ValueError("\n".join(lines)) from None


class SoftwareKeystore:
    """A :class:`~exchange_framework.interfaces.CustodySigner` keeping secp256k1 and Ed25519 keys encrypted on disk.

    ``directory`` is created on the first :meth:`create_key`. The passphrase is read from the environment variable
    ``passphrase_env`` the first time a key is used, and the derived key is kept for the life of the object.
    ``kdf`` is the Argon2id cost used if the keystore does not exist yet. Each signature is verified before it is
    returned; an invalid one is retried up to ``sign_attempts`` times, then :class:`SignatureInvalidError` is raised.
    """

    schemes = frozenset({KeyScheme.SECP256K1, KeyScheme.ED25519})

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        passphrase_env: str = DEFAULT_PASSPHRASE_ENV,
        kdf: KdfCost | None = None,
        sign_attempts: int = DEFAULT_SIGN_ATTEMPTS,
        name: str = "software",
    ) -> None:
        self.name = name
        self.directory = Path(directory)
        self.passphrase_env = passphrase_env
        self.kdf = kdf or KdfCost()
        self.sign_attempts = sign_attempts
        self._aead: AESGCM | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], root: Path) -> SoftwareKeystore:
        """Build the keystore from ``[plugins.settings.software_keystore]``; relative paths resolve against ``root``."""
        parsed = KeystoreSettings.parse(settings)
        return cls(
            root / parsed.path,
            passphrase_env=parsed.passphrase_env,
            kdf=KdfCost(memory_kib=parsed.kdf_memory_kib, iterations=parsed.kdf_iterations, lanes=parsed.kdf_lanes),
            sign_attempts=parsed.sign_attempts,
        )

    # -- the CustodySigner interface --------------------------------------------------------------------------

    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        """Generate a key of ``scheme`` in this process, store it encrypted, and return its public key."""
        if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
            raise SigningRefusedError(
                f"key id {key_id!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit"
            )
        try:
            scheme = KeyScheme(scheme)
        except ValueError:
            raise SigningRefusedError(
                f"the software keystore has no scheme {scheme!r}; use one of: {', '.join(sorted(self.schemes))}"
            ) from None
        with self._lock:
            aead = self._open(create=True)
            path = self._key_path(key_id)
            if path.exists():
                raise KeyExistsError(f"key {key_id!r} exists already in {self.directory}; keys are never replaced")
            secret, public_key = _generate(scheme)
            nonce = secrets.token_bytes(_NONCE_SIZE)
            record = {
                "format": FORMAT,
                "version": VERSION,
                "key_id": key_id,
                "scheme": scheme.value,
                "public_key": public_key.hex(),
                "nonce": nonce.hex(),
                "ciphertext": aead.encrypt(nonce, secret, _key_aad(key_id, scheme, public_key)).hex(),
            }
            if not _write_new(path, _dump(record)):
                raise KeyExistsError(f"key {key_id!r} exists already in {self.directory}; keys are never replaced")
            return public_key

    def key_scheme(self, key_id: str) -> KeyScheme:
        """Return the scheme of ``key_id`` (authenticating its file)."""
        return self._load(key_id)[0]

    def public_key(self, key_id: str) -> bytes:
        """Return the public key of ``key_id`` (authenticating its file)."""
        return self._load(key_id)[1]

    def key_ids(self) -> list[str]:
        """Return the ids of every key in the keystore, sorted."""
        keys = self.directory / "keys"
        return sorted(path.stem for path in keys.glob("*.json")) if keys.is_dir() else []

    def sign(self, request: SigningRequest) -> bytes:
        """Sign ``request.payload`` with ``request.key_id`` after checking the request against the key."""
        if not isinstance(request, SigningRequest):
            raise SigningRefusedError(f"expected a SigningRequest, not {type(request).__name__}")
        scheme, public_key, secret = self._load(request.key_id)
        check_request(request, scheme)
        if scheme is KeyScheme.SECP256K1:
            private = coincurve.PrivateKey(secret)
            return sign_verified(
                scheme,
                public_key,
                request.payload,
                lambda: private.sign_recoverable(request.payload, hasher=None)[:64],
                attempts=self.sign_attempts,
                what=f"software key {request.key_id!r}",
            )
        ed_private = Ed25519PrivateKey.from_private_bytes(secret)
        return sign_verified(
            scheme,
            public_key,
            request.payload,
            lambda: ed_private.sign(request.payload),
            attempts=self.sign_attempts,
            what=f"software key {request.key_id!r}",
        )

    # -- files ------------------------------------------------------------------------------------------------

    def _key_path(self, key_id: str) -> Path:
        return self.directory / "keys" / f"{key_id}.json"

    def _load(self, key_id: str) -> tuple[KeyScheme, bytes, bytes]:
        if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
            raise UnknownKeyError(f"no key {key_id!r} in the software keystore (not a valid key id)")
        path = self._key_path(key_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UnknownKeyError(f"no key {key_id!r} in the software keystore at {self.directory}") from None
        aead = self._open(create=False)
        try:
            record = json.loads(raw)
            if record.get("format") != FORMAT or record.get("version") != VERSION:
                raise ValueError(f"not a version {VERSION} keystore key file")
            if record["key_id"] != key_id:
                raise ValueError(f"it holds key {record['key_id']!r}")
            scheme = KeyScheme(record["scheme"])
            public_key = bytes.fromhex(record["public_key"])
            nonce = bytes.fromhex(record["nonce"])
            ciphertext = bytes.fromhex(record["ciphertext"])
            secret = aead.decrypt(nonce, ciphertext, _key_aad(key_id, scheme, public_key))
        except InvalidTag:
            raise KeystoreCorruptError(
                f"key file {path} failed authentication: it was altered or belongs to another key or keystore. "
                "Nothing was signed; restore the file from a backup"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeystoreCorruptError(f"key file {path} is damaged ({exc}); restore it from a backup") from None
        if _public_key_of(scheme, secret) != public_key:  # unreachable unless the encryption itself was subverted
            raise KeystoreCorruptError(f"key file {path}: the secret does not match the public key")
        return scheme, public_key, secret

    def _open(self, *, create: bool) -> AESGCM:
        if self._aead is not None:
            return self._aead
        header_path = self.directory / "keystore.json"
        passphrase = self._passphrase()
        if not header_path.exists():
            if not create:
                raise KeystoreError(f"no keystore at {self.directory}: create a key first")
            self._create_header(header_path, passphrase)
        try:
            header = json.loads(header_path.read_bytes())
            if header.get("format") != FORMAT or header.get("version") != VERSION:
                raise ValueError(f"not a version {VERSION} keystore")
            kdf = header["kdf"]
            if kdf["name"] != "argon2id":
                raise ValueError(f"unknown key derivation {kdf['name']!r}")
            cost = KdfCost(memory_kib=kdf["memory_kib"], iterations=kdf["iterations"], lanes=kdf["lanes"])
            salt = bytes.fromhex(kdf["salt"])
            check_nonce = bytes.fromhex(header["check"]["nonce"])
            check = bytes.fromhex(header["check"]["ciphertext"])
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise KeystoreCorruptError(f"{header_path} is damaged ({exc}); restore it from a backup") from None
        aead = AESGCM(_derive(passphrase, salt, cost))
        try:
            if aead.decrypt(check_nonce, check, _CHECK_AAD) != _CHECK_PLAINTEXT:
                raise InvalidTag
        except InvalidTag:
            raise WrongPassphraseError(
                f"the passphrase in ${self.passphrase_env} does not open the keystore at {self.directory} "
                "(or its keystore.json was altered); nothing was read or written"
            ) from None
        self._aead = aead
        return aead

    def _create_header(self, header_path: Path, passphrase: bytes) -> None:
        salt = secrets.token_bytes(_SALT_SIZE)
        nonce = secrets.token_bytes(_NONCE_SIZE)
        aead = AESGCM(_derive(passphrase, salt, self.kdf))
        header = {
            "format": FORMAT,
            "version": VERSION,
            "kdf": {"name": "argon2id", **self.kdf.model_dump(), "salt": salt.hex()},
            "check": {"nonce": nonce.hex(), "ciphertext": aead.encrypt(nonce, _CHECK_PLAINTEXT, _CHECK_AAD).hex()},
        }
        (self.directory / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_new(header_path, _dump(header))  # another process may have won the race: its header is used

    def _passphrase(self) -> bytes:
        value = os.environ.get(self.passphrase_env, "")
        if not value:
            raise KeystoreError(
                f"the software keystore needs its passphrase: set the environment variable {self.passphrase_env} "
                "(name it with passphrase_env in [plugins.settings.software_keystore])"
            )
        return value.encode("utf-8")


# -- helpers ------------------------------------------------------------------------------------------------------


def _generate(scheme: KeyScheme) -> tuple[bytes, bytes]:
    if scheme is KeyScheme.SECP256K1:
        private = coincurve.PrivateKey()  # a uniformly random valid scalar from the OS's CSPRNG
        return private.secret, private.public_key.format(compressed=True)
    seed = secrets.token_bytes(32)
    return seed, _public_key_of(scheme, seed)


def _public_key_of(scheme: KeyScheme, secret: bytes) -> bytes:
    if scheme is KeyScheme.SECP256K1:
        return coincurve.PrivateKey(secret).public_key.format(compressed=True)
    return Ed25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def _key_aad(key_id: str, scheme: KeyScheme, public_key: bytes) -> bytes:
    return b"\x00".join([b"exchange-framework/keystore/v1/key", key_id.encode(), scheme.value.encode(), public_key])


def _derive(passphrase: bytes, salt: bytes, cost: KdfCost) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=cost.iterations, lanes=cost.lanes, memory_cost=cost.memory_kib)
    return kdf.derive(passphrase)


def _dump(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


def _write_new(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless ``path`` exists; return whether this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails rather than replace an existing file
        except FileExistsError:
            return False
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    finally:
        tmp.unlink(missing_ok=True)
