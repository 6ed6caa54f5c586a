"""Fireblocks webhooks: the local Fireblocks signs and posts them; the plugin's route verifies, then reads back."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from exchange_fireblocks import FireblocksCustody, Settings, TransferState, WebhookSignatureError, WebhookVerifier
from exchange_fireblocks.plugin import webhook_endpoint
from starlette.applications import Starlette
from starlette.routing import Route

from exchange_framework.interfaces import WithdrawalRequest
from exchange_framework.types import AccountId
from tests.custody.fireblocks.server import HAPPY_PATH, FireblocksState

PATH = "/hooks/fireblocks"
WITHDRAWAL = WithdrawalRequest(
    7, AccountId(42), "ETH", "ethereum", 2 * 10**18, "0x1234567890abcdef1234567890abcdef12345678"
)


def app_for(custody: FireblocksCustody, verifier: WebhookVerifier) -> Starlette:
    return Starlette(routes=[Route(PATH, webhook_endpoint(custody, verifier), methods=["POST"])])


@contextmanager
def uvicorn_serving(app: Starlette) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def verifier(fb_url: str, key_files: tuple[Path, Path]) -> WebhookVerifier:
    """Both schemes: the local Fireblocks' public key (legacy header) and its JWKS (v2 header)."""
    jwks = fb_url.removesuffix("/v1") + "/.well-known/jwks.json"
    return WebhookVerifier(public_key_pem=key_files[1].read_bytes(), jwks_url=jwks, timeout_seconds=2)


def reads(state: FireblocksState) -> int:
    return sum(1 for method, path in state.requests if method == "GET" and path.startswith("/v1/transactions/"))


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_status_webhooks_are_verified_and_the_transaction_read_back(
    custody: FireblocksCustody, fb_state: FireblocksState, verifier: WebhookVerifier
) -> None:
    fb_state.advance_on_read = False  # statuses move only when the test says so
    with uvicorn_serving(app_for(custody, verifier)) as url:
        fb_state.webhook_url = url + PATH
        states: list[str] = []
        custody.listeners.append(lambda t: states.append(t.status))
        transfer = custody.send(WITHDRAWAL)
        for _ in range(6):  # each change is read back before the next (the plugin reads what is current)
            wait_for(lambda: len(fb_state.deliveries) == len(fb_state.webhooks), "the webhook")
            fb_state.advance(transfer.tx_id)
        wait_for(lambda: len(fb_state.deliveries) == len(fb_state.webhooks), "the last webhook")
    assert fb_state.deliveries == [200] * 7  # created, then six status changes
    assert custody.latest["withdrawal-7"].state is TransferState.COMPLETED
    assert states == ["SUBMITTED", *HAPPY_PATH]  # send's own read, then one read per webhook
    body, headers = fb_state.webhooks[-1]
    assert verifier.verify(body, headers) == ("legacy", "jwks")


def test_forged_tampered_and_unsigned_webhooks_are_refused(
    custody: FireblocksCustody, fb_state: FireblocksState, verifier: WebhookVerifier
) -> None:
    custody.send(WITHDRAWAL)
    body, headers = fb_state.webhooks[-1]
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forger = FireblocksState(api_key="x", api_public_key=impostor.public_key(), webhook_key=impostor)
    event = json.loads(body)
    event["data"]["status"] = "COMPLETED" if event["data"]["status"] != "COMPLETED" else "FAILED"
    tampered = json.dumps(event).encode()
    assert tampered != body
    header, _, signature = headers["Fireblocks-Webhook-Signature"].split(".")
    alg_none = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": fb_state.webhook_kid}).encode()).rstrip(b"=")
    attempts = {
        "tampered body": (tampered, headers),
        "forged signatures": (body, forger.sign(body)),
        "no signature": (body, {}),
        "legacy only, forged": (body, {"Fireblocks-Signature": forger.sign(body)["Fireblocks-Signature"]}),
        "v2 only, forged": (body, {"Fireblocks-Webhook-Signature": forger.sign(body)["Fireblocks-Webhook-Signature"]}),
        "valid v2, forged legacy": (
            body,
            {**headers, "Fireblocks-Signature": forger.sign(body)["Fireblocks-Signature"]},
        ),
        "not base64": (body, {"Fireblocks-Signature": "%%%"}),
        "alg none": (body, {"Fireblocks-Webhook-Signature": f"{alg_none.decode()}..{signature}"}),
        "payload not detached": (body, {"Fireblocks-Webhook-Signature": f"{header}.e30.{signature}"}),
    }
    before = reads(fb_state)
    with uvicorn_serving(app_for(custody, verifier)) as url, httpx.Client(base_url=url) as client:
        for name, (content, sent_headers) in attempts.items():
            answer = client.post(PATH, content=content, headers=sent_headers)
            assert answer.status_code == 401, name
            assert "refused" in answer.json()["error"], name
        assert client.post(PATH, content=body, headers=headers).status_code == 200
    assert reads(fb_state) == before + 1  # only the genuine webhook made the plugin read Fireblocks


