"""The coordinator: :class:`ThresholdSigner`, the ``threshold`` custody signer, driving FROST across signer nodes.

- ``create_key`` runs the dealerless DKG with every configured node (all ``n`` must answer): it relays the round-1
  broadcast and the end-to-end encrypted round-2 shares, checks that every node saw the same transcript and derived
  the same group public key, and that each node's verifying share is the one the public commitments give. The
  coordinator never sees a secret share; it keeps a sealed record of the key's public data.
- ``sign`` checks the request (scheme, payload), asks every eligible node for round-one commitments, takes the first
  ``threshold`` that answered, asks them for signature shares, and verifies every share against the signer's
  verifying share. A node whose share does not verify is identified, logged and excluded (for the life of this
  signer) and the session is retried with fresh nonces and another honest node. The aggregate signature is verified
  with the kernel's verifier before it is returned. Fewer than ``threshold`` honest nodes answering: refused.

``ed25519`` keys are FROST keys: FROST signatures are Schnorr signatures, which for Ed25519 are standard RFC 8032
signatures. FROST(secp256k1) signatures are not ECDSA, so ``secp256k1`` keys (ECDSA ``r || s || v``) are DKLs23
threshold-ECDSA keys instead, driven by :mod:`exchange_threshold.ecdsa` over the same nodes and channels.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exchange_framework.custody.keystore import KEY_ID_PATTERN, KdfCost
from exchange_framework.custody.signing import check_request, verify_signature
from exchange_framework.interfaces import (
    KeyExistsError,
    KeyScheme,
    SignatureInvalidError,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)
from exchange_threshold import frost
from exchange_threshold.channel import ChannelError, SecureChannel, public_bytes
from exchange_threshold.dkg import (
    DkgError,
    Round1Package,
    check_package,
    dkg_context,
    transcript_hash,
    verifying_share,
)
from exchange_threshold.ecdsa import PROTOCOL as ECDSA_PROTOCOL
from exchange_threshold.ecdsa import EcdsaCoordinator, current_generation, new_key_record
from exchange_threshold.groups import Ciphersuite, GroupError, suite
from exchange_threshold.messages import (
    Commit,
    CommitmentWire,
    CommitReply,
    DkgFinish,
    DkgFinishReply,
    DkgRound1,
    DkgRound1Reply,
    DkgRound2,
    DkgRound2Reply,
    EncryptedShare,
    ErrorReply,
    Reply,
    Request,
    Sign,
    SignReply,
    decode_reply,
    encode,
)
from exchange_threshold.node import load_identity
from exchange_threshold.resharing import KeyEpoch, Refresher, RefreshResult, RepairResult, key_epoch
from exchange_threshold.store import DEFAULT_PASSPHRASE_ENV, SealedStore, read_passphrase

__all__ = ["SETTINGS_NAME", "NodeAddress", "ThresholdSettings", "ThresholdSigner"]

log = logging.getLogger(__name__)

SETTINGS_NAME = "threshold"
_GROUPS = {KeyScheme.ED25519: "ed25519"}
_T = TypeVar("_T")


class NodeAddress(BaseModel):
    """One signer node: its FROST identifier, address and pinned static X25519 public key (hex)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    identifier: int = Field(ge=1, le=65535)
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$")


