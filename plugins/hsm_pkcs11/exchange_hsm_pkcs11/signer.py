"""The PKCS#11 hot-wallet signer: keys are generated inside the HSM token and never leave it.

Keys are found on the token by label (the key id). A key is generated on the token (``CKA_LOCAL``), marked
``CKA_SENSITIVE`` and not ``CKA_EXTRACTABLE``, and the signer refuses to sign with a key that ever was extractable or
readable (``CKA_NEVER_EXTRACTABLE``, ``CKA_ALWAYS_SENSITIVE``), so an imported key cannot be used by mistake.

- secp256k1: ``CKM_ECDSA`` over the 32-byte digest gives raw ``r || s``; the signer normalises it to low-S, works
  out the recovery id and returns 65 bytes ``r || s || v``.
- Ed25519: ``CKM_EDDSA`` over the message (PureEdDSA) gives the 64-byte signature.

Every signature is verified against the key's public key before it is returned (SoftHSM has produced invalid
secp256k1 signatures); an invalid one is thrown away and the token asked again, at most ``sign_attempts`` times, and
then :class:`~exchange_framework.interfaces.SignatureInvalidError` is raised. Any PKCS#11 error is raised as a
:class:`~exchange_framework.interfaces.SigningError` and the session is reopened on the next call.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pkcs11
from asn1crypto.core import OctetString  # type: ignore[import-untyped]  # asn1crypto ships no type information
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exchange_framework.custody.signing import DEFAULT_SIGN_ATTEMPTS, check_request, compress_secp256k1, sign_verified
from exchange_framework.interfaces import (
    KeyExistsError,
    KeyScheme,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)

__all__ = ["DEFAULT_PIN_ENV", "SETTINGS_NAME", "HsmSettings", "Pkcs11Signer"]

SETTINGS_NAME = "hsm_pkcs11"
DEFAULT_PIN_ENV = "EXCHANGE_HSM_PIN"
SECP256K1_OID = "1.3.132.0.10"
ED25519_OID = "1.3.101.112"
_SECP256K1_PARAMS = encode_named_curve_parameters(SECP256K1_OID)
# Ed25519 parameters as an OID, or (PKCS#11 3.0 allows both) as the PrintableString "edwards25519".
_ED25519_PARAMS = frozenset({encode_named_curve_parameters(ED25519_OID), b"\x13\x0c" + b"edwards25519"})
_KEY_ID_MAX = 128

# Attributes every private key must have before the signer uses it: generated on the token, never readable.
_REQUIRED_PRIVATE_ATTRIBUTES = {
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.ALWAYS_SENSITIVE: True,
    Attribute.NEVER_EXTRACTABLE: True,
    Attribute.LOCAL: True,
    Attribute.SIGN: True,
}


class HsmSettings(BaseModel):
    """``[plugins.settings.hsm_pkcs11]``: which PKCS#11 module and token, and where the user PIN comes from."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    module: str = Field(min_length=1)  # the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str = Field(min_length=1, max_length=32)
    pin_env: str = Field(default=DEFAULT_PIN_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    sign_attempts: int = Field(default=DEFAULT_SIGN_ATTEMPTS, ge=1, le=10)

    @classmethod
    def parse(cls, settings: Mapping[str, Any]) -> HsmSettings:
        """Validate the settings table; raise ``ValueError`` with one line per problem, naming the key."""
        try:
            return cls.model_validate(dict(settings))
        except ValidationError as exc:
            lines = [
                f"[plugins.settings.{SETTINGS_NAME}] {'.'.join(map(str, e['loc'])) or '(table)'}: {e['msg']}"
                for e in exc.errors()
            ]
            raise ValueError("\n".join(lines)) from None


class Pkcs11Signer:
    """A :class:`~exchange_framework.interfaces.CustodySigner` on one token of a PKCS#11 module.

    ``module`` is the path of the vendor's PKCS#11 library, ``token_label`` the token's label; the user PIN is read
    from the environment variable ``pin_env`` when the first session opens. Nothing touches the HSM until a method
    is called. Thread-safe: calls are serialised on one logged-in session.
    """

    schemes = frozenset({KeyScheme.SECP256K1, KeyScheme.ED25519})

    def __init__(
        self,
        module: str | os.PathLike[str],
        token_label: str,
        *,
        pin_env: str = DEFAULT_PIN_ENV,
        sign_attempts: int = DEFAULT_SIGN_ATTEMPTS,
        name: str = SETTINGS_NAME,
    ) -> None:
        self.name = name
        self.module = str(module)
        self.token_label = token_label
        self.pin_env = pin_env
        self.sign_attempts = sign_attempts
        self._login: _Login | None = None
        self._public: dict[str, tuple[KeyScheme, bytes]] = {}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Pkcs11Signer:
        """Build the signer from ``[plugins.settings.hsm_pkcs11]``; raise ``ValueError`` naming any bad key."""
        parsed = HsmSettings.parse(settings)
        return cls(parsed.module, parsed.token_label, pin_env=parsed.pin_env, sign_attempts=parsed.sign_attempts)

    # -- the CustodySigner interface --------------------------------------------------------------------------

    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        """Generate a key pair of ``scheme`` on the token (sensitive, not extractable) and return its public key."""
        _check_key_id(key_id, creating=True)
        try:
            scheme = KeyScheme(scheme)
        except ValueError:
            raise SigningRefusedError(
                f"the PKCS#11 signer has no scheme {scheme!r}; use one of: {', '.join(sorted(self.schemes))}"
            ) from None
        with self._session_for(f"creating key {key_id!r}") as session:
            if any(True for _ in session.get_objects({Attribute.LABEL: key_id})):
                raise KeyExistsError(f"key {key_id!r} exists already on token {self.token_label!r}")
            private_template = {
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DERIVE: False,
                Attribute.MODIFIABLE: False,
            }
            public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.MODIFIABLE: False}
            if scheme is KeyScheme.SECP256K1:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: _SECP256K1_PARAMS}, local=True
                )
                mechanism = Mechanism.EC_KEY_PAIR_GEN
            else:
                params = session.create_domain_parameters(
                    KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)}, local=True
                )
                mechanism = Mechanism.EC_EDWARDS_KEY_PAIR_GEN
            public, _private = params.generate_keypair(
                mechanism=mechanism,
                store=True,
                label=key_id,
                id=key_id.encode(),
                public_template=public_template,
                private_template=private_template,
            )
            public_key = _public_key_bytes(scheme, public[Attribute.EC_POINT])
            self._public[key_id] = (scheme, public_key)
            return public_key

    def key_scheme(self, key_id: str) -> KeyScheme:
        """Return the scheme of ``key_id`` as the token describes it."""
        return self._describe(key_id)[0]

    def public_key(self, key_id: str) -> bytes:
        """Return the public key of ``key_id``, read from the token's public key object."""
        return self._describe(key_id)[1]

    def key_ids(self) -> list[str]:
        """Return the labels of every private key on the token, sorted."""
        with self._session_for("listing keys") as session:
            keys = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
            return sorted(str(key[Attribute.LABEL]) for key in keys)

    def sign(self, request: SigningRequest) -> bytes:
        """Check ``request`` against the key, sign on the token, verify, and return the finished signature."""
        if not isinstance(request, SigningRequest):
            raise SigningRefusedError(f"expected a SigningRequest, not {type(request).__name__}")
        scheme, public_key = self._describe(request.key_id)
        check_request(request, scheme)
        with self._session_for(f"signing with key {request.key_id!r}") as session:
            private = self._private_key(session, request.key_id)
            return sign_verified(
                scheme,
                public_key,
                request.payload,
                lambda: self._raw_sign(private, scheme, request.payload),
                attempts=self.sign_attempts,
                what=f"HSM key {request.key_id!r} on token {self.token_label!r}",
            )

    def close(self) -> None:
        """Stop using the token; the last signer on a token closes its session (logging out)."""
        login, self._login = self._login, None
        if login is not None:
            login.release()

    # -- the token --------------------------------------------------------------------------------------------

    def _raw_sign(self, private: pkcs11.SignMixin, scheme: KeyScheme, payload: bytes) -> bytes:
        mechanism = Mechanism.ECDSA if scheme is KeyScheme.SECP256K1 else Mechanism.EDDSA
        return bytes(private.sign(payload, mechanism=mechanism))

    def _describe(self, key_id: str) -> tuple[KeyScheme, bytes]:
        _check_key_id(key_id, creating=False)
        known = self._public.get(key_id)
        if known is not None:
            return known
        with self._session_for(f"reading key {key_id!r}") as session:
            public = _one(session, key_id, ObjectClass.PUBLIC_KEY, self.token_label)
            scheme = _scheme_of(public, key_id)
            described = (scheme, _public_key_bytes(scheme, public[Attribute.EC_POINT]))
            self._private_key(session, key_id)  # a public key without its private key is no key
        self._public[key_id] = described
        return described

    def _private_key(self, session: pkcs11.Session, key_id: str) -> pkcs11.SignMixin:
        private = _one(session, key_id, ObjectClass.PRIVATE_KEY, self.token_label)
        for attribute, required in _REQUIRED_PRIVATE_ATTRIBUTES.items():
            try:
                value = private[attribute]
            except pkcs11.PKCS11Error:
                value = None
            if value is not required:
                raise SigningRefusedError(
                    f"key {key_id!r} on token {self.token_label!r} has {attribute.name}={value!r}; the signer uses "
                    f"only keys generated on the token as sensitive and never extractable ({attribute.name} must be "
                    f"{required}). Generate a new key with create_key"
                )
        if not isinstance(private, pkcs11.SignMixin):
            raise SigningRefusedError(f"key {key_id!r} on token {self.token_label!r} cannot sign")
        return private

    @contextmanager
    def _session_for(self, action: str) -> Iterator[pkcs11.Session]:
        if self._login is None:
            self._login = _Login.acquire(self.module, self.token_label, self.pin_env)
        login = self._login
        with login.lock:
            try:
                yield login.session()
            except SigningError:
                raise
            except pkcs11.PKCS11Error as exc:
                login.reset()  # reopen on the next call: the session may be dead (device removed, HSM restarted)
                raise SigningError(
                    f"HSM error while {action} on token {self.token_label!r}: {type(exc).__name__} {exc}".rstrip()
                ) from exc


