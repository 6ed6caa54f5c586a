"""The node's side of proactive refresh and share repair (the messages ``Refresh*``, ``Repair*`` and ``KeyStatus``).

Secret values between nodes (refresh sub-shares, repair parts and sums) travel through the coordinator encrypted end
to end with ChaCha20-Poly1305 under ``HKDF(X25519(static_i, static_j), salt, info = label || key id || epoch ||
i>j)``, a fresh random nonce each. For a refresh the salt is the refresh transcript (every dealer's commitments), so a
coordinator showing different broadcasts to different nodes makes decryption fail. For a repair the salt binds the
session, the helper set, the target and the key's public data at that epoch (:func:`key_view`): the node being
repaired computes it from what the coordinator tells it, so a coordinator lying about the verifying shares makes
every helper's sum fail to decrypt.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange_framework.custody.keystore import KEY_ID_PATTERN
from exchange_threshold.dkg import KeyShare
from exchange_threshold.groups import GroupError, suite
from exchange_threshold.messages import (
    EncryptedShare,
    EpochReply,
    KeyStatus,
    RefreshAbort,
    RefreshCommit,
    RefreshFinish,
    RefreshFinishReply,
    RefreshPackageWire,
    RefreshRound1,
    RefreshRound1Reply,
    RefreshRound2,
    RefreshRound2Reply,
    RepairFinish,
    RepairRound1,
    RepairRound1Reply,
    RepairRound2,
    RepairRound2Reply,
    Reply,
)
from exchange_threshold.refresh import RefreshError, RefreshPackage, RefreshParticipant, refresh_context
from exchange_threshold.repair import RepairError, check_repair_set, repair_split, repair_sum
from exchange_threshold.shares import ShareBook

__all__ = ["REFRESH_REQUESTS", "RefreshService", "key_view", "pair_key"]

REFRESH_REQUESTS = (
    RefreshRound1,
    RefreshRound2,
    RefreshFinish,
    RefreshCommit,
    RefreshAbort,
    RepairRound1,
    RepairRound2,
    RepairFinish,
    KeyStatus,
)
SESSIONS_MAX = 64  # refresh and repair sessions in flight on one node; the oldest are dropped beyond this

_RefreshRequest = (
    RefreshRound1
    | RefreshRound2
    | RefreshFinish
    | RefreshCommit
    | RefreshAbort
    | RepairRound1
    | RepairRound2
    | RepairFinish
    | KeyStatus
)


def pair_key(
    static: X25519PrivateKey, peer: bytes, salt: bytes, label: str, key_id: str, epoch: int, sender: int, recipient: int
) -> bytes:
    """The key that encrypts one secret value end to end from node ``sender`` to node ``recipient``."""
    secret = static.exchange(X25519PublicKey.from_public_bytes(peer))
    info = f"exchange-threshold/{label}/v1\x00{key_id}\x00{epoch}\x00{sender}>{recipient}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def _seal(key: bytes, plaintext: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, None)


def _open(key: bytes, data: bytes) -> bytes:
    return ChaCha20Poly1305(key).decrypt(data[:12], data[12:], None)


def key_view(
    group: str,
    threshold: int,
    group_public_key: bytes,
    epoch: int,
    verifying_shares: Mapping[int, bytes],
    transcript: bytes,
) -> bytes:
    """A hash of a key's public data at one epoch: what the helpers and the node being repaired must agree on."""
    h = hashlib.sha256(b"exchange-threshold/key-view/v1\x00" + group.encode() + b"\x00")
    h.update(threshold.to_bytes(2, "big") + epoch.to_bytes(8, "big") + group_public_key + transcript)
    for i in sorted(verifying_shares):
        h.update(i.to_bytes(2, "big") + verifying_shares[i])
    return h.digest()


def _repair_salt(session: str, key_id: str, epoch: int, helpers: Sequence[int], target: int, view: bytes) -> bytes:
    ids = ",".join(str(i) for i in sorted(helpers))
    return hashlib.sha256(
        f"exchange-threshold/repair/v1\x00{session}\x00{key_id}\x00{epoch}\x00{ids}>{target}".encode() + view
    ).digest()


