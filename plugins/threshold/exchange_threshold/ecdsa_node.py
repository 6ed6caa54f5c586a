"""A signer node's threshold-ECDSA side: DKLs23 key generation, refresh and signing through its sidecar.

The node keeps the protocol bookkeeping and leaves the cryptography to the library (:mod:`exchange_threshold.dkls`):

- every protocol message to another node is sealed end to end with ChaCha20-Poly1305 under a key only the two nodes
  can derive (X25519 of their static keys, HKDF salted with the session), bound to the session, the round, sender,
  recipient and whether it is a broadcast; a broadcast is sealed to each recipient separately. The coordinator
  relays them; an altered, replayed, misrouted or forged message fails to open and aborts the session, naming its
  sender;
- each round must come in order, with exactly one message from every other member of the session;
- the node re-checks what it is asked to sign (its key, the generation, the signers, a 32-byte digest) and binds the
  digest when the session starts; a pre-signature is used for that digest only, once (the session then ends);
- the key share is sealed in the node's store (``ecdsa/<key id>/<public key>-<generation>``) and passed to the
  sidecar for each session; it never appears in a reply, a log line or an error message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange_framework.custody.keystore import KEY_ID_PATTERN
from exchange_framework.custody.signing import check_payload
from exchange_framework.interfaces import KeyScheme, SigningError
from exchange_threshold.dkls import DklsError, DklsMessage, DklsSidecar, SidecarUnavailableError, messages_from_json
from exchange_threshold.ecdsa_messages import (
    DklsWire,
    EcdsaAbort,
    EcdsaForget,
    EcdsaKeygen,
    EcdsaKeygenDone,
    EcdsaReplyBody,
    EcdsaRequestBody,
    EcdsaRound,
    EcdsaRoundReply,
    EcdsaSign,
    EcdsaSignature,
    decode_request_body,
    encode_body,
)
from exchange_threshold.messages import Ecdsa, EcdsaResult, ErrorReply, Reply
from exchange_threshold.store import SealedStore

__all__ = ["EcdsaError", "EcdsaService", "open_wire", "pair_key", "record_name", "seal_wire"]

log = logging.getLogger(__name__)

SESSION_TTL = 120.0  # seconds a DKLs23 session may take from its first to its last round
SESSIONS_MAX = 256
LAST_ROUND = 5
_BROADCAST_ROUNDS = frozenset({2, 5})  # the rounds whose incoming messages are broadcasts (both protocols)
_SIDECAR_OPS = {
    ("keygen", 2): "keygen_round2",
    ("keygen", 3): "keygen_round3",
    ("keygen", 4): "keygen_round4",
    ("keygen", 5): "keygen_finish",
    ("sign", 2): "sign_round2",
    ("sign", 3): "sign_round3",
    ("sign", 4): "sign_last",
    ("sign", 5): "sign_combine",
}


class EcdsaError(SigningError):
    """A threshold-ECDSA step was refused or failed; ``culprit`` names the node whose message was bad, if known."""

    def __init__(self, message: str, culprit: int | None = None) -> None:
        super().__init__(message)
        self.culprit = culprit


def record_name(key_id: str, public_key: bytes, generation: int) -> str:
    """The sealed-store record of a node's DKLs23 key share."""
    return f"ecdsa/{key_id}/{public_key.hex()}-{generation}"


def pair_key(static: X25519PrivateKey, peer: bytes, session: str, key_id: str, a: int, b: int) -> bytes:
    """The key sealing DKLs23 messages between nodes ``a`` and ``b`` in ``session`` (either side derives it)."""
    secret = static.exchange(X25519PublicKey.from_public_bytes(peer))
    low, high = sorted((a, b))
    info = b"exchange-threshold/dkls-pair/v1\x00" + key_id.encode() + b"\x00%d-%d" % (low, high)
    salt = hashlib.sha256(b"exchange-threshold/dkls-session\x00" + session.encode()).digest()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def _aad(session: str, kind: str, rnd: int, sender: int, recipient: int, broadcast: bool) -> bytes:
    return (
        b"exchange-threshold/dkls-msg/v1\x00"
        + f"{session}\x00{kind}\x00{rnd}\x00{sender}>{recipient}\x00{int(broadcast)}".encode()
    )


