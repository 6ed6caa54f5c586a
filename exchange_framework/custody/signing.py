"""What every custody signer does around the raw signing operation: check the request, finish and verify.

A signer (HSM, software keystore, threshold service) produces raw signatures; these helpers turn them into the
formats of :class:`~exchange_framework.interfaces.KeyScheme` and refuse to return one that does not verify:

- :func:`check_request` — the signer's own checks (payload size, expected scheme) before anything is signed.
- :func:`finish_secp256k1` — raw ``r || s`` to low-S ``r || s || v`` with the recovery id, verified.
- :func:`verify_signature` — verify a finished signature (secp256k1 with libsecp256k1 via ``coincurve``, Ed25519
  with OpenSSL via ``cryptography``).
- :func:`sign_verified` — call a raw signing function, finish and verify, retry a bounded number of times, then
  raise :class:`~exchange_framework.interfaces.SignatureInvalidError` (fail closed).
- :func:`sign_transaction` — one request per digest of an
  :class:`~exchange_framework.interfaces.UnsignedTransaction`, signed in order.
- :func:`hot_wallet_signer` — the signer selected by ``[backends] keystore``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from exchange_framework.interfaces import (
    CustodySigner,
    KeyScheme,
    SignatureInvalidError,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnsignedTransaction,
)

if TYPE_CHECKING:
    import pluggy

    from exchange_framework.config import ExchangeConfig

__all__ = [
    "DEFAULT_SIGN_ATTEMPTS",
    "DIGEST_SIZE",
    "ED25519_MAX_MESSAGE",
    "SECP256K1_ORDER",
    "check_payload",
    "check_request",
    "compress_secp256k1",
    "finish_secp256k1",
    "hot_wallet_signer",
    "is_low_s",
    "normalize_low_s",
    "public_key_size",
    "recover_secp256k1",
    "select_signer",
    "sign_transaction",
    "sign_verified",
    "signature_size",
    "signing_requests",
    "verify_ed25519",
    "verify_secp256k1",
    "verify_signature",
]

log = logging.getLogger(__name__)

DIGEST_SIZE = 32  # a secp256k1 payload is exactly one 32-byte digest
ED25519_MAX_MESSAGE = 65_536  # an Ed25519 payload is the message itself; nothing a chain signs comes near this
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = SECP256K1_ORDER // 2
DEFAULT_SIGN_ATTEMPTS = 3

_PUBLIC_KEY_SIZES = {KeyScheme.SECP256K1: 33, KeyScheme.ED25519: 32}
_SIGNATURE_SIZES = {KeyScheme.SECP256K1: 65, KeyScheme.ED25519: 64}


def public_key_size(scheme: KeyScheme) -> int:
    """Return the size in bytes of a public key of ``scheme`` (33 compressed secp256k1, 32 Ed25519)."""
    return _PUBLIC_KEY_SIZES[scheme]


def signature_size(scheme: KeyScheme) -> int:
    """Return the size in bytes of a finished signature of ``scheme`` (65 secp256k1 ``r||s||v``, 64 Ed25519)."""
    return _SIGNATURE_SIZES[scheme]


# -- request checks -----------------------------------------------------------------------------------------------


def check_payload(scheme: KeyScheme, payload: bytes) -> None:
    """Raise :class:`SigningRefusedError` unless ``payload`` is something a key of ``scheme`` may sign."""
    if not isinstance(payload, bytes):
        raise SigningRefusedError(f"the payload must be bytes, not {type(payload).__name__}")
    if scheme is KeyScheme.SECP256K1:
        if len(payload) != DIGEST_SIZE:
            raise SigningRefusedError(
                f"a secp256k1 key signs a {DIGEST_SIZE}-byte digest, not {len(payload)} bytes: hash the message "
                "as the chain requires (sha256d, keccak256, ...) and send the digest"
            )
    elif scheme is KeyScheme.ED25519:
        if not 0 < len(payload) <= ED25519_MAX_MESSAGE:
            raise SigningRefusedError(
                f"an Ed25519 key signs a message of 1 to {ED25519_MAX_MESSAGE} bytes, not {len(payload)} bytes"
            )
    else:  # pragma: no cover - the enum has no other members
        raise SigningRefusedError(f"unsupported key scheme {scheme!r}")


def check_request(request: SigningRequest, key_scheme: KeyScheme) -> None:
    """Raise :class:`SigningRefusedError` if ``request`` does not fit a key of ``key_scheme``.

    The request's expected scheme, when it names one, must be the key's; the payload must suit the scheme.
    """
    if not isinstance(request, SigningRequest):
        raise SigningRefusedError(f"expected a SigningRequest, not {type(request).__name__}")
    if request.scheme is not None and request.scheme != key_scheme:
        raise SigningRefusedError(
            f"request {request.request_id!r} expects a {request.scheme} key, but key {request.key_id!r} is "
            f"{key_scheme}: refusing to sign"
        )
    check_payload(key_scheme, request.payload)


# -- secp256k1 ----------------------------------------------------------------------------------------------------


def is_low_s(signature: bytes) -> bool:
    """Return whether the ``s`` of an ``r || s`` (or ``r || s || v``) signature is in the lower half of the order."""
    return 0 < int.from_bytes(signature[32:64], "big") <= _HALF_ORDER


def normalize_low_s(signature: bytes) -> bytes:
    """Return ``r || s`` with ``s`` replaced by ``n - s`` when it is in the upper half (the same signature, BIP 62).

    Values out of range are left as they are, for verification to reject.
    """
    if len(signature) != 64:
        raise ValueError(f"a raw secp256k1 signature is 64 bytes (r || s), not {len(signature)}")
    s = int.from_bytes(signature[32:], "big")
    if _HALF_ORDER < s < SECP256K1_ORDER:
        s = SECP256K1_ORDER - s
    return signature[:32] + s.to_bytes(32, "big")


def compress_secp256k1(public_key: bytes) -> bytes:
    """Return the 33-byte compressed form of a secp256k1 public key given compressed or uncompressed."""
    try:
        return coincurve.PublicKey(public_key).format(compressed=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a secp256k1 public key: {public_key.hex()}") from exc


def _in_range(signature: bytes) -> bool:
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return 0 < r < SECP256K1_ORDER and 0 < s < SECP256K1_ORDER


def recover_secp256k1(digest: bytes, signature: bytes) -> bytes:
    """Return the compressed public key that made the 65-byte ``r || s || v`` ``signature`` over ``digest``.

    Raise ``ValueError`` if nothing can be recovered (malformed signature, ``v`` not 0-3).
    """
    if len(digest) != DIGEST_SIZE or len(signature) != 65 or signature[64] > 3 or not _in_range(signature):
        raise ValueError("need a 32-byte digest and a 65-byte r || s || v signature with v in 0..3")
    try:
        key = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except Exception as exc:  # coincurve raises plain Exception when recovery fails
        raise ValueError(f"no public key recovers from this signature: {exc}") from exc
    return key.format(compressed=True)


def verify_secp256k1(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid low-S ECDSA signature of ``digest`` by ``public_key``.

    ``signature`` is ``r || s`` (64 bytes) or ``r || s || v`` (65 bytes); with ``v`` the recovery id must also
    recover ``public_key``. A high-S signature is rejected (BIP 62/146): normalise it first if it comes from outside.
    """
    if len(digest) != DIGEST_SIZE or len(signature) not in (64, 65):
        return False
    if not _in_range(signature) or not is_low_s(signature):
        return False
    try:
        key = coincurve.PublicKey(public_key)
    except (ValueError, TypeError):
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"))
    try:
        if not key.verify(der, digest, hasher=None):
            return False
    except Exception:  # malformed input is an invalid signature, never an error
        return False
    if len(signature) == 65:
        try:
            return recover_secp256k1(digest, signature) == key.format(compressed=True)
        except ValueError:
            return False
    return True


