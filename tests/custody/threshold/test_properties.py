"""Properties of FROST over one DKG key: every signing set of at least 3 signs, no set of 2 does, any altered share
is caught and named."""

from __future__ import annotations

import functools

import nacl.signing
from exchange_threshold import frost
from exchange_threshold.dkg import DkgParticipant, KeyShare
from exchange_threshold.groups import ED25519_SHA512
from hypothesis import given, settings
from hypothesis import strategies as st

SUITE = ED25519_SHA512
IDS = [1, 2, 3, 4, 5]


@functools.cache
def _shares() -> dict[int, KeyShare]:
    parts = {i: DkgParticipant(SUITE, i, 3, IDS, b"properties") for i in IDS}
    packages = {i: p.round1() for i, p in parts.items()}
    outgoing = {i: p.round2(packages)[0] for i, p in parts.items()}
    return {j: parts[j].finish({i: outgoing[i][j] for i in IDS if i != j}) for j in IDS}


def _round(signers: list[int], message: bytes) -> tuple[list[frost.Commitment], dict[int, int]]:
    shares = _shares()
    group_pk = shares[1].group_public_key
    rounds = {i: frost.commit(SUITE, i, shares[i].secret_share) for i in signers}
    commitments = [rounds[i][1] for i in signers]
    z = {
        i: frost.sign_share(SUITE, i, shares[i].secret_share, group_pk, rounds[i][0], message, commitments)
        for i in signers
    }
    return commitments, z


@settings(max_examples=40, deadline=None)
@given(
    signers=st.lists(st.sampled_from(IDS), min_size=2, max_size=5, unique=True),
    message=st.binary(min_size=1, max_size=200),
)
def test_a_signing_set_signs_exactly_when_it_reaches_the_threshold(signers: list[int], message: bytes) -> None:
    signers.sort()
    group_pk = _shares()[1].group_public_key
    commitments, z = _round(signers, message)
    signature = frost.aggregate(SUITE, commitments, message, group_pk, z)
    assert frost.verify_signature(SUITE, group_pk, message, signature) == (len(signers) >= 3)
    if len(signers) >= 3:
        nacl.signing.VerifyKey(group_pk).verify(message, signature)


@settings(max_examples=40, deadline=None)
@given(
    signers=st.lists(st.sampled_from(IDS), min_size=3, max_size=3, unique=True),
    cheat=st.integers(0, 2),
    delta=st.integers(1, SUITE.order - 1),
    message=st.binary(min_size=1, max_size=64),
)
def test_any_altered_share_is_caught_and_named(signers: list[int], cheat: int, delta: int, message: bytes) -> None:
    signers.sort()
    shares = _shares()
    group_pk = shares[1].group_public_key
    commitments, z = _round(signers, message)
    cheater = signers[cheat]
    z[cheater] = (z[cheater] + delta) % SUITE.order
    verdicts = {
        i: frost.verify_share(SUITE, i, shares[1].verifying_shares[i], z[i], commitments, group_pk, message)
        for i in signers
    }
    assert verdicts == {i: i != cheater for i in signers}