def seal_wire(key: bytes, session: str, kind: str, rnd: int, sender: int, recipient: int, broadcast: bool,
              payload: bytes) -> DklsWire:  # fmt: skip
    """Seal one protocol message for round ``rnd`` of ``session``."""
    nonce = secrets.token_bytes(12)
    aad = _aad(session, kind, rnd, sender, recipient, broadcast)
    return DklsWire(sender, recipient, broadcast, nonce + ChaCha20Poly1305(key).encrypt(nonce, payload, aad))


def open_wire(key: bytes, session: str, kind: str, rnd: int, wire: DklsWire) -> bytes:
    """Open a sealed protocol message; raise :class:`EcdsaError` naming its sender if it does not authenticate."""
    aad = _aad(session, kind, rnd, wire.sender, wire.recipient, wire.broadcast)
    try:
        return ChaCha20Poly1305(key).decrypt(wire.sealed[:12], wire.sealed[12:], aad)
    except (InvalidTag, ValueError):
        raise EcdsaError(
            f"the round-{rnd} message from node {wire.sender} does not authenticate (altered, replayed or forged)",
            culprit=wire.sender,
        ) from None


@dataclass
class _Session:
    kind: str  # "keygen" or "sign"
    key_id: str
    participants: list[int]  # the key's nodes, in DKLs23 party order
    members: list[int]  # the nodes taking part in this session
    threshold: int
    generation: int
    created: float
    next_round: int = 2
    public_key: bytes = b""
    payload: bytes = b""
    request_id: str = ""


