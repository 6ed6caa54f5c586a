"""Authentication as Fireblocks checks it, and every way of not getting an answer failing closed."""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from exchange_fireblocks import FireblocksApi, FireblocksCustody, FireblocksError, Settings
from exchange_fireblocks.settings import FireblocksConfigError

from exchange_framework.interfaces import WithdrawalRequest
from exchange_framework.types import AccountId
from tests.custody.fireblocks.conftest import API_KEY, pem
from tests.custody.fireblocks.server import FireblocksState

WITHDRAWAL = WithdrawalRequest(
    withdrawal_id=3, account=AccountId(1), asset="USDC", chain="ethereum", amount=25_000_000, address="0xabc"
)


def token(key: rsa.RSAPrivateKey, *, uri: str, body: bytes = b"", lifetime: int = 30, **claims: object) -> str:
    now = int(time.time())
    payload: dict[str, object] = {
        "uri": uri,
        "nonce": str(uuid.uuid4()),
        "iat": now,
        "exp": now + lifetime,
        "sub": API_KEY,
        "bodyHash": hashlib.sha256(body).hexdigest(),
    }
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="RS256")


def get(url: str, path: str, bearer: str, api_key: str = API_KEY) -> httpx.Response:
    root = url.removesuffix("/v1")
    return httpx.get(root + path, headers={"X-API-Key": api_key, "Authorization": f"Bearer {bearer}"})


def test_the_sdk_signs_requests_the_server_accepts(custody: FireblocksCustody, fb_state: FireblocksState) -> None:
    custody.send(WITHDRAWAL)
    custody.balances(["USDC"])
    assert fb_state.auth_failures == []
    assert ("POST", "/v1/transactions") in fb_state.requests
    assert ("GET", "/v1/transactions/external_tx_id/withdrawal-3") in fb_state.requests


def test_a_request_signed_with_another_key_is_refused_and_changes_nothing(
    fb_url: str, fb_state: FireblocksState, tmp_path: Path, make_custody: Callable[..., FireblocksCustody]
) -> None:
    impostor = tmp_path / "impostor.key"
    impostor.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    custody = make_custody(secret_key_file=str(impostor))
    with pytest.raises(FireblocksError, match="HTTP 401") as raised:
        custody.send(WITHDRAWAL)
    assert raised.value.status == 401
    assert fb_state.transactions == {}
    assert fb_state.auth_failures and "does not verify" in fb_state.auth_failures[0]


def test_a_wrong_api_key_is_refused(
    fb_state: FireblocksState, make_custody: Callable[..., FireblocksCustody], monkeypatch: pytest.MonkeyPatch
) -> None:
    custody = make_custody()
    monkeypatch.setenv("FIREBLOCKS_API_KEY", "not-the-key")
    with pytest.raises(FireblocksError, match="HTTP 401"):
        custody.balances(["USDC"])
    assert fb_state.auth_failures == ["unknown API key"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"uri": "/v1/vault/accounts_paged?limit=1"}, "uri"),
        ({"bodyHash": hashlib.sha256(b"{}").hexdigest()}, "bodyHash"),
        ({"sub": "someone-else"}, "sub"),
        ({"lifetime": 3600}, "lifetime"),
        ({"lifetime": -10}, "expired"),
    ],
)
def test_the_server_checks_every_claim(
    fb_url: str, fb_state: FireblocksState, api_user_key: rsa.RSAPrivateKey, change: dict[str, object], reason: str
) -> None:
    path = "/v1/vault/accounts_paged"
    claims = dict(change)
    lifetime = claims.pop("lifetime", 30)
    assert isinstance(lifetime, int)
    signed_path = str(claims.pop("uri", path))
    answer = get(fb_url, path, token(api_user_key, uri=signed_path, lifetime=lifetime, **claims))
    assert answer.status_code == 401
    assert reason.lower() in fb_state.auth_failures[-1].lower()
    good = get(fb_url, path, token(api_user_key, uri=path))
    assert good.status_code == 200 and good.json()["accounts"][0]["id"] == "0"


