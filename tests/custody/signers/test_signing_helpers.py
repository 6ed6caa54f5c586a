"""exchange_framework.custody.signing: verification against published vectors, low-S, recovery, retries, requests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import coincurve
import pytest

from exchange_framework.custody import signing
from exchange_framework.custody.signing import (
    SECP256K1_ORDER,
    check_request,
    finish_secp256k1,
    is_low_s,
    normalize_low_s,
    recover_secp256k1,
    sign_transaction,
    sign_verified,
    signing_requests,
    verify_ed25519,
    verify_secp256k1,
    verify_signature,
)
from exchange_framework.interfaces import (
    KeyScheme,
    SignatureInvalidError,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnsignedTransaction,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _wycheproof(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    data = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return [(group, test) for group in data["testGroups"] for test in group["tests"]]


ED25519_CASES = _wycheproof("wycheproof_ed25519_test.json")
SECP256K1_CASES = _wycheproof("wycheproof_ecdsa_secp256k1_sha256_p1363_test.json")


def test_the_vector_files_hold_every_case() -> None:
    assert len(ED25519_CASES) == 151
    assert len(SECP256K1_CASES) == 252
    assert sum(1 for _, t in ED25519_CASES if "Ktv" in t["flags"]) >= 5  # RFC 8032 section 7.1 among them


@pytest.mark.parametrize(("group", "test"), ED25519_CASES, ids=[f"tc{t['tcId']}" for _, t in ED25519_CASES])
def test_ed25519_verification_agrees_with_wycheproof(group: dict[str, Any], test: dict[str, Any]) -> None:
    public_key = bytes.fromhex(group["publicKey"]["pk"])
    valid = verify_ed25519(public_key, bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))
    assert valid is (test["result"] == "valid"), test["comment"]


def test_ed25519_rfc8032_test_1_verifies_and_a_flipped_bit_does_not() -> None:
    # RFC 8032 section 7.1 TEST 1 (empty message), as carried in the Wycheproof file.
    group, test = next(
        (g, t) for g, t in ED25519_CASES if g["publicKey"]["pk"].startswith("d75a9801") and "Ktv" in t["flags"]
    )
    public_key, message, signature = (bytes.fromhex(v) for v in (group["publicKey"]["pk"], test["msg"], test["sig"]))
    assert message == b""
    assert verify_signature(KeyScheme.ED25519, public_key, message, signature)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify_signature(KeyScheme.ED25519, public_key, message, tampered)


@pytest.mark.parametrize(("group", "test"), SECP256K1_CASES, ids=[f"tc{t['tcId']}" for _, t in SECP256K1_CASES])
def test_secp256k1_verification_agrees_with_wycheproof(group: dict[str, Any], test: dict[str, Any]) -> None:
    public_key = bytes.fromhex(group["publicKey"]["uncompressed"])
    digest = hashlib.sha256(bytes.fromhex(test["msg"])).digest()
    signature = bytes.fromhex(test["sig"])
    if test["result"] == "acceptable":
        pytest.skip("Wycheproof leaves the verdict to the implementation")
    if len(signature) != 64:
        assert not verify_secp256k1(public_key, digest, signature)
        return
    normalised = normalize_low_s(signature)
    # Valid means valid once normalised to low-S; our verifier itself accepts only the low-S form.
    assert verify_secp256k1(public_key, digest, normalised) is (test["result"] == "valid"), test["comment"]
    if not is_low_s(signature):
        assert not verify_secp256k1(public_key, digest, signature)


def test_normalize_low_s_flips_only_the_upper_half() -> None:
    r = (5).to_bytes(32, "big")
    high = r + (SECP256K1_ORDER - 7).to_bytes(32, "big")
    assert normalize_low_s(high) == r + (7).to_bytes(32, "big")
    low = r + (7).to_bytes(32, "big")
    assert normalize_low_s(low) == low
    half = r + (SECP256K1_ORDER // 2).to_bytes(32, "big")
    assert normalize_low_s(half) == half and is_low_s(half)
    assert not is_low_s(r + (SECP256K1_ORDER // 2 + 1).to_bytes(32, "big"))
    with pytest.raises(ValueError, match="64 bytes"):
        normalize_low_s(high + b"\x00")


def _high_s_raw(key: coincurve.PrivateKey, digest: bytes) -> bytes:
    """A valid signature of ``digest`` in its high-S form, as an HSM may return it."""
    rs = key.sign_recoverable(digest, hasher=None)[:64]
    s = int.from_bytes(rs[32:], "big")
    return rs[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big")


def test_finish_secp256k1_normalises_and_finds_the_recovery_id() -> None:
    key = coincurve.PrivateKey()
    public_key = key.public_key.format(compressed=True)
    for i in range(20):
        digest = hashlib.sha256(b"withdrawal %d" % i).digest()
        finished = finish_secp256k1(key.public_key.format(compressed=False), digest, _high_s_raw(key, digest))
        assert len(finished) == 65 and finished[64] in (0, 1)
        assert is_low_s(finished)
        assert finished == key.sign_recoverable(digest, hasher=None)  # libsecp256k1's own low-S form and v
        assert recover_secp256k1(digest, finished) == public_key
        assert verify_secp256k1(public_key, digest, finished)


def test_finish_secp256k1_refuses_a_signature_of_another_key_or_digest() -> None:
    key, other = coincurve.PrivateKey(), coincurve.PrivateKey()
    digest = hashlib.sha256(b"pay 1 BTC").digest()
    raw = key.sign_recoverable(digest, hasher=None)[:64]
    with pytest.raises(SignatureInvalidError):
        finish_secp256k1(other.public_key.format(), digest, raw)
    with pytest.raises(SignatureInvalidError):
        finish_secp256k1(key.public_key.format(), hashlib.sha256(b"pay 2 BTC").digest(), raw)
    with pytest.raises(SignatureInvalidError, match="64-byte"):
        finish_secp256k1(key.public_key.format(), digest, raw[:63])


def test_a_wrong_recovery_id_fails_verification() -> None:
    key = coincurve.PrivateKey()
    digest = hashlib.sha256(b"x").digest()
    good = key.sign_recoverable(digest, hasher=None)
    wrong_v = good[:64] + bytes([good[64] ^ 1])
    assert verify_secp256k1(key.public_key.format(), digest, good)
    assert not verify_secp256k1(key.public_key.format(), digest, wrong_v)
    assert verify_secp256k1(key.public_key.format(), digest, good[:64])  # r || s alone carries no recovery id


def test_sign_verified_retries_invalid_signatures_then_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    key = coincurve.PrivateKey()
    public_key = key.public_key.format()
    digest = hashlib.sha256(b"y").digest()
    good = key.sign_recoverable(digest, hasher=None)[:64]
    corrupt = good[:40] + bytes([good[40] ^ 0xFF]) + good[41:]
    outputs = [corrupt, corrupt, good]
    calls: list[int] = []

    def raw_sign() -> bytes:
        calls.append(1)
        return outputs[len(calls) - 1]

    assert verify_secp256k1(public_key, digest, sign_verified(KeyScheme.SECP256K1, public_key, digest, raw_sign))
    assert len(calls) == 3
    assert caplog.text.count("invalid secp256k1 signature") == 2

    calls.clear()
    outputs = [corrupt] * 5
    with pytest.raises(SignatureInvalidError, match="3 invalid secp256k1 signatures"):
        sign_verified(KeyScheme.SECP256K1, public_key, digest, raw_sign, attempts=3, what="key hot-1")
    assert len(calls) == 3  # bounded: never a fourth try


def test_sign_verified_checks_ed25519_too() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    public_key = key.public_key().public_bytes_raw()
    signature = sign_verified(KeyScheme.ED25519, public_key, b"msg", lambda: key.sign(b"msg"))
    assert verify_ed25519(public_key, b"msg", signature)
    with pytest.raises(SignatureInvalidError):
        sign_verified(KeyScheme.ED25519, public_key, b"msg", lambda: key.sign(b"other"), attempts=2)


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64])
def test_secp256k1_payloads_must_be_32_byte_digests(size: int) -> None:
    request = SigningRequest("w1", "hot-1", "bitcoin", b"\x01" * size, KeyScheme.SECP256K1)
    with pytest.raises(SigningRefusedError, match="32-byte digest"):
        check_request(request, KeyScheme.SECP256K1)


def test_ed25519_payloads_must_be_non_empty_and_bounded() -> None:
    check_request(SigningRequest("w1", "sol-1", "solana", b"m" * 200), KeyScheme.ED25519)
    for payload in (b"", b"m" * (signing.ED25519_MAX_MESSAGE + 1)):
        with pytest.raises(SigningRefusedError, match="Ed25519"):
            check_request(SigningRequest("w1", "sol-1", "solana", payload), KeyScheme.ED25519)


def test_a_request_for_another_scheme_is_refused() -> None:
    request = SigningRequest("w1", "hot-1", "ethereum", b"\x00" * 32, KeyScheme.ED25519)
    with pytest.raises(SigningRefusedError, match="expects a ed25519 key"):
        check_request(request, KeyScheme.SECP256K1)


def test_signing_requests_cover_every_digest_in_order() -> None:
    tx = UnsignedTransaction("bitcoin", b"psbt", (b"\x01" * 32, b"\x02" * 32), "hot-btc")
    requests = signing_requests(tx, request_id="wd-7", scheme=KeyScheme.SECP256K1)
    assert [r.request_id for r in requests] == ["wd-7/0", "wd-7/1"]
    assert [r.payload for r in requests] == list(tx.digests)
    assert {(r.key_id, r.chain, r.scheme) for r in requests} == {("hot-btc", "bitcoin", KeyScheme.SECP256K1)}
    with pytest.raises(SigningRefusedError, match="no digests"):
        signing_requests(UnsignedTransaction("bitcoin", b"", (), "hot-btc"), request_id="wd-8")


class _OneKeySigner:
    """A minimal in-memory signer for the transaction helper (the real signers have their own tests)."""

    name = "one-key"
    schemes = frozenset({KeyScheme.SECP256K1})

    def __init__(self) -> None:
        self.key = coincurve.PrivateKey()
        self.signed: list[str] = []

    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        raise SigningError("fixed key")

    def key_scheme(self, key_id: str) -> KeyScheme:
        return KeyScheme.SECP256K1

    def public_key(self, key_id: str) -> bytes:
        return self.key.public_key.format()

    def sign(self, request: SigningRequest) -> bytes:
        check_request(request, KeyScheme.SECP256K1)
        self.signed.append(request.request_id)
        return self.key.sign_recoverable(request.payload, hasher=None)


def test_sign_transaction_is_all_or_nothing() -> None:
    signer = _OneKeySigner()
    tx = UnsignedTransaction("bitcoin", b"psbt", (b"\x01" * 32, b"\x02" * 32), "hot-btc")
    signatures = sign_transaction(signer, tx, request_id="wd-1", scheme=KeyScheme.SECP256K1)
    assert len(signatures) == 2 and signer.signed == ["wd-1/0", "wd-1/1"]
    assert all(
        verify_secp256k1(signer.public_key("hot-btc"), d, s) for d, s in zip(tx.digests, signatures, strict=True)
    )
    bad = UnsignedTransaction("bitcoin", b"psbt", (b"\x01" * 32, b"\x02" * 31), "hot-btc")
    with pytest.raises(SigningRefusedError):
        sign_transaction(signer, bad, request_id="wd-2")
    assert signer.signed[-1] == "wd-2/0"  # the first digest was signed, but no signature was returned


def test_select_signer_names_the_registered_ones() -> None:
    signer = _OneKeySigner()
    assert signing.select_signer({"one-key": signer}, "one-key") is signer
    with pytest.raises(SigningError, match=r"keystore = 'hsm_pkcs11'.*registered: one-key"):
        signing.select_signer({"one-key": signer}, "hsm_pkcs11")
