"""Cosmos SDK account addresses: bech32 (``cosmos1...`` or another HRP) of HASH160 of the compressed secp256k1 key."""

from __future__ import annotations

from bip_utils import Bech32Decoder, Bech32Encoder, Hash160

__all__ = ["address_of_public_key", "is_address"]


def address_of_public_key(public_key: bytes, hrp: str = "cosmos") -> str:
    """The account address of a 33-byte compressed secp256k1 public key: bech32(hrp, RIPEMD160(SHA256(key)))."""
    if len(public_key) != 33 or public_key[0] not in (2, 3):
        raise ValueError("a Cosmos account key is a 33-byte compressed secp256k1 public key")
    return str(Bech32Encoder.Encode(hrp, Hash160.QuickDigest(public_key)))


def is_address(address: str, hrp: str = "cosmos") -> bool:
    """Whether ``address`` is a lower-case bech32 account address (20 bytes) with ``hrp``, checksum included."""
    if not isinstance(address, str) or address != address.lower() or not address.startswith(hrp + "1"):
        return False
    try:
        return len(Bech32Decoder.Decode(hrp, address)) == 20
    except Exception:  # bip-utils raises several error types for a bad checksum, length or character
        return False