def test_a_replayed_token_is_refused(fb_url: str, fb_state: FireblocksState, api_user_key: rsa.RSAPrivateKey) -> None:
    path = "/v1/vault/accounts_paged"
    bearer = token(api_user_key, uri=path)
    assert get(fb_url, path, bearer).status_code == 200
    assert get(fb_url, path, bearer).status_code == 401
    assert "nonce" in fb_state.auth_failures[-1]


def test_a_tampered_body_is_refused(fb_url: str, fb_state: FireblocksState, api_user_key: rsa.RSAPrivateKey) -> None:
    signed = b'{"assetId": "ETH_TEST5", "amount": "0.1"}'
    sent = b'{"assetId": "ETH_TEST5", "amount": "100"}'
    answer = httpx.post(
        fb_url + "/transactions",
        content=sent,
        headers={
            "X-API-Key": API_KEY,
            "Authorization": f"Bearer {token(api_user_key, uri='/v1/transactions', body=signed)}",
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 401 and "bodyHash" in answer.json()["message"]
    assert fb_state.transactions == {}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_fireblocks_down_fails_closed(make_custody: Callable[..., FireblocksCustody]) -> None:
    custody = make_custody(base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    with pytest.raises(FireblocksError, match="could not be reached"):
        custody.send(WITHDRAWAL)
    with pytest.raises(FireblocksError, match="could not be reached"):
        custody.balances(["USDC"])
    with pytest.raises(FireblocksError):
        custody.track(3, timeout_seconds=0)


def test_a_slow_fireblocks_times_out_and_fails_closed(
    make_custody: Callable[..., FireblocksCustody], fb_state: FireblocksState
) -> None:
    custody = make_custody(timeout_seconds=0.2)
    fb_state.delay_seconds = 1
    started = time.monotonic()
    with pytest.raises(FireblocksError, match="could not be reached"):
        custody.send(WITHDRAWAL)
    assert time.monotonic() - started < 5
    with pytest.raises(FireblocksError):
        custody.balances(["USDC"])


def test_errors_never_carry_the_private_key(
    make_custody: Callable[..., FireblocksCustody], key_files: tuple[Path, Path], fb_state: FireblocksState
) -> None:
    secret = key_files[0].read_text()
    body = secret.splitlines()[1]  # a line of the key's base64
    custody = make_custody(base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    messages = []
    for call in (lambda: custody.send(WITHDRAWAL), lambda: custody.balances(["USDC"])):
        with pytest.raises(FireblocksError) as raised:
            call()
        messages.append(f"{raised.value!s} {raised.value!r}")
    with pytest.raises(FireblocksError) as bad_key:
        FireblocksApi(base_url="http://127.0.0.1:1/v1", api_key=API_KEY, secret_key=secret[:-40], timeout_seconds=1)
    messages.append(f"{bad_key.value!s} {bad_key.value!r}")
    assert all(body not in message and "PRIVATE KEY" not in message for message in messages)


def test_missing_or_unreadable_secrets_are_named_not_shown(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREBLOCKS_API_KEY", raising=False)
    monkeypatch.delenv("FIREBLOCKS_SECRET_KEY_FILE", raising=False)
    settings = make_settings(secret_key_file="")
    with pytest.raises(FireblocksConfigError, match="FIREBLOCKS_API_KEY"):
        settings.api_key()
    with pytest.raises(FireblocksConfigError, match="FIREBLOCKS_SECRET_KEY_FILE"):
        settings.secret_key()
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello")
    with pytest.raises(FireblocksConfigError, match="not a PEM private key"):
        make_settings(secret_key_file=str(not_a_key)).secret_key()
    monkeypatch.setenv("FIREBLOCKS_SECRET_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(FireblocksConfigError, match=r"missing\.key: FileNotFoundError"):
        settings.secret_key()