def finish_secp256k1(public_key: bytes, digest: bytes, raw: bytes) -> bytes:
    """Turn a raw ``r || s`` from a signing device into a verified low-S ``r || s || v``.

    Raise :class:`SignatureInvalidError` if the signature does not verify for ``public_key``, or only with a
    recovery id of 2 or 3 (``r`` above the order: vanishingly rare, and most chains cannot encode it).
    """
    if len(raw) != 64:
        raise SignatureInvalidError(f"the device returned {len(raw)} bytes, not a 64-byte r || s signature")
    low = normalize_low_s(raw)
    expected = compress_secp256k1(public_key)
    for v in (0, 1):
        candidate = low + bytes([v])
        try:
            recovered = recover_secp256k1(digest, candidate)
        except ValueError:
            continue
        if recovered == expected and verify_secp256k1(expected, digest, candidate):
            return candidate
    raise SignatureInvalidError("the secp256k1 signature does not verify against the key's public key")


# -- Ed25519 ------------------------------------------------------------------------------------------------------


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid RFC 8032 Ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_signature(scheme: KeyScheme, public_key: bytes, payload: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid finished signature of ``payload`` by ``public_key`` in ``scheme``."""
    if scheme is KeyScheme.SECP256K1:
        return len(signature) == 65 and verify_secp256k1(public_key, payload, signature)
    if scheme is KeyScheme.ED25519:
        return verify_ed25519(public_key, payload, signature)
    return False


# -- signing with verification ------------------------------------------------------------------------------------


def sign_verified(
    scheme: KeyScheme,
    public_key: bytes,
    payload: bytes,
    raw_sign: Callable[[], bytes],
    *,
    attempts: int = DEFAULT_SIGN_ATTEMPTS,
    what: str = "",
) -> bytes:
    """Call ``raw_sign`` until it gives a signature that verifies, at most ``attempts`` times, and return it finished.

    ``raw_sign`` returns ``r || s`` for secp256k1 (finished here to low-S ``r || s || v``) or the Ed25519 signature.
    Each invalid signature is logged and discarded; after the last attempt :class:`SignatureInvalidError` is raised
    and nothing is returned (fail closed). ``what`` names the key in messages.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    check_payload(scheme, payload)
    for attempt in range(1, attempts + 1):
        raw = raw_sign()
        try:
            if scheme is KeyScheme.SECP256K1:
                return finish_secp256k1(public_key, payload, raw)
            if verify_ed25519(public_key, payload, raw):
                return raw
            raise SignatureInvalidError("the Ed25519 signature does not verify against the key's public key")
        except SignatureInvalidError as exc:
            log.warning("invalid %s signature from %s (attempt %d of %d): %s", scheme, what, attempt, attempts, exc)
    raise SignatureInvalidError(
        f"{what or 'the signer'} produced {attempts} invalid {scheme} signatures in a row; nothing was signed. "
        "Check the signing device (its logs, firmware, key attributes) before retrying the withdrawal"
    )


def signing_requests(
    transaction: UnsignedTransaction, *, request_id: str, scheme: KeyScheme | None = None
) -> tuple[SigningRequest, ...]:
    """Return one :class:`SigningRequest` per digest of ``transaction``, ids ``<request_id>/<index>``."""
    if not transaction.digests:
        raise SigningRefusedError(f"transaction {request_id!r} has no digests to sign")
    return tuple(
        SigningRequest(
            request_id=f"{request_id}/{index}",
            key_id=transaction.key_id,
            chain=transaction.chain,
            payload=digest,
            scheme=scheme,
        )
        for index, digest in enumerate(transaction.digests)
    )


def sign_transaction(
    signer: CustodySigner, transaction: UnsignedTransaction, *, request_id: str, scheme: KeyScheme | None = None
) -> tuple[bytes, ...]:
    """Sign every digest of a policy-approved ``transaction`` with ``signer``; return the signatures in order.

    All or nothing: the first :class:`SigningError` propagates and no signature is returned.
    """
    return tuple(
        signer.sign(request) for request in signing_requests(transaction, request_id=request_id, scheme=scheme)
    )


# -- choosing the signer ------------------------------------------------------------------------------------------


def select_signer(
    signers: Mapping[str, CustodySigner], name: str, *, setting: str = "[backends] keystore"
) -> CustodySigner:
    """Return ``signers[name]``, or raise :class:`SigningError` naming the registered signers."""
    try:
        return signers[name]
    except KeyError:
        known = ", ".join(sorted(signers)) or "none"
        raise SigningError(
            f"{setting} = {name!r}, but no plugin registers a custody signer of that name; registered: {known}. "
            "Install the plugin that provides it (pip install exchange-hsm-pkcs11 for hsm_pkcs11) or change the setting"
        ) from None


def hot_wallet_signer(pm: pluggy.PluginManager, config: ExchangeConfig) -> CustodySigner:
    """Return the hot-wallet signer selected by ``[backends] keystore`` among every registered custody signer."""
    from exchange_framework.plugins import collect_registered

    signers = collect_registered(pm, "register_custody_signers", config=config)
    return select_signer(signers, config.backends.keystore)
