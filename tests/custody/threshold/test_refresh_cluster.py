"""Proactive refresh and share repair across five real node processes (their own cluster: nodes go down here)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from exchange_threshold import frost
from exchange_threshold.channel import SecureChannel
from exchange_threshold.groups import ED25519_SHA512
from exchange_threshold.messages import (
    Commit,
    CommitReply,
    ErrorReply,
    RefreshFinish,
    Reply,
    Request,
    decode_reply,
    encode,
)
from exchange_threshold.node import key_share_from_json, load_identity
from exchange_threshold.resharing import Refresher
from exchange_threshold.store import SealedStore

from exchange_framework.interfaces import KeyScheme, SigningError, SigningRequest

from .conftest import IDS, PASSPHRASE, Cluster, running_cluster

pytestmark = pytest.mark.slow
GUARD = 2.0  # seconds a node refuses a second refresh of a key in progress (60 by default)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Five honest node processes of this module's own."""
    with running_cluster(tmp_path_factory.mktemp("refresh"), evil=None, refresh_guard_seconds=GUARD) as started:
        yield started


@pytest.fixture(autouse=True)
def _all_nodes_up(nodes: Cluster) -> Iterator[None]:
    yield
    for i in IDS:  # a test that stopped or replaced nodes leaves the cluster as it found it
        if i not in nodes.processes or nodes.processes[i].poll() is not None or nodes.processes[i].args[1] != "-m":
            if i in nodes.processes:
                nodes.stop(i)
            nodes.start(i)


def _sign(nodes: Cluster, key_id: str, public_key: bytes, subset: list[int], n: int = 0) -> None:
    signer = nodes.signer(subset)
    message = f"refresh test {key_id} {subset} {n}".encode()
    signature = signer.sign(SigningRequest(f"r-{n}", key_id, "solana", message, KeyScheme.ED25519))
    nacl.signing.VerifyKey(public_key).verify(message, signature)
    assert len(signer.last_signers) == 3 and set(signer.last_signers) <= set(subset)


def _every_subset_signs(nodes: Cluster, key_id: str, public_key: bytes) -> None:
    for n, subset in enumerate(itertools.combinations(IDS, 3)):
        _sign(nodes, key_id, public_key, list(subset), n)


def _records(root: Path) -> dict[str, bytes]:
    store = SealedStore(root, PASSPHRASE.encode())
    out = {}
    for path in root.rglob("*.sealed"):
        name = path.relative_to(root).with_suffix("").as_posix()
        out[name] = store.get(name) or b""
    return out


def _share_names(nodes: Cluster, i: int, key_id: str) -> list[str]:
    return sorted(n for n in _records(nodes.root / f"node{i}") if f"/{key_id}/" in n)


def _ask(nodes: Cluster, i: int, request: Request) -> Reply:
    node = nodes.nodes[i]
    channel = SecureChannel.connect(
        (node.host, node.port), load_identity(nodes.coordinator_store), bytes.fromhex(node.public_key)
    )
    try:
        channel.send(encode(request))
        return decode_reply(channel.recv())
    finally:
        channel.close()


