"""The ``elliptic`` plugin: screens deposits (source of funds) and withdrawal destinations with Elliptic.

Active only when ``[plugins.settings.elliptic]`` exists (see :class:`~exchange_elliptic.client.Settings`). Every
failure to get an analysis from Elliptic is a hold (fail closed), never an allow.
"""

from __future__ import annotations

import os
import threading

import msgspec

from exchange_elliptic.client import PROVIDER, EllipticClient, EllipticError, Settings
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import Decision, DepositRequest, WithdrawalRequest

__all__ = ["client_for", "screen_deposit", "screen_withdrawal", "startup"]

NAME = "elliptic"

_clients: dict[bytes, EllipticClient] = {}
_lock = threading.Lock()


def settings_for(config: ExchangeConfig | None) -> Settings | None:
    """Return the plugin's settings, or None if ``[plugins.settings.elliptic]`` is absent (plugin inactive)."""
    if not isinstance(config, ExchangeConfig) or NAME not in config.plugins.settings:
        return None
    try:
        return msgspec.convert(dict(config.plugin_settings(NAME)), Settings)
    except (msgspec.ValidationError, ValueError) as exc:
        raise EllipticError(f"[plugins.settings.elliptic]: {exc}") from None


def client_for(config: ExchangeConfig | None) -> EllipticClient | None:
    """Return the client for ``config`` (made once per settings and keys), or None if the plugin is inactive."""
    settings = settings_for(config)
    if settings is None:
        return None
    api_key = os.environ.get(settings.api_key_env, "")
    api_secret = os.environ.get(settings.api_secret_env, "")
    if not api_key or not api_secret:
        raise EllipticError(
            f"set the Elliptic API key and secret in the environment variables {settings.api_key_env} and "
            f"{settings.api_secret_env}"
        )
    key = msgspec.json.encode((settings, api_key, api_secret))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = EllipticClient(settings, api_key=api_key, api_secret=api_secret)
    return client


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the settings, key and secret as the exchange starts (a mistake stops the start, clearly)."""
    client_for(config)


@hookimpl
def screen_deposit(config: ExchangeConfig, request: DepositRequest) -> Decision | None:
    """Screen where the deposit's funds came from (Elliptic source-of-funds transaction screening)."""
    try:
        client = client_for(config)
        if client is None:
            return None
        analysis = client.screen_deposit(
            chain=request.chain,
            asset=request.asset,
            txid=request.txid,
            address=request.address,
            customer_reference=str(request.account),
        )
        return client.decide(analysis, withdrawal=False)
    except EllipticError as exc:
        return Decision.hold(f"Elliptic gave no answer: {exc}", provider=PROVIDER)


@hookimpl
def screen_withdrawal(config: ExchangeConfig, request: WithdrawalRequest) -> Decision | None:
    """Screen the withdrawal's destination (Elliptic wallet screening)."""
    try:
        client = client_for(config)
        if client is None:
            return None
        return client.decide(client.screen_wallet(request.address, str(request.account)), withdrawal=True)
    except EllipticError as exc:
        return Decision.hold(f"Elliptic gave no answer: {exc}", provider=PROVIDER)
