"""Dealerless key generation: Pedersen's DKG with proofs of knowledge, as the FROST paper (Komlo-Goldberg) gives it.

No party ever holds the group secret. Each of the ``n`` participants ``i`` runs :class:`DkgParticipant`:

1. :meth:`~DkgParticipant.round1`: draw a random polynomial ``f_i`` of degree ``t - 1``; publish the commitments
   ``C_ik = G * a_ik`` to its coefficients and a Schnorr proof of knowledge of ``a_i0`` bound to the participant's
   identifier and the session context (``R_i = G*k``, ``mu_i = k + a_i0 * HDKG(i || ctx || C_i0 || R_i)``), which stops
   rogue-key attacks.
2. :meth:`~DkgParticipant.round2`: check every other participant's package (``t`` valid commitments, valid proof),
   then hand each participant ``j`` its secret share ``f_i(j)`` over a confidential channel. The polynomial is erased.
3. :meth:`~DkgParticipant.finish`: check each received share against its sender's commitments
   (``G * f_i(j) == sum_k C_ik * j^k``), and keep ``s_j = sum_i f_i(j)``. The group public key is ``sum_i C_i0`` and
   every participant's verifying share ``G * s_j`` follows from the public commitments alone.

The group secret ``sum_i a_i0`` is never computed: each ``a_i0`` stays with its participant and is erased after
round 2. The transcript hash (every round-1 package) is returned so the parties can confirm they saw the same
broadcast; the node binds it into the encryption of the round-2 shares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exchange_threshold.groups import SUITES, Ciphersuite, GroupError

__all__ = [
    "DkgError",
    "DkgParticipant",
    "KeyShare",
    "Round1Package",
    "check_package",
    "dkg_context",
    "transcript_hash",
    "verifying_share",
]


class DkgError(ValueError):
    """A DKG message is invalid; ``culprit`` names the participant who sent it, when known."""

    def __init__(self, message: str, culprit: int | None = None) -> None:
        super().__init__(message)
        self.culprit = culprit


@dataclass(frozen=True)
class Round1Package:
    """A participant's public round-1 broadcast: coefficient commitments and the proof of knowledge of ``a_i0``."""

    identifier: int
    commitments: tuple[bytes, ...]
    proof_r: bytes
    proof_mu: int


@dataclass(frozen=True)
class KeyShare:
    """What a participant keeps after the DKG: its secret share and the group's public data."""

    group: str
    identifier: int
    threshold: int
    secret_share: int = field(repr=False)
    group_public_key: bytes
    verifying_shares: Mapping[int, bytes]  # G * s_j of every participant, for share verification
    transcript: bytes  # hash of every round-1 package (of the last refresh's packages after a refresh)
    epoch: int = 0  # 0 from the DKG, one more after each proactive refresh (exchange_threshold.refresh)


def _poly_eval(suite: Ciphersuite, coefficients: Sequence[int], x: int) -> int:
    result = 0
    for a in reversed(coefficients):
        result = (result * x + a) % suite.order
    return result


def _commitment_eval(suite: Ciphersuite, commitments: Sequence[bytes], x: int) -> bytes:
    """``sum_k C_k * x^k``: the public image ``G * f(x)`` of a committed polynomial."""
    total = commitments[0]
    power = 1
    for c in commitments[1:]:
        power = power * x % suite.order
        total = suite.add(total, suite.mul(c, power))
    return total


def verifying_share(suite: Ciphersuite, packages: Mapping[int, Round1Package], identifier: int) -> bytes:
    """Participant ``identifier``'s public verifying share ``G * s_j`` from everyone's round-1 commitments."""
    ids = sorted(packages)
    total = _commitment_eval(suite, packages[ids[0]].commitments, identifier)
    for i in ids[1:]:
        total = suite.add(total, _commitment_eval(suite, packages[i].commitments, identifier))
    return total


def transcript_hash(suite: Ciphersuite, context: bytes, threshold: int, packages: Mapping[int, Round1Package]) -> bytes:
    """A hash of the whole round-1 broadcast (and the session parameters), the same for every honest party."""
    h = hashlib.sha256(b"exchange-threshold/dkg/v1\x00" + suite.context + b"\x00" + context)
    h.update(threshold.to_bytes(2, "big") + len(packages).to_bytes(2, "big"))
    for i in sorted(packages):
        p = packages[i]
        h.update(suite.serialize_scalar(i) + b"".join(p.commitments) + p.proof_r + suite.serialize_scalar(p.proof_mu))
    return h.digest()


def dkg_context(key_id: str, session: str) -> bytes:
    """The context a DKG session binds its proofs and transcript to: the key id and the session id."""
    return f"exchange-threshold/dkg/v1\x00{key_id}\x00{session}".encode()


def _pok_challenge(suite: Ciphersuite, identifier: int, context: bytes, c0: bytes, r: bytes) -> int:
    return suite.hdkg(suite.serialize_scalar(identifier) + hashlib.sha256(context).digest() + c0 + r)


