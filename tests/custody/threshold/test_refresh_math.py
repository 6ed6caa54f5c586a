"""Proactive refresh and share repair at the protocol level, in one process (no node runs here).

Properties: after a refresh by any set of at least ``t`` dealers, every ``t`` new shares interpolate to the same
secret as the old shares and the group key is unchanged; mixing old and new shares does not; a bad sub-share names
its dealer; a package carrying a constant-term commitment is refused; repair rebuilds exactly the missing share; and
no frame of the refresh or repair code ever holds the group secret.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import exchange_threshold.groups
import exchange_threshold.refresh
import exchange_threshold.repair
import nacl.signing
import pytest
from exchange_threshold import frost
from exchange_threshold.dkg import DkgParticipant, KeyShare
from exchange_threshold.groups import ED25519_SHA512, SECP256K1_SHA256, Ciphersuite
from exchange_threshold.refresh import (
    RefreshError,
    RefreshPackage,
    RefreshParticipant,
    check_refresh_package,
    interpolate_in_exponent,
    subshare_image,
)
from exchange_threshold.repair import RepairError, repair_split, repair_sum
from hypothesis import given, settings
from hypothesis import strategies as st

IDS = [1, 2, 3, 4, 5]
T = 3
SUITES = [ED25519_SHA512, SECP256K1_SHA256]


@functools.cache
def _dkg(suite: Ciphersuite) -> dict[int, KeyShare]:
    parts = {i: DkgParticipant(suite, i, T, IDS, b"refresh-math") for i in IDS}
    packages = {i: p.round1() for i, p in parts.items()}
    outgoing = {i: p.round2(packages)[0] for i, p in parts.items()}
    return {j: parts[j].finish({i: outgoing[i][j] for i in IDS if i != j}) for j in IDS}


def _interpolate(suite: Ciphersuite, shares: Mapping[int, int]) -> int:
    return sum(frost.lagrange_coefficient(suite, i, list(shares)) * v for i, v in shares.items()) % suite.order


def _refresh(
    suite: Ciphersuite, shares: Mapping[int, KeyShare], dealers: Sequence[int], context: bytes = b"ctx"
) -> dict[int, KeyShare]:
    parts = {i: RefreshParticipant(suite, shares[i], dealers, context) for i in dealers}
    packages = {i: p.round1() for i, p in parts.items()}
    outgoing = {i: p.round2(packages)[0] for i, p in parts.items()}
    return {j: parts[j].finish({i: outgoing[i][j] for i in dealers if i != j}) for j in dealers}


def _repair(suite: Ciphersuite, shares: Mapping[int, KeyShare], helpers: Sequence[int], target: int) -> int:
    parts = {i: repair_split(suite, i, helpers, target, shares[i].secret_share) for i in helpers}
    sigmas = [repair_sum(suite, (parts[i][j] for i in helpers)) for j in helpers]
    return repair_sum(suite, sigmas)


@settings(max_examples=25, deadline=None)
@given(
    suite=st.sampled_from(SUITES),
    dealers=st.lists(st.sampled_from(IDS), min_size=T, max_size=5, unique=True),
    rounds=st.integers(min_value=1, max_value=3),
    data=st.data(),
)
def test_refreshed_shares_interpolate_to_the_same_secret_and_old_ones_do_not_mix(
    suite: Ciphersuite, dealers: list[int], rounds: int, data: st.DataObject
) -> None:
    old = _dkg(suite)
    secret = _interpolate(suite, {i: old[i].secret_share for i in (1, 2, 3)})
    current = dict(old)
    for r in range(rounds):
        refreshed = _refresh(suite, current, dealers, context=b"round %d" % r)
        # the ones that were not dealers get their share by repair, from t refreshed helpers
        helpers = sorted(dealers)[:T]
        full = refreshed[helpers[0]].verifying_shares
        for j in IDS:
            if j not in refreshed:
                s_j = _repair(suite, refreshed, helpers, j)
                assert suite.base_mul(s_j) == full[j]  # checked against the public verifying share
                refreshed[j] = replace(refreshed[helpers[0]], identifier=j, secret_share=s_j)
        current = refreshed
    for subset in itertools.combinations(IDS, T):
        assert _interpolate(suite, {i: current[i].secret_share for i in subset}) == secret
    for pair in itertools.combinations(IDS, T - 1):  # two new shares still do not give it
        assert _interpolate(suite, {i: current[i].secret_share for i in pair}) != secret
    verifying = current[helpers[0]].verifying_shares
    for subset in itertools.combinations(IDS, T):  # the public side: new verifying shares give the same group key
        assert interpolate_in_exponent(suite, {i: verifying[i] for i in subset}) == old[1].group_public_key
    for j in IDS:
        assert current[j].group_public_key == old[j].group_public_key
        assert current[j].epoch == rounds
        assert suite.base_mul(current[j].secret_share) == current[helpers[0]].verifying_shares[j]
        assert current[j].secret_share != old[j].secret_share  # every share changed
    # any mix of old and new shares (at least one of each) gives another value: old shares stop working
    subset = data.draw(st.lists(st.sampled_from(IDS), min_size=T, max_size=T, unique=True))
    n_old = data.draw(st.integers(min_value=1, max_value=T - 1))
    mixed = {i: (old[i] if k < n_old else current[i]).secret_share for k, i in enumerate(subset)}
    assert _interpolate(suite, mixed) != secret


def test_signing_with_a_mix_of_old_and_new_shares_fails_verification() -> None:
    suite = ED25519_SHA512
    old = _dkg(suite)
    new = _refresh(suite, old, IDS)
    group_pk = old[1].group_public_key
    message = b"mixed epochs"
    signers = [1, 2, 3]
    using = {1: new[1], 2: new[2], 3: old[3]}  # node 3 still holds its old share
    rounds = {i: frost.commit(suite, i, using[i].secret_share) for i in signers}
    commitments = [rounds[i][1] for i in signers]
    z = {
        i: frost.sign_share(suite, i, using[i].secret_share, group_pk, rounds[i][0], message, commitments)
        for i in signers
    }
    verifying = new[1].verifying_shares
    assert [frost.verify_share(suite, i, verifying[i], z[i], commitments, group_pk, message) for i in signers] == [
        True,
        True,
        False,  # the old share is named at once
    ]
    signature = frost.aggregate(suite, commitments, message, group_pk, z)
    assert not frost.verify_signature(suite, group_pk, message, signature)
    # with three new shares the same key signs, a standard Ed25519 signature
    rounds = {i: frost.commit(suite, i, new[i].secret_share) for i in signers}
    commitments = [rounds[i][1] for i in signers]
    z = {
        i: frost.sign_share(suite, i, new[i].secret_share, group_pk, rounds[i][0], message, commitments)
        for i in signers
    }
    nacl.signing.VerifyKey(group_pk).verify(message, frost.aggregate(suite, commitments, message, group_pk, z))


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_a_bad_sub_share_names_its_dealer(suite: Ciphersuite) -> None:
    old = _dkg(suite)
    parts = {i: RefreshParticipant(suite, old[i], IDS, b"bad") for i in IDS}
    packages = {i: p.round1() for i, p in parts.items()}
    outgoing = {i: p.round2(packages)[0] for i, p in parts.items()}
    outgoing[2][4] = (outgoing[2][4] + 1) % suite.order  # dealer 2 sends node 4 a sub-share off its commitments
    with pytest.raises(RefreshError, match="dealer 2's sub-share does not match") as caught:
        parts[4].finish({i: outgoing[i][4] for i in IDS if i != 4})
    assert caught.value.culprit == 2
    # the others accept theirs, and their new verifying shares include node 4's, from public data alone
    done = {j: parts[j].finish({i: outgoing[i][j] for i in IDS if i != j}) for j in IDS if j != 4}
    assert len({tuple(sorted(d.verifying_shares.items())) for d in done.values()}) == 1


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_a_zero_sharing_package_must_not_commit_to_a_constant_term(suite: Ciphersuite) -> None:
    g = suite.base_mul(suite.random_scalar())
    check_refresh_package(suite, 1, RefreshPackage(1, (g, g)), T)
    # a dealer adding a commitment to a constant term (shifting the secret) or changing the degree is refused
    for commitments in [(g, g, g), (g,), ()]:
        with pytest.raises(RefreshError, match="not 2") as caught:
            check_refresh_package(suite, 1, RefreshPackage(1, commitments), T)
        assert caught.value.culprit == 1
    with pytest.raises(RefreshError, match="invalid"):
        check_refresh_package(suite, 3, RefreshPackage(3, (g, bytes(len(g)))), T)
    # the image of a committed zero sharing at x is G * g(x); at 0 it would be the identity
    coefficients = [suite.random_scalar(), suite.random_scalar()]
    commitments = tuple(suite.base_mul(a) for a in coefficients)
    for x in IDS:
        value = (coefficients[0] * x + coefficients[1] * x * x) % suite.order
        assert subshare_image(suite, commitments, x) == suite.base_mul(value)


def test_refresh_refuses_too_few_or_unknown_dealers() -> None:
    old = _dkg(ED25519_SHA512)
    with pytest.raises(RefreshError, match="fewer than the threshold"):
        RefreshParticipant(ED25519_SHA512, old[1], [1, 2], b"c")
    with pytest.raises(RefreshError, match="distinct participants"):
        RefreshParticipant(ED25519_SHA512, old[1], [1, 2, 9], b"c")
    p = RefreshParticipant(ED25519_SHA512, old[1], [1, 2, 3], b"c")
    package = p.round1()
    with pytest.raises(RefreshError, match="already"):
        p.round1()
    with pytest.raises(RefreshError, match="exactly one package"):
        p.round2({1: package})


@settings(max_examples=25, deadline=None)
@given(
    suite=st.sampled_from(SUITES),
    helpers=st.lists(st.sampled_from(IDS), min_size=T, max_size=T, unique=True),
    target=st.sampled_from(IDS),
)
def test_repair_rebuilds_exactly_the_missing_share(suite: Ciphersuite, helpers: list[int], target: int) -> None:
    shares = _dkg(suite)
    if target in helpers:
        with pytest.raises(RepairError):
            repair_split(suite, helpers[0], helpers, target, shares[helpers[0]].secret_share)
        return
    parts = {i: repair_split(suite, i, helpers, target, shares[i].secret_share) for i in helpers}
    for i in helpers:  # each helper's parts are fresh random values: none is its weighted share
        assert sorted(parts[i]) == sorted(helpers)
    assert _repair(suite, shares, helpers, target) == shares[target].secret_share


def test_repair_needs_exactly_t_helpers() -> None:
    shares = _dkg(ED25519_SHA512)
    with pytest.raises(RepairError, match="exactly"):
        repair_split(ED25519_SHA512, 1, [1, 2, 2], 4, shares[1].secret_share)
    with pytest.raises(RepairError, match="not one of the helpers"):
        repair_split(ED25519_SHA512, 5, [1, 2, 3], 4, shares[5].secret_share)
    # with a wrong part, the rebuilt share does not match the public verifying share
    parts = {i: repair_split(ED25519_SHA512, i, [1, 2, 3], 4, shares[i].secret_share) for i in (1, 2, 3)}
    parts[2][3] += 1
    sigmas = [repair_sum(ED25519_SHA512, (parts[i][j] for i in (1, 2, 3))) for j in (1, 2, 3)]
    rebuilt = repair_sum(ED25519_SHA512, sigmas)
    assert ED25519_SHA512.base_mul(rebuilt) != shares[1].verifying_shares[4]


# -- the group secret never appears in any frame of the refresh or repair code ------------------------------------

TRACED = {
    Path(m.__file__).resolve()  # type: ignore[arg-type]
    for m in (exchange_threshold.refresh, exchange_threshold.repair, exchange_threshold.groups)
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
    elif hasattr(obj, "__dict__"):
        yield from _values(vars(obj), seen)


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


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_no_frame_of_refresh_or_repair_holds_the_group_secret(suite: Ciphersuite) -> None:
    old = _dkg(suite)
    recorder = _Recorder()
    previous = sys.gettrace()
    sys.settrace(recorder)
    try:
        new = _refresh(suite, {i: old[i] for i in (1, 2, 3, 4)}, [1, 2, 3, 4])
        rebuilt = _repair(suite, new, [1, 2, 3], 5)
    finally:
        sys.settrace(previous)
    secret = _interpolate(suite, {i: old[i].secret_share for i in (1, 2, 3)})
    assert _interpolate(suite, {i: new[i].secret_share for i in (2, 3, 4)}) == secret
    assert suite.base_mul(rebuilt) == new[1].verifying_shares[5]
    # the hook sees secret values (shares, the rebuilt share), so it cannot pass vacuously
    assert new[2].secret_share in recorder.values and rebuilt in recorder.values
    assert old[1].secret_share in recorder.values
    forms = {secret, suite.serialize_scalar(secret), (-secret) % suite.order}
    assert not forms & recorder.values, "a refresh or repair frame held the group secret"
