"""Addresses and output scripts of one network: segwit (bech32/bech32m) and base58check, and BIP84 deposit keys.

Codecs are bip-utils' (the checksum rules of BIP173 and BIP350, including which of bech32 and bech32m goes with
which witness version); this module maps addresses to the output scripts that pay them and back, with the
network's own prefixes.
"""

from __future__ import annotations

from bip_utils import Base58Decoder, Base58Encoder, Hash160, SegwitBech32Decoder, SegwitBech32Encoder

from exchange_bitcoin.network import NetworkParams
from exchange_framework.chains.hd import HdError, derive_public_key

__all__ = [
    "address_of_script",
    "deposit_public_key",
    "normalize_xpub",
    "p2wpkh_address",
    "p2wpkh_script",
    "script_of_address",
]

# SLIP-132 public versions (xpub, ypub, zpub, tpub, upub, vpub, Ltub, Mtub) -> all read as BIP32 public keys.
_PUBLIC_VERSIONS = {
    "0488b21e", "049d7cb2", "04b24746", "043587cf", "044a5262", "045f1c6f", "019da462", "01b26ef6",
}  # fmt: skip
_PRIVATE_VERSIONS = {
    "0488ade4", "049d7878", "04b2430c", "04358394", "044a4e28", "045f18bc", "019d9cfe", "01b26792",
}  # fmt: skip
_XPUB_VERSION = bytes.fromhex("0488b21e")


def p2wpkh_script(public_key: bytes) -> bytes:
    """Return the P2WPKH output script (``OP_0 <hash160(pubkey)>``) of a 33-byte compressed public key."""
    if len(public_key) != 33 or public_key[0] not in (2, 3):
        raise ValueError("a P2WPKH key must be a 33-byte compressed secp256k1 public key")
    return b"\x00\x14" + bytes(Hash160.QuickDigest(public_key))


def p2wpkh_address(public_key: bytes, params: NetworkParams) -> str:
    """Return the bech32 P2WPKH address of ``public_key`` on ``params``' network."""
    return str(SegwitBech32Encoder.Encode(params.hrp, 0, Hash160.QuickDigest(public_key)))


def script_of_address(address: str, params: NetworkParams) -> bytes:
    """Return the output script paying ``address``; raise ``ValueError`` saying what is wrong with it.

    Accepted: segwit v0 (P2WPKH, P2WSH), v1 (P2TR) and later versions (valid recipients, as BIP350 requires),
    with this network's HRP; base58check P2PKH and P2SH with this network's version bytes.
    """
    if not isinstance(address, str) or not address or len(address) > 90:
        raise ValueError(f"not an address: {address!r}")
    if address.lower().startswith(params.hrp + "1"):
        try:
            version, program = SegwitBech32Decoder.Decode(params.hrp, address)
        except Exception as exc:  # bip-utils raises checksum and format errors of several types
            raise ValueError(f"{address!r} is not a valid segwit address for HRP {params.hrp!r}: {exc}") from None
        opcode = 0 if version == 0 else 0x50 + version
        return bytes([opcode, len(program)]) + bytes(program)
    try:
        raw = bytes(Base58Decoder.CheckDecode(address))
    except Exception as exc:
        raise ValueError(
            f"{address!r} is neither a {params.hrp}1... segwit address nor a valid base58check address: {exc}"
        ) from None
    if len(raw) != 21:
        raise ValueError(f"{address!r}: a base58check address carries 21 bytes, this one {len(raw)}")
    version, payload = raw[0], raw[1:]
    if version in params.p2pkh_versions:
        return b"\x76\xa9\x14" + payload + b"\x88\xac"
    if version in params.p2sh_versions:
        return b"\xa9\x14" + payload + b"\x87"
    raise ValueError(f"{address!r} has version byte {version:#04x}, which is not an address of {params.chain_id}")


def address_of_script(script: bytes, params: NetworkParams) -> str | None:
    """Return the address ``script`` pays on this network, or ``None`` for a script with no standard address."""
    n = len(script)
    if n >= 4 and (script[0] == 0 or 0x51 <= script[0] <= 0x60) and script[1] == n - 2 and 2 <= n - 2 <= 40:
        version = 0 if script[0] == 0 else script[0] - 0x50
        if version == 0 and n - 2 not in (20, 32):
            return None
        return str(SegwitBech32Encoder.Encode(params.hrp, version, script[2:]))
    if n == 25 and script[:3] == b"\x76\xa9\x14" and script[23:] == b"\x88\xac":
        return str(Base58Encoder.CheckEncode(bytes([params.p2pkh_versions[0]]) + script[3:23]))
    if n == 23 and script[:2] == b"\xa9\x14" and script[22:] == b"\x87":
        return str(Base58Encoder.CheckEncode(bytes([params.p2sh_versions[0]]) + script[2:22]))
    return None


def normalize_xpub(extended_key: str) -> str:
    """Return ``extended_key`` (xpub, zpub, tpub, vpub, Ltub, ...) re-encoded with xpub version bytes.

    SLIP-132 prefixes only name the script type an exporter had in mind; the key (depth, chain code, public key) is
    the same, and this adapter always derives P2WPKH. Raise :class:`HdError` for a private key or garbage.
    """
    try:
        raw = bytes(Base58Decoder.CheckDecode(extended_key))
    except Exception as exc:
        raise HdError(f"the deposit key is not a base58check extended public key ({exc})") from None
    if len(raw) != 78:
        raise HdError(f"an extended key is 78 bytes, this one {len(raw)}")
    version = raw[:4].hex()
    if version in _PRIVATE_VERSIONS:
        raise HdError("the deposit key is an extended PRIVATE key: configure the account's xpub/zpub instead")
    if version not in _PUBLIC_VERSIONS:
        raise HdError(f"unknown extended key version {version}: expected an xpub, zpub, tpub, vpub, Ltub or Mtub")
    return str(Base58Encoder.CheckEncode(_XPUB_VERSION + raw[4:]))


def deposit_public_key(account_xpub: str, chain: int, index: int) -> bytes:
    """Return the public key at ``<chain>/<index>`` below a BIP84 account key (m/84'/coin'/account')."""
    return derive_public_key(normalize_xpub(account_xpub), (chain, index))
