"""A local Fireblocks workspace (tests/custody/fireblocks/server.py), its keys, and the plugin's custody on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.custody.fireblocks.server import FireblocksState, running

pytest.importorskip("exchange_fireblocks")

from exchange_fireblocks import FireblocksApi, FireblocksCustody, Settings

API_KEY = "3b2a8c1e-7d6f-4e5a-9b0c-1d2e3f4a5b6c"  # the shape of a Fireblocks API user id
DECIMALS = {"ETH": 18, "USDC": 6, "BTC": 8}
ASSETS = {"ETH": "ETH_TEST5", "USDC": "USDC_ETH_TEST5_0GER"}


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="session")
def api_user_key() -> rsa.RSAPrivateKey:
    """The API user's RSA key: Fireblocks keeps the public half, the exchange the private one."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def webhook_key() -> rsa.RSAPrivateKey:
    """The key the local Fireblocks signs its webhooks with."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_files(tmp_path: Path, api_user_key: rsa.RSAPrivateKey, webhook_key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    """(the API private key file, the webhook public key file)."""
    secret = tmp_path / "fireblocks_secret.key"
    secret.write_bytes(pem(api_user_key))
    secret.chmod(0o600)
    webhook = tmp_path / "fireblocks_webhook.pub"
    webhook.write_bytes(public_pem(webhook_key))
    return secret, webhook


@pytest.fixture
def fb_state(api_user_key: rsa.RSAPrivateKey, webhook_key: rsa.RSAPrivateKey) -> FireblocksState:
    state = FireblocksState(api_key=API_KEY, api_public_key=api_user_key.public_key(), webhook_key=webhook_key)
    state.add_vault("Withdrawals", {"ETH_TEST5": "10", "USDC_ETH_TEST5_0GER": "2500.5"})
    return state


@pytest.fixture
def fb_url(fb_state: FireblocksState) -> Iterator[str]:
    with running(fb_state) as url:
        yield url + "/v1"


@pytest.fixture
def make_settings(fb_url: str, key_files: tuple[Path, Path]) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        raw: dict[str, object] = {
            "vault_account_id": "0",
            "assets": dict(ASSETS),
            "base_url": fb_url,
            "secret_key_file": str(key_files[0]),
            "timeout_seconds": 2,
            "poll_interval_seconds": 0.01,
            "webhook_public_key": "",
            "webhook_public_key_file": str(key_files[1]),
        }
        raw.update(overrides)
        return Settings.parse(raw)

    return make


@pytest.fixture
def make_custody(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> Iterator[Callable[..., FireblocksCustody]]:
    monkeypatch.setenv("FIREBLOCKS_API_KEY", API_KEY)
    made: list[FireblocksCustody] = []

    def make(**overrides: object) -> FireblocksCustody:
        settings = make_settings(**overrides)

        def api() -> FireblocksApi:
            return FireblocksApi(
                base_url=settings.base_url,
                api_key=settings.api_key(),
                secret_key=settings.secret_key(),
                timeout_seconds=settings.timeout_seconds,
            )

        custody = FireblocksCustody(settings, decimals=DECIMALS, api_factory=api)
        made.append(custody)
        return custody

    yield make
    for custody in made:
        custody.close()


@pytest.fixture
def custody(make_custody: Callable[..., FireblocksCustody]) -> FireblocksCustody:
    return make_custody()
