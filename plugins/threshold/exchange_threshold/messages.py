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
    "Ecdsa",
    "EcdsaResult",
    "EncryptedShare",
    "EpochReply",
    "ErrorReply",
    "KeyStatus",
    "PackageWire",
    "RefreshAbort",
    "RefreshCommit",
    "RefreshFinish",
    "RefreshFinishReply",
    "RefreshPackageWire",
    "RefreshRound1",
    "RefreshRound1Reply",
    "RefreshRound2",
    "RefreshRound2Reply",
    "RepairFinish",
    "RepairRound1",
    "RepairRound1Reply",
    "RepairRound2",
    "RepairRound2Reply",
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
    """FROST round one for a signing session on ``key_id`` with the share of ``epoch`` (refused at any other)."""

    session: str
    key_id: str
    group_public_key: bytes
    epoch: int = 0
    transcript: bytes = b""  # the epoch's transcript as the coordinator recorded it (a refresh's, or the DKG's)


class Sign(msgspec.Struct, frozen=True, tag=True):
    """FROST round two: sign ``payload`` with the session's nonces, given every signer's commitments."""

    session: str
    request_id: str
    key_id: str
    scheme: str
    group_public_key: bytes
    payload: bytes
    commitments: list[CommitmentWire]
    epoch: int = 0
    transcript: bytes = b""


class RefreshRound1(msgspec.Struct, frozen=True, tag=True):
    """Start refreshing ``key_id`` from ``epoch``: deal a zero sharing among ``dealers``, return its commitments."""

    session: str
    key_id: str
    group_public_key: bytes
    epoch: int
    dealers: list[int]
    transcript: bytes = b""  # the transcript of ``epoch``, as the coordinator recorded it


class RefreshPackageWire(msgspec.Struct, frozen=True):
    """A refresh dealer's commitments to the coefficients 1..t-1 of its zero sharing."""

    identifier: int
    commitments: list[bytes]


class RefreshRound2(msgspec.Struct, frozen=True, tag=True):
    """Every dealer's package: check them, return the encrypted sub-shares for the other dealers."""

    session: str
    packages: list[RefreshPackageWire]


class RefreshFinish(msgspec.Struct, frozen=True, tag=True):
    """The encrypted sub-shares addressed to this node: check them, keep the new share as pending."""

    session: str
    shares: list[EncryptedShare]


class RefreshCommit(msgspec.Struct, frozen=True, tag=True):
    """The coordinator recorded ``epoch``: make the pending share of that epoch (and transcript) current."""

    key_id: str
    group_public_key: bytes
    epoch: int
    transcript: bytes


class RefreshAbort(msgspec.Struct, frozen=True, tag=True):
    """The refresh to ``epoch`` did not commit: forget its pending share and session, keep the current share."""

    session: str
    key_id: str
    group_public_key: bytes
    epoch: int


class RepairRound1(msgspec.Struct, frozen=True, tag=True):
    """Helper step 1: split ``lambda_i(target) * s_i`` into parts for the other ``helpers`` (encrypted to each)."""

    session: str
    key_id: str
    group_public_key: bytes
    epoch: int
    helpers: list[int]
    target: int
    transcript: bytes = b""


class RepairRound2(msgspec.Struct, frozen=True, tag=True):
    """Helper step 2: the parts addressed to this helper; return their sum encrypted to the target."""

    session: str
    parts: list[EncryptedShare]


class RepairFinish(msgspec.Struct, frozen=True, tag=True):
    """To the node being repaired: the key's public data at ``epoch`` and the helpers' sums; rebuild, check, keep."""

    session: str
    key_id: str
    group: str
    threshold: int
    group_public_key: bytes
    epoch: int
    verifying_shares: dict[int, bytes]
    transcript: bytes
    helpers: list[int]
    parts: list[EncryptedShare]


class KeyStatus(msgspec.Struct, frozen=True, tag=True):
    """Which epoch of ``key_id`` this node holds (and any pending refresh)."""

    key_id: str
    group_public_key: bytes


class Ecdsa(msgspec.Struct, frozen=True, tag=True):
    """A threshold-ECDSA (DKLs23) request: ``body`` is one of :mod:`exchange_threshold.ecdsa_messages`' requests."""

    body: bytes


Request = (
    DkgRound1
    | DkgRound2
    | DkgFinish
    | Commit
    | Sign
    | RefreshRound1
    | RefreshRound2
    | RefreshFinish
    | RefreshCommit
    | RefreshAbort
    | RepairRound1
    | RepairRound2
    | RepairFinish
    | KeyStatus
    | Ecdsa
)


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


class RefreshRound1Reply(msgspec.Struct, frozen=True, tag=True):
    """A dealer's refresh package."""

    package: RefreshPackageWire


class RefreshRound2Reply(msgspec.Struct, frozen=True, tag=True):
    """A dealer's encrypted sub-shares for the other dealers, and the transcript hash it saw."""

    shares: list[EncryptedShare]
    transcript: bytes


class RefreshFinishReply(msgspec.Struct, frozen=True, tag=True):
    """A node prepared its new share: the new verifying share and the transcript hash."""

    verifying_share: bytes
    transcript: bytes


class RepairRound1Reply(msgspec.Struct, frozen=True, tag=True):
    """A helper's encrypted parts for the other helpers."""

    parts: list[EncryptedShare]


class RepairRound2Reply(msgspec.Struct, frozen=True, tag=True):
    """A helper's sum of parts, encrypted to the node being repaired."""

    part: EncryptedShare


class EpochReply(msgspec.Struct, frozen=True, tag=True):
    """The epoch of the share a node holds now (None: no share), and the epoch of a pending refresh, if any."""

    epoch: int | None
    pending_epoch: int | None = None


class EcdsaResult(msgspec.Struct, frozen=True, tag=True):
    """A threshold-ECDSA (DKLs23) reply: ``body`` is one of :mod:`exchange_threshold.ecdsa_messages`' replies."""

    body: bytes


class ErrorReply(msgspec.Struct, frozen=True, tag=True):
    """The node refused or failed; ``culprit`` names a participant it found misbehaving (DKG), if any."""

    message: str
    culprit: int | None = None


Reply = (
    DkgRound1Reply
    | DkgRound2Reply
    | DkgFinishReply
    | CommitReply
    | SignReply
    | RefreshRound1Reply
    | RefreshRound2Reply
    | RefreshFinishReply
    | RepairRound1Reply
    | RepairRound2Reply
    | EpochReply
    | EcdsaResult
    | ErrorReply
)

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
