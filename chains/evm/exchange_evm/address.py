"""EVM addresses: Keccak-256, EIP-55 mixed-case checksums and the address of a secp256k1 public key."""

from __future__ import annotations

import coincurve
from Crypto.Hash import keccak

__all__ = [
    "address_bytes",
    "address_of_public_key",
    "is_checksum_address",
    "keccak256",
    "to_checksum_address",
]

_HEX = frozenset("0123456789abcdefABCDEF")


def keccak256(data: bytes) -> bytes:
    """Return the Keccak-256 digest of ``data`` (Ethereum's hash, not NIST SHA3-256)."""
    return keccak.new(digest_bits=256, data=data).digest()


def to_checksum_address(address: bytes | str) -> str:
    """Return the EIP-55 form of a 20-byte address (bytes, or hex in any case)."""
    raw = address if isinstance(address, bytes) else address_bytes(address)
    if len(raw) != 20:
        raise ValueError(f"an EVM address is 20 bytes, got {len(raw)}")
    lower = raw.hex()
    nibbles = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(n, 16) >= 8 else c for c, n in zip(lower, nibbles[:40], strict=True))


def is_checksum_address(address: object) -> bool:
    """Return whether ``address`` is ``0x`` + 40 hex digits in exactly its EIP-55 mixed-case form."""
    if not isinstance(address, str) or len(address) != 42 or not address.startswith("0x"):
        return False
    if not set(address[2:]) <= _HEX:
        return False
    return to_checksum_address(address) == address


def address_bytes(address: str) -> bytes:
    """Return the 20 bytes of a ``0x``-prefixed hex address in any case; ``ValueError`` if it is not one."""
    if not isinstance(address, str) or len(address) != 42 or not address.startswith("0x"):
        raise ValueError(f"{address!r} is not a 0x-prefixed 20-byte hex address")
    if not set(address[2:]) <= _HEX:
        raise ValueError(f"{address!r} has characters that are not hex digits")
    return bytes.fromhex(address[2:])


def address_of_public_key(public_key: bytes) -> str:
    """Return the EIP-55 address of a secp256k1 public key (33-byte compressed or 65-byte uncompressed SEC1)."""
    try:
        point = coincurve.PublicKey(bytes(public_key)).format(compressed=False)
    except Exception as exc:  # coincurve raises ValueError/TypeError for malformed points
        raise ValueError(f"not a secp256k1 public key: {exc}") from None
    return to_checksum_address(keccak256(point[1:])[12:])