class EcdsaService:
    """The node's DKLs23 side; :meth:`handle` answers one wrapped request (errors become :class:`ErrorReply`)."""

    def __init__(
        self,
        identifier: int,
        identity: X25519PrivateKey,
        peers: Mapping[int, bytes],
        store: SealedStore,
        *,
        sidecar: Callable[[], DklsSidecar] = DklsSidecar,
    ) -> None:
        self.identifier = identifier
        self._identity = identity
        self._peers = dict(peers)
        self._store = store
        self._sidecar_factory = sidecar
        self._sidecar: DklsSidecar | None = None
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}

    def handle(self, request: Ecdsa) -> Reply:
        """Answer one request: an :class:`EcdsaResult`, or an :class:`ErrorReply` saying why not (and whom)."""
        session: str | None = None
        try:
            body = decode_request_body(request.body)
            session = body.session
            return EcdsaResult(encode_body(self._handle(body)))
        except msgspec.MsgspecError as exc:
            return ErrorReply(f"node {self.identifier}: malformed ECDSA request: {exc}")
        except EcdsaError as exc:
            self._drop(session)
            return ErrorReply(f"node {self.identifier}: {exc}", exc.culprit)
        except (SigningError, ValueError) as exc:
            self._drop(session)
            return ErrorReply(f"node {self.identifier}: {exc}")

    def close(self) -> None:
        """Stop the sidecar."""
        with self._lock:
            sidecar, self._sidecar = self._sidecar, None
        if sidecar is not None:
            sidecar.close()

    # -- dispatch ---------------------------------------------------------------------------------------------------

    def _handle(self, body: EcdsaRequestBody) -> EcdsaReplyBody:
        if isinstance(body, EcdsaAbort):
            self._drop(body.session)
            return EcdsaRoundReply([])
        if isinstance(body, EcdsaForget):
            return self._forget(body)
        if isinstance(body, EcdsaKeygen):
            return self._keygen_start(body)
        if isinstance(body, EcdsaSign):
            return self._sign_start(body)
        return self._round(body)

    def _keygen_start(self, r: EcdsaKeygen) -> EcdsaReplyBody:
        participants = self._check_members(r.key_id, r.participants, "participants")
        if not 2 <= r.threshold <= len(participants) or len(participants) > 255:
            raise ValueError(f"threshold {r.threshold} of {len(participants)} participants is not possible")
        fields: dict[str, Any]
        if r.generation == 0:
            if r.public_key:
                raise ValueError("a new key has no public key yet")
            fields = {"participants": len(participants), "threshold": r.threshold}
            fields["party"] = participants.index(self.identifier)
        else:  # refresh: new shares of the same key from the current ones
            record = self._load(r.key_id, r.public_key, r.generation - 1)
            if (record["participants"], record["threshold"]) != (participants, r.threshold):
                raise ValueError("a refresh keeps the key's participants and threshold")
            fields = {"keyshare": base64.b64decode(record["keyshare"])}
        session = _Session("keygen", r.key_id, participants, participants, r.threshold, r.generation, time.monotonic())
        session.public_key = r.public_key
        self._open_session(r.session, session)
        return EcdsaRoundReply(self._outgoing(r.session, session, 1, self._call("keygen_start", r.session, fields)))

    def _sign_start(self, r: EcdsaSign) -> EcdsaReplyBody:
        check_payload(KeyScheme.SECP256K1, r.payload)
        record = self._load(r.key_id, r.public_key, r.generation)
        participants: list[int] = record["participants"]
        signers = self._check_members(r.key_id, r.signers, "signers")
        if any(i not in participants for i in signers) or len(signers) != record["threshold"]:
            raise ValueError(f"the signers must be exactly {record['threshold']} of the key's nodes {participants}")
        session = _Session("sign", r.key_id, participants, signers, record["threshold"], r.generation, time.monotonic())
        session.public_key, session.payload, session.request_id = r.public_key, r.payload, r.request_id
        self._open_session(r.session, session)
        fields = {"keyshare": base64.b64decode(record["keyshare"]), "chain_path": "m"}
        return EcdsaRoundReply(self._outgoing(r.session, session, 1, self._call("sign_start", r.session, fields)))

    def _round(self, r: EcdsaRound) -> EcdsaReplyBody:
        with self._lock:
            session = self._sessions.get(r.session)
        if session is None or time.monotonic() - session.created > SESSION_TTL:
            raise ValueError(f"no ECDSA session {r.session} (expired, failed or finished)")
        if r.round != session.next_round:
            raise ValueError(f"round {r.round} out of order: expected {session.next_round}")
        session.next_round += 1
        incoming = self._incoming(r.session, session, r.round, r.messages)
        fields: dict[str, Any] = {"msgs": incoming}
        if session.kind == "keygen" and r.round == 4:
            if len(r.commitments) != len(session.participants) or any(len(c) != 32 for c in r.commitments):
                raise ValueError("round 4 needs one 32-byte chain-code commitment per participant")
            fields["commitments"] = list(r.commitments)
        if session.kind == "sign" and r.round == 4:
            fields["digest"] = session.payload
            log.info("node %d signs request %s with key %s", self.identifier, session.request_id, session.key_id)
        out = self._call(_SIDECAR_OPS[(session.kind, r.round)], r.session, fields)
        if r.round == LAST_ROUND:
            with self._lock:
                self._sessions.pop(r.session, None)
            return self._finish(session, out)
        commitment = base64.b64decode(out["commitment"]) if "commitment" in out else b""
        return EcdsaRoundReply(self._outgoing(r.session, session, r.round, out), commitment)

    def _finish(self, session: _Session, out: dict[str, Any]) -> EcdsaReplyBody:
        if session.kind == "sign":
            return EcdsaSignature(base64.b64decode(out["r"]), base64.b64decode(out["s"]))
        public_key = base64.b64decode(out["public_key"])
        expected_party = session.participants.index(self.identifier)
        if (out["party"], out["threshold"], out["participants"]) != (
            expected_party,
            session.threshold,
            len(session.participants),
        ) or len(public_key) != 33:
            raise EcdsaError("the key share the library produced does not match the session")
        if session.generation > 0 and public_key != session.public_key:
            raise EcdsaError("the refreshed share is of another public key: refusing it")
        record = {
            "protocol": "dkls23",
            "key_id": session.key_id,
            "public_key": public_key.hex(),
            "generation": session.generation,
            "threshold": session.threshold,
            "participants": session.participants,
            "identifier": self.identifier,
            "keyshare": out["keyshare"],
        }
        name = record_name(session.key_id, public_key, session.generation)
        if session.generation > 0:  # a refresh that failed before the coordinator recorded it may have left one
            self._store.delete(name)
        if not self._store.put(name, json.dumps(record).encode()):
            raise EcdsaError(f"a share of ECDSA key {session.key_id} at generation {session.generation} exists already")
        return EcdsaKeygenDone(public_key, session.generation)

    def _forget(self, r: EcdsaForget) -> EcdsaReplyBody:
        self._load(r.key_id, r.public_key, r.generation)  # only once this node holds the recorded generation
        prefix = f"ecdsa/{r.key_id}"
        for name in self._store.names(prefix):
            stem = name.removeprefix(prefix + "/")
            key_hex, _, generation = stem.rpartition("-")
            if key_hex == r.public_key.hex() and generation.isdigit() and int(generation) < r.generation:
                self._store.delete(name)
                log.info(
                    "node %d deleted its share of ECDSA key %s generation %s", self.identifier, r.key_id, generation
                )
        return EcdsaRoundReply([])

    # -- messages ---------------------------------------------------------------------------------------------------

    def _incoming(self, sid: str, session: _Session, rnd: int, wires: list[DklsWire]) -> list[DklsMessage]:
        others = [i for i in session.members if i != self.identifier]
        if sorted(w.sender for w in wires) != others or any(w.recipient != self.identifier for w in wires):
            raise ValueError(f"round {rnd} needs exactly one message from each of nodes {others}, to this node")
        broadcast = rnd in _BROADCAST_ROUNDS
        me = session.participants.index(self.identifier)
        out: list[DklsMessage] = []
        for w in wires:
            if w.broadcast is not broadcast:
                raise EcdsaError(f"the round-{rnd} message from node {w.sender} has the wrong kind", culprit=w.sender)
            key = pair_key(self._identity, self._peers[w.sender], sid, session.key_id, w.sender, self.identifier)
            payload = open_wire(key, sid, session.kind, rnd, w)
            out.append((session.participants.index(w.sender), None if broadcast else me, payload))
        return out

    def _outgoing(self, sid: str, session: _Session, rnd: int, out: dict[str, Any]) -> list[DklsWire]:
        me = session.participants.index(self.identifier)
        wires: list[DklsWire] = []
        for sender, to, payload in messages_from_json(out["msgs"]):
            if sender != me:
                raise EcdsaError("the library produced a message from another party")
            targets = [i for i in session.members if i != self.identifier] if to is None else [session.participants[to]]
            for j in targets:
                if j not in session.members or j == self.identifier:
                    raise EcdsaError(f"the library addressed a message to node {j}, outside the session")
                key = pair_key(self._identity, self._peers[j], sid, session.key_id, self.identifier, j)
                wires.append(seal_wire(key, sid, session.kind, rnd + 1, self.identifier, j, to is None, payload))
        return wires

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def _check_members(self, key_id: str, members: list[int], what: str) -> list[int]:
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise ValueError(f"invalid key id {key_id!r}")
        if members != sorted(set(members)) or self.identifier not in members:
            raise ValueError(f"the {what} must be sorted, distinct and include this node")
        if any(i != self.identifier and i not in self._peers for i in members):
            raise ValueError(f"the {what} must be peers pinned in this node's configuration")
        return list(members)

    def _load(self, key_id: str, public_key: bytes, generation: int) -> dict[str, Any]:
        if not KEY_ID_PATTERN.fullmatch(key_id) or len(public_key) != 33 or generation < 0:
            raise ValueError("invalid key id, public key or generation")
        data = self._store.get(record_name(key_id, public_key, generation))
        if data is None:
            raise SigningError(
                f"node {self.identifier} holds no share of ECDSA key {key_id!r} at generation {generation}"
            )
        record: dict[str, Any] = json.loads(data)
        return record

    def _open_session(self, sid: str, session: _Session) -> None:
        now = time.monotonic()
        with self._lock:
            if sid in self._sessions:
                raise ValueError(f"ECDSA session {sid} exists")
            stale = [k for k, s in self._sessions.items() if now - s.created > SESSION_TTL]
            while len(self._sessions) - len(stale) >= SESSIONS_MAX:
                stale.append(next(k for k in self._sessions if k not in stale))
            for k in stale:
                del self._sessions[k]
            self._sessions[sid] = session
        for k in stale:
            self._abort_sidecar(k)

    def _drop(self, sid: str | None) -> None:
        if sid is None:
            return
        with self._lock:
            known = self._sessions.pop(sid, None) is not None
        if known:
            self._abort_sidecar(sid)

    def _abort_sidecar(self, sid: str) -> None:
        with contextlib.suppress(SigningError):
            self._call("abort", sid, {})

    def _call(self, op: str, sid: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._sidecar is None:
                self._sidecar = self._sidecar_factory()
            sidecar = self._sidecar
        try:
            return sidecar.call(op, session=sid, **fields)
        except SidecarUnavailableError:
            with self._lock:
                if self._sidecar is sidecar:
                    self._sidecar = None  # started again on the next request
            sidecar.close()
            raise
        except DklsError as exc:
            session = self._sessions.get(sid)
            culprit = None
            if exc.ban is not None and session is not None and 0 <= exc.ban < len(session.participants):
                culprit = session.participants[exc.ban]
            raise EcdsaError(str(exc), culprit) from None