class ThresholdSettings(BaseModel):
    """``[plugins.settings.threshold]``: the coordinator's store, the nodes and the threshold."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    path: str = Field(default="var/threshold", min_length=1)  # the coordinator's sealed store, relative to config
    passphrase_env: str = Field(default=DEFAULT_PASSPHRASE_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    threshold: int = Field(default=3, ge=2)
    nodes: list[NodeAddress] = Field(min_length=2)
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    refresh_interval_hours: int = Field(default=168, ge=1)  # proactive refresh: `exchange threshold refresh --due`

    @classmethod
    def parse(cls, settings: Mapping[str, Any]) -> ThresholdSettings:
        """Validate the settings table; raise ``ValueError`` with one line per problem, naming the key."""
        try:
            parsed = cls.model_validate(dict(settings))
        except ValidationError as exc:
            lines = [f"[plugins.settings.threshold] {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise ValueError("\n".join(lines)) from None
        ids = [n.identifier for n in parsed.nodes]
        if len(set(ids)) != len(ids) or parsed.threshold > len(ids):
            raise ValueError("[plugins.settings.threshold] node identifiers must be distinct and threshold <= nodes")
        return parsed


class ThresholdSigner:
    """A :class:`~exchange_framework.interfaces.CustodySigner` whose keys exist only as shares on the nodes."""

    name = SETTINGS_NAME
    schemes: frozenset[KeyScheme] = frozenset({KeyScheme.ED25519, KeyScheme.SECP256K1})  # secp256k1: DKLs23

    def __init__(
        self,
        store: SealedStore | Callable[[], SealedStore],
        nodes: Sequence[NodeAddress],
        *,
        threshold: int = 3,
        timeout: float = 5.0,
        refresh_interval_hours: int = 168,
    ) -> None:
        self._store_source = store
        self._opened: SealedStore | None = store if isinstance(store, SealedStore) else None
        self.nodes = {n.identifier: n for n in nodes}
        self.threshold = threshold
        self.timeout = timeout
        self.refresh_interval_hours = refresh_interval_hours
        self._excluded: set[int] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(len(self.nodes), 1), thread_name_prefix="threshold")
        self.last_signers: tuple[int, ...] = ()  # the nodes whose shares made the last signature
        self.ecdsa = EcdsaCoordinator(self._open, self._ask_all)  # secp256k1 keys: DKLs23 threshold ECDSA
        self._refresher = Refresher(self)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], root: Path, *, kdf: KdfCost | None = None) -> ThresholdSigner:
        """Build the signer from ``[plugins.settings.threshold]``; the store opens (passphrase read) on first use."""
        parsed = ThresholdSettings.parse(settings)
        path = root / parsed.path
        return cls(
            lambda: SealedStore(path, read_passphrase(parsed.passphrase_env), kdf=kdf),
            parsed.nodes,
            threshold=parsed.threshold,
            timeout=parsed.timeout_seconds,
            refresh_interval_hours=parsed.refresh_interval_hours,
        )

    def close(self) -> None:
        """Stop the worker threads that talk to the nodes."""
        self._pool.shutdown(wait=True)

    @property
    def excluded(self) -> frozenset[int]:
        """Nodes caught returning invalid shares; they are not asked again by this signer."""
        return frozenset(self._excluded)

    @property
    def public_identity(self) -> bytes:
        """The coordinator's static X25519 public key: pin it in every node's ``coordinator_keys``."""
        return public_bytes(self._identity())

    # -- CustodySigner ---------------------------------------------------------------------------------------------

    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        """Run the DKG across every node and return the new group public key."""
        if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
            raise SigningRefusedError(f"invalid key id {key_id!r}: use 1-128 letters, digits, '.', '_' or '-'")
        if scheme not in self.schemes:
            raise SigningRefusedError(
                f"the threshold signer makes FROST (Schnorr) keys: {scheme} is not supported (FROST(secp256k1) "
                "signatures are not ECDSA); supported: ed25519. See docs/threshold-signing.md"
            )
        with self._lock:
            if self._store().get(f"keys/{key_id}") is not None:
                raise KeyExistsError(f"key {key_id!r} exists already; keys are never replaced")
            if scheme is KeyScheme.SECP256K1:
                ids = sorted(self.nodes)
                record = new_key_record(self.ecdsa.keygen(key_id, ids, self.threshold), self.threshold, ids)
            else:
                record = self._dkg(key_id, scheme)
            if not self._store().put(f"keys/{key_id}", json.dumps(record).encode()):
                raise KeyExistsError(f"key {key_id!r} exists already; keys are never replaced")
        return bytes.fromhex(record["group_public_key"])

    def key_scheme(self, key_id: str) -> KeyScheme:
        """The scheme of ``key_id``."""
        return KeyScheme(self._record(key_id)["scheme"])

    def public_key(self, key_id: str) -> bytes:
        """The group public key of ``key_id``."""
        return bytes.fromhex(self._record(key_id)["group_public_key"])

    def sign(self, request: SigningRequest) -> bytes:
        """Sign with ``threshold`` honest nodes, verifying every share and the signature; raise if that fails."""
        if not isinstance(request, SigningRequest):
            raise SigningRefusedError(f"expected a SigningRequest, not {type(request).__name__}")
        record = self._record(request.key_id)
        scheme = KeyScheme(record["scheme"])
        check_request(request, scheme)
        if record.get("protocol") == ECDSA_PROTOCOL:
            return self._sign_ecdsa(request, record)
        s = suite(record["group"])
        group_pk = bytes.fromhex(record["group_public_key"])
        state = key_epoch(self._store(), request.key_id, record)
        verifying = state.verifying_shares
        threshold = int(record["threshold"])
        candidates = [
            i for i in sorted(verifying) if i in self.nodes and i not in self._excluded and i not in state.needs_repair
        ]
        for _ in range(len(self.nodes)):
            if len(candidates) < threshold:
                break
            signature, failed = self._sign_once(
                request, scheme, s, group_pk, verifying, threshold, candidates, state.epoch, state.transcript
            )
            if signature is not None:
                return signature
            candidates = [i for i in candidates if i not in failed and i not in self._excluded]
            latest = key_epoch(self._store(), request.key_id, record)
            if latest.epoch != state.epoch:  # a refresh committed meanwhile: start over at its epoch
                state, verifying = latest, latest.verifying_shares
                candidates = [
                    i
                    for i in sorted(verifying)
                    if i in self.nodes and i not in self._excluded and i not in state.needs_repair
                ]
        raise SigningError(
            f"only {len(candidates)} of the key's {len(verifying)} nodes answered with valid shares, "
            f"{threshold} are needed: nothing was signed (excluded as misbehaving: {sorted(self._excluded) or 'none'}; "
            f"needing repair after a refresh: {sorted(state.needs_repair) or 'none'})"
        )

    # -- refresh and repair ----------------------------------------------------------------------------------------

    def refresh(self, key_id: str) -> RefreshResult:
        """Proactively refresh ``key_id``: new shares of the same key on the reachable nodes, old shares deleted.

        Needs ``threshold`` reachable nodes holding the current epoch; raises ``SigningError`` (nothing changed)
        otherwise. Nodes that were offline are marked as needing repair (see :meth:`repair`).
        """
        return self._refresher.refresh(key_id)

    def repair(self, key_id: str, node: int) -> RepairResult:
        """Give ``node`` its share of the key's current epoch back (it missed a refresh, or lost its share)."""
        return self._refresher.repair(key_id, node)

    def key_state(self, key_id: str) -> KeyEpoch:
        """The key's epoch, verifying shares, nodes needing repair and the time of its last refresh."""
        return key_epoch(self._store(), key_id, self._record(key_id))

    def key_ids(self) -> list[str]:
        """The ids of every key this signer holds."""
        return [name.partition("/")[2] for name in self._store().names("keys")]

    def refresh_due(self, key_id: str, *, now: float | None = None) -> bool:
        """Whether ``key_id``'s last refresh (or creation) is ``refresh_interval_hours`` old or more."""
        state = self.key_state(key_id)
        since = state.refreshed_at or state.created_at
        if since is None:
            return True
        return (time.time() if now is None else now) - since >= self.refresh_interval_hours * 3600

    # -- threshold ECDSA (DKLs23) ---------------------------------------------------------------------------------

    def _sign_ecdsa(self, request: SigningRequest, record: Mapping[str, Any]) -> bytes:
        candidates = [i for i in record["participants"] if i in self.nodes]
        generation = current_generation(self._store(), request.key_id)
        public_key = bytes.fromhex(record["group_public_key"])
        signature, self.last_signers = self.ecdsa.sign(
            request, public_key, generation, int(record["threshold"]), candidates
        )
        return signature

    def refresh_ecdsa(self, key_id: str) -> int:
        """Refresh the shares of ECDSA key ``key_id`` on every node (same public key); return the new generation."""
        with self._lock:
            record = self._record(key_id)
            if record.get("protocol") != ECDSA_PROTOCOL:
                raise SigningRefusedError(f"key {key_id!r} is not a threshold-ECDSA key: use refresh()")
            return self.ecdsa.refresh(self._store(), key_id, record, self.nodes)

    # -- signing ---------------------------------------------------------------------------------------------------

    def _sign_once(
        self,
        request: SigningRequest,
        scheme: KeyScheme,
        s: Ciphersuite,
        group_pk: bytes,
        verifying: Mapping[int, bytes],
        threshold: int,
        candidates: Sequence[int],
        epoch: int = 0,
        transcript: bytes = b"",
    ) -> tuple[bytes | None, set[int]]:
        session = secrets.token_hex(16)
        channels = self._open(candidates)
        failed = set(candidates) - set(channels)
        try:
            commit = Commit(session, request.key_id, group_pk, epoch, transcript)
            replies = self._ask_all(channels, {i: commit for i in channels})
            commitments: dict[int, frost.Commitment] = {}
            for i, reply in replies.items():
                if isinstance(reply, CommitReply) and reply.commitment.identifier == i:
                    c = reply.commitment
                    try:
                        commitments[i] = frost.Commitment(i, s.check_element(c.hiding), s.check_element(c.binding))
                    except GroupError:
                        log.error("node %d sent invalid commitments: excluded", i)
                        self._excluded.add(i)
                else:
                    log.warning("node %d did not commit: %s", i, _describe(reply))
                    failed.add(i)
            if len(commitments) < threshold:
                return None, failed | (set(candidates) - set(commitments))
            chosen = sorted(commitments)[:threshold]
            listed = [commitments[i] for i in chosen]
            wire = [CommitmentWire(c.identifier, c.hiding, c.binding) for c in listed]
            sign = Sign(
                session,
                request.request_id,
                request.key_id,
                scheme.value,
                group_pk,
                request.payload,
                wire,
                epoch,
                transcript,
            )
            answers = self._ask_all({i: channels[i] for i in chosen}, {i: sign for i in chosen})
        finally:
            for channel in channels.values():
                channel.close()
        shares: dict[int, int] = {}
        for i in chosen:
            answer = answers.get(i)
            if not isinstance(answer, SignReply) or answer.identifier != i:
                log.warning("node %d did not sign request %s: %s", i, request.request_id, _describe(answer))
                failed.add(i)
                continue
            try:
                z = s.deserialize_scalar(answer.share)
            except GroupError:
                z = 0
            if not frost.verify_share(s, i, verifying[i], z, listed, group_pk, request.payload):
                log.error("node %d returned an invalid signature share for %s: excluded", i, request.request_id)
                self._excluded.add(i)
                continue
            shares[i] = z
        if len(shares) < threshold:
            return None, failed
        signature = frost.aggregate(s, listed, request.payload, group_pk, shares)
        if not (
            frost.verify_signature(s, group_pk, request.payload, signature)
            and verify_signature(scheme, group_pk, request.payload, signature)
        ):
            raise SignatureInvalidError("the aggregated FROST signature does not verify although every share did")
        self.last_signers = tuple(chosen)
        return signature, failed

    # -- DKG -------------------------------------------------------------------------------------------------------

    def _dkg(self, key_id: str, scheme: KeyScheme) -> dict[str, Any]:
        group = _GROUPS[scheme]
        s = suite(group)
        ids = sorted(self.nodes)
        session = secrets.token_hex(16)
        channels = self._open(ids)
        try:
            if len(channels) != len(ids):
                missing = sorted(set(ids) - set(channels))
                raise SigningError(
                    f"key generation needs all {len(ids)} nodes; unreachable: {missing}. Nothing created"
                )
            start = DkgRound1(session, key_id, group, self.threshold, ids)
            r1 = self._expect(self._ask_all(channels, {i: start for i in ids}), DkgRound1Reply, "DKG round 1")
            packages = [r.package for _, r in sorted(r1.items())]
            if [p.identifier for p in packages] != ids:
                raise SigningError("DKG round 1: a node answered with another identifier")
            context = dkg_context(key_id, session)
            parsed: dict[int, Round1Package] = {}
            for p in packages:  # checked here too, so a bad package is blamed on its node before anyone uses it
                try:
                    parsed[p.identifier] = Round1Package(
                        p.identifier, tuple(p.commitments), p.proof_r, s.deserialize_scalar(p.proof_mu)
                    )
                    check_package(s, p.identifier, parsed[p.identifier], self.threshold, context)
                except (DkgError, GroupError) as exc:
                    raise SigningError(f"DKG round 1: node {p.identifier} misbehaved: {exc}. Nothing created") from exc
            r2 = self._expect(
                self._ask_all(channels, {i: DkgRound2(session, packages) for i in ids}), DkgRound2Reply, "DKG round 2"
            )
            transcript = transcript_hash(s, context, self.threshold, parsed)
            if any(r.transcript != transcript for r in r2.values()):
                raise SigningError("DKG round 2: the nodes saw different round-1 broadcasts. Nothing created")
            inbox: dict[int, list[EncryptedShare]] = {i: [] for i in ids}
            for i, reply in r2.items():
                if sorted(e.recipient for e in reply.shares) != [j for j in ids if j != i] or any(
                    e.sender != i for e in reply.shares
                ):
                    raise SigningError(f"DKG round 2: node {i} sent shares to the wrong recipients. Nothing created")
                for e in reply.shares:
                    inbox[e.recipient].append(e)
            r3 = self._expect(
                self._ask_all(channels, {i: DkgFinish(session, inbox[i]) for i in ids}), DkgFinishReply, "DKG finish"
            )
        finally:
            for channel in channels.values():
                channel.close()
        group_pk = parsed[ids[0]].commitments[0]
        for i in ids[1:]:
            group_pk = s.add(group_pk, parsed[i].commitments[0])
        shares = {i: verifying_share(s, parsed, i) for i in ids}
        for i, done in r3.items():
            if (done.group_public_key, done.verifying_share, done.transcript) != (group_pk, shares[i], transcript):
                raise SigningError(f"DKG finish: node {i} derived a different key. Nothing created")
        log.info("created threshold key %s (%d-of-%d, %s)", key_id, self.threshold, len(ids), group)
        return {
            "scheme": scheme.value,
            "group": group,
            "group_public_key": group_pk.hex(),
            "threshold": self.threshold,
            "verifying_shares": {str(i): v.hex() for i, v in shares.items()},
            "transcript": transcript.hex(),
            "created_at": int(time.time()),
        }

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _store(self) -> SealedStore:
        if self._opened is None:
            assert callable(self._store_source)
            self._opened = self._store_source()
        return self._opened

    def _identity(self) -> Any:
        return load_identity(self._store(), create=True)

    def _record(self, key_id: str) -> dict[str, Any]:
        if not isinstance(key_id, str) or not KEY_ID_PATTERN.fullmatch(key_id):
            raise UnknownKeyError(f"no key {key_id!r}")
        data = self._store().get(f"keys/{key_id}")
        if data is None:
            raise UnknownKeyError(f"the threshold signer holds no key {key_id!r}")
        record: dict[str, Any] = json.loads(data)
        return record

    def _open(self, ids: Sequence[int]) -> dict[int, SecureChannel]:
        identity = self._identity()

        def connect(i: int) -> SecureChannel | None:
            node = self.nodes[i]
            try:
                return SecureChannel.connect(
                    (node.host, node.port), identity, bytes.fromhex(node.public_key), timeout=self.timeout
                )
            except ChannelError as exc:
                log.warning("node %d unreachable: %s", i, exc)
                return None

        opened = dict(zip(ids, self._pool.map(connect, ids), strict=True))
        return {i: c for i, c in opened.items() if c is not None}

    def _ask_all(self, channels: Mapping[int, SecureChannel], requests: Mapping[int, Request]) -> dict[int, Reply]:
        def ask(i: int) -> Reply:
            channel = channels[i]
            try:
                channel.send(encode(requests[i]))
                return decode_reply(channel.recv())
            except (ChannelError, ValueError) as exc:  # msgspec errors are ValueErrors
                channel.close()
                return ErrorReply(f"node {i}: {exc}")

        ids = list(requests)
        return dict(zip(ids, self._pool.map(ask, ids), strict=True))

    @staticmethod
    def _expect(replies: Mapping[int, Reply], kind: type[_T], step: str) -> dict[int, _T]:
        out: dict[int, _T] = {}
        for i, reply in replies.items():
            if not isinstance(reply, kind):
                culprit = reply.culprit if isinstance(reply, ErrorReply) else None
                blame = f" (it names node {culprit} as misbehaving)" if culprit is not None else ""
                raise SigningError(f"{step}: node {i} failed: {_describe(reply)}{blame}. Nothing created")
            out[i] = reply
        return out


def _describe(reply: Reply | None) -> str:
    if reply is None:
        return "no answer"
    if isinstance(reply, ErrorReply):
        return reply.message
    return f"unexpected {type(reply).__name__}"