class _Login:
    """One logged-in session per token per process, shared by every signer on that token.

    PKCS#11 logs in the application, not a session: a second ``C_Login`` fails, and ``C_Logout`` on any session
    logs every session out. So signers on one token share a session, serialised by ``lock``, and the last one to
    close it logs out.
    """

    _all: dict[tuple[str, str, str], _Login] = {}
    _all_lock = threading.Lock()

    def __init__(self, module: str, token_label: str, pin_env: str, pin: str) -> None:
        self.module = module
        self.token_label = token_label
        self.pin_env = pin_env
        self.pin = pin
        self.lock = threading.RLock()
        self.users = 0
        self._session: pkcs11.Session | None = None

    @classmethod
    def acquire(cls, module: str, token_label: str, pin_env: str) -> _Login:
        """Return the login for the token, counting one more user; check the module and the PIN variable."""
        if not Path(module).is_file():
            raise SigningError(
                f"PKCS#11 module {module} not found: set module in [plugins.settings.{SETTINGS_NAME}] to the "
                "vendor's library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"
            )
        pin = os.environ.get(pin_env, "")
        if not pin:
            raise SigningError(f"the HSM user PIN is not set: export it in the environment variable {pin_env}")
        with cls._all_lock:
            login = cls._all.get((module, token_label, pin))
            if login is None:
                login = cls._all[(module, token_label, pin)] = cls(module, token_label, pin_env, pin)
            login.users += 1
            return login

    def release(self) -> None:
        """Count one user fewer; the last one closes the session."""
        with self._all_lock:
            self.users -= 1
            if self.users > 0:
                return
            del self._all[(self.module, self.token_label, self.pin)]
        self.reset()

    def session(self) -> pkcs11.Session:
        """Return the logged-in session, opening it (and logging in) if needed."""
        if self._session is None:
            self._session = self._open()
        return self._session

    def reset(self) -> None:
        """Close the session (logging out); the next :meth:`session` opens a new one."""
        with self.lock:
            session, self._session = self._session, None
            if session is not None:
                with contextlib.suppress(pkcs11.PKCS11Error):  # the session is gone either way
                    session.close()

    def _open(self) -> pkcs11.Session:
        try:
            token = pkcs11.lib(self.module).get_token(token_label=self.token_label)
        except pkcs11.NoSuchToken:
            raise SigningError(f"no token labelled {self.token_label!r} in PKCS#11 module {self.module}") from None
        try:
            return token.open(user_pin=self.pin, rw=True)
        except pkcs11.PinIncorrect:
            raise SigningError(
                f"the PIN in ${self.pin_env} was refused by token {self.token_label!r} (repeated failures lock it)"
            ) from None
        except pkcs11.UserAlreadyLoggedIn:
            raise SigningError(
                f"token {self.token_label!r} is already logged in by this process with a PIN other than "
                f"${self.pin_env}'s: use one PIN per token in a process"
            ) from None


