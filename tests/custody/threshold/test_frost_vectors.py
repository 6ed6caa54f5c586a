"""FROST against the official RFC 9591 test vectors (Appendix E) of both ciphersuites, and share verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from exchange_threshold import frost
from exchange_threshold.groups import ED25519_SHA512, SECP256K1_SHA256, Ciphersuite

VECTORS = Path(__file__).parent / "vectors"
CASES = [("frost-ed25519-sha512.json", ED25519_SHA512), ("frost-secp256k1-sha256.json", SECP256K1_SHA256)]


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


def _scalar(suite: Ciphersuite, hex_value: str) -> int:
    return suite.deserialize_scalar(bytes.fromhex(hex_value))


def _run(vector: dict[str, Any], suite: Ciphersuite) -> tuple[list[frost.Commitment], dict[int, int], bytes]:
    inputs = vector["inputs"]
    assert vector["config"]["name"] == suite.name
    message = bytes.fromhex(inputs["message"])
    secret = _scalar(suite, inputs["group_secret_key"])
    group_pk = bytes.fromhex(inputs["group_public_key"])
    assert suite.base_mul(secret) == group_pk
    # the dealer's polynomial f(x) = secret + a1*x gives the published shares
    coefficients = [secret] + [_scalar(suite, c) for c in inputs["share_polynomial_coefficients"]]
    shares = {}
    for entry in inputs["participant_shares"]:
        i = entry["identifier"]
        expected = sum(a * i**k for k, a in enumerate(coefficients)) % suite.order
        assert _scalar(suite, entry["participant_share"]) == expected
        shares[i] = expected

    nonces: dict[int, frost.Nonces] = {}
    commitments = []
    for out in vector["round_one_outputs"]["outputs"]:
        i = out["identifier"]
        randomness = (bytes.fromhex(out["hiding_nonce_randomness"]), bytes.fromhex(out["binding_nonce_randomness"]))
        nonces[i], commitment = frost.commit(suite, i, shares[i], randomness=randomness)
        assert suite.serialize_scalar(nonces[i].hiding).hex() == out["hiding_nonce"]
        assert suite.serialize_scalar(nonces[i].binding).hex() == out["binding_nonce"]
        assert commitment.hiding.hex() == out["hiding_nonce_commitment"]
        assert commitment.binding.hex() == out["binding_nonce_commitment"]
        commitments.append(commitment)
    assert [c.identifier for c in commitments] == inputs["participant_list"]

    factors = frost.binding_factors(suite, group_pk, commitments, message)
    for out in vector["round_one_outputs"]["outputs"]:
        i = out["identifier"]
        prefix = group_pk + suite.h4(message) + suite.h5(frost.encode_commitment_list(suite, commitments))
        assert (prefix + suite.serialize_scalar(i)).hex() == out["binding_factor_input"]
        assert suite.serialize_scalar(factors[i]).hex() == out["binding_factor"]

    sig_shares = {}
    for out in vector["round_two_outputs"]["outputs"]:
        i = out["identifier"]
        z = frost.sign_share(suite, i, shares[i], group_pk, nonces[i], message, commitments)
        assert suite.serialize_scalar(z).hex() == out["sig_share"]
        assert frost.verify_share(suite, i, suite.base_mul(shares[i]), z, commitments, group_pk, message)
        sig_shares[i] = z
    signature = frost.aggregate(suite, commitments, message, group_pk, sig_shares)
    assert signature.hex() == vector["final_output"]["sig"]
    assert frost.verify_signature(suite, group_pk, message, signature)
    return commitments, sig_shares, group_pk


@pytest.mark.parametrize(("name", "suite"), CASES, ids=[c[0] for c in CASES])
def test_rfc9591_vectors(name: str, suite: Ciphersuite) -> None:
    _run(_load(name), suite)


def test_ed25519_frost_signature_is_a_standard_ed25519_signature() -> None:
    vector = _load("frost-ed25519-sha512.json")
    message = bytes.fromhex(vector["inputs"]["message"])
    group_pk = bytes.fromhex(vector["inputs"]["group_public_key"])
    signature = bytes.fromhex(vector["final_output"]["sig"])
    _run(vector, ED25519_SHA512)
    nacl.signing.VerifyKey(group_pk).verify(message, signature)  # libsodium's RFC 8032 verification


@pytest.mark.parametrize(("name", "suite"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_share_is_identified(name: str, suite: Ciphersuite) -> None:
    vector = _load(name)
    commitments, shares, group_pk = _run(vector, suite)
    message = bytes.fromhex(vector["inputs"]["message"])
    share_of = {e["identifier"]: _scalar(suite, e["participant_share"]) for e in vector["inputs"]["participant_shares"]}
    bad = (shares[3] + 1) % suite.order
    assert not frost.verify_share(suite, 3, suite.base_mul(share_of[3]), bad, commitments, group_pk, message)
    # checked against another signer's verifying share, an honest share fails too: the check names the signer
    assert not frost.verify_share(suite, 3, suite.base_mul(share_of[1]), shares[3], commitments, group_pk, message)
    forged = frost.aggregate(suite, commitments, message, group_pk, {1: shares[1], 3: bad})
    assert not frost.verify_signature(suite, group_pk, message, forged)
    assert not frost.verify_signature(
        suite, group_pk, message + b"!", frost.aggregate(suite, commitments, message, group_pk, shares)
    )


@pytest.mark.parametrize(("name", "suite"), CASES, ids=[c[0] for c in CASES])
def test_malformed_commitment_lists_are_refused(name: str, suite: Ciphersuite) -> None:
    commitments, _, _ = _run(_load(name), suite)
    with pytest.raises(frost.FrostError, match="sorted"):
        frost.check_commitment_list(suite, list(reversed(commitments)))
    with pytest.raises(frost.FrostError, match="sorted"):
        frost.check_commitment_list(suite, [commitments[0], commitments[0]])
    bad = frost.Commitment(commitments[1].identifier, commitments[1].hiding, b"\x05" * suite.element_size)
    with pytest.raises(frost.FrostError, match="invalid"):
        frost.check_commitment_list(suite, [commitments[0], bad])
    with pytest.raises(frost.FrostError, match="empty"):
        frost.check_commitment_list(suite, [])
