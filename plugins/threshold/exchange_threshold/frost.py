"""The FROST two-round threshold Schnorr signing protocol of RFC 9591, for any :class:`~.groups.Ciphersuite`.

Written from the RFC's text (sections 4 and 5):

- round one, :func:`commit`: each signer draws a hiding and a binding nonce (``nonce_generate``: fresh randomness
  hashed with the secret share) and publishes their commitments ``D = G*d``, ``E = G*e``;
- round two, :func:`sign_share`: given the message and the sorted list of every signer's commitments, each signer
  computes the binding factors ``rho_i = H1(PK || H4(msg) || H5(commitments) || i)``, the group commitment
  ``R = sum(D_i + E_i*rho_i)``, the challenge ``c = H2(R || PK || msg)`` and its share
  ``z_i = d_i + e_i*rho_i + lambda_i*s_i*c``; it uses its nonces once and forgets them;
- :func:`verify_share` checks one share against the signer's public verifying share (``G*z_i ==
  D_i + E_i*rho_i + PK_i*(c*lambda_i)``), so a bad share identifies its sender;
- :func:`aggregate` returns ``R || sum(z_i)``, a plain Schnorr signature for the group public key; with
  FROST(Ed25519, SHA-512) it is a standard RFC 8032 Ed25519 signature.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exchange_threshold.groups import Ciphersuite, GroupError

__all__ = [
    "Commitment",
    "FrostError",
    "Nonces",
    "aggregate",
    "binding_factors",
    "challenge",
    "check_commitment_list",
    "commit",
    "encode_commitment_list",
    "group_commitment",
    "lagrange_coefficient",
    "nonce_generate",
    "sign_share",
    "verify_share",
    "verify_signature",
]


class FrostError(ValueError):
    """A protocol input is invalid: a malformed commitment list, a missing signer, an invalid element."""


@dataclass(frozen=True)
class Nonces:
    """A signer's secret round-one nonces ``(d, e)``: use once, then forget."""

    hiding: int
    binding: int


@dataclass(frozen=True)
class Commitment:
    """A signer's public round-one commitments ``(i, D = G*d, E = G*e)``."""

    identifier: int
    hiding: bytes
    binding: bytes


def nonce_generate(suite: Ciphersuite, secret: int, random_bytes: bytes | None = None) -> int:
    """``nonce_generate`` of RFC 9591: ``H3(random_bytes || SerializeScalar(secret))`` with 32 fresh random bytes.

    ``random_bytes`` is only given by test vectors; leave it out.
    """
    if random_bytes is None:
        random_bytes = secrets.token_bytes(32)
    return suite.h3(random_bytes + suite.serialize_scalar(secret))


def commit(
    suite: Ciphersuite, identifier: int, secret_share: int, *, randomness: tuple[bytes, bytes] | None = None
) -> tuple[Nonces, Commitment]:
    """Round one: return fresh nonces and their commitments for the signer ``identifier``."""
    hiding_random, binding_random = randomness if randomness is not None else (None, None)
    nonces = Nonces(
        nonce_generate(suite, secret_share, hiding_random), nonce_generate(suite, secret_share, binding_random)
    )
    return nonces, Commitment(identifier, suite.base_mul(nonces.hiding), suite.base_mul(nonces.binding))


def check_commitment_list(suite: Ciphersuite, commitments: Sequence[Commitment]) -> None:
    """Raise :class:`FrostError` unless the list is sorted by identifier, without repeats, and every element valid."""
    if not commitments:
        raise FrostError("the commitment list is empty")
    previous = 0
    for commitment in commitments:
        if not 0 < commitment.identifier < suite.order:
            raise FrostError(f"identifier {commitment.identifier} is out of range")
        if commitment.identifier <= previous:
            raise FrostError("the commitment list is not sorted by identifier, or repeats one")
        previous = commitment.identifier
        try:
            suite.check_element(commitment.hiding)
            suite.check_element(commitment.binding)
        except GroupError as exc:
            raise FrostError(f"signer {commitment.identifier}'s commitment is invalid: {exc}") from exc


def encode_commitment_list(suite: Ciphersuite, commitments: Sequence[Commitment]) -> bytes:
    """``encode_group_commitment_list``: ``SerializeScalar(i) || D_i || E_i`` for each signer, in order."""
    return b"".join(suite.serialize_scalar(c.identifier) + c.hiding + c.binding for c in commitments)


def binding_factors(
    suite: Ciphersuite, group_public_key: bytes, commitments: Sequence[Commitment], message: bytes
) -> dict[int, int]:
    """``compute_binding_factors``: each signer's ``rho_i``, keyed by identifier."""
    prefix = group_public_key + suite.h4(message) + suite.h5(encode_commitment_list(suite, commitments))
    return {c.identifier: suite.h1(prefix + suite.serialize_scalar(c.identifier)) for c in commitments}


