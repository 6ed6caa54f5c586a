"""Fireblocks raw signing as a kernel custody signer: the conformance kit, refusals, faults, idempotent retries."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterator

import coincurve
import pytest
from exchange_fireblocks import FireblocksApi, Settings
from exchange_fireblocks.signer import FireblocksSigner

from exchange_framework.custody.conformance import CHECKS, Check, independent_verify, run_check
from exchange_framework.custody.signing import is_low_s
from exchange_framework.interfaces import (
    KeyExistsError,
    KeyScheme,
    SignatureInvalidError,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)
from tests.custody.fireblocks.conftest import API_KEY
from tests.custody.fireblocks.server import FireblocksState

SIGNING_ASSETS = {"secp256k1": "ETH_TEST5", "ed25519": "SOL_TEST"}


@pytest.fixture
def make_signer(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., FireblocksSigner]]:
    monkeypatch.setenv("FIREBLOCKS_API_KEY", API_KEY)
    made: list[FireblocksApi] = []

    def make(**overrides: object) -> FireblocksSigner:
        settings = make_settings(**{"signing_assets": SIGNING_ASSETS, "sign_timeout_seconds": 10, **overrides})

        def api() -> FireblocksApi:
            client = FireblocksApi(
                base_url=settings.base_url,
                api_key=settings.api_key(),
                secret_key=settings.secret_key(),
                timeout_seconds=settings.timeout_seconds,
            )
            made.append(client)
            return client

        return FireblocksSigner(settings, api_factory=api)

    yield make
    for client in made:
        client.close()


@pytest.fixture
def signer(make_signer: Callable[..., FireblocksSigner]) -> FireblocksSigner:
    return make_signer()


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_the_fireblocks_signer_passes_the_conformance_kit(check: Check, signer: FireblocksSigner) -> None:
    ran = [run_check(check, signer, scheme, key_prefix=f"conf-{check.name}") for scheme in sorted(signer.schemes)]
    assert any(ran)


def test_a_key_is_a_vault_account_and_signatures_come_from_fireblocks(
    signer: FireblocksSigner, fb_state: FireblocksState
) -> None:
    public_key = signer.create_key("hot-1", KeyScheme.SECP256K1)
    (vault_id,) = [i for i, v in fb_state.vaults.items() if v["name"] == "hot-1"]
    assert fb_state.public_key(vault_id, "ETH_TEST5") == ("MPC_ECDSA_SECP256K1", public_key)
    assert signer.key_scheme("hot-1") is KeyScheme.SECP256K1
    payload = digest("withdrawal 7")
    for n in range(4):  # the local Fireblocks answers high-S every other time, as any ECDSA signer may
        signature = signer.sign(SigningRequest(f"wd-7/{n}", "hot-1", "ethereum", payload, KeyScheme.SECP256K1))
        assert is_low_s(signature) and independent_verify(KeyScheme.SECP256K1, public_key, payload, signature)
        recovered = coincurve.PublicKey.from_signature_and_message(signature, payload, hasher=None)
        assert recovered.format(compressed=True) == public_key
    raw = [tx for tx in fb_state.transactions.values() if tx["operation"] == "RAW"]
    assert len(raw) == 4 and all(
        tx["extraParameters"]["rawMessageData"]["messages"][0]["content"] == payload.hex() for tx in raw
    )


def test_a_retried_request_reuses_its_raw_signing_transaction(
    signer: FireblocksSigner, fb_state: FireblocksState
) -> None:
    signer.create_key("hot-1", KeyScheme.SECP256K1)
    request = SigningRequest("wd-8/0", "hot-1", "ethereum", digest("withdrawal 8"), KeyScheme.SECP256K1)
    first = signer.sign(request)
    again = signer.sign(request)
    assert first == again
    assert fb_state.signatures == 1
    assert sum(1 for tx in fb_state.transactions.values() if tx["operation"] == "RAW") == 1


def test_fireblocks_refusing_the_raw_request_is_a_refusal(signer: FireblocksSigner, fb_state: FireblocksState) -> None:
    signer.create_key("hot-1", KeyScheme.ED25519)
    fb_state.reject_raw = True
    with pytest.raises(SigningRefusedError, match="REJECTED REJECTED_BY_USER"):
        signer.sign(SigningRequest("wd-9/0", "hot-1", "solana", b"a solana message", KeyScheme.ED25519))
    assert fb_state.signatures == 0


@pytest.mark.parametrize(
    ("scheme", "payload"),
    [(KeyScheme.SECP256K1, digest("x")), (KeyScheme.ED25519, b"msg")],
    ids=["secp256k1", "ed25519"],
)
def test_a_signature_of_anything_else_is_never_returned(
    signer: FireblocksSigner, fb_state: FireblocksState, scheme: KeyScheme, payload: bytes
) -> None:
    signer.create_key("hot-1", scheme)
    fb_state.corrupt_signatures = True
    with pytest.raises(SignatureInvalidError):
        signer.sign(SigningRequest("wd-10/0", "hot-1", "chain", payload, scheme))


def test_a_request_still_waiting_for_approval_is_not_signed(
    make_signer: Callable[..., FireblocksSigner], fb_state: FireblocksState
) -> None:
    signer = make_signer(sign_timeout_seconds=0.1)
    signer.create_key("hot-1", KeyScheme.SECP256K1)
    fb_state.advance_on_read = False  # the approvers never act
    with pytest.raises(SigningError, match="has not signed"):
        signer.sign(SigningRequest("wd-11/0", "hot-1", "ethereum", digest("y"), KeyScheme.SECP256K1))


def test_fireblocks_down_is_a_signing_error(make_signer: Callable[..., FireblocksSigner]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    signer = make_signer(base_url=f"http://127.0.0.1:{closed}/v1")
    with pytest.raises(SigningError, match="could not be reached"):
        signer.public_key("hot-1")
    with pytest.raises(SigningError, match="could not be reached"):
        signer.create_key("hot-1", KeyScheme.SECP256K1)


def test_an_interrupted_create_is_completed_and_a_finished_one_never_replaced(
    signer: FireblocksSigner, fb_state: FireblocksState
) -> None:
    fb_state.add_vault("hot-2", {})  # a create that stopped after the vault account
    with pytest.raises(UnknownKeyError):
        signer.public_key("hot-2")
    public_key = signer.create_key("hot-2", KeyScheme.ED25519)
    assert len(public_key) == 32 and signer.public_key("hot-2") == public_key
    with pytest.raises(KeyExistsError):
        signer.create_key("hot-2", KeyScheme.SECP256K1)
    fb_state.add_vault("hot-2", {})
    with pytest.raises(SigningError, match="2 Fireblocks vault accounts are named 'hot-2'"):
        signer.public_key("hot-2")
