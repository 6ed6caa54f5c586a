"""The devchain's transaction formats, addresses and signatures.

A transfer's body is msgpack (array form, fields in a fixed order); the signer signs ``sha256(DOMAIN || body)``
with secp256k1 ECDSA and returns ``r || s || v`` (65 bytes, low-S, the custody signers' format); the signed
transfer carries ``r || s``. The txid of any transaction is the sha256 of its full encoding. An address is bech32
with the ``dev`` prefix over the first 20 bytes of sha256 of the compressed public key.
"""

from __future__ import annotations

import hashlib

import coincurve
import msgspec
from bip_utils import Bech32Decoder, Bech32Encoder
from coincurve.ecdsa import cdata_to_der, deserialize_compact

__all__ = [
    "ADDRESS_HRP",
    "DOMAIN",
    "AnyTx",
    "Mint",
    "SignedTransfer",
    "TransferBody",
    "address_of",
    "decode_body",
    "decode_tx",
    "digest_of",
    "encode_body",
    "encode_tx",
    "is_address",
    "sign_digest",
    "txid_of",
    "verify",
]

ADDRESS_HRP = "dev"
DOMAIN = b"exchange-devchain/transfer/v1\x00"


class TransferBody(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """What a signed transfer does: ``amount`` of ``asset`` from the key ``sender`` to ``to``, paying ``fee``."""

    chain_id: str
    nonce: int
    sender: bytes  # 33-byte compressed secp256k1 public key
    to: str
    asset: str
    amount: int
    fee: int  # in the chain's native asset
    memo: str = ""


class SignedTransfer(msgspec.Struct, frozen=True, tag="transfer", array_like=True):
    """A transfer body and its 64-byte ``r || s`` signature (one encoding per transaction: no malleable txid)."""

    body: TransferBody
    signature: bytes


class Mint(msgspec.Struct, frozen=True, tag="mint", array_like=True):
    """The faucet: new coins to ``to``; ``serial`` makes each mint a distinct transaction."""

    chain_id: str
    serial: int
    to: str
    asset: str
    amount: int


AnyTx = SignedTransfer | Mint

_body_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(TransferBody)
_tx_decoder: msgspec.msgpack.Decoder[AnyTx] = msgspec.msgpack.Decoder(AnyTx)
_json_encoder = msgspec.json.Encoder()
_json_body_decoder = msgspec.json.Decoder(TransferBody)
_json_tx_decoder: msgspec.json.Decoder[AnyTx] = msgspec.json.Decoder(AnyTx)


def _encode(value: object) -> bytes:
    # msgpack integers stop at 2**64 (18.4 coins of an 18-decimal asset): larger amounts are written as JSON,
    # which keeps integers exact at any size. A msgpack array never starts with "[", so both forms decode.
    try:
        return _body_encoder.encode(value)
    except OverflowError:
        return _json_encoder.encode(value)


def encode_body(body: TransferBody) -> bytes:
    """Serialise a transfer body (the unsigned payload)."""
    return _encode(body)


def decode_body(payload: bytes) -> TransferBody:
    """Parse a transfer body; raise ``ValueError`` on anything else."""
    try:
        if payload[:1] == b"[":
            return _json_body_decoder.decode(payload)
        return _body_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"not a devchain transfer body: {exc}") from None


def encode_tx(tx: AnyTx) -> bytes:
    """Serialise a transaction as the node stores and broadcasts it."""
    return _encode(tx)


def decode_tx(raw: bytes) -> AnyTx:
    """Parse a transaction; raise ``ValueError`` on garbage."""
    try:
        if raw[:1] == b"[":
            return _json_tx_decoder.decode(raw)
        return _tx_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"not a devchain transaction: {exc}") from None


def digest_of(payload: bytes) -> bytes:
    """Return the 32-byte digest a signer signs for the transfer body ``payload``."""
    return hashlib.sha256(DOMAIN + payload).digest()


def txid_of(raw: bytes) -> str:
    """Return the txid (hex sha256) of a serialised transaction."""
    return hashlib.sha256(raw).hexdigest()


def address_of(public_key: bytes) -> str:
    """Return the address of a compressed (or uncompressed) secp256k1 public key."""
    compressed = coincurve.PublicKey(public_key).format(compressed=True)
    return str(Bech32Encoder.Encode(ADDRESS_HRP, hashlib.sha256(compressed).digest()[:20]))


def is_address(address: object) -> bool:
    """Return whether ``address`` is a well-formed devchain address (bech32 checksum, prefix and length)."""
    if not isinstance(address, str) or address != address.lower():
        return False
    try:
        program = Bech32Decoder.Decode(ADDRESS_HRP, address)
    except Exception:  # bip-utils raises several unrelated types for malformed strings
        return False
    return len(program) == 20


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest as a custody signer does: 65 bytes ``r || s || v``, low-S, ``v`` the recovery id.

    For tests and development wallets only; the exchange's keys live in its custody signers.
    """
    return bytes(coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None))


def verify(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` signs ``digest`` under ``public_key``.

    Accepted: 65 bytes ``r || s || v`` (the custody signers' secp256k1 format; ``v`` must recover ``public_key``)
    or 64 bytes ``r || s``. ``s`` must be low-S (libsecp256k1 refuses the malleable high-S form).
    """
    if len(digest) != 32 or len(signature) not in (64, 65):
        return False
    try:
        key = coincurve.PublicKey(public_key)
        if len(signature) == 65:
            if signature[64] not in (0, 1):
                return False
            recovered = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
            if recovered.format() != key.format():
                return False
        der = cdata_to_der(deserialize_compact(signature[:64]))
        return bool(key.verify(der, digest, hasher=None))
    except Exception:  # a malformed key or signature is simply not valid
        return False