def group_commitment(suite: Ciphersuite, commitments: Sequence[Commitment], factors: Mapping[int, int]) -> bytes:
    """``compute_group_commitment``: ``R = sum(D_i + E_i * rho_i)``; raise :class:`FrostError` on the identity."""
    total: bytes | None = None
    try:
        for c in commitments:
            term = suite.add(c.hiding, suite.mul(c.binding, factors[c.identifier]))
            total = term if total is None else suite.add(total, term)
    except GroupError as exc:
        raise FrostError(f"cannot compute the group commitment: {exc}") from exc
    if total is None:
        raise FrostError("the commitment list is empty")
    return total


def lagrange_coefficient(suite: Ciphersuite, identifier: int, participants: Iterable[int]) -> int:
    """``derive_interpolating_value``: ``lambda_i`` at 0 for ``identifier`` among ``participants``."""
    ids = list(participants)
    if identifier not in ids or len(set(ids)) != len(ids):
        raise FrostError("the signer must be among the participants, which must not repeat")
    q = suite.order
    numerator, denominator = 1, 1
    for j in ids:
        if j != identifier:
            numerator = numerator * j % q
            denominator = denominator * (j - identifier) % q
    return numerator * pow(denominator, -1, q) % q


def challenge(suite: Ciphersuite, commitment: bytes, group_public_key: bytes, message: bytes) -> int:
    """``compute_challenge``: ``H2(R || PK || msg)``."""
    return suite.h2(commitment + group_public_key + message)


def sign_share(
    suite: Ciphersuite,
    identifier: int,
    secret_share: int,
    group_public_key: bytes,
    nonces: Nonces,
    message: bytes,
    commitments: Sequence[Commitment],
) -> int:
    """Round two: this signer's share ``z_i = d + e*rho_i + lambda_i*s_i*c``.

    The caller must have checked that its own commitment in ``commitments`` is the one it made for ``nonces``.
    """
    check_commitment_list(suite, commitments)
    if identifier not in {c.identifier for c in commitments}:
        raise FrostError(f"signer {identifier} is not in the commitment list")
    factors = binding_factors(suite, group_public_key, commitments, message)
    r = group_commitment(suite, commitments, factors)
    lam = lagrange_coefficient(suite, identifier, [c.identifier for c in commitments])
    c = challenge(suite, r, group_public_key, message)
    return (nonces.hiding + nonces.binding * factors[identifier] + lam * secret_share * c) % suite.order


def verify_share(
    suite: Ciphersuite,
    identifier: int,
    verifying_share: bytes,
    share: int,
    commitments: Sequence[Commitment],
    group_public_key: bytes,
    message: bytes,
) -> bool:
    """``verify_signature_share``: whether ``share`` is signer ``identifier``'s correct share (identifiable abort)."""
    try:
        check_commitment_list(suite, commitments)
        mine = next(c for c in commitments if c.identifier == identifier)
        if not 0 < share < suite.order:
            return False
        factors = binding_factors(suite, group_public_key, commitments, message)
        r = group_commitment(suite, commitments, factors)
        c = challenge(suite, r, group_public_key, message)
        lam = lagrange_coefficient(suite, identifier, [x.identifier for x in commitments])
        expected = suite.add(
            suite.add(mine.hiding, suite.mul(mine.binding, factors[identifier])), suite.mul(verifying_share, c * lam)
        )
        return suite.base_mul(share) == expected
    except (StopIteration, FrostError, GroupError):
        return False


def aggregate(
    suite: Ciphersuite,
    commitments: Sequence[Commitment],
    message: bytes,
    group_public_key: bytes,
    shares: Mapping[int, int],
) -> bytes:
    """``aggregate``: the signature ``SerializeElement(R) || SerializeScalar(sum z_i)``."""
    check_commitment_list(suite, commitments)
    if set(shares) != {c.identifier for c in commitments}:
        raise FrostError("need exactly one share from each signer of the commitment list")
    factors = binding_factors(suite, group_public_key, commitments, message)
    r = group_commitment(suite, commitments, factors)
    return r + suite.serialize_scalar(sum(shares.values()) % suite.order)


def verify_signature(suite: Ciphersuite, group_public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid FROST (Schnorr) signature: ``G*z == R + PK*c`` in the prime-order group."""
    if len(signature) != suite.element_size + suite.scalar_size:
        return False
    try:
        r = suite.check_element(signature[: suite.element_size])
        z = suite.deserialize_scalar(signature[suite.element_size :])
        c = challenge(suite, r, suite.check_element(group_public_key), message)
        return z != 0 and suite.base_mul(z) == suite.add(r, suite.mul(group_public_key, c))
    except GroupError:
        return False
