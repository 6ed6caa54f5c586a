"""The two FROST ciphersuites of RFC 9591 this plugin implements: their prime-order groups and hash functions.

Group arithmetic is done by libraries, never by hand: libsodium (through PyNaCl's ``crypto_core_ed25519_*`` and
``crypto_scalarmult_ed25519_*noclamp``) for edwards25519, libsecp256k1 (through ``coincurve``) for secp256k1.
Scalars are Python integers reduced modulo the group order. Elements travel in their serialized form (32-byte
Ed25519 encoding, 33-byte SEC1 compressed secp256k1); deserializing an element validates it (canonical, on the curve,
in the prime-order subgroup, not the identity), so every element a participant sends is checked on arrival.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

import coincurve
import nacl.bindings as sodium
import nacl.exceptions

__all__ = [
    "ED25519_SHA512",
    "SECP256K1_SHA256",
    "SUITES",
    "Ciphersuite",
    "GroupError",
    "expand_message_xmd",
    "suite",
]


class GroupError(ValueError):
    """An element or scalar is malformed or invalid (not canonical, not on the curve, the identity, out of range)."""


class Ciphersuite(Protocol):
    """One RFC 9591 ciphersuite: a prime-order group with its serialization and the hashes H1-H5 (and HDKG)."""

    @property
    def name(self) -> str:
        """The RFC's name, e.g. "FROST(Ed25519, SHA-512)"."""
        ...

    @property
    def context(self) -> bytes:
        """The RFC's contextString."""
        ...

    @property
    def order(self) -> int:
        """The prime order of the group."""
        ...

    @property
    def scalar_size(self) -> int:
        """Bytes in a serialized scalar."""
        ...

    @property
    def element_size(self) -> int:
        """Bytes in a serialized element."""
        ...

    def base_mul(self, k: int) -> bytes:
        """Return the serialized element ``G * k`` (``k`` nonzero modulo the order)."""
        ...

    def mul(self, element: bytes, k: int) -> bytes:
        """Return ``element * k`` (``k`` nonzero modulo the order)."""
        ...

    def add(self, a: bytes, b: bytes) -> bytes:
        """Return ``a + b``; raise :class:`GroupError` if the sum is the identity."""
        ...

    def check_element(self, data: bytes) -> bytes:
        """Return ``data`` if it is a valid serialized non-identity element of the group, else raise GroupError."""
        ...

    def serialize_scalar(self, k: int) -> bytes:
        """Return the fixed-size encoding of the scalar ``k``."""
        ...

    def deserialize_scalar(self, data: bytes) -> int:
        """Return the scalar ``data`` encodes; raise :class:`GroupError` unless it is canonical (below the order)."""
        ...

    def h1(self, m: bytes) -> int:
        """The binding-factor hash ("rho")."""
        ...

    def h2(self, m: bytes) -> int:
        """The challenge hash."""
        ...

    def h3(self, m: bytes) -> int:
        """The nonce hash."""
        ...

    def h4(self, m: bytes) -> bytes:
        """The message hash."""
        ...

    def h5(self, m: bytes) -> bytes:
        """The commitment-list hash."""
        ...

    def hdkg(self, m: bytes) -> int:
        """The DKG proof-of-knowledge challenge hash (domain "dkg", as FROST implementations use)."""
        ...

    def random_scalar(self) -> int:
        """Return a uniformly random nonzero scalar from the OS's CSPRNG."""
        ...


# -- FROST(Ed25519, SHA-512) --------------------------------------------------------------------------------------

_ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493


@dataclass(frozen=True)
class _Ed25519Sha512:
    name: str = "FROST(Ed25519, SHA-512)"
    context: bytes = b"FROST-ED25519-SHA512-v1"
    order: int = _ED25519_ORDER
    scalar_size: int = 32
    element_size: int = 32

    def base_mul(self, k: int) -> bytes:
        try:
            return sodium.crypto_scalarmult_ed25519_base_noclamp(self._nonzero(k))
        except nacl.exceptions.RuntimeError as exc:  # pragma: no cover - only for a zero scalar, excluded above
            raise GroupError("G * k is the identity") from exc

    def mul(self, element: bytes, k: int) -> bytes:
        try:
            return sodium.crypto_scalarmult_ed25519_noclamp(self._nonzero(k), element)
        except nacl.exceptions.RuntimeError as exc:
            raise GroupError("invalid element, or the product is the identity") from exc

    def add(self, a: bytes, b: bytes) -> bytes:
        try:
            total = sodium.crypto_core_ed25519_add(a, b)
        except nacl.exceptions.RuntimeError as exc:
            raise GroupError("cannot add invalid elements") from exc
        return self.check_element(total)

    def check_element(self, data: bytes) -> bytes:
        if not isinstance(data, bytes) or len(data) != 32:
            raise GroupError("an Ed25519 element is 32 bytes")
        # canonical, on the curve, in the prime-order subgroup and not of small order (the identity included)
        if not sodium.crypto_core_ed25519_is_valid_point(data):
            raise GroupError(f"{data.hex()} is not a valid Ed25519 element of the prime-order subgroup")
        return data

    def serialize_scalar(self, k: int) -> bytes:
        return (k % self.order).to_bytes(32, "little")

    def deserialize_scalar(self, data: bytes) -> int:
        if len(data) != 32:
            raise GroupError("an Ed25519 scalar is 32 bytes")
        k = int.from_bytes(data, "little")
        if k >= self.order:
            raise GroupError("the scalar is not reduced modulo the group order")
        return k

    def _hash(self, *parts: bytes) -> int:
        return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little") % self.order

    def h1(self, m: bytes) -> int:
        return self._hash(self.context, b"rho", m)

    def h2(self, m: bytes) -> int:
        return self._hash(m)  # no prefix: the challenge of RFC 8032, so signatures are plain Ed25519

    def h3(self, m: bytes) -> int:
        return self._hash(self.context, b"nonce", m)

    def h4(self, m: bytes) -> bytes:
        return hashlib.sha512(self.context + b"msg" + m).digest()

    def h5(self, m: bytes) -> bytes:
        return hashlib.sha512(self.context + b"com" + m).digest()

    def hdkg(self, m: bytes) -> int:
        return self._hash(self.context, b"dkg", m)

    def random_scalar(self) -> int:
        return 1 + secrets.randbelow(self.order - 1)

    def _nonzero(self, k: int) -> bytes:
        k %= self.order
        if k == 0:
            raise GroupError("scalar multiplication by zero")
        return k.to_bytes(32, "little")


