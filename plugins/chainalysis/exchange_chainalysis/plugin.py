"""The ``chainalysis`` plugin: screens deposits and withdrawals with Chainalysis KYT and the Sanctions API.

Active only when ``[plugins.settings.chainalysis]`` exists (see :class:`~exchange_chainalysis.client.Settings`).
Every failure to get an answer from Chainalysis is a hold (fail closed), never an allow.
"""

from __future__ import annotations

import os
import threading
from decimal import Decimal

import msgspec

from exchange_chainalysis.client import PROVIDER, ChainalysisClient, ChainalysisError, Settings
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import Decision, DepositRequest, WithdrawalRequest

__all__ = ["client_for", "screen_deposit", "screen_withdrawal", "startup"]

NAME = "chainalysis"

_clients: dict[bytes, ChainalysisClient] = {}
_lock = threading.Lock()


def settings_for(config: ExchangeConfig | None) -> Settings | None:
    """Return the plugin's settings, or None if ``[plugins.settings.chainalysis]`` is absent (plugin inactive)."""
    if not isinstance(config, ExchangeConfig) or NAME not in config.plugins.settings:
        return None
    try:
        return msgspec.convert(dict(config.plugin_settings(NAME)), Settings)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ChainalysisError(f"[plugins.settings.chainalysis]: {exc}") from None


def client_for(config: ExchangeConfig | None) -> ChainalysisClient | None:
    """Return the client for ``config`` (made once per settings and keys), or None if the plugin is inactive."""
    settings = settings_for(config)
    if settings is None:
        return None
    api_key = os.environ.get(settings.api_key_env, "") if settings.kyt else ""
    sanctions_key = os.environ.get(settings.sanctions_api_key_env, "") if settings.sanctions else ""
    if settings.kyt and not api_key:
        raise ChainalysisError(f"set the KYT API key in the environment variable {settings.api_key_env}")
    if settings.sanctions and not sanctions_key:
        variable = settings.sanctions_api_key_env
        raise ChainalysisError(f"set the Sanctions API key in the environment variable {variable}")
    key = msgspec.json.encode((settings, api_key, sanctions_key))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = ChainalysisClient(settings, api_key=api_key, sanctions_api_key=sanctions_key)
    return client


def _held(exc: Exception) -> Decision:
    return Decision.hold(f"Chainalysis gave no answer: {exc}", provider=PROVIDER)


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the settings and keys as the exchange starts (a mistake stops the start with a clear message)."""
    client_for(config)


@hookimpl
def screen_deposit(config: ExchangeConfig, request: DepositRequest) -> Decision | None:
    """Check the deposit's sources with the Sanctions API and register it with KYT; act on the alerts."""
    try:
        client = client_for(config)
        if client is None:
            return None
        decisions = []
        if client.settings.sanctions:
            decisions.append(client.screen_addresses(tuple(request.source_addresses), "deposit source"))
        if client.settings.kyt:
            external_id = client.register_transfer(
                str(request.account),
                chain=request.chain,
                asset=request.asset,
                txid=request.txid,
                output_address=request.address,
            )
            decisions.append(client.decide(client.transfer_alerts(external_id), withdrawal=False))
        return Decision.combine(decisions)
    except ChainalysisError as exc:
        return _held(exc)


@hookimpl
def screen_withdrawal(config: ExchangeConfig, request: WithdrawalRequest) -> Decision | None:
    """Check the destination with the Sanctions API and register the withdrawal attempt with KYT."""
    try:
        client = client_for(config)
        if client is None:
            return None
        decisions = []
        if client.settings.sanctions:
            decisions.append(client.screen_addresses((request.address,), "withdrawal destination"))
        if client.settings.kyt:
            asset = config.assets.get(request.asset)
            if asset is None:
                raise ChainalysisError(f"asset {request.asset!r} is not in [assets]")
            external_id = client.register_withdrawal_attempt(
                str(request.account),
                chain=request.chain,
                asset=request.asset,
                address=request.address,
                amount=Decimal(request.amount).scaleb(-asset.decimals),
                attempt_id=f"withdrawal-{request.withdrawal_id}",
            )
            decisions.append(client.decide(client.withdrawal_alerts(external_id), withdrawal=True))
        return Decision.combine(decisions)
    except ChainalysisError as exc:
        return _held(exc)
