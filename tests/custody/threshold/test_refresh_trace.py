"""The node's refresh and repair code, run in one process and traced line by line, never holds the group secret.

Five :class:`~exchange_threshold.node_refresh.RefreshService` instances with real sealed stores answer the messages a
coordinator would relay (every secret between them encrypted end to end). A ``sys.settrace`` hook records every int
and bytes local of every frame of the node-side modules at every line; the group secret, reconstructed afterwards
in the test from three shares, is in none of them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import exchange_threshold.groups
import exchange_threshold.node_refresh
import exchange_threshold.refresh
import exchange_threshold.repair
import exchange_threshold.shares
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from exchange_threshold import frost
from exchange_threshold.channel import public_bytes
from exchange_threshold.dkg import DkgParticipant
from exchange_threshold.groups import ED25519_SHA512
from exchange_threshold.messages import (
    EncryptedShare,
    EpochReply,
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
)
from exchange_threshold.node_refresh import RefreshService
from exchange_threshold.shares import ShareBook
from exchange_threshold.store import SealedStore

from .conftest import FAST_KDF

IDS = [1, 2, 3, 4, 5]
SUITE = ED25519_SHA512
TRACED = {
    Path(m.__file__).resolve()  # type: ignore[arg-type]
    for m in (
        exchange_threshold.node_refresh,
        exchange_threshold.shares,
        exchange_threshold.refresh,
        exchange_threshold.repair,
        exchange_threshold.groups,
    )
}


def _values(obj: Any, seen: set[int] | None = None) -> Iterator[int | bytes]:
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, bool | type):
        return
    seen.add(id(obj))
    if isinstance(obj, int | bytes):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _values(k, seen)
            yield from _values(v, seen)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from _values(v, seen)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            yield from _values(getattr(obj, name), seen)
    elif hasattr(obj, "__struct_fields__"):
        for name in obj.__struct_fields__:
            yield from _values(getattr(obj, name), seen)


class _Recorder:
    def __init__(self) -> None:
        self.values: set[int | bytes] = set()

    def __call__(self, frame: FrameType, event: str, arg: object) -> Any:
        if Path(frame.f_code.co_filename).resolve() not in TRACED:
            return None
        return self._local

    def _local(self, frame: FrameType, event: str, arg: object) -> Any:
        self.values.update(_values(dict(frame.f_locals)))
        if event == "return":
            self.values.update(_values(arg))
        return self._local


def test_no_frame_of_the_nodes_refresh_or_repair_holds_the_group_secret(tmp_path: Path) -> None:
    keys = {i: X25519PrivateKey.generate() for i in IDS}
    books = {i: ShareBook(SealedStore(tmp_path / f"node{i}", b"pw", kdf=FAST_KDF)) for i in IDS}
    nodes = {i: RefreshService(i, {j: public_bytes(keys[j]) for j in IDS if j != i}, keys[i], books[i]) for i in IDS}
    parts = {i: DkgParticipant(SUITE, i, 3, IDS, b"trace") for i in IDS}
    packages = {i: p.round1() for i, p in parts.items()}
    outgoing = {i: p.round2(packages)[0] for i, p in parts.items()}
    shares = {j: parts[j].finish({i: outgoing[i][j] for i in IDS if i != j}) for j in IDS}
    for i in IDS:
        books[i].add_initial("k", shares[i])
    gpk = shares[1].group_public_key
    dealers = [1, 2, 3, 4]  # node 5 is offline: it gets its new share by repair

    recorder = _Recorder()
    previous = sys.gettrace()
    sys.settrace(recorder)
    try:
        r1 = {i: nodes[i].handle(RefreshRound1("s1", "k", gpk, 0, dealers, shares[i].transcript)) for i in dealers}
        wire = [r.package for r in r1.values() if isinstance(r, RefreshRound1Reply)]
        r2 = {i: nodes[i].handle(RefreshRound2("s1", wire)) for i in dealers}
        inbox: dict[int, list[EncryptedShare]] = {i: [] for i in dealers}
        for reply in r2.values():
            assert isinstance(reply, RefreshRound2Reply)
            for e in reply.shares:
                inbox[e.recipient].append(e)
        r3 = {i: nodes[i].handle(RefreshFinish("s1", inbox[i])) for i in dealers}
        assert all(isinstance(r, RefreshFinishReply) for r in r3.values())
        transcript = next(r.transcript for r in r3.values() if isinstance(r, RefreshFinishReply))
        for i in dealers:
            assert nodes[i].handle(RefreshCommit("k", gpk, 1, transcript)) == EpochReply(1)
        new = {i: books[i].current("k", gpk, 1) for i in dealers}
        helpers = [1, 2, 3]
        h1 = {i: nodes[i].handle(RepairRound1("s2", "k", gpk, 1, helpers, 5, transcript)) for i in helpers}
        parts_in: dict[int, list[EncryptedShare]] = {i: [] for i in helpers}
        for reply in h1.values():
            assert isinstance(reply, RepairRound1Reply)
            for p in reply.parts:
                parts_in[p.recipient].append(p)
        h2 = [nodes[i].handle(RepairRound2("s2", parts_in[i])) for i in helpers]
        sums = [r.part for r in h2 if isinstance(r, RepairRound2Reply)]
        public = new[1]
        finish = RepairFinish(
            "s2", "k", "ed25519", 3, gpk, 1, dict(public.verifying_shares), public.transcript, helpers, sums
        )
        assert nodes[5].handle(finish) == EpochReply(1)
    finally:
        sys.settrace(previous)
    new[5] = books[5].current("k", gpk, 1)
    secret = sum(frost.lagrange_coefficient(SUITE, i, (1, 2, 3)) * shares[i].secret_share for i in (1, 2, 3))
    secret %= SUITE.order
    for subset in [(1, 2, 3), (2, 4, 5), (3, 4, 5)]:  # the refreshed and the repaired shares are of the same secret
        assert sum(
            frost.lagrange_coefficient(SUITE, i, subset) * new[i].secret_share for i in subset
        ) % SUITE.order == (secret)
    # the hook sees the secret values the nodes handle, so it cannot pass vacuously
    assert {new[1].secret_share, new[5].secret_share, shares[2].secret_share} <= recorder.values
    forms = {secret, (-secret) % SUITE.order, SUITE.serialize_scalar(secret)}
    assert not forms & recorder.values, "a node's refresh or repair frame held the group secret"