# -- FROST(secp256k1, SHA-256) ------------------------------------------------------------------------------------

_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """``expand_message_xmd`` of RFC 9380 (section 5.3.1) with SHA-256."""
    b_size, r_size = 32, 64
    ell = -(-length // b_size)
    if ell > 255 or length > 65535 or len(dst) > 255:
        raise ValueError("expand_message_xmd: requested length or DST too long")
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha256(bytes(r_size) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    blocks = [hashlib.sha256(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, blocks[-1], strict=True))
        blocks.append(hashlib.sha256(mixed + bytes([i]) + dst_prime).digest())
    return b"".join(blocks)[:length]


@dataclass(frozen=True)
class _Secp256k1Sha256:
    name: str = "FROST(secp256k1, SHA-256)"
    context: bytes = b"FROST-secp256k1-SHA256-v1"
    order: int = _SECP256K1_ORDER
    scalar_size: int = 32
    element_size: int = 33

    def base_mul(self, k: int) -> bytes:
        return coincurve.PublicKey.from_secret(self._nonzero(k)).format(compressed=True)

    def mul(self, element: bytes, k: int) -> bytes:
        try:
            return coincurve.PublicKey(self.check_element(element)).multiply(self._nonzero(k)).format(compressed=True)
        except ValueError as exc:
            raise GroupError("invalid element or scalar") from exc

    def add(self, a: bytes, b: bytes) -> bytes:
        try:
            total = coincurve.PublicKey.combine_keys([coincurve.PublicKey(a), coincurve.PublicKey(b)])
        except (ValueError, TypeError) as exc:  # the identity (a = -b), or invalid input
            raise GroupError("cannot add: invalid elements, or the sum is the identity") from exc
        return total.format(compressed=True)

    def check_element(self, data: bytes) -> bytes:
        if not isinstance(data, bytes) or len(data) != 33 or data[0] not in (2, 3):
            raise GroupError("a secp256k1 element is 33 bytes, SEC1 compressed")
        try:
            coincurve.PublicKey(data)
        except (ValueError, TypeError) as exc:
            raise GroupError(f"{data.hex()} is not a point of secp256k1") from exc
        return data

    def serialize_scalar(self, k: int) -> bytes:
        return (k % self.order).to_bytes(32, "big")

    def deserialize_scalar(self, data: bytes) -> int:
        if len(data) != 32:
            raise GroupError("a secp256k1 scalar is 32 bytes")
        k = int.from_bytes(data, "big")
        if k >= self.order:
            raise GroupError("the scalar is not reduced modulo the group order")
        return k

    def _field(self, tag: bytes, m: bytes) -> int:
        # hash_to_field of RFC 9380 with expand_message_xmd(SHA-256), L = 48, one element
        return int.from_bytes(expand_message_xmd(m, self.context + tag, 48), "big") % self.order

    def h1(self, m: bytes) -> int:
        return self._field(b"rho", m)

    def h2(self, m: bytes) -> int:
        return self._field(b"chal", m)

    def h3(self, m: bytes) -> int:
        return self._field(b"nonce", m)

    def h4(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context + b"msg" + m).digest()

    def h5(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context + b"com" + m).digest()

    def hdkg(self, m: bytes) -> int:
        return self._field(b"dkg", m)

    def random_scalar(self) -> int:
        return 1 + secrets.randbelow(self.order - 1)

    def _nonzero(self, k: int) -> bytes:
        k %= self.order
        if k == 0:
            raise GroupError("scalar multiplication by zero")
        return k.to_bytes(32, "big")


ED25519_SHA512: Ciphersuite = _Ed25519Sha512()
SECP256K1_SHA256: Ciphersuite = _Secp256k1Sha256()
SUITES: dict[str, Ciphersuite] = {"ed25519": ED25519_SHA512, "secp256k1": SECP256K1_SHA256}


def suite(group: str) -> Ciphersuite:
    """Return the ciphersuite of ``group`` ("ed25519" or "secp256k1"); raise ``ValueError`` for any other name."""
    try:
        return SUITES[group]
    except KeyError:
        raise ValueError(f"unknown FROST group {group!r}: expected one of {sorted(SUITES)}") from None