@dataclass
class _RefreshSession:
    key_id: str
    group_public_key: bytes
    epoch: int
    participant: RefreshParticipant
    transcript: bytes | None = None
    started: float = 0.0


@dataclass(frozen=True)
class _RepairSession:
    key_id: str
    epoch: int
    helpers: tuple[int, ...]
    target: int
    own_part: int
    salt: bytes
    group: str


class RefreshService:
    """Answers the refresh, repair and status requests for one node (its identifier, pinned peers and shares)."""

    def __init__(
        self,
        identifier: int,
        peers: Mapping[int, bytes],
        identity: X25519PrivateKey,
        book: ShareBook,
        *,
        guard_seconds: float = 60.0,
    ) -> None:
        self.identifier = identifier
        self.guard_seconds = guard_seconds  # a refresh in progress (or prepared, not committed) blocks another
        self.peers = peers
        self.identity = identity
        self.book = book
        self._lock = threading.Lock()
        self._refresh: dict[str, _RefreshSession] = {}
        self._repair: dict[str, _RepairSession] = {}

    def handle(self, request: _RefreshRequest) -> Reply:
        """Answer one request; raise :class:`RefreshError`/:class:`RepairError`/``SigningError`` to refuse."""
        if isinstance(request, RefreshRound1):
            return self._refresh_round1(request)
        if isinstance(request, RefreshRound2):
            return self._refresh_round2(request)
        if isinstance(request, RefreshFinish):
            return self._refresh_finish(request)
        if isinstance(request, RefreshCommit):
            share = self.book.current(request.key_id, request.group_public_key, request.epoch, request.transcript)
            return EpochReply(share.epoch)
        if isinstance(request, RefreshAbort):  # only that session's: another coordinator's refresh is left alone
            with self._lock:
                self._refresh.pop(request.session, None)
            self.book.drop_pending(request.key_id, request.group_public_key, request.epoch, request.session)
            return EpochReply(*self.book.status(request.key_id, request.group_public_key))
        if isinstance(request, RepairRound1):
            return self._repair_round1(request)
        if isinstance(request, RepairRound2):
            return self._repair_round2(request)
        if isinstance(request, RepairFinish):
            return self._repair_finish(request)
        return EpochReply(*self.book.status(request.key_id, request.group_public_key))

    def _remember(
        self, table: dict[str, _RefreshSession] | dict[str, _RepairSession], session: str, value: object
    ) -> None:
        with self._lock:
            if session in self._refresh or session in self._repair:
                raise RefreshError(f"session {session} exists")
            while len(table) >= SESSIONS_MAX:
                del table[next(iter(table))]
            table[session] = value  # type: ignore[assignment]  # the caller pairs each table with its own kind

    # -- refresh ---------------------------------------------------------------------------------------------------

    def _refresh_round1(self, r: RefreshRound1) -> Reply:
        if any(i != self.identifier and i not in self.peers for i in r.dealers):
            raise RefreshError("the dealers must be this node and peers pinned in its configuration")
        share = self.book.current(r.key_id, r.group_public_key, r.epoch, r.transcript)
        self._refuse_concurrent(r.key_id, r.group_public_key)
        self.book.drop_pending(r.key_id, r.group_public_key)  # an earlier attempt that never committed
        context = refresh_context(r.key_id, r.group_public_key, r.epoch, r.session)
        participant = RefreshParticipant(suite(share.group), share, r.dealers, context)
        package = participant.round1()
        state = _RefreshSession(r.key_id, r.group_public_key, r.epoch, participant, started=time.monotonic())
        self._remember(self._refresh, r.session, state)
        return RefreshRound1Reply(RefreshPackageWire(package.identifier, list(package.commitments)))

    def _refuse_concurrent(self, key_id: str, group_public_key: bytes) -> None:
        """Refuse a second refresh of a key while one is in progress or prepared and not committed (two coordinators
        interleaving would leave nodes with pending shares of different refreshes)."""
        now = time.monotonic()
        with self._lock:
            busy = any(
                (s.key_id, s.group_public_key) == (key_id, group_public_key) and now - s.started < self.guard_seconds
                for s in self._refresh.values()
            )
        pending = self.book.pending(key_id, group_public_key)  # on disk: the guard survives a restart
        if pending is not None and time.time() - pending.prepared_at < self.guard_seconds:
            busy = True
        if busy:
            raise RefreshError(
                f"another refresh of key {key_id!r} is in progress on this node (or prepared and not yet committed): "
                f"retry in {self.guard_seconds:.0f} s"
            )

    def _refresh_session(self, session: str, *, pop: bool = False) -> _RefreshSession:
        with self._lock:
            found = self._refresh.pop(session, None) if pop else self._refresh.get(session)
        if found is None:
            raise RefreshError(f"no refresh session {session} (unknown, finished, or this node restarted)")
        return found

    def _refresh_round2(self, r: RefreshRound2) -> Reply:
        session = self._refresh_session(r.session)
        packages = {p.identifier: RefreshPackage(p.identifier, tuple(p.commitments)) for p in r.packages}
        if len(packages) != len(r.packages):
            raise RefreshError("repeated refresh packages")
        outgoing, transcript = session.participant.round2(packages)
        session.transcript = transcript
        s = session.participant.suite
        me = self.identifier
        shares = []
        for j, value in sorted(outgoing.items()):
            key = pair_key(self.identity, self.peers[j], transcript, "refresh", session.key_id, session.epoch, me, j)
            shares.append(EncryptedShare(me, j, _seal(key, s.serialize_scalar(value))))
        return RefreshRound2Reply(shares, transcript)

    def _refresh_finish(self, r: RefreshFinish) -> Reply:
        session = self._refresh_session(r.session, pop=True)
        if session.transcript is None:
            raise RefreshError("finish before round 2")
        s = session.participant.suite
        me = self.identifier
        received: dict[int, int] = {}
        for item in r.shares:
            if item.recipient != me or item.sender not in self.peers or item.sender in received:
                raise RefreshError("a sub-share is not addressed to this node, or from an unknown or repeated sender")
            key = pair_key(
                self.identity,
                self.peers[item.sender],
                session.transcript,
                "refresh",
                session.key_id,
                session.epoch,
                item.sender,
                me,
            )
            try:
                received[item.sender] = s.deserialize_scalar(_open(key, item.ciphertext))
            except (InvalidTag, GroupError, ValueError) as exc:
                raise RefreshError(
                    f"the sub-share from node {item.sender} does not decrypt", culprit=item.sender
                ) from exc
        new = session.participant.finish(received)
        self.book.put_pending(session.key_id, new, r.session)
        return RefreshFinishReply(new.verifying_shares[me], new.transcript)

    # -- repair ----------------------------------------------------------------------------------------------------

    def _repair_round1(self, r: RepairRound1) -> Reply:
        share = self.book.current(r.key_id, r.group_public_key, r.epoch, r.transcript)
        check_repair_set(r.helpers, r.target, share.threshold)
        if self.identifier not in r.helpers or any(i not in share.verifying_shares for i in [*r.helpers, r.target]):
            raise RepairError("this node must be a helper; the helpers and the target must be participants of the key")
        if any(i != self.identifier and i not in self.peers for i in [*r.helpers, r.target]):
            raise RepairError("the helpers and the target must be peers pinned in this node's configuration")
        s = suite(share.group)
        view = key_view(
            share.group, share.threshold, share.group_public_key, share.epoch, share.verifying_shares, share.transcript
        )
        salt = _repair_salt(r.session, r.key_id, r.epoch, r.helpers, r.target, view)
        parts = repair_split(s, self.identifier, r.helpers, r.target, share.secret_share)
        me = self.identifier
        out = []
        for j, value in sorted(parts.items()):
            if j != me:
                key = pair_key(self.identity, self.peers[j], salt, "repair-part", r.key_id, r.epoch, me, j)
                out.append(EncryptedShare(me, j, _seal(key, s.serialize_scalar(value))))
        state = _RepairSession(r.key_id, r.epoch, tuple(sorted(r.helpers)), r.target, parts[me], salt, share.group)
        self._remember(self._repair, r.session, state)
        return RepairRound1Reply(out)

    def _repair_round2(self, r: RepairRound2) -> Reply:
        with self._lock:
            session = self._repair.pop(r.session, None)
        if session is None:
            raise RepairError(f"no repair session {r.session} (unknown, finished, or this node restarted)")
        s = suite(session.group)
        me = self.identifier
        expected = [j for j in session.helpers if j != me]
        if sorted(p.sender for p in r.parts) != expected or any(p.recipient != me for p in r.parts):
            raise RepairError(f"need exactly one part from each of {expected}, addressed to this node")
        values = [session.own_part]
        for p in r.parts:
            key = pair_key(
                self.identity,
                self.peers[p.sender],
                session.salt,
                "repair-part",
                session.key_id,
                session.epoch,
                p.sender,
                me,
            )
            try:
                values.append(s.deserialize_scalar(_open(key, p.ciphertext)))
            except (InvalidTag, GroupError, ValueError) as exc:
                raise RepairError(f"the repair part from node {p.sender} does not decrypt") from exc
        sigma = repair_sum(s, values)
        key = pair_key(
            self.identity,
            self.peers[session.target],
            session.salt,
            "repair-sum",
            session.key_id,
            session.epoch,
            me,
            session.target,
        )
        return RepairRound2Reply(EncryptedShare(me, session.target, _seal(key, s.serialize_scalar(sigma))))

    def _repair_finish(self, r: RepairFinish) -> Reply:
        if not KEY_ID_PATTERN.fullmatch(r.key_id):
            raise RepairError(f"invalid key id {r.key_id!r}")
        me = self.identifier
        check_repair_set(r.helpers, me, r.threshold)
        if any(i not in self.peers for i in r.helpers) or me not in r.verifying_shares:
            raise RepairError("the helpers must be pinned peers and this node a participant of the key")
        s = suite(r.group)
        for element in [r.group_public_key, *r.verifying_shares.values()]:
            s.check_element(element)
        view = key_view(r.group, r.threshold, r.group_public_key, r.epoch, r.verifying_shares, r.transcript)
        salt = _repair_salt(r.session, r.key_id, r.epoch, r.helpers, me, view)
        if sorted(p.sender for p in r.parts) != sorted(r.helpers) or any(p.recipient != me for p in r.parts):
            raise RepairError("need exactly one sum from each helper, addressed to this node")
        sigmas = []
        for p in r.parts:
            key = pair_key(self.identity, self.peers[p.sender], salt, "repair-sum", r.key_id, r.epoch, p.sender, me)
            try:
                sigmas.append(s.deserialize_scalar(_open(key, p.ciphertext)))
            except (InvalidTag, GroupError, ValueError) as exc:
                raise RepairError(
                    f"the sum from helper {p.sender} does not decrypt: the helpers hold other public data for this "
                    "epoch than the coordinator sent, or the message was altered"
                ) from exc
        secret = repair_sum(s, sigmas)
        if secret == 0 or s.base_mul(secret) != r.verifying_shares[me]:
            raise RepairError("the rebuilt share does not match this node's verifying share: nothing kept")
        share = KeyShare(
            group=r.group,
            identifier=me,
            threshold=r.threshold,
            secret_share=secret,
            group_public_key=r.group_public_key,
            verifying_shares=dict(r.verifying_shares),
            transcript=r.transcript,
            epoch=r.epoch,
        )
        self.book.commit(r.key_id, share)
        return EpochReply(r.epoch)
