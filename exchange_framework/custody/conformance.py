"""The signer conformance kit: checks any :class:`~exchange_framework.interfaces.CustodySigner` against its contract.

Run it from a plugin's own tests, against a real signer (a real HSM token, a real keystore directory)::

    from exchange_framework.custody.conformance import CHECKS, run_check

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
    def test_my_signer_conforms(check, my_signer):
        for scheme in sorted(my_signer.schemes):
            run_check(check, my_signer, scheme)

or all at once with :func:`run_conformance`. Each check creates its own keys (ids start with ``key_prefix``), so run
it against a token or directory made for the test. Signatures are verified with libraries independent of the ones
the kernel's own helpers use: ``cryptography`` (OpenSSL) for secp256k1 and PyNaCl (libsodium) for Ed25519, plus
``coincurve`` (libsecp256k1) for public key recovery. A failed check raises :class:`ConformanceError`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from exchange_framework.custody.signing import DIGEST_SIZE, ED25519_MAX_MESSAGE, SECP256K1_ORDER
from exchange_framework.interfaces import (
    CustodySigner,
    KeyExistsError,
    KeyScheme,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)

__all__ = ["CHECKS", "Check", "ConformanceError", "independent_verify", "run_check", "run_conformance"]

SIGNATURES_PER_CHECK = 16  # enough to catch an intermittent high-S or bad recovery id with high probability


class ConformanceError(AssertionError):
    """A signer broke its contract; the message names the check and what was wrong."""


@dataclass(frozen=True)
class Check:
    """One conformance check: ``run(signer, scheme, key_prefix)`` raises :class:`ConformanceError` on failure."""

    name: str
    description: str
    run: Callable[[CustodySigner, KeyScheme, str], None]
    schemes: frozenset[KeyScheme] = frozenset(KeyScheme)  # the schemes it applies to


def run_check(check: Check, signer: CustodySigner, scheme: KeyScheme, *, key_prefix: str = "conformance") -> bool:
    """Run ``check`` for ``scheme`` if it applies; return whether it ran. Raise :class:`ConformanceError`."""
    if scheme not in check.schemes:
        return False
    check.run(signer, scheme, key_prefix)
    return True


def run_conformance(
    signer: CustodySigner, *, schemes: Iterable[KeyScheme] | None = None, key_prefix: str = "conformance"
) -> list[str]:
    """Run every check for every scheme (default: all the signer supports); return ``check/scheme`` names run."""
    ran: list[str] = []
    for scheme in sorted(signer.schemes if schemes is None else schemes):
        for check in CHECKS:
            if run_check(check, signer, scheme, key_prefix=key_prefix):
                ran.append(f"{check.name}/{scheme}")
    return ran


def independent_verify(scheme: KeyScheme, public_key: bytes, payload: bytes, signature: bytes) -> bool:
    """Verify a finished signature with a library other than the kernel's helpers (OpenSSL, libsodium)."""
    if scheme is KeyScheme.SECP256K1:
        if len(signature) != 65 or len(payload) != DIGEST_SIZE:
            return False
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"))
            key.verify(der, payload, ec.ECDSA(Prehashed(hashes.SHA256())))
        except (InvalidSignature, ValueError):
            return False
        return True
    import nacl.exceptions
    import nacl.signing

    try:
        nacl.signing.VerifyKey(public_key).verify(payload, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    return True


# -- the checks ---------------------------------------------------------------------------------------------------


def _fail(check: str, scheme: KeyScheme, message: str) -> ConformanceError:
    return ConformanceError(f"{check} [{scheme}]: {message}")


def _key_id(prefix: str, check: str, scheme: KeyScheme) -> str:
    return f"{prefix}-{check.replace('_', '-')}-{scheme}-{secrets.token_hex(4)}"


def _payload(scheme: KeyScheme, i: int) -> bytes:
    if scheme is KeyScheme.SECP256K1:
        return hashlib.sha256(b"conformance digest %d" % i).digest()
    return b"conformance message %d " % i + secrets.token_bytes(i % 7 * 40)


def _request(key_id: str, payload: bytes, scheme: KeyScheme | None, n: int = 0) -> SigningRequest:
    return SigningRequest(
        request_id=f"conformance-{n}", key_id=key_id, chain="conformance", payload=payload, scheme=scheme
    )


def _expect(check: str, scheme: KeyScheme, error: type[SigningError], what: str, call: Callable[[], object]) -> None:
    try:
        result = call()
    except error:
        return
    except SigningError as exc:
        raise _fail(check, scheme, f"{what}: raised {type(exc).__name__}, expected {error.__name__}") from exc
    except Exception as exc:
        raise _fail(check, scheme, f"{what}: raised {type(exc).__name__} ({exc}), not a SigningError") from exc
    raise _fail(check, scheme, f"{what}: returned {result!r} instead of raising {error.__name__}")


def _check_public_key(check: str, scheme: KeyScheme, public_key: object) -> bytes:
    if not isinstance(public_key, bytes):
        raise _fail(check, scheme, f"public key is {type(public_key).__name__}, not bytes")
    try:
        if scheme is KeyScheme.SECP256K1:
            if len(public_key) != 33 or public_key[0] not in (2, 3):
                raise ValueError("not a 33-byte compressed point")
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
        else:
            if len(public_key) != 32:
                raise ValueError("not 32 bytes")
            import nacl.signing

            nacl.signing.VerifyKey(public_key)
    except ValueError as exc:
        raise _fail(check, scheme, f"public key {public_key.hex()} is not a valid {scheme} key: {exc}") from exc
    return public_key


def _create_key_returns_public_key(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "create_key_returns_public_key"
    key_id = _key_id(prefix, name, scheme)
    public_key = _check_public_key(name, scheme, signer.create_key(key_id, scheme))
    if signer.key_scheme(key_id) != scheme:
        raise _fail(name, scheme, f"key_scheme({key_id!r}) is {signer.key_scheme(key_id)!r}")
    other = _check_public_key(name, scheme, signer.create_key(_key_id(prefix, name, scheme), scheme))
    if other == public_key:
        raise _fail(name, scheme, "two new keys have the same public key")


def _public_key_is_stable(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "public_key_is_stable"
    key_id = _key_id(prefix, name, scheme)
    created = signer.create_key(key_id, scheme)
    for _ in range(3):
        if signer.public_key(key_id) != created:
            raise _fail(name, scheme, "public_key() differs from what create_key() returned")


def _keys_are_never_replaced(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "keys_are_never_replaced"
    key_id = _key_id(prefix, name, scheme)
    created = signer.create_key(key_id, scheme)
    for again in sorted(signer.schemes):
        _expect(
            name,
            scheme,
            KeyExistsError,
            f"create_key on an existing id ({again})",
            partial(signer.create_key, key_id, again),
        )
    if signer.public_key(key_id) != created:
        raise _fail(name, scheme, "the public key changed after a refused create_key")


def _signatures_verify_independently(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "signatures_verify_independently"
    key_id = _key_id(prefix, name, scheme)
    public_key = signer.create_key(key_id, scheme)
    for i in range(SIGNATURES_PER_CHECK):
        payload = _payload(scheme, i)
        for expected in (scheme, None):  # with and without the request naming the scheme
            signature = signer.sign(_request(key_id, payload, expected, i))
            if not isinstance(signature, bytes):
                raise _fail(name, scheme, f"sign() returned {type(signature).__name__}, not bytes")
            if not independent_verify(scheme, public_key, payload, signature):
                raise _fail(name, scheme, f"signature {signature.hex()} of {payload.hex()} does not verify")


def _secp256k1_low_s_and_recovery_id(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "secp256k1_low_s_and_recovery_id"
    key_id = _key_id(prefix, name, scheme)
    public_key = signer.create_key(key_id, scheme)
    for i in range(SIGNATURES_PER_CHECK):
        digest = _payload(scheme, i)
        signature = signer.sign(_request(key_id, digest, scheme, i))
        if len(signature) != 65:
            raise _fail(name, scheme, f"signature is {len(signature)} bytes, not 65 (r || s || v)")
        if not 0 < int.from_bytes(signature[32:64], "big") <= SECP256K1_ORDER // 2:
            raise _fail(name, scheme, f"signature {signature.hex()} is not low-S")
        if signature[64] not in (0, 1):
            raise _fail(name, scheme, f"recovery id is {signature[64]}, not 0 or 1")
        recovered = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
        if recovered.format(compressed=True) != public_key:
            raise _fail(name, scheme, f"the recovery id of {signature.hex()} does not recover the key's public key")


def _signature_binds_payload_and_key(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "signature_binds_payload_and_key"
    key_id, other_id = _key_id(prefix, name, scheme), _key_id(prefix, name, scheme)
    public_key, other_key = signer.create_key(key_id, scheme), signer.create_key(other_id, scheme)
    payload, different = _payload(scheme, 1), _payload(scheme, 2)
    signature = signer.sign(_request(key_id, payload, scheme))
    if independent_verify(scheme, public_key, different, signature):
        raise _fail(name, scheme, "a signature verifies for a payload it did not sign")
    if independent_verify(scheme, other_key, payload, signature):
        raise _fail(name, scheme, "a signature verifies for another key")
    if signer.sign(_request(other_id, payload, scheme)) == signature:
        raise _fail(name, scheme, "two keys gave the same signature")


def _refuses_bad_payloads(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "refuses_bad_payloads"
    key_id = _key_id(prefix, name, scheme)
    signer.create_key(key_id, scheme)
    if scheme is KeyScheme.SECP256K1:
        bad = [b"", b"\x01" * 31, b"\x01" * 33, b"\x01" * 64, b"raw transaction bytes, not a digest"]
    else:
        bad = [b"", b"\x01" * (ED25519_MAX_MESSAGE + 1)]
    for payload in bad:
        for expected in (scheme, None):
            _expect(
                name,
                scheme,
                SigningRefusedError,
                f"signing a {len(payload)}-byte payload",
                partial(signer.sign, _request(key_id, payload, expected)),
            )


def _refuses_unknown_keys(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "refuses_unknown_keys"
    missing = _key_id(prefix, name, scheme)
    _expect(
        name,
        scheme,
        UnknownKeyError,
        "sign() with an unknown key",
        lambda: signer.sign(_request(missing, _payload(scheme, 0), scheme)),
    )
    _expect(name, scheme, UnknownKeyError, "public_key() of an unknown key", lambda: signer.public_key(missing))
    _expect(name, scheme, UnknownKeyError, "key_scheme() of an unknown key", lambda: signer.key_scheme(missing))


def _refuses_wrong_scheme(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "refuses_wrong_scheme"
    key_id = _key_id(prefix, name, scheme)
    signer.create_key(key_id, scheme)
    for other in KeyScheme:
        if other is scheme:
            continue
        for payload in (_payload(scheme, 0), _payload(other, 0)):
            _expect(
                name,
                scheme,
                SigningRefusedError,
                f"a request expecting a {other} key",
                partial(signer.sign, _request(key_id, payload, other)),
            )


def _refuses_unsupported_schemes(signer: CustodySigner, scheme: KeyScheme, prefix: str) -> None:
    name = "refuses_unsupported_schemes"
    for unsupported in set(KeyScheme) - set(signer.schemes):
        _expect(
            name,
            scheme,
            SigningRefusedError,
            f"create_key for unsupported {unsupported}",
            partial(signer.create_key, _key_id(prefix, name, unsupported), unsupported),
        )


CHECKS: tuple[Check, ...] = (
    Check(
        "create_key_returns_public_key",
        "new keys return valid, distinct public keys of the scheme",
        _create_key_returns_public_key,
    ),
    Check("public_key_is_stable", "public_key() returns what create_key() did, every time", _public_key_is_stable),
    Check(
        "keys_are_never_replaced",
        "create_key() on a taken id raises KeyExistsError, key unchanged",
        _keys_are_never_replaced,
    ),
    Check(
        "signatures_verify_independently",
        "signatures verify with OpenSSL or libsodium",
        _signatures_verify_independently,
    ),
    Check(
        "secp256k1_low_s_and_recovery_id",
        "65-byte r||s||v, low-S, v in {0, 1} recovers the public key",
        _secp256k1_low_s_and_recovery_id,
        frozenset({KeyScheme.SECP256K1}),
    ),
    Check(
        "signature_binds_payload_and_key",
        "a signature verifies for its own payload and key only",
        _signature_binds_payload_and_key,
    ),
    Check(
        "refuses_bad_payloads", "wrong-size digests and empty messages raise SigningRefusedError", _refuses_bad_payloads
    ),
    Check("refuses_unknown_keys", "unknown key ids raise UnknownKeyError", _refuses_unknown_keys),
    Check(
        "refuses_wrong_scheme", "a request expecting another scheme raises SigningRefusedError", _refuses_wrong_scheme
    ),
    Check(
        "refuses_unsupported_schemes",
        "create_key() for a scheme not in .schemes is refused",
        _refuses_unsupported_schemes,
    ),
)
