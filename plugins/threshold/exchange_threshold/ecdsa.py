"""The coordinator's threshold-ECDSA side: DKLs23 key generation, refresh and 3-of-5 signing across the nodes.

The coordinator relays: it starts a session on each node, then for four more rounds hands every node the sealed
protocol messages the others addressed to it (it cannot read or alter them unnoticed: see
:mod:`exchange_threshold.ecdsa_node`), and checks the routing (each node sends exactly one message to every other
member each round). Key generation needs every node; the public key is accepted only when all of them report the
same one. Signing takes ``threshold`` reachable nodes; a session that aborts (a bad message, a node failing) yields
no signature, and the coordinator tries another set of nodes, leaving out a node named as the sender of a bad
message and preferring the nodes that reported the failure (a few attempts at most). The ``r || s`` every signer
combined must agree; it is finished to the kernel's 65-byte low-S ``r || s || v`` and verified with the group
public key before it is returned.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec
from coincurve import PublicKey

from exchange_framework.custody.signing import finish_secp256k1
from exchange_framework.interfaces import KeyScheme, SignatureInvalidError, SigningError, SigningRequest
from exchange_threshold.channel import SecureChannel
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
    decode_reply_body,
    encode_body,
)
from exchange_threshold.messages import Ecdsa, EcdsaResult, ErrorReply, Reply, Request
from exchange_threshold.store import SealedStore

__all__ = ["PROTOCOL", "EcdsaCoordinator", "RoundFailedError", "current_generation", "new_key_record"]

log = logging.getLogger(__name__)

PROTOCOL = "dkls23"
SIGN_ATTEMPTS = 5  # sets of signers tried for one request before giving up
ROUND_TIMEOUT = 50.0  # seconds one round may take on a node (key generation rounds take seconds; nodes allow 60)
_B = TypeVar("_B", EcdsaRoundReply, EcdsaKeygenDone, EcdsaSignature)

OpenChannels = Callable[[Sequence[int]], dict[int, SecureChannel]]
AskAll = Callable[[Mapping[int, SecureChannel], Mapping[int, Request]], dict[int, Reply]]


def new_key_record(public_key: bytes, threshold: int, participants: Sequence[int]) -> dict[str, Any]:
    """The coordinator's (public) record of a new threshold-ECDSA key."""
    return {
        "scheme": KeyScheme.SECP256K1.value,
        "protocol": PROTOCOL,
        "group_public_key": public_key.hex(),
        "threshold": threshold,
        "participants": sorted(participants),
        "created_at": int(time.time()),
    }


def current_generation(store: SealedStore, key_id: str) -> int:
    """The generation of the key's shares the nodes use now: 0, or the last refresh the coordinator recorded."""
    found = [name.rpartition("/")[2] for name in store.names(f"ecdsa-generations/{key_id}")]
    return max((int(g) for g in found if g.isdigit()), default=0)