# -- helpers ------------------------------------------------------------------------------------------------------


def _check_key_id(key_id: str, *, creating: bool) -> None:
    if isinstance(key_id, str) and 0 < len(key_id) <= _KEY_ID_MAX and key_id.isprintable():
        return
    if creating:
        raise SigningRefusedError(f"key id {key_id!r} is not allowed: use 1-{_KEY_ID_MAX} printable characters")
    raise UnknownKeyError(f"no key {key_id!r} (not a valid key id)")


def _one(session: pkcs11.Session, key_id: str, object_class: ObjectClass, token: str) -> Any:
    found = list(session.get_objects({Attribute.LABEL: key_id, Attribute.CLASS: object_class}))
    if not found:
        raise UnknownKeyError(f"no key {key_id!r} on token {token!r}")
    if len(found) > 1:
        raise SigningRefusedError(
            f"token {token!r} holds {len(found)} {object_class.name} objects labelled {key_id!r}; refusing to guess "
            "which one signs"
        )
    return found[0]


def _scheme_of(key: Any, key_id: str) -> KeyScheme:
    key_type = key[Attribute.KEY_TYPE]
    params = bytes(key[Attribute.EC_PARAMS])
    if key_type == KeyType.EC and params == _SECP256K1_PARAMS:
        return KeyScheme.SECP256K1
    if key_type == KeyType.EC_EDWARDS and params in _ED25519_PARAMS:
        return KeyScheme.ED25519
    raise SigningRefusedError(f"key {key_id!r} is a {key_type!r} key with parameters {params.hex()}: not supported")


def _public_key_bytes(scheme: KeyScheme, ec_point: bytes) -> bytes:
    """Return the public key in :class:`KeyScheme` form from ``CKA_EC_POINT`` (DER OCTET STRING or raw)."""
    point = bytes(ec_point)
    size = 65 if scheme is KeyScheme.SECP256K1 else 32
    if len(point) != size:
        try:
            point = bytes(OctetString.load(point).native)
        except ValueError as exc:
            raise SigningError(f"the token returned an unreadable EC point: {point.hex()}") from exc
    if len(point) != size:
        raise SigningError(f"the token returned a {len(point)}-byte {scheme} public key, expected {size}")
    return compress_secp256k1(point) if scheme is KeyScheme.SECP256K1 else point