class DkgParticipant:
    """One participant's side of the DKG; call :meth:`round1`, :meth:`round2`, :meth:`finish` once each, in order."""

    def __init__(
        self, suite: Ciphersuite, identifier: int, threshold: int, participants: Sequence[int], context: bytes
    ) -> None:
        ids = list(participants)
        if len(set(ids)) != len(ids) or identifier not in ids or any(not 0 < i < 2**16 for i in ids):
            raise DkgError("participants must be distinct identifiers 1..65535 including this participant")
        if not 2 <= threshold <= len(ids):
            raise DkgError(f"threshold {threshold} must be between 2 and the number of participants ({len(ids)})")
        self.suite = suite
        self.identifier = identifier
        self.threshold = threshold
        self.participants = tuple(sorted(ids))
        self.context = context
        self._coefficients: list[int] | None = None
        self._own_share: int | None = None
        self._packages: dict[int, Round1Package] | None = None

    def round1(self) -> Round1Package:
        """Draw the secret polynomial and return the public package to broadcast."""
        if self._coefficients is not None or self._packages is not None:
            raise DkgError("round 1 was already run")
        suite = self.suite
        self._coefficients = [suite.random_scalar() for _ in range(self.threshold)]
        commitments = tuple(suite.base_mul(a) for a in self._coefficients)
        k = suite.random_scalar()
        r = suite.base_mul(k)
        c = _pok_challenge(suite, self.identifier, self.context, commitments[0], r)
        mu = (k + self._coefficients[0] * c) % suite.order
        return Round1Package(self.identifier, commitments, r, mu)

    def round2(self, packages: Mapping[int, Round1Package]) -> tuple[dict[int, int], bytes]:
        """Check every package; return the secret shares ``{j: f_i(j)}`` to send to the others, and the transcript."""
        if self._coefficients is None:
            raise DkgError("round 2 before round 1, or twice")
        if sorted(packages) != list(self.participants):
            raise DkgError(f"need exactly one round-1 package from each of {list(self.participants)}")
        suite = self.suite
        for i, package in packages.items():
            self._check_package(i, package)
        coefficients = self._coefficients
        mine = packages[self.identifier]
        if mine.commitments[0] != suite.base_mul(coefficients[0]):
            raise DkgError("the broadcast altered this participant's own package", culprit=None)
        outgoing = {j: _poly_eval(suite, coefficients, j) for j in self.participants if j != self.identifier}
        self._own_share = _poly_eval(suite, coefficients, self.identifier)
        self._coefficients = None  # erase the polynomial: from here on only shares exist
        del coefficients
        self._packages = dict(packages)
        return outgoing, transcript_hash(suite, self.context, self.threshold, packages)

    def finish(self, received: Mapping[int, int]) -> KeyShare:
        """Check the shares received from every other participant and return this participant's :class:`KeyShare`."""
        if self._packages is None or self._own_share is None:
            raise DkgError("finish before round 2, or twice")
        suite = self.suite
        expected = sorted(j for j in self.participants if j != self.identifier)
        if sorted(received) != expected:
            raise DkgError(f"need exactly one share from each of {expected}")
        total = self._own_share
        for i, share in received.items():
            if not 0 <= share < suite.order or share == 0:
                raise DkgError(f"participant {i} sent an out-of-range share", culprit=i)
            if suite.base_mul(share) != _commitment_eval(suite, self._packages[i].commitments, self.identifier):
                raise DkgError(f"participant {i}'s share does not match its commitments", culprit=i)
            total = (total + share) % suite.order
        packages = self._packages
        self._packages = None
        self._own_share = None
        public = packages[self.participants[0]].commitments[0]
        for i in self.participants[1:]:
            public = suite.add(public, packages[i].commitments[0])
        shares = {j: verifying_share(suite, packages, j) for j in self.participants}
        if shares[self.identifier] != suite.base_mul(total):
            raise DkgError("this participant's share does not match the public commitments")
        return KeyShare(
            group=next(name for name, known in SUITES.items() if known is suite),
            identifier=self.identifier,
            threshold=self.threshold,
            secret_share=total,
            group_public_key=public,
            verifying_shares=shares,
            transcript=transcript_hash(suite, self.context, self.threshold, packages),
        )

    def _check_package(self, i: int, package: Round1Package) -> None:
        check_package(self.suite, i, package, self.threshold, self.context)


def check_package(suite: Ciphersuite, i: int, package: Round1Package, threshold: int, context: bytes) -> None:
    """Raise :class:`DkgError` naming participant ``i`` unless its round-1 package is well formed, its proof valid."""
    if package.identifier != i or len(package.commitments) != threshold:
        raise DkgError(f"participant {i}'s package has the wrong identifier or commitment count", culprit=i)
    try:
        for element in package.commitments:
            suite.check_element(element)
        suite.check_element(package.proof_r)
        if not 0 < package.proof_mu < suite.order:
            raise GroupError("proof scalar out of range")
        c = _pok_challenge(suite, i, context, package.commitments[0], package.proof_r)
        ok = suite.base_mul(package.proof_mu) == suite.add(package.proof_r, suite.mul(package.commitments[0], c))
    except GroupError as exc:
        raise DkgError(f"participant {i}'s package is invalid: {exc}", culprit=i) from exc
    if not ok:
        raise DkgError(f"participant {i}'s proof of knowledge does not verify", culprit=i)
