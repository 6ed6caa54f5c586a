"""Proactive share refresh (Herzberg, Jarecki, Krawczyk, Yung 1995): new shares of the same key, old shares useless.

Every participating node ``i`` acts as a dealer of a sharing of ZERO:

1. :meth:`RefreshParticipant.round1`: draw a random polynomial ``g_i(x) = a_i1*x + ... + a_i(t-1)*x^(t-1)`` (constant
   term 0) and publish Feldman commitments ``C_ik = G*a_ik`` for ``k = 1..t-1`` only. The commitment to the constant
   term is the identity by construction: a package carries exactly ``t - 1`` commitments and one with ``t`` (or any
   other count) is refused, so no dealer can shift the group secret.
2. :meth:`RefreshParticipant.round2`: check every package, then hand each other participant ``j`` its sub-share
   ``g_i(j)`` (the node encrypts it end to end). The polynomial is erased.
3. :meth:`RefreshParticipant.finish`: check every received sub-share against its dealer's commitments
   (``G*g_i(j) == sum_k C_ik * j^k``; a failure names the dealer), and return the new share
   ``s_j' = s_j + sum_i g_i(j)`` at the next epoch.

Since ``sum_i g_i(0) = 0``, any ``t`` new shares interpolate to the same group secret, and the group public key is
unchanged; old and new shares do not combine (they lie on different polynomials). Every participant's new verifying
share ``G*s_j' = G*s_j + sum_i sum_k C_ik * j^k`` follows from the public commitments, for the nodes that took part
and for the ones that were offline (these get their new share later by repair, see :mod:`exchange_threshold.repair`).
No party ever holds more than its own share: the secret is never reconstructed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from exchange_threshold.dkg import KeyShare
from exchange_threshold.groups import Ciphersuite, GroupError

__all__ = [
    "RefreshError",
    "RefreshPackage",
    "RefreshParticipant",
    "check_refresh_package",
    "interpolate_in_exponent",
    "lagrange_at_zero",
    "refresh_context",
    "refresh_transcript",
    "refreshed_verifying_shares",
    "subshare_image",
    "zero_poly_eval",
]


class RefreshError(ValueError):
    """A refresh message is invalid; ``culprit`` names the dealer who sent it, when known."""

    def __init__(self, message: str, culprit: int | None = None) -> None:
        super().__init__(message)
        self.culprit = culprit


@dataclass(frozen=True)
class RefreshPackage:
    """A dealer's public broadcast: commitments ``G*a_ik`` to the coefficients ``k = 1..t-1`` of its zero sharing."""

    identifier: int
    commitments: tuple[bytes, ...]


def zero_poly_eval(suite: Ciphersuite, coefficients: Sequence[int], x: int) -> int:
    """``g(x) = sum_k a_k * x^k`` for ``k = 1..len(coefficients)`` (the constant term is zero)."""
    result = 0
    for a in reversed(coefficients):
        result = (result + a) * x % suite.order
    return result


def subshare_image(suite: Ciphersuite, commitments: Sequence[bytes], x: int) -> bytes:
    """``sum_k C_k * x^k`` for ``k = 1..``: the public image ``G*g(x)`` of a committed zero sharing."""
    power = x % suite.order
    total = suite.mul(commitments[0], power)
    for c in commitments[1:]:
        power = power * x % suite.order
        total = suite.add(total, suite.mul(c, power))
    return total


def check_refresh_package(suite: Ciphersuite, i: int, package: RefreshPackage, threshold: int) -> None:
    """Raise :class:`RefreshError` naming dealer ``i`` unless its package has ``t - 1`` valid commitments."""
    if package.identifier != i:
        raise RefreshError(f"dealer {i}'s package carries identifier {package.identifier}", culprit=i)
    if len(package.commitments) != threshold - 1:
        raise RefreshError(
            f"dealer {i} committed to {len(package.commitments)} coefficients, not {threshold - 1}: a zero sharing "
            "has no constant-term commitment (it is the identity) and degree t-1",
            culprit=i,
        )
    try:
        for element in package.commitments:
            suite.check_element(element)
    except GroupError as exc:
        raise RefreshError(f"dealer {i}'s package is invalid: {exc}", culprit=i) from exc


def refresh_context(key_id: str, group_public_key: bytes, epoch: int, session: str) -> bytes:
    """What a refresh session binds its transcript to: key, group key, the epoch refreshed from and the session."""
    return b"exchange-threshold/refresh/v1\x00" + f"{key_id}\x00{epoch}\x00{session}\x00".encode() + group_public_key


def refresh_transcript(
    suite: Ciphersuite, context: bytes, threshold: int, packages: Mapping[int, RefreshPackage]
) -> bytes:
    """A hash of every dealer's broadcast and the session, the same for every honest party."""
    h = hashlib.sha256(b"exchange-threshold/refresh-transcript/v1\x00" + suite.context + b"\x00" + context)
    h.update(threshold.to_bytes(2, "big") + len(packages).to_bytes(2, "big"))
    for i in sorted(packages):
        h.update(suite.serialize_scalar(i) + b"".join(packages[i].commitments))
    return h.digest()