def test_refresh_keeps_the_key_and_every_three_nodes_sign(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-all", KeyScheme.ED25519)
    before = signer.key_state("r-all")
    timings = []
    for epoch in (1, 2):
        started = time.perf_counter()
        result = signer.refresh("r-all")
        timings.append(time.perf_counter() - started)
        assert (result.epoch, result.prepared, result.needs_repair, result.blamed) == (epoch, tuple(IDS), (), {})
        assert signer.public_key("r-all") == public_key  # the group key is unchanged
        state = signer.key_state("r-all")
        assert state.epoch == epoch and not state.needs_repair and state.refreshed_at is not None
        assert all(state.verifying_shares[i] != before.verifying_shares[i] for i in IDS)  # every share changed
        for i in IDS:  # the node keeps only the new epoch's share: the old one is deleted
            assert _share_names(nodes, i, "r-all") == [f"keys/r-all/{public_key.hex()}.{epoch}"]
        _every_subset_signs(nodes, "r-all", public_key)
        before = state
    print(f"\nrefresh latency (5 node processes, Ed25519): {', '.join(f'{t * 1000:.0f} ms' for t in timings)}")


def test_after_a_refresh_two_nodes_cannot_sign_and_a_bad_signature_share_is_named(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-evil-sign", KeyScheme.ED25519)
    nodes.stop(2)
    nodes.start(2, "evil_node.py")  # returns a wrong signature share for payloads starting with MISBEHAVE
    assert signer.refresh("r-evil-sign").prepared == tuple(IDS)  # it refreshes honestly
    for pair in itertools.combinations(IDS, 2):
        with pytest.raises(SigningError, match="3 are needed"):
            _sign(nodes, "r-evil-sign", public_key, list(pair))
    message = b"MISBEHAVE after refresh"
    signing = nodes.signer()
    signature = signing.sign(SigningRequest("evil-1", "r-evil-sign", "solana", message, KeyScheme.ED25519))
    nacl.signing.VerifyKey(public_key).verify(message, signature)
    assert signing.excluded == {2} and 2 not in signing.last_signers


def test_a_signature_requested_while_a_refresh_commits_is_made_at_the_new_epoch(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-race", KeyScheme.ED25519)
    ask_all = signer._ask_all
    refreshed: list[int] = []

    def refresh_first(channels: Any, requests: Mapping[int, Request]) -> dict[int, Reply]:
        if not refreshed and any(isinstance(r, Commit) for r in requests.values()):
            refreshed.append(nodes.signer().refresh("r-race").epoch)  # another coordinator commits epoch 1 now
        return ask_all(channels, requests)

    signer._ask_all = refresh_first  # type: ignore[method-assign]
    message = b"signed across a refresh"
    signature = signer.sign(SigningRequest("race-1", "r-race", "solana", message, KeyScheme.ED25519))
    nacl.signing.VerifyKey(public_key).verify(message, signature)
    assert refreshed == [1]  # the nodes refused epoch 0 and the signer started over at epoch 1


def test_a_share_of_an_old_epoch_never_signs(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-old", KeyScheme.ED25519)
    old_record = (nodes.root / "node3" / "keys" / "r-old" / f"{public_key.hex()}.sealed").read_bytes()
    signer.refresh("r-old")
    # the coordinator asking for epoch 0 (an old coordinator, a replay): refused by every node
    for i in IDS:
        reply = _ask(nodes, i, Commit(f"old-{i}", "r-old", public_key, 0))
        assert isinstance(reply, ErrorReply) and "refusing an old epoch" in reply.message, reply
    assert isinstance(_ask(nodes, 3, Commit("new-3", "r-old", public_key, 1)), CommitReply)
    # the old share restored from a backup onto node 3 is still refused, and deleted again
    (nodes.root / "node3" / "keys" / "r-old" / f"{public_key.hex()}.sealed").write_bytes(old_record)
    reply = _ask(nodes, 3, Commit("old-3b", "r-old", public_key, 0))
    assert isinstance(reply, ErrorReply) and "refusing an old epoch" in reply.message
    assert _share_names(nodes, 3, "r-old") == [f"keys/r-old/{public_key.hex()}.1"]
    _sign(nodes, "r-old", public_key, [1, 3, 5])


def test_refresh_with_two_nodes_down_then_repair_brings_them_back(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-down", KeyScheme.ED25519)
    nodes.stop(4)
    nodes.stop(5)
    result = signer.refresh("r-down")
    assert (result.epoch, result.prepared, result.needs_repair, result.repaired) == (1, (1, 2, 3), (4, 5), ())
    assert signer.key_state("r-down").needs_repair == {4, 5}
    _sign(nodes, "r-down", public_key, IDS)  # three nodes sign while two are down
    nodes.start(4)
    nodes.start(5)
    # back with their epoch-0 shares: they refuse to sign at epoch 1, and the signer does not ask them
    reply = _ask(nodes, 4, Commit("stale-4", "r-down", public_key, 1))
    assert isinstance(reply, ErrorReply) and "needs repair" in reply.message
    with pytest.raises(SigningError, match=r"needing repair after a refresh: \[4, 5\]"):
        _sign(nodes, "r-down", public_key, [1, 4, 5])
    assert not signer.refresh_due("r-down")
    for node in (4, 5):
        repaired = signer.repair("r-down", node)
        assert (repaired.node, repaired.epoch, len(repaired.helpers)) == (node, 1, 3)
        assert node not in repaired.helpers
        assert _share_names(nodes, node, "r-down") == [f"keys/r-down/{public_key.hex()}.1"]
    assert not signer.key_state("r-down").needs_repair
    _every_subset_signs(nodes, "r-down", public_key)
    # and after the repair, signing survives any two nodes being down
    nodes.stop(1)
    nodes.stop(2)
    _sign(nodes, "r-down", public_key, IDS, 99)


def test_a_node_that_lost_its_share_gets_it_back_by_repair(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-lost-share", KeyScheme.ED25519)
    signer.refresh("r-lost-share")
    record = nodes.root / "node3" / "keys" / "r-lost-share" / f"{public_key.hex()}.1.sealed"
    before = record.read_bytes()
    record.unlink()  # the disk lost it
    epochs = Refresher(signer).node_epochs("r-lost-share")
    assert {i: (r.epoch if r else "?") for i, r in epochs.items()} == {1: 1, 2: 1, 3: None, 4: 1, 5: 1}
    with pytest.raises(SigningError):  # node 3 alone with one other cannot make up three
        _sign(nodes, "r-lost-share", public_key, [1, 3, 5])
    assert signer.repair("r-lost-share", 3).epoch == 1
    assert record.is_file() and record.read_bytes() != before  # sealed afresh (new nonce), same share
    again = key_share_from_json(
        SealedStore(nodes.root / "node3", PASSPHRASE.encode()).get(f"keys/r-lost-share/{public_key.hex()}.1") or b""
    )
    assert ED25519_SHA512.base_mul(again.secret_share) == signer.key_state("r-lost-share").verifying_shares[3]
    _sign(nodes, "r-lost-share", public_key, [1, 3, 5])


def test_nodes_back_from_an_outage_are_repaired_by_the_next_refresh_and_take_part(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-back", KeyScheme.ED25519)
    nodes.stop(1)
    nodes.stop(5)
    assert signer.refresh("r-back").needs_repair == (1, 5)
    nodes.start(1)
    result = signer.refresh("r-back")  # node 1 is back (repaired first, then deals), node 5 is still down
    assert (result.epoch, result.prepared, result.repaired, result.needs_repair) == (2, (1, 2, 3, 4), (1,), (5,))
    nodes.start(5)
    result = signer.refresh("r-back")
    assert (result.epoch, result.prepared, result.repaired, result.needs_repair) == (3, tuple(IDS), (5,), ())
    _every_subset_signs(nodes, "r-back", public_key)


def test_refresh_needs_threshold_nodes_and_changes_nothing_otherwise(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-few", KeyScheme.ED25519)
    for i in (3, 4, 5):
        nodes.stop(i)
    with pytest.raises(
        SigningError,
        match=r"needs 3 nodes holding epoch 0 to prepare; only 2 could; node 3: unreachable; "
        r"node 4: unreachable; node 5: unreachable\. Nothing changed",
    ):
        signer.refresh("r-few")
    assert signer.key_state("r-few").epoch == 0
    for i in (3, 4, 5):
        nodes.start(i)
    for i in IDS:
        assert _share_names(nodes, i, "r-few") == [f"keys/r-few/{public_key.hex()}"]
    _sign(nodes, "r-few", public_key, [1, 2, 3])


def test_a_bad_sub_share_is_detected_its_dealer_named_and_the_victim_repaired(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("evil-refresh-1", KeyScheme.ED25519)
    nodes.stop(2)
    nodes.start(2, "evil_refresh_node.py")  # deals node 4 a sub-share off its commitments
    result = signer.refresh("evil-refresh-1")
    assert result.blamed == {2: 4}  # dealer 2, reported by node 4
    assert result.prepared == (1, 2, 3, 5) and result.repaired == (4,) and result.needs_repair == ()
    assert _share_names(nodes, 4, "evil-refresh-1") == [f"keys/evil-refresh-1/{public_key.hex()}.1"]
    _every_subset_signs(nodes, "evil-refresh-1", public_key)


def test_a_dealer_reported_by_too_many_nodes_is_left_out_and_the_refresh_still_commits(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("evil-refresh-many", KeyScheme.ED25519)
    nodes.stop(2)
    nodes.start(2, "evil_refresh_node.py")  # deals nodes 3, 4 and 5 bad sub-shares: only 2 nodes could prepare
    result = signer.refresh("evil-refresh-many")
    assert set(result.blamed) == {2} and result.blamed[2] in (3, 4, 5)
    # the second attempt runs without node 2, which then gets its new share by repair like any node left out
    assert (result.epoch, result.prepared, result.repaired, result.needs_repair) == (1, (1, 3, 4, 5), (2,), ())
    _every_subset_signs(nodes, "evil-refresh-many", public_key)


def test_a_node_restarted_or_down_between_prepare_and_commit_gets_the_new_share(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-crash", KeyScheme.ED25519)
    refresher = Refresher(signer)
    prepared = refresher.prepare("r-crash")
    assert prepared.prepared == tuple(IDS)
    for i in IDS:  # prepared, not committed: the pending share is sealed on disk, the current one unchanged
        assert _share_names(nodes, i, "r-crash") == [
            f"keys/r-crash/{public_key.hex()}",
            f"pending/r-crash/{public_key.hex()}.1",
        ]
    nodes.stop(3)
    nodes.start(3)  # restarted: its pending share survives
    nodes.stop(5)  # down when the coordinator commits: it never gets the commit message
    result = refresher.commit(prepared)
    assert result.epoch == 1 and result.needs_repair == ()
    assert _share_names(nodes, 3, "r-crash") == [f"keys/r-crash/{public_key.hex()}.1"]
    nodes.start(5)
    assert _share_names(nodes, 5, "r-crash")[1] == f"pending/r-crash/{public_key.hex()}.1"
    _sign(nodes, "r-crash", public_key, [3, 4, 5])  # node 5 commits its pending share when asked at epoch 1
    assert _share_names(nodes, 5, "r-crash") == [f"keys/r-crash/{public_key.hex()}.1"]


def test_a_node_restarted_mid_refresh_before_preparing_is_repaired(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-midway", KeyScheme.ED25519)
    ask_all = signer._ask_all

    def restart_node_4_before_finish(channels: Any, requests: Mapping[int, Request]) -> dict[int, Reply]:
        if any(isinstance(r, RefreshFinish) for r in requests.values()):
            nodes.stop(4)  # loses its refresh session (in memory): it cannot prepare
            nodes.start(4)
        return ask_all(channels, requests)

    signer._ask_all = restart_node_4_before_finish  # type: ignore[method-assign]
    result = signer.refresh("r-midway")
    signer._ask_all = ask_all  # type: ignore[method-assign]
    assert (result.prepared, result.repaired, result.needs_repair) == ((1, 2, 3, 5), (4,), ())
    assert _share_names(nodes, 4, "r-midway") == [f"keys/r-midway/{public_key.hex()}.1"]
    _every_subset_signs(nodes, "r-midway", public_key)


def test_a_refresh_the_coordinator_never_committed_changes_nothing(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-lost", KeyScheme.ED25519)
    Refresher(signer).prepare("r-lost")  # the coordinator dies here
    fresh = nodes.signer()
    assert fresh.key_state("r-lost").epoch == 0
    _sign(nodes, "r-lost", public_key, [1, 2, 3])  # the nodes still sign with their current shares
    # a second coordinator cannot start another refresh while the first one's is prepared (it might still commit)
    with pytest.raises(SigningError, match="in progress"):
        fresh.refresh("r-lost")
    assert fresh.key_state("r-lost").epoch == 0
    time.sleep(GUARD)
    result = fresh.refresh("r-lost")  # later, the next refresh drops the stale pending shares and commits
    assert result.epoch == 1 and result.prepared == tuple(IDS)
    for i in IDS:
        assert _share_names(nodes, i, "r-lost") == [f"keys/r-lost/{public_key.hex()}.1"]
    _sign(nodes, "r-lost", public_key, [2, 4, 5])


def test_a_second_coordinator_cannot_interleave_a_refresh_with_a_prepared_one(nodes: Cluster) -> None:
    first = nodes.signer()
    public_key = first.create_key("r-two", KeyScheme.ED25519)
    prepared = Refresher(first).prepare("r-two")
    nodes.stop(3)
    nodes.start(3)  # the guard is kept on disk with the pending share: it survives a restart
    second = nodes.signer()
    with pytest.raises(SigningError, match="in progress"):
        second.refresh("r-two")  # refused by every node; its aborts leave the first refresh's pending shares alone
    for i in IDS:
        assert _share_names(nodes, i, "r-two")[1] == f"pending/r-two/{public_key.hex()}.1"
    result = Refresher(first).commit(prepared)
    assert (result.epoch, result.prepared, result.needs_repair) == (1, tuple(IDS), ())
    _every_subset_signs(nodes, "r-two", public_key)


def test_no_process_holds_the_group_secret_across_refresh_and_repair(nodes: Cluster) -> None:
    signer = nodes.signer()
    public_key = signer.create_key("r-secret", KeyScheme.ED25519)
    seen: list[tuple[str, str, bytes]] = []  # (owner, record, contents) at every step

    def snapshot(step: str) -> None:
        for owner in [*(f"node{i}" for i in IDS), "coordinator"]:
            for name, data in _records(nodes.root / owner).items():
                if "r-secret" in name or name == "identity":
                    seen.append((f"{owner} {step}", name, data))

    snapshot("after DKG")
    signer.refresh("r-secret")
    snapshot("after refresh 1")
    nodes.stop(5)
    signer.refresh("r-secret")
    snapshot("after refresh 2 with node 5 down")
    nodes.start(5)
    signer.repair("r-secret", 5)
    snapshot("after repair")
    suite = ED25519_SHA512
    shares = {}
    for i in IDS:
        (name,) = _share_names(nodes, i, "r-secret")
        shares[i] = key_share_from_json(_records(nodes.root / f"node{i}")[name])
        assert shares[i].epoch == 2
    secret = (
        sum(frost.lagrange_coefficient(suite, i, (2, 4, 5)) * shares[i].secret_share for i in (2, 4, 5)) % suite.order
    )
    assert suite.base_mul(secret) == public_key  # the shares the processes hold are of this key
    forms = [suite.serialize_scalar(secret), suite.serialize_scalar(secret).hex().encode()]
    share_records = [data for owner, name, data in seen if name.startswith(("keys/", "pending/")) and "node" in owner]
    assert len(share_records) >= 15 and any(
        suite.serialize_scalar(shares[1].secret_share).hex().encode() in d for d in share_records
    )  # the scan reads the share records, so it cannot pass vacuously
    for owner, name, data in seen:
        assert all(form not in data for form in forms), f"{owner}: {name} holds the group secret"
