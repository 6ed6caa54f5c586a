"""The ``jumio`` plugin: Jumio's KYX platform as a KYC provider.

Active only when ``[plugins.settings.jumio]`` exists (see :class:`~exchange_jumio.client.Settings`); select it with
``[compliance.kyc] provider = "jumio"``. ``start`` creates an account with a workflow execution and returns
``"<account id>:<execution id>"``; ``status`` reads the execution from Jumio. Any failure is a hold.
"""

from __future__ import annotations

import os
import threading
import uuid

import msgspec

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import Decision, KycProvider, OnboardingRequest
from exchange_jumio.client import PROVIDER, JumioClient, JumioError, Settings

__all__ = ["JumioKycProvider", "provider_for", "register_kyc_providers", "startup"]

NAME = "jumio"

_providers: dict[bytes, JumioKycProvider] = {}
_lock = threading.Lock()


class JumioKycProvider:
    """Verifies applicants with Jumio workflow executions."""

    name = PROVIDER

    def __init__(self, client: JumioClient) -> None:
        self.client = client

    def start(self, request: OnboardingRequest) -> str:
        """Start a workflow execution for the applicant; raise :class:`JumioError` if Jumio fails."""
        return self.client.create_account(int(request.account), f"kyc-{request.account}-{uuid.uuid4().hex}").reference

    def status(self, reference: str) -> Decision:
        """The decision on an execution, read from Jumio; a hold on any failure."""
        try:
            return self.client.decide(reference)
        except JumioError as exc:
            return Decision.hold(f"Jumio gave no answer: {exc}", provider=PROVIDER)


def settings_for(config: ExchangeConfig | None) -> Settings | None:
    """Return the plugin's settings, or None if ``[plugins.settings.jumio]`` is absent (plugin inactive)."""
    if not isinstance(config, ExchangeConfig) or NAME not in config.plugins.settings:
        return None
    try:
        return msgspec.convert(dict(config.plugin_settings(NAME)), Settings)
    except (msgspec.ValidationError, ValueError) as exc:
        raise JumioError(f"[plugins.settings.jumio]: {exc}") from None


def provider_for(config: ExchangeConfig | None) -> JumioKycProvider | None:
    """The exchange's Jumio provider (one per settings and credentials), or None if the plugin is inactive."""
    settings = settings_for(config)
    if settings is None:
        return None
    client_id = os.environ.get(settings.client_id_env, "")
    secret = os.environ.get(settings.client_secret_env, "")
    if not (client_id and secret):
        raise JumioError(
            f"set the Jumio API credentials in the environment variables {settings.client_id_env} and "
            f"{settings.client_secret_env}"
        )
    key = msgspec.json.encode((settings, client_id, secret))
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = JumioKycProvider(
                JumioClient(settings, client_id=client_id, client_secret=secret)
            )
    return provider


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the settings and credentials as the exchange starts (a mistake stops the start with a clear message)."""
    provider_for(config)


@hookimpl
def register_kyc_providers(config: ExchangeConfig) -> list[KycProvider] | None:
    """Register the ``jumio`` provider when the plugin is configured."""
    provider = provider_for(config)
    return [provider] if provider is not None else None