def refreshed_verifying_shares(
    suite: Ciphersuite, verifying_shares: Mapping[int, bytes], packages: Mapping[int, RefreshPackage]
) -> dict[int, bytes]:
    """Every participant's verifying share after the refresh: ``G*s_j + sum_i G*g_i(j)``, from public data alone."""
    out: dict[int, bytes] = {}
    for j, old in sorted(verifying_shares.items()):
        total = old
        for i in sorted(packages):
            total = suite.add(total, subshare_image(suite, packages[i].commitments, j))
        out[j] = total
    return out


def interpolate_in_exponent(suite: Ciphersuite, verifying_shares: Mapping[int, bytes]) -> bytes:
    """``sum_i lambda_i * G*s_i`` over the given participants: the group public key when they are ``t`` or more."""
    ids = sorted(verifying_shares)
    total: bytes | None = None
    for i in ids:
        term = suite.mul(verifying_shares[i], lagrange_at_zero(suite, i, ids))
        total = term if total is None else suite.add(total, term)
    if total is None:
        raise RefreshError("no verifying shares to interpolate")
    return total


def lagrange_at_zero(suite: Ciphersuite, identifier: int, ids: Sequence[int]) -> int:
    """The Lagrange coefficient of ``identifier`` over ``ids`` at 0."""
    q = suite.order
    numerator, denominator = 1, 1
    for j in ids:
        if j != identifier:
            numerator = numerator * j % q
            denominator = denominator * (j - identifier) % q
    return numerator * pow(denominator, -1, q) % q


class RefreshParticipant:
    """One node's side of a refresh; call :meth:`round1`, :meth:`round2`, :meth:`finish` once each, in order.

    ``dealers`` are the nodes taking part (each deals and receives); every one must be a participant of the key.
    """

    def __init__(self, suite: Ciphersuite, share: KeyShare, dealers: Sequence[int], context: bytes) -> None:
        ids = sorted(dealers)
        known = share.verifying_shares
        if len(set(ids)) != len(ids) or share.identifier not in ids or any(i not in known for i in ids):
            raise RefreshError("the dealers must be distinct participants of the key, this node among them")
        if len(ids) < share.threshold:
            raise RefreshError(f"{len(ids)} dealers, fewer than the threshold {share.threshold}")
        self.suite = suite
        self.share = share
        self.dealers = tuple(ids)
        self.context = context
        self._coefficients: list[int] | None = None
        self._own: int | None = None
        self._packages: dict[int, RefreshPackage] | None = None
        self._done = False

    @property
    def identifier(self) -> int:
        """This participant's identifier."""
        return self.share.identifier

    def round1(self) -> RefreshPackage:
        """Draw the zero sharing and return its public package."""
        if self._coefficients is not None or self._packages is not None or self._done:
            raise RefreshError("round 1 was already run")
        suite = self.suite
        self._coefficients = [suite.random_scalar() for _ in range(self.share.threshold - 1)]
        return RefreshPackage(self.identifier, tuple(suite.base_mul(a) for a in self._coefficients))

    def round2(self, packages: Mapping[int, RefreshPackage]) -> tuple[dict[int, int], bytes]:
        """Check every package; return the sub-shares ``{j: g_i(j)}`` for the other dealers, and the transcript."""
        if self._coefficients is None:
            raise RefreshError("round 2 before round 1, or twice")
        if sorted(packages) != list(self.dealers):
            raise RefreshError(f"need exactly one package from each of {list(self.dealers)}")
        suite = self.suite
        for i, package in packages.items():
            check_refresh_package(suite, i, package, self.share.threshold)
        coefficients = self._coefficients
        if packages[self.identifier].commitments != tuple(suite.base_mul(a) for a in coefficients):
            raise RefreshError("the broadcast altered this dealer's own package")
        outgoing = {j: zero_poly_eval(suite, coefficients, j) for j in self.dealers if j != self.identifier}
        self._own = zero_poly_eval(suite, coefficients, self.identifier)
        self._coefficients = None  # erase the polynomial
        del coefficients
        self._packages = dict(packages)
        return outgoing, refresh_transcript(suite, self.context, self.share.threshold, packages)

    def finish(self, received: Mapping[int, int]) -> KeyShare:
        """Check every received sub-share and return the new share, one epoch on; raise naming a bad dealer."""
        if self._packages is None or self._own is None:
            raise RefreshError("finish before round 2, or twice")
        suite = self.suite
        me = self.identifier
        expected = [j for j in self.dealers if j != me]
        if sorted(received) != expected:
            raise RefreshError(f"need exactly one sub-share from each of {expected}")
        total = (self.share.secret_share + self._own) % suite.order
        for i, value in sorted(received.items()):
            try:
                ok = 0 < value < suite.order and suite.base_mul(value) == subshare_image(
                    suite, self._packages[i].commitments, me
                )
            except GroupError:
                ok = False
            if not ok:
                raise RefreshError(f"dealer {i}'s sub-share does not match its commitments", culprit=i)
            total = (total + value) % suite.order
        packages = self._packages
        self._packages = None
        self._own = None
        self._done = True
        shares = refreshed_verifying_shares(suite, self.share.verifying_shares, packages)
        if shares[me] != suite.base_mul(total):
            raise RefreshError("the new share does not match the public commitments")
        return replace(
            self.share,
            secret_share=total,
            verifying_shares=shares,
            transcript=refresh_transcript(suite, self.context, self.share.threshold, packages),
            epoch=self.share.epoch + 1,
        )
