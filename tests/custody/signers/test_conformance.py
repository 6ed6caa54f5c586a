"""The conformance kit catches broken signers: each check fails on a signer that breaks its rule."""

from __future__ import annotations

import hashlib
from pathlib import Path

import coincurve
import pytest

from exchange_framework.custody.conformance import CHECKS, ConformanceError, independent_verify, run_check
from exchange_framework.custody.keystore import KdfCost, SoftwareKeystore
from exchange_framework.custody.signing import SECP256K1_ORDER
from exchange_framework.interfaces import KeyScheme, SigningRequest

PASSPHRASE_ENV = "TEST_CONFORMANCE_PASSPHRASE"
CHECKS_BY_NAME = {check.name: check for check in CHECKS}


class _Base(SoftwareKeystore):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory, passphrase_env=PASSPHRASE_ENV, kdf=KdfCost(memory_kib=64, iterations=1, lanes=1))


class HighS(_Base):
    def sign(self, request: SigningRequest) -> bytes:
        signature = super().sign(request)
        if len(signature) != 65:
            return signature
        s = SECP256K1_ORDER - int.from_bytes(signature[32:64], "big")
        return signature[:32] + s.to_bytes(32, "big") + bytes([signature[64] ^ 1])  # still valid ECDSA, recoverable


class WrongRecoveryId(_Base):
    def sign(self, request: SigningRequest) -> bytes:
        signature = super().sign(request)
        return signature[:64] + bytes([signature[64] ^ 1]) if len(signature) == 65 else signature


class OtherKey(_Base):
    def sign(self, request: SigningRequest) -> bytes:
        return coincurve.PrivateKey().sign_recoverable(request.payload, hasher=None)


class HashesAnything(_Base):
    def sign(self, request: SigningRequest) -> bytes:
        if len(request.payload) != 32:  # "helpfully" hashes a payload that is not a digest
            request = SigningRequest(
                request.request_id, request.key_id, request.chain, hashlib.sha256(request.payload).digest()
            )
        return super().sign(request)


class IgnoresScheme(_Base):
    def sign(self, request: SigningRequest) -> bytes:
        return super().sign(SigningRequest(request.request_id, request.key_id, request.chain, request.payload))


class ReplacesKeys(_Base):
    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        path = self._key_path(key_id)
        if path.exists():
            path.unlink()
        return super().create_key(key_id, scheme)


class KeyErrorForUnknown(_Base):
    def public_key(self, key_id: str) -> bytes:
        if key_id not in self.key_ids():
            raise KeyError(key_id)
        return super().public_key(key_id)


class SameKeyTwice(_Base):
    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        public_key = super().create_key(key_id, scheme)
        if not hasattr(self, "first"):
            self.first = public_key
        return self.first


class AcceptsAnyScheme(_Base):
    schemes = frozenset({KeyScheme.SECP256K1})  # claims one scheme, but creates keys of the other too


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "conformance")


@pytest.mark.parametrize(
    ("signer_class", "check", "scheme"),
    [
        (HighS, "secp256k1_low_s_and_recovery_id", KeyScheme.SECP256K1),
        (WrongRecoveryId, "secp256k1_low_s_and_recovery_id", KeyScheme.SECP256K1),
        (OtherKey, "signatures_verify_independently", KeyScheme.SECP256K1),
        (HashesAnything, "refuses_bad_payloads", KeyScheme.SECP256K1),
        (IgnoresScheme, "refuses_wrong_scheme", KeyScheme.SECP256K1),
        (IgnoresScheme, "refuses_wrong_scheme", KeyScheme.ED25519),
        (ReplacesKeys, "keys_are_never_replaced", KeyScheme.ED25519),
        (KeyErrorForUnknown, "refuses_unknown_keys", KeyScheme.SECP256K1),
        (SameKeyTwice, "create_key_returns_public_key", KeyScheme.SECP256K1),
        (AcceptsAnyScheme, "refuses_unsupported_schemes", KeyScheme.SECP256K1),
    ],
)
def test_the_kit_fails_a_signer_that_breaks_the_rule(
    tmp_path: Path, signer_class: type[_Base], check: str, scheme: KeyScheme
) -> None:
    signer = signer_class(tmp_path / "keys")
    with pytest.raises(ConformanceError, match=rf"^{check} \[{scheme}\]"):
        run_check(CHECKS_BY_NAME[check], signer, scheme)


def test_a_correct_signer_passes_the_same_checks(tmp_path: Path) -> None:
    signer = _Base(tmp_path / "keys")
    for check in CHECKS:
        for scheme in KeyScheme:
            run_check(check, signer, scheme)


def test_high_s_is_valid_ecdsa_so_only_the_low_s_check_can_catch_it(tmp_path: Path) -> None:
    signer = HighS(tmp_path / "keys")
    public_key = signer.create_key("k", KeyScheme.SECP256K1)
    digest = hashlib.sha256(b"d").digest()
    assert independent_verify(
        KeyScheme.SECP256K1, public_key, digest, signer.sign(SigningRequest("r", "k", "c", digest))
    )


def test_run_check_skips_checks_that_do_not_apply(tmp_path: Path) -> None:
    signer = _Base(tmp_path / "keys")
    assert not run_check(CHECKS_BY_NAME["secp256k1_low_s_and_recovery_id"], signer, KeyScheme.ED25519)
    assert run_check(CHECKS_BY_NAME["secp256k1_low_s_and_recovery_id"], signer, KeyScheme.SECP256K1)
