"""The dealerless DKG: no participant ever holds or computes the group secret; any 3 of 5 shares sign, 2 cannot."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import exchange_threshold.dkg
import exchange_threshold.frost
import exchange_threshold.groups
import nacl.signing
import pytest
from exchange_threshold import frost
from exchange_threshold.dkg import DkgError, DkgParticipant, KeyShare, Round1Package
from exchange_threshold.groups import ED25519_SHA512, SECP256K1_SHA256, Ciphersuite

SUITES = [ED25519_SHA512, SECP256K1_SHA256]
IDS = [1, 2, 3, 4, 5]
TRACED = {Path(m.__file__).resolve() for m in (exchange_threshold.dkg, exchange_threshold.groups)}  # type: ignore[arg-type]


def _values(obj: Any, seen: set[int] | None = None) -> Iterator[int | bytes]:
    """Every int and bytes reachable from ``obj`` (containers, dataclasses, plain objects)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, bool):
        return
    if isinstance(obj, int | bytes):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _values(k, seen)
            yield from _values(v, seen)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from _values(v, seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from _values(vars(obj), seen)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            yield from _values(getattr(obj, name), seen)


class _Recorder:
    """A ``sys.settrace`` hook recording every int/bytes local of every frame of the DKG and group code, each line."""

    def __init__(self) -> None:
        self.values: set[int | bytes] = set()

    def __call__(self, frame: FrameType, event: str, arg: object) -> Any:
        if Path(frame.f_code.co_filename).resolve() not in TRACED:
            return None
        return self._local

    def _local(self, frame: FrameType, event: str, arg: object) -> Any:
        self.values.update(v for v in _values(dict(frame.f_locals)) if not isinstance(v, type))
        if event == "return":
            self.values.update(_values(arg))
        return self._local


def _run_dkg(suite: Ciphersuite, recorder: _Recorder | None = None) -> tuple[dict[int, KeyShare], list[set[Any]]]:
    """Run the DKG among 5 in-process participants; return their key shares and snapshots of their state."""
    states: list[set[Any]] = []
    old = sys.gettrace()
    if recorder is not None:
        sys.settrace(recorder)
    try:
        parts = {i: DkgParticipant(suite, i, 3, IDS, b"key-1") for i in IDS}
        packages = {i: p.round1() for i, p in parts.items()}
        states.append(set(_values(list(parts.values()))))
        outgoing = {i: p.round2(packages)[0] for i, p in parts.items()}
        states.append(set(_values(list(parts.values()))))
        shares = {j: parts[j].finish({i: outgoing[i][j] for i in IDS if i != j}) for j in IDS}
        states.append(set(_values(list(parts.values()))) | set(_values(list(shares.values()))))
    finally:
        sys.settrace(old)
    return shares, states


def _interpolate(suite: Ciphersuite, shares: dict[int, KeyShare], ids: tuple[int, ...]) -> int:
    return sum(frost.lagrange_coefficient(suite, i, ids) * shares[i].secret_share for i in ids) % suite.order


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_no_participant_holds_or_computes_the_group_secret(suite: Ciphersuite) -> None:
    recorder = _Recorder()
    shares, states = _run_dkg(suite, recorder)
    secret = _interpolate(suite, shares, (1, 2, 3))
    # the reconstructed secret is the group's: every 3-subset agrees and G * secret is the group public key
    assert all(_interpolate(suite, shares, ids) == secret for ids in itertools.combinations(IDS, 3))
    assert suite.base_mul(secret) == shares[1].group_public_key
    assert len({s.group_public_key for s in shares.values()}) == 1
    assert len({s.transcript for s in shares.values()}) == 1
    forms = {secret, suite.serialize_scalar(secret)}
    assert len(recorder.values) > 100  # the recorder saw the computation (a broken hook would pass vacuously)
    assert all(share.secret_share in recorder.values for share in shares.values())
    assert not forms & recorder.values, "a DKG or group code path computed the group secret"
    for state in states:
        assert not forms & state, "a participant's state held the group secret"
    # two shares interpolate to something else
    assert all(_interpolate(suite, shares, ids) != secret for ids in itertools.combinations(IDS, 2))


def _sign(suite: Ciphersuite, shares: dict[int, KeyShare], signers: tuple[int, ...], message: bytes) -> bytes:
    group_pk = shares[signers[0]].group_public_key
    rounds = {i: frost.commit(suite, i, shares[i].secret_share) for i in signers}
    commitments = [rounds[i][1] for i in signers]
    z = {
        i: frost.sign_share(suite, i, shares[i].secret_share, group_pk, rounds[i][0], message, commitments)
        for i in signers
    }
    for i in signers:
        assert frost.verify_share(suite, i, shares[1].verifying_shares[i], z[i], commitments, group_pk, message)
    return frost.aggregate(suite, commitments, message, group_pk, z)


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_any_three_of_five_sign_and_two_cannot(suite: Ciphersuite) -> None:
    shares, _ = _run_dkg(suite)
    group_pk = shares[1].group_public_key
    message = b"withdrawal 42"
    for signers in itertools.combinations(IDS, 3):
        signature = _sign(suite, shares, signers, message)
        assert frost.verify_signature(suite, group_pk, message, signature)
        if suite is ED25519_SHA512:
            nacl.signing.VerifyKey(group_pk).verify(message, signature)
    for signers in itertools.combinations(IDS, 2):
        assert not frost.verify_signature(suite, group_pk, message, _sign(suite, shares, signers, message))


def test_a_bad_proof_of_knowledge_names_its_sender() -> None:
    suite = ED25519_SHA512
    parts = {i: DkgParticipant(suite, i, 3, IDS, b"k") for i in IDS}
    packages = {i: p.round1() for i, p in parts.items()}
    p4 = packages[4]
    packages[4] = Round1Package(4, p4.commitments, p4.proof_r, (p4.proof_mu + 1) % suite.order)
    with pytest.raises(DkgError, match="proof of knowledge") as caught:
        parts[1].round2(packages)
    assert caught.value.culprit == 4
    # a proof replayed under another identifier (rogue key) fails too
    packages[4] = Round1Package(4, packages[2].commitments, packages[2].proof_r, packages[2].proof_mu)
    with pytest.raises(DkgError) as caught:
        parts[1].round2(packages)
    assert caught.value.culprit == 4


def test_a_share_that_does_not_match_its_commitments_names_its_sender() -> None:
    suite = SECP256K1_SHA256
    parts = {i: DkgParticipant(suite, i, 3, IDS, b"k") for i in IDS}
    packages = {i: p.round1() for i, p in parts.items()}
    outgoing = {i: p.round2(packages)[0] for i, p in parts.items()}
    received = {i: outgoing[i][1] for i in IDS if i != 1}
    received[3] = (received[3] + 1) % suite.order
    with pytest.raises(DkgError, match="does not match") as caught:
        parts[1].finish(received)
    assert caught.value.culprit == 3


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(DkgError, match="threshold"):
        DkgParticipant(ED25519_SHA512, 1, 6, IDS, b"k")
    with pytest.raises(DkgError, match="distinct"):
        DkgParticipant(ED25519_SHA512, 9, 3, IDS, b"k")
    p = DkgParticipant(ED25519_SHA512, 1, 3, IDS, b"k")
    with pytest.raises(DkgError, match="before round 1"):
        p.round2({})
