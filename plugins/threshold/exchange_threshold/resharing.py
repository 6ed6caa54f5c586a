"""The coordinator's side of proactive refresh and share repair, and the key's epoch records.

Records in the coordinator's sealed store (all public data, all immutable once written):

- ``keys/<key id>``: the key from the DKG (epoch 0);
- ``epochs/<key id>/<n>``: epoch ``n``: every participant's verifying share, the transcript, the nodes that prepared
  their new share, when. Writing it is the commit point of a refresh;
- ``repaired/<key id>/<n>.<node>``: node ``node`` got its epoch-``n`` share back by repair.

The key's current epoch is the highest ``n`` recorded. A participant *needs repair* at epoch ``n`` unless it prepared
its share in that refresh or was repaired since; the signer does not ask such a node to sign.

A refresh (:class:`Refresher`) runs over the reachable nodes that hold the current epoch (at least the threshold):
every one deals a zero sharing (:mod:`exchange_threshold.refresh`) and receives the others' sub-shares; a node
that gets every valid sub-share prepares its new share as pending and says so. The coordinator checks every node's
new verifying share against the public commitments, and commits only if at least ``threshold`` nodes prepared: it
records the epoch, then tells those nodes to make the pending share current and delete the old one (a node that
misses that message does it when next asked anything at the new epoch). Otherwise the refresh is aborted and every
node keeps its current share. Nodes that were offline, or did not prepare (a bad sub-share, a restart mid-refresh),
keep their old share, are marked as needing repair, and are repaired (:mod:`exchange_threshold.repair`) at once if
reachable, else later with :meth:`Refresher.repair`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from exchange_framework.interfaces import SigningError, SigningRefusedError
from exchange_threshold.groups import GroupError, suite
from exchange_threshold.messages import (
    EncryptedShare,
    EpochReply,
    ErrorReply,
    KeyStatus,
    RefreshAbort,
    RefreshCommit,
    RefreshFinish,
    RefreshFinishReply,
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
from exchange_threshold.refresh import (
    RefreshError,
    RefreshPackage,
    check_refresh_package,
    interpolate_in_exponent,
    refresh_context,
    refresh_transcript,
    refreshed_verifying_shares,
)
from exchange_threshold.store import SealedStore

if TYPE_CHECKING:
    from exchange_threshold.signer import ThresholdSigner

__all__ = ["KeyEpoch", "PreparedRefresh", "RefreshResult", "Refresher", "RepairResult", "key_epoch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyEpoch:
    """A key's public state now: its epoch, verifying shares, the nodes needing repair, when it was last refreshed."""

    key_id: str
    epoch: int
    verifying_shares: Mapping[int, bytes]
    transcript: bytes
    needs_repair: frozenset[int]
    refreshed_at: int | None  # unix seconds of the last refresh, None if never refreshed
    created_at: int | None  # unix seconds of the DKG, when recorded


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh did: the new epoch, who prepared, who needs repair, who was blamed, who was repaired."""

    key_id: str
    epoch: int
    prepared: tuple[int, ...]
    needs_repair: tuple[int, ...]
    blamed: Mapping[int, int]  # dealer -> the node that reported its bad sub-share
    repaired: tuple[int, ...]
    seconds: float


@dataclass(frozen=True)
class RepairResult:
    """A repair: the node, the epoch of the share it got back, the helpers."""

    key_id: str
    node: int
    epoch: int
    helpers: tuple[int, ...]


@dataclass
class PreparedRefresh:
    """A refresh whose nodes prepared their new shares, not yet committed (:meth:`Refresher.commit` or ``abort``)."""

    key_id: str
    session: str
    group_public_key: bytes
    epoch: int  # the new epoch
    dealers: tuple[int, ...]
    prepared: tuple[int, ...]
    verifying_shares: dict[int, bytes]
    transcript: bytes
    blamed: dict[int, int] = field(default_factory=dict)  # dealer -> reporting node (0: the coordinator's check)
    reachable: tuple[int, ...] = ()  # every node that answered in some attempt: those not prepared get repaired
    started: float = field(default_factory=time.perf_counter)


def key_epoch(store: SealedStore, key_id: str, base: Mapping[str, Any]) -> KeyEpoch:
    """Read the key's current epoch from the coordinator's store (``base`` is the ``keys/<key id>`` record)."""
    if "verifying_shares" not in base or base.get("protocol") is not None:
        raise SigningRefusedError(
            f"key {key_id!r} is not a FROST key ({base.get('protocol')}): FROST refresh and repair do not apply"
        )
    epochs = {}
    for name in store.names(f"epochs/{key_id}"):
        last = name.rpartition("/")[2]
        if last.isdigit():
            epochs[int(last)] = name
    verifying = {int(i): bytes.fromhex(v) for i, v in base["verifying_shares"].items()}
    if not epochs:
        return KeyEpoch(
            key_id, 0, verifying, bytes.fromhex(base["transcript"]), frozenset(), None, base.get("created_at")
        )
    n = max(epochs)
    data = store.get(epochs[n])
    if data is None:  # pragma: no cover - listed a moment ago; records are never removed
        raise SigningError(f"epoch record {epochs[n]} vanished")
    record = json.loads(data)
    repaired = set()
    for name in store.names(f"repaired/{key_id}"):
        epoch, _, node = name.rpartition("/")[2].partition(".")
        if epoch == str(n) and node.isdigit():
            repaired.add(int(node))
    shares = {int(i): bytes.fromhex(v) for i, v in record["verifying_shares"].items()}
    stale = frozenset(set(shares) - set(record["prepared"]) - repaired)
    return KeyEpoch(
        key_id,
        n,
        shares,
        bytes.fromhex(record["transcript"]),
        stale,
        int(record["refreshed_at"]),
        base.get("created_at"),
    )


class Refresher:
    """Refresh and repair for the keys of one :class:`~exchange_threshold.signer.ThresholdSigner`."""

    def __init__(self, signer: ThresholdSigner) -> None:
        self.signer = signer
        self._lock = threading.RLock()  # one refresh or repair at a time per signer

    # -- refresh ---------------------------------------------------------------------------------------------------

    def refresh(self, key_id: str) -> RefreshResult:
        """Refresh ``key_id``: repair nodes left behind earlier (if reachable now, so they take part), prepare,
        commit (or abort), then repair the reachable nodes that did not prepare."""
        with self._lock:
            signer = self.signer
            behind = key_epoch(signer._store(), key_id, signer._record(key_id)).needs_repair
            caught_up = []
            for node in sorted(behind):
                try:
                    self._repair(key_id, node, set())
                    caught_up.append(node)
                except SigningError as exc:
                    log.info("refresh %s: node %d still needs repair: %s", key_id, node, exc)
            prepared = self.prepare(key_id)
            result = self.commit(prepared)
            if caught_up:
                result = replace(result, repaired=tuple(sorted({*caught_up, *result.repaired})))
            return result

    def prepare(self, key_id: str) -> PreparedRefresh:
        """Run the refresh up to the nodes' pending shares; raise ``SigningError`` (nothing changed) if it fails."""
        signer = self.signer
        base = signer._record(key_id)
        state = key_epoch(signer._store(), key_id, base)
        threshold = int(base["threshold"])
        candidates = [
            i
            for i in sorted(state.verifying_shares)
            if i in signer.nodes and i not in signer.excluded and i not in state.needs_repair
        ]
        blamed: dict[int, int] = {}
        reachable: set[int] = set()
        reasons: dict[int, str] = {}
        for _ in range(len(candidates) + 1):
            if len(candidates) < threshold:
                break
            attempt, failed = self._attempt(key_id, base, state, candidates, blamed, reachable, reasons)
            if attempt is not None:
                attempt.reachable = tuple(sorted(reachable))
                return attempt
            candidates = [i for i in candidates if i not in failed]
        blame = "".join(f"; node {a} reports a bad sub-share from node {d}" for d, a in sorted(blamed.items()))
        why = "".join(f"; node {i}: {reason}" for i, reason in sorted(reasons.items()))
        raise SigningError(
            f"refresh of {key_id!r} needs {threshold} nodes holding epoch {state.epoch} to prepare; only "
            f"{len(candidates)} could{blame}{why}. Nothing changed: every node keeps its current share"
        )

    def _attempt(
        self,
        key_id: str,
        base: Mapping[str, Any],
        state: KeyEpoch,
        candidates: Sequence[int],
        blamed: dict[int, int],
        reachable: set[int],
        reasons: dict[int, str],
    ) -> tuple[PreparedRefresh | None, set[int]]:
        signer = self.signer
        s = suite(base["group"])
        threshold = int(base["threshold"])
        gpk = bytes.fromhex(base["group_public_key"])
        session = secrets.token_hex(16)
        channels = signer._open(candidates)
        dealers = sorted(channels)
        reachable.update(dealers)
        failed = set(candidates) - set(channels)
        reasons.update({i: "unreachable" for i in failed})
        if len(dealers) < threshold:
            for c in channels.values():
                c.close()
            return None, failed
        prepared: list[int] = []
        try:
            start = RefreshRound1(session, key_id, gpk, state.epoch, dealers, state.transcript)
            r1 = signer._ask_all(channels, {i: start for i in dealers})
            packages: dict[int, RefreshPackage] = {}
            for i, reply in r1.items():
                if not isinstance(reply, RefreshRound1Reply):
                    log.warning("refresh %s: node %d did not deal: %s", key_id, i, _describe(reply))
                    reasons[i] = _describe(reply)
                    failed.add(i)
                    continue
                package = RefreshPackage(reply.package.identifier, tuple(reply.package.commitments))
                try:
                    check_refresh_package(s, i, package, threshold)
                except RefreshError as exc:
                    log.error("refresh %s: node %d sent a bad package: %s", key_id, i, exc)
                    blamed[i] = 0
                    failed.add(i)
                    continue
                packages[i] = package
            if failed:
                self._abort(channels, session, key_id, gpk, state.epoch + 1)
                return None, failed
            context = refresh_context(key_id, gpk, state.epoch, session)
            transcript = refresh_transcript(s, context, threshold, packages)
            wire = [r.package for _, r in sorted(r1.items()) if isinstance(r, RefreshRound1Reply)]
            r2 = signer._ask_all(channels, {i: RefreshRound2(session, wire) for i in dealers})
            inbox: dict[int, list[EncryptedShare]] = {i: [] for i in dealers}
            for i, reply in r2.items():
                others = [j for j in dealers if j != i]
                if (
                    not isinstance(reply, RefreshRound2Reply)
                    or reply.transcript != transcript
                    or sorted(e.recipient for e in reply.shares) != others
                    or any(e.sender != i for e in reply.shares)
                ):
                    log.warning("refresh %s: node %d failed round 2: %s", key_id, i, _describe(reply))
                    reasons[i] = _describe(reply)
                    failed.add(i)
                    continue
                for e in reply.shares:
                    inbox[e.recipient].append(e)
            if failed:
                self._abort(channels, session, key_id, gpk, state.epoch + 1)
                return None, failed
            try:
                expected = refreshed_verifying_shares(s, state.verifying_shares, packages)
                for subset in (sorted(expected)[:threshold], sorted(expected)[-threshold:]):
                    if interpolate_in_exponent(s, {i: expected[i] for i in subset}) != gpk:  # pragma: no cover
                        raise GroupError("the new verifying shares do not interpolate to the group public key")
            except GroupError as exc:  # a new verifying share is the identity: negligible unless a dealer cheats
                self._abort(channels, session, key_id, gpk, state.epoch + 1)
                raise SigningError(f"refresh of {key_id!r}: {exc}. Nothing changed") from exc
            r3 = signer._ask_all(channels, {i: RefreshFinish(session, inbox[i]) for i in dealers})
            for i, reply in sorted(r3.items()):
                if isinstance(reply, RefreshFinishReply) and (reply.verifying_share, reply.transcript) == (
                    expected[i],
                    transcript,
                ):
                    prepared.append(i)
                    continue
                log.warning("refresh %s: node %d did not prepare: %s", key_id, i, _describe(reply))
                reasons[i] = _describe(reply)
                if isinstance(reply, ErrorReply) and reply.culprit is not None and reply.culprit in dealers:
                    log.error("refresh %s: node %d reports a bad sub-share from node %d", key_id, i, reply.culprit)
                    blamed[reply.culprit] = i
            if len(prepared) < threshold:
                self._abort(channels, session, key_id, gpk, state.epoch + 1)
                accused = {d for d, accuser in blamed.items() if d in dealers and accuser in dealers}
                # retry without the dealers reported in this attempt (their victims can still prepare), else
                # without the nodes that did not prepare
                return None, accused or (set(dealers) - set(prepared))
        finally:
            for c in channels.values():
                c.close()
        return (
            PreparedRefresh(
                key_id, session, gpk, state.epoch + 1, tuple(dealers), tuple(prepared), expected, transcript, blamed
            ),
            set(),
        )

    def _abort(self, channels: Mapping[int, Any], session: str, key_id: str, gpk: bytes, epoch: int) -> None:
        message = RefreshAbort(session, key_id, gpk, epoch)
        self.signer._ask_all(channels, {i: message for i in channels})

    def abort(self, prepared: PreparedRefresh) -> None:
        """Give up a prepared refresh: the nodes drop their pending shares and keep their current ones."""
        channels = self.signer._open(prepared.dealers)
        try:
            self._abort(channels, prepared.session, prepared.key_id, prepared.group_public_key, prepared.epoch)
        finally:
            for c in channels.values():
                c.close()

    def commit(self, prepared: PreparedRefresh, *, now: int | None = None) -> RefreshResult:
        """Record the new epoch (the commit point), tell the nodes, repair the reachable ones that did not prepare."""
        signer = self.signer
        key_id = prepared.key_id
        record = {
            "epoch": prepared.epoch,
            "verifying_shares": {str(i): v.hex() for i, v in sorted(prepared.verifying_shares.items())},
            "transcript": prepared.transcript.hex(),
            "session": prepared.session,
            "dealers": list(prepared.dealers),
            "prepared": list(prepared.prepared),
            "blamed": {str(d): a for d, a in sorted(prepared.blamed.items())},
            "refreshed_at": int(time.time()) if now is None else now,
        }
        with signer._lock:
            current = key_epoch(signer._store(), key_id, signer._record(key_id)).epoch
            if current != prepared.epoch - 1 or not signer._store().put(
                f"epochs/{key_id}/{prepared.epoch}", json.dumps(record).encode()
            ):
                raise SigningError(f"key {key_id!r} moved to epoch {current} meanwhile: this refresh is not committed")
        log.info("refresh %s: epoch %d committed, prepared by %s", key_id, prepared.epoch, list(prepared.prepared))
        channels = signer._open(prepared.dealers)
        try:
            commit = RefreshCommit(key_id, prepared.group_public_key, prepared.epoch, prepared.transcript)
            replies = signer._ask_all(
                {i: c for i, c in channels.items() if i in prepared.prepared},
                {i: commit for i in prepared.prepared if i in channels},
            )
            for i, reply in replies.items():
                if not isinstance(reply, EpochReply) or reply.epoch != prepared.epoch:
                    log.warning("refresh %s: node %d did not confirm the commit: %s", key_id, i, _describe(reply))
            others = [i for i in channels if i not in prepared.prepared]
            if others:  # they did not prepare: drop whatever they hold as pending, they get repaired instead
                abort = RefreshAbort(prepared.session, key_id, prepared.group_public_key, prepared.epoch)
                signer._ask_all({i: channels[i] for i in others}, {i: abort for i in others})
        finally:
            for c in channels.values():
                c.close()
        repaired = []
        for node in sorted(set(prepared.reachable or prepared.dealers) - set(prepared.prepared)):
            try:
                self.repair(key_id, node, avoid=set(prepared.blamed))
                repaired.append(node)
            except SigningError as exc:
                log.warning("refresh %s: node %d needs repair: %s", key_id, node, exc)
        state = key_epoch(signer._store(), key_id, signer._record(key_id))
        return RefreshResult(
            key_id,
            prepared.epoch,
            prepared.prepared,
            tuple(sorted(state.needs_repair)),
            dict(prepared.blamed),
            tuple(repaired),
            time.perf_counter() - prepared.started,
        )

    # -- repair ----------------------------------------------------------------------------------------------------

    def repair(self, key_id: str, node: int, *, avoid: set[int] | None = None) -> RepairResult:
        """Give ``node`` its share of the current epoch back from ``threshold`` helpers; raise if that fails."""
        with self._lock:
            return self._repair(key_id, node, avoid or set())

    def _repair(self, key_id: str, node: int, avoid: set[int]) -> RepairResult:
        signer = self.signer
        base = signer._record(key_id)
        state = key_epoch(signer._store(), key_id, base)
        threshold = int(base["threshold"])
        if node not in state.verifying_shares or node not in signer.nodes:
            raise SigningError(f"node {node} is not a configured participant of key {key_id!r}")
        gpk = bytes.fromhex(base["group_public_key"])
        pool = [
            i
            for i in sorted(state.verifying_shares)
            if i != node and i in signer.nodes and i not in state.needs_repair and i not in signer.excluded
        ]
        pool.sort(key=lambda i: i in avoid)  # prefer helpers nobody reported
        channels = signer._open([*pool, node])
        try:
            if node not in channels:
                raise SigningError(f"node {node} is unreachable: repair it when it is back")
            helpers = sorted([i for i in pool if i in channels][:threshold])
            if len(helpers) < threshold:
                raise SigningError(f"repair of node {node} needs {threshold} helpers holding epoch {state.epoch}")
            session = secrets.token_hex(16)
            start = RepairRound1(session, key_id, gpk, state.epoch, helpers, node, state.transcript)
            r1 = signer._ask_all({i: channels[i] for i in helpers}, {i: start for i in helpers})
            inbox: dict[int, list[EncryptedShare]] = {i: [] for i in helpers}
            for i, reply in r1.items():
                if not isinstance(reply, RepairRound1Reply) or sorted(p.recipient for p in reply.parts) != [
                    j for j in helpers if j != i
                ]:
                    raise SigningError(f"repair of node {node}: helper {i} failed: {_describe(reply)}")
                for p in reply.parts:
                    if p.sender != i:
                        raise SigningError(f"repair of node {node}: helper {i} sent parts as another node")
                    inbox[p.recipient].append(p)
            r2 = signer._ask_all(
                {i: channels[i] for i in helpers}, {i: RepairRound2(session, inbox[i]) for i in helpers}
            )
            sums = []
            for i, reply in sorted(r2.items()):
                if not isinstance(reply, RepairRound2Reply) or (reply.part.sender, reply.part.recipient) != (i, node):
                    raise SigningError(f"repair of node {node}: helper {i} failed: {_describe(reply)}")
                sums.append(reply.part)
            finish = RepairFinish(
                session,
                key_id,
                base["group"],
                threshold,
                gpk,
                state.epoch,
                dict(state.verifying_shares),
                state.transcript,
                helpers,
                sums,
            )
            done = signer._ask_all({node: channels[node]}, {node: finish})[node]
            if not isinstance(done, EpochReply) or done.epoch != state.epoch:
                raise SigningError(f"repair of node {node} failed: {_describe(done)}")
        finally:
            for c in channels.values():
                c.close()
        if state.epoch > 0:
            signer._store().put(
                f"repaired/{key_id}/{state.epoch}.{node}",
                json.dumps({"node": node, "helpers": helpers, "at": int(time.time())}).encode(),
            )
        log.info("repair %s: node %d holds epoch %d again (helpers %s)", key_id, node, state.epoch, helpers)
        return RepairResult(key_id, node, state.epoch, tuple(helpers))

    def node_epochs(self, key_id: str) -> dict[int, EpochReply | None]:
        """Ask every configured node which epoch of the key it holds (None: unreachable or refused)."""
        signer = self.signer
        base = signer._record(key_id)
        gpk = bytes.fromhex(base["group_public_key"])
        ids = sorted(signer.nodes)
        channels = signer._open(ids)
        try:
            replies = signer._ask_all(channels, {i: KeyStatus(key_id, gpk) for i in channels})
        finally:
            for c in channels.values():
                c.close()
        return {i: (r if isinstance(r := replies.get(i), EpochReply) else None) for i in ids}


def _describe(reply: Reply | None) -> str:
    if reply is None:
        return "no answer"
    if isinstance(reply, ErrorReply):
        return reply.message
    return f"unexpected {type(reply).__name__}"
