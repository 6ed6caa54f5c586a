"""The messages the coordinator and the signer nodes exchange (MessagePack, inside the encrypted channel)."""

from __future__ import annotations

import msgspec

__all__ = [
    "Commit",
    "CommitReply",
    "CommitmentWire",
    "DkgFinish",
    "DkgFinishReply",
    "DkgRound1",
    "DkgRound1Reply",
    "DkgRound2",
    "DkgRound2Reply",
    "EncryptedShare",
    "ErrorReply",
    "PackageWire",
    "Reply",
    "Request",
    "Sign",
    "SignReply",
    "decode_reply",
    "decode_request",
    "encode",
]


class PackageWire(msgspec.Struct, frozen=True):
    """A DKG round-1 package: coefficient commitments and the proof of knowledge (``mu`` serialized)."""

    identifier: int
    commitments: list[bytes]
    proof_r: bytes
    proof_mu: bytes


class EncryptedShare(msgspec.Struct, frozen=True):
    """A DKG secret share ``f_sender(recipient)``, encrypted end to end from sender node to recipient node."""

    sender: int
    recipient: int
    ciphertext: bytes


class CommitmentWire(msgspec.Struct, frozen=True):
    """A signer's FROST round-one commitments."""

    identifier: int
    hiding: bytes
    binding: bytes


class DkgRound1(msgspec.Struct, frozen=True, tag=True):
    """Start a DKG session for ``key_id``: draw a polynomial, return the round-1 package."""

    session: str
    key_id: str
    group: str
    threshold: int
    participants: list[int]


class DkgRound2(msgspec.Struct, frozen=True, tag=True):
    """Every participant's round-1 package: check them, return encrypted shares for the others."""

    session: str
    packages: list[PackageWire]


class DkgFinish(msgspec.Struct, frozen=True, tag=True):
    """The encrypted shares addressed to this node: check them, store the key share."""

    session: str
    shares: list[EncryptedShare]


class Commit(msgspec.Struct, frozen=True, tag=True):
    """FROST round one for a signing session on ``key_id``."""

    session: str
    key_id: str
    group_public_key: bytes


class Sign(msgspec.Struct, frozen=True, tag=True):
    """FROST round two: sign ``payload`` with the session's nonces, given every signer's commitments."""

    session: str
    request_id: str
    key_id: str
    scheme: str
    group_public_key: bytes
    payload: bytes
    commitments: list[CommitmentWire]


Request = DkgRound1 | DkgRound2 | DkgFinish | Commit | Sign


class DkgRound1Reply(msgspec.Struct, frozen=True, tag=True):
    """A node's round-1 package."""

    package: PackageWire


class DkgRound2Reply(msgspec.Struct, frozen=True, tag=True):
    """A node's encrypted shares for the other participants, and the transcript hash it saw."""

    shares: list[EncryptedShare]
    transcript: bytes


class DkgFinishReply(msgspec.Struct, frozen=True, tag=True):
    """What a node stored: the group public key, its verifying share and the transcript hash."""

    group_public_key: bytes
    verifying_share: bytes
    transcript: bytes


class CommitReply(msgspec.Struct, frozen=True, tag=True):
    """A node's round-one commitments."""

    commitment: CommitmentWire


class SignReply(msgspec.Struct, frozen=True, tag=True):
    """A node's signature share (serialized scalar)."""

    identifier: int
    share: bytes


class ErrorReply(msgspec.Struct, frozen=True, tag=True):
    """The node refused or failed; ``culprit`` names a participant it found misbehaving (DKG), if any."""

    message: str
    culprit: int | None = None


Reply = DkgRound1Reply | DkgRound2Reply | DkgFinishReply | CommitReply | SignReply | ErrorReply

_request_decoder: msgspec.msgpack.Decoder[Request] = msgspec.msgpack.Decoder(Request)
_reply_decoder: msgspec.msgpack.Decoder[Reply] = msgspec.msgpack.Decoder(Reply)
_encoder = msgspec.msgpack.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """Encode any request or reply."""
    return _encoder.encode(message)


def decode_request(data: bytes) -> Request:
    """Decode a request; raise ``msgspec.ValidationError``/``DecodeError`` on anything else."""
    return _request_decoder.decode(data)


def decode_reply(data: bytes) -> Reply:
    """Decode a reply; raise ``msgspec.ValidationError``/``DecodeError`` on anything else."""
    return _reply_decoder.decode(data)