class RoundFailedError(SigningError):
    """A session step failed at ``node``; ``culprit`` is the node named as the sender of a bad message, if any."""

    def __init__(self, message: str, node: int, culprit: int | None = None, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.node = node
        self.culprit = culprit
        self.unreachable = unreachable


class EcdsaCoordinator:
    """Drives DKLs23 sessions over channels the :class:`~exchange_threshold.signer.ThresholdSigner` opens."""

    def __init__(
        self,
        open_channels: OpenChannels,
        ask_all: AskAll,
        *,
        attempts: int = SIGN_ATTEMPTS,
        round_timeout: float = ROUND_TIMEOUT,
    ) -> None:
        self._open_channels = open_channels
        self._ask_all = ask_all
        self.attempts = attempts
        self.round_timeout = round_timeout

    def _open(self, ids: Sequence[int]) -> dict[int, SecureChannel]:
        channels = self._open_channels(ids)  # connected within the signer's timeout
        for channel in channels.values():
            channel.sock.settimeout(self.round_timeout)  # a DKLs23 round computes longer than a FROST one
        return channels

    def relay(self, rnd: int, inbox: dict[int, list[DklsWire]]) -> dict[int, list[DklsWire]]:
        """What is delivered in round ``rnd`` (recipient -> messages); the identity (a seam for fault injection)."""
        return inbox

    # -- key generation and refresh ---------------------------------------------------------------------------------

    def keygen(
        self, key_id: str, participants: Sequence[int], threshold: int, *, generation: int = 0, public_key: bytes = b""
    ) -> bytes:
        """Run DKLs23 key generation (or, with ``generation`` > 0, a refresh of ``public_key``) on every node."""
        ids = sorted(participants)
        session = secrets.token_hex(16)
        what = "key generation" if generation == 0 else f"key refresh to generation {generation}"
        channels = self._open(ids)
        try:
            if len(channels) != len(ids):
                missing = sorted(set(ids) - set(channels))
                raise SigningError(f"ECDSA {what} needs all {len(ids)} nodes; unreachable: {missing}. Nothing changed")
            start = EcdsaKeygen(session, key_id, threshold, ids, generation, public_key)
            try:
                done = self._rounds(session, channels, ids, {i: start for i in ids}, EcdsaKeygenDone, keygen=True)
            except RoundFailedError as exc:
                self._abort(session, channels)
                blame = f" (it names node {exc.culprit} as the sender of a bad message)" if exc.culprit else ""
                raise SigningError(f"ECDSA {what}: {exc}{blame}. Nothing changed") from None
        finally:
            for channel in channels.values():
                channel.close()
        keys = {d.public_key for d in done.values()}
        if len(keys) != 1 or any(d.generation != generation for d in done.values()):
            raise SigningError(f"ECDSA {what}: the nodes derived different keys. Nothing usable was created")
        (key,) = keys
        try:
            key = PublicKey(key).format(compressed=True)
        except ValueError:
            raise SigningError(f"ECDSA {what}: the nodes agreed on an invalid public key") from None
        if generation > 0 and key != public_key:
            raise SigningError(f"ECDSA {what}: the refreshed shares are of another key. Nothing changed")
        log.info("ECDSA (DKLs23) %s of key %s done (%d-of-%d)", what, key_id, threshold, len(ids))
        return key

    def refresh(self, store: SealedStore, key_id: str, record: Mapping[str, Any], nodes: Mapping[int, Any]) -> int:
        """Refresh the key's shares on every participant (all must be reachable); record and return the generation.

        The old shares are deleted on the nodes once the coordinator has recorded the new generation; a node that
        cannot be told keeps its old (sealed, now useless with the others' new) share until the next refresh.
        """
        participants = [int(i) for i in record["participants"]]
        if any(i not in nodes for i in participants):
            raise SigningError(f"an ECDSA refresh needs every participant of the key configured: {participants}")
        public_key = bytes.fromhex(record["group_public_key"])
        generation = current_generation(store, key_id) + 1
        self.keygen(key_id, participants, int(record["threshold"]), generation=generation, public_key=public_key)
        note = json.dumps({"generation": generation, "refreshed_at": int(time.time())}).encode()
        if not store.put(f"ecdsa-generations/{key_id}/{generation}", note):
            raise SigningError(f"generation {generation} of key {key_id!r} was recorded concurrently")
        channels = self._open(participants)
        try:
            forget = Ecdsa(encode_body(EcdsaForget(secrets.token_hex(16), key_id, public_key, generation)))
            for i, reply in self._ask_all(channels, dict.fromkeys(channels, forget)).items():
                if isinstance(reply, ErrorReply):
                    log.warning("node %d could not delete its old ECDSA shares of %s: %s", i, key_id, reply.message)
        finally:
            for channel in channels.values():
                channel.close()
        return generation

    # -- signing ----------------------------------------------------------------------------------------------------

    def sign(
        self,
        request: SigningRequest,
        public_key: bytes,
        generation: int,
        threshold: int,
        candidates: Sequence[int],
    ) -> tuple[bytes, tuple[int, ...]]:
        """Sign ``request.payload`` (a digest) with ``threshold`` of ``candidates``: ``(r || s || v, signers)``."""
        suspicion: dict[int, int] = dict.fromkeys(candidates, 0)
        blamed: set[int] = set()
        unreachable: set[int] = set()
        tried: list[tuple[int, ...]] = []
        failures: list[str] = []
        while len(tried) < self.attempts:
            usable = sorted(set(candidates) - blamed - unreachable)
            options = [s for s in itertools.combinations(usable, threshold) if s not in tried]
            if not options:
                break
            signers = min(options, key=lambda s: (sum(suspicion[i] for i in s), s))
            tried.append(signers)
            try:
                return self._sign_once(request, public_key, generation, signers), signers
            except RoundFailedError as exc:
                failures.append(str(exc))
                log.warning("ECDSA signing of %s by nodes %s failed: %s", request.request_id, signers, exc)
                if exc.culprit is not None:
                    blamed.add(exc.culprit)
                elif exc.unreachable:
                    unreachable.add(exc.node)
                else:  # the reporting node is probably honest: suspect the others
                    for i in signers:
                        suspicion[i] += 0 if i == exc.node else 1
        usable = sorted(set(candidates) - blamed - unreachable)
        raise SigningError(
            f"only {len(usable)} of the key's nodes could sign ({usable}), {threshold} are needed, or every set "
            f"tried failed: nothing was signed (blamed: {sorted(blamed) or 'none'}, "
            f"unreachable: {sorted(unreachable) or 'none'}{'; last failure: ' + failures[-1] if failures else ''})"
        )

    def _sign_once(
        self, request: SigningRequest, public_key: bytes, generation: int, signers: tuple[int, ...]
    ) -> bytes:
        session = secrets.token_hex(16)
        ids = list(signers)
        channels = self._open(ids)
        try:
            missing = [i for i in ids if i not in channels]
            if missing:
                raise RoundFailedError(f"node {missing[0]} unreachable", missing[0], unreachable=True)
            start = EcdsaSign(session, request.request_id, request.key_id, public_key, generation, ids, request.payload)
            try:
                combined = self._rounds(session, channels, ids, {i: start for i in ids}, EcdsaSignature, keygen=False)
            except RoundFailedError:
                self._abort(session, channels)
                raise
        finally:
            for channel in channels.values():
                channel.close()
        raws = {c.r + c.s for c in combined.values()}
        if len(raws) != 1:
            raise RoundFailedError("the signers combined different signatures", ids[0])
        (raw,) = raws
        try:
            return finish_secp256k1(public_key, request.payload, raw)
        except SignatureInvalidError:
            raise RoundFailedError("the combined signature does not verify under the key", ids[0]) from None

    # -- rounds -----------------------------------------------------------------------------------------------------

    def _rounds(
        self,
        session: str,
        channels: Mapping[int, SecureChannel],
        ids: list[int],
        start: Mapping[int, EcdsaRequestBody],
        last: type[_B],
        *,
        keygen: bool,
    ) -> dict[int, _B]:
        replies = self._step(channels, start, EcdsaRoundReply, "round 1")
        commitments: list[bytes] = []
        for rnd in (2, 3, 4):
            inbox = self.relay(rnd, self._route(rnd, replies, ids))
            bodies = {i: EcdsaRound(session, rnd, inbox[i], commitments if rnd == 4 else []) for i in ids}
            replies = self._step(channels, bodies, EcdsaRoundReply, f"round {rnd}")
            if keygen and rnd == 2:
                commitments = [replies[i].commitment for i in ids]
        inbox = self.relay(5, self._route(5, replies, ids))
        return self._step(channels, {i: EcdsaRound(session, 5, inbox[i]) for i in ids}, last, "round 5")

    @staticmethod
    def _route(rnd: int, replies: Mapping[int, EcdsaRoundReply], ids: list[int]) -> dict[int, list[DklsWire]]:
        inbox: dict[int, list[DklsWire]] = {i: [] for i in ids}
        for i, reply in replies.items():
            others = [j for j in ids if j != i]
            if sorted(w.recipient for w in reply.messages) != others or any(w.sender != i for w in reply.messages):
                raise RoundFailedError(f"round {rnd}: node {i} addressed its messages wrongly", i, culprit=i)
            for w in reply.messages:
                inbox[w.recipient].append(w)
        return inbox

    def _step(self, channels: Mapping[int, SecureChannel], bodies: Mapping[int, EcdsaRequestBody], kind: type[_B],
              step: str) -> dict[int, _B]:  # fmt: skip
        replies = self._ask_all(channels, {i: Ecdsa(encode_body(b)) for i, b in bodies.items()})
        out: dict[int, _B] = {}
        failed: list[RoundFailedError] = []
        for i, reply in sorted(replies.items()):
            body: EcdsaReplyBody | None = None
            if isinstance(reply, EcdsaResult):
                try:
                    body = decode_reply_body(reply.body)
                except msgspec.MsgspecError:
                    body = None
            if isinstance(body, kind):
                out[i] = body
            elif isinstance(reply, ErrorReply):
                failed.append(RoundFailedError(f"{step}: {reply.message}", i, reply.culprit))
            else:
                failed.append(RoundFailedError(f"{step}: node {i} answered something unexpected", i, culprit=i))
        if failed:  # a named culprit first: that is the most useful report
            raise min(failed, key=lambda e: (e.culprit is None, e.node))
        return out

    def _abort(self, session: str, channels: Mapping[int, SecureChannel]) -> None:
        with contextlib.suppress(SigningError):
            self._ask_all(channels, dict.fromkeys(channels, Ecdsa(encode_body(EcdsaAbort(session)))))
