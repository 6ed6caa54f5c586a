"""Threshold-ECDSA (DKLs23) messages between the coordinator and the nodes (MessagePack, inside the channel).

They travel wrapped in :class:`exchange_threshold.messages.Ecdsa` / ``EcdsaResult`` so the node's request union
stays small. Protocol messages between nodes are :class:`DklsWire`: sealed end to end from the sending node to the
receiving node (the coordinator relays ciphertext it cannot read or alter unnoticed).
"""

from __future__ import annotations

import msgspec

__all__ = [
    "DklsWire",
    "EcdsaAbort",
    "EcdsaForget",
    "EcdsaKeygen",
    "EcdsaKeygenDone",
    "EcdsaReplyBody",
    "EcdsaRequestBody",
    "EcdsaRound",
    "EcdsaRoundReply",
    "EcdsaSign",
    "EcdsaSignature",
    "decode_reply_body",
    "decode_request_body",
    "encode_body",
]


class DklsWire(msgspec.Struct, frozen=True):
    """One DKLs23 protocol message from node ``sender`` to node ``recipient`` (a broadcast is sent to each)."""

    sender: int
    recipient: int
    broadcast: bool
    sealed: bytes  # 12-byte nonce || ChaCha20-Poly1305 ciphertext under the pair's key


class EcdsaKeygen(msgspec.Struct, frozen=True, tag=True):
    """Start a DKLs23 key generation (``generation`` 0) or a key refresh (``generation`` > 0 of ``public_key``)."""

    session: str
    key_id: str
    threshold: int
    participants: list[int]
    generation: int = 0
    public_key: bytes = b""


class EcdsaSign(msgspec.Struct, frozen=True, tag=True):
    """Start a DKLs23 signing session of ``payload`` (a 32-byte digest) by exactly ``signers``."""

    session: str
    request_id: str
    key_id: str
    public_key: bytes
    generation: int
    signers: list[int]
    payload: bytes


class EcdsaRound(msgspec.Struct, frozen=True, tag=True):
    """The next round of a session: the protocol messages addressed to this node (and the chain-code commitments)."""

    session: str
    round: int
    messages: list[DklsWire]
    commitments: list[bytes] = []


class EcdsaAbort(msgspec.Struct, frozen=True, tag=True):
    """Forget a session (the coordinator gave it up)."""

    session: str


class EcdsaForget(msgspec.Struct, frozen=True, tag=True):
    """The coordinator recorded ``generation`` of the key: delete this node's shares of every older generation."""

    session: str
    key_id: str
    public_key: bytes
    generation: int


class EcdsaRoundReply(msgspec.Struct, frozen=True, tag=True):
    """This node's protocol messages for the others (and its chain-code commitment in key generation round 2)."""

    messages: list[DklsWire]
    commitment: bytes = b""


class EcdsaKeygenDone(msgspec.Struct, frozen=True, tag=True):
    """The node sealed its key share: the group public key (compressed) and the share's generation."""

    public_key: bytes
    generation: int


class EcdsaSignature(msgspec.Struct, frozen=True, tag=True):
    """The combined signature as this node computed it: ``r`` and ``s`` (32 bytes each)."""

    r: bytes
    s: bytes


EcdsaRequestBody = EcdsaKeygen | EcdsaSign | EcdsaRound | EcdsaAbort | EcdsaForget
EcdsaReplyBody = EcdsaRoundReply | EcdsaKeygenDone | EcdsaSignature

_request_decoder: msgspec.msgpack.Decoder[EcdsaRequestBody] = msgspec.msgpack.Decoder(EcdsaRequestBody)
_reply_decoder: msgspec.msgpack.Decoder[EcdsaReplyBody] = msgspec.msgpack.Decoder(EcdsaReplyBody)
_encoder = msgspec.msgpack.Encoder()


def encode_body(message: msgspec.Struct) -> bytes:
    """Encode an ECDSA request or reply body."""
    return _encoder.encode(message)


def decode_request_body(data: bytes) -> EcdsaRequestBody:
    """Decode a request body; raise ``msgspec.ValidationError``/``DecodeError`` on anything else."""
    return _request_decoder.decode(data)


def decode_reply_body(data: bytes) -> EcdsaReplyBody:
    """Decode a reply body; raise ``msgspec.ValidationError``/``DecodeError`` on anything else."""
    return _reply_decoder.decode(data)