def test_a_replayed_webhook_is_answered_without_acting_again(
    custody: FireblocksCustody, fb_state: FireblocksState, verifier: WebhookVerifier
) -> None:
    custody.send(WITHDRAWAL)
    body, headers = fb_state.webhooks[-1]
    with uvicorn_serving(app_for(custody, verifier)) as url, httpx.Client(base_url=url) as client:
        first = client.post(PATH, content=body, headers=headers)
        before = reads(fb_state)
        again = client.post(PATH, content=body, headers=headers)
    assert first.json()["withdrawal"] == 7
    assert again.status_code == 200 and again.json()["handled"] == "already"
    assert reads(fb_state) == before


def test_webhooks_v2_bodies_and_other_events(
    custody: FireblocksCustody, fb_state: FireblocksState, verifier: WebhookVerifier
) -> None:
    transfer = custody.send(WITHDRAWAL)
    v2 = json.dumps(
        {
            "id": "5f0c3c53-0f6c-4a8e-8f3e-2d1b9c7a6e51",
            "eventType": "transaction.status.updated",
            "eventVersion": 1,
            "resourceId": transfer.tx_id,
            "workspaceId": "test-workspace",
            "createdAt": 1764072000000,
            "data": fb_state.transactions[transfer.tx_id],
        }
    ).encode()
    vault_added = json.dumps({"type": "VAULT_ACCOUNT_ADDED", "tenantId": "t", "timestamp": 1, "data": {"id": "3"}})
    not_json = b"<html>"
    with uvicorn_serving(app_for(custody, verifier)) as url, httpx.Client(base_url=url) as client:
        answer = client.post(PATH, content=v2, headers=fb_state.sign(v2))
        assert answer.status_code == 200 and answer.json()["withdrawal"] == 7
        other = client.post(PATH, content=vault_added.encode(), headers=fb_state.sign(vault_added.encode()))
        assert other.status_code == 200 and other.json()["handled"] == "ignored"
        bad = client.post(PATH, content=not_json, headers=fb_state.sign(not_json))
        assert bad.status_code == 400, bad.text


def test_when_fireblocks_cannot_be_read_the_webhook_is_refused_for_a_retry(
    make_custody: Callable[..., FireblocksCustody], fb_state: FireblocksState, verifier: WebhookVerifier
) -> None:
    good = make_custody()
    good.send(WITHDRAWAL)
    body, headers = fb_state.webhooks[-1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    unreachable = make_custody(base_url=f"http://127.0.0.1:{closed}/v1")
    with uvicorn_serving(app_for(unreachable, verifier)) as url, httpx.Client(base_url=url) as client:
        for _ in range(2):  # not remembered as handled: Fireblocks' retry is processed again
            answer = client.post(PATH, content=body, headers=headers)
            assert answer.status_code == 503 and "could not be read" in answer.json()["error"]
    assert "withdrawal-7" not in unreachable.latest


def test_the_published_fireblocks_keys_load_and_refuse_other_signers(
    make_settings: Callable[..., Settings], fb_state: FireblocksState
) -> None:
    body = b'{"type": "TRANSACTION_CREATED", "data": {"id": "x"}}'
    headers = fb_state.sign(body)
    for name, bits in (("production", 4096), ("sandbox", 2048)):
        pem = make_settings(webhook_public_key=name, webhook_public_key_file="").webhook_public_key_pem()
        assert pem is not None
        key = serialization.load_pem_public_key(pem)
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == bits
        with pytest.raises(WebhookSignatureError, match="does not verify"):
            WebhookVerifier(public_key_pem=pem).verify(body, headers)
    assert make_settings(webhook_public_key="", webhook_public_key_file="").webhook_public_key_pem() is None
    with pytest.raises(ValueError, match="unsigned webhooks are never accepted"):
        WebhookVerifier(public_key_pem=None)


def test_an_unknown_kid_or_unreachable_jwks_is_refused(fb_url: str, fb_state: FireblocksState) -> None:
    body = b'{"type": "TRANSACTION_CREATED", "data": {"id": "x"}}'
    headers = fb_state.sign(body)
    jwks = fb_url.removesuffix("/v1") + "/.well-known/jwks.json"
    fb_state.webhook_kid = "rotated-away"  # the JWKS no longer has the key the header names
    with pytest.raises(WebhookSignatureError, match="does not verify"):
        WebhookVerifier(public_key_pem=None, jwks_url=jwks).verify(body, headers)
    with pytest.raises(WebhookSignatureError, match="JWKS could not be read"):
        WebhookVerifier(public_key_pem=None, jwks_url="http://127.0.0.1:1/jwks.json", timeout_seconds=1).verify(
            body, headers
        )
