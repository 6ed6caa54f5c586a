"""The ``fireblocks`` plugin: Fireblocks as a custody backend that signs and broadcasts itself.

Active only when ``[plugins.settings.fireblocks]`` exists (see :class:`~exchange_fireblocks.settings.Settings`). It
offers the kernel:

- ``custody_balances``: the ``total`` of every vault account in each configured asset, for ledger reconciliation;
- ``register_routes``: ``POST <webhook_path>``, which verifies Fireblocks' signature (401 when it does not), then
  reads the transaction it names back from the API (503 when Fireblocks cannot be read, so it calls again);
- :func:`custody_for`: the :class:`~exchange_fireblocks.custody.FireblocksCustody` that sends approved withdrawals
  (one Fireblocks transaction per withdrawal, by external id) and tracks them to a final status.
- ``register_custody_signers``: :class:`~exchange_fireblocks.signer.FireblocksSigner` (``fireblocks``), raw signing
  with Fireblocks' MPC keys for the kernel's own build/sign/broadcast path, when ``signing_assets`` is set;
- ``shutdown``: closes the API clients.

The API user's private key is read from its file on first use, never logged and never put in an error message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from exchange_fireblocks.client import FireblocksApi, FireblocksError
from exchange_fireblocks.custody import FireblocksCustody
from exchange_fireblocks.settings import SETTINGS_NAME, FireblocksConfigError, Settings
from exchange_fireblocks.signer import FireblocksSigner
from exchange_fireblocks.webhook import SeenBodies, WebhookSignatureError, WebhookVerifier, parse_event
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import CustodyBalance, CustodySigner

__all__ = [
    "custody_balances",
    "custody_for",
    "register_custody_signers",
    "register_routes",
    "settings_for",
    "shutdown",
    "startup",
    "webhook_endpoint",
]

_custodies: dict[bytes, FireblocksCustody] = {}
_signers: dict[bytes, FireblocksSigner] = {}
_lock = threading.Lock()


def settings_for(config: ExchangeConfig | None) -> Settings | None:
    """Return the plugin's settings, or None when ``[plugins.settings.fireblocks]`` is absent (plugin inactive)."""
    if not isinstance(config, ExchangeConfig) or SETTINGS_NAME not in config.plugins.settings:
        return None
    return Settings.parse(config.plugin_settings(SETTINGS_NAME))


def _api_factory(settings: Settings) -> Callable[[], FireblocksApi]:
    def make_api() -> FireblocksApi:
        return FireblocksApi(
            base_url=settings.base_url,
            api_key=settings.api_key(),
            secret_key=settings.secret_key(),
            timeout_seconds=settings.timeout_seconds,
        )

    return make_api


def custody_for(config: ExchangeConfig | None) -> FireblocksCustody | None:
    """Return the Fireblocks custody of ``config`` (one per settings), or None when the plugin is inactive."""
    settings = settings_for(config)
    if settings is None or config is None:
        return None
    decimals = {symbol: asset.decimals for symbol, asset in config.assets.items()}
    key = msgspec.json.encode((settings, decimals))
    with _lock:
        custody = _custodies.get(key)
        if custody is None:
            custody = FireblocksCustody(settings, decimals=decimals, api_factory=_api_factory(settings))
            _custodies[key] = custody
    return custody


@hookimpl
def register_custody_signers(config: ExchangeConfig) -> list[CustodySigner] | None:
    """Register the raw-signing signer ``fireblocks`` when ``signing_assets`` is set (no key is touched here)."""
    settings = settings_for(config)
    if settings is None or not settings.signing_assets:
        return None
    key = msgspec.json.encode(settings)
    with _lock:
        signer = _signers.get(key)
        if signer is None:
            signer = _signers[key] = FireblocksSigner(settings, api_factory=_api_factory(settings))
    return [signer]


@hookimpl
def shutdown(config: ExchangeConfig) -> None:
    """Close the Fireblocks API clients this plugin opened (they are made again on next use)."""
    with _lock:
        custodies, signers = list(_custodies.values()), list(_signers.values())
        _custodies.clear()
        _signers.clear()
    for custody in custodies:
        custody.close()
    for signer in signers:
        signer.close()


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the settings, the keys and the webhook key as the exchange starts; a mistake stops it, named."""
    settings = settings_for(config)
    if settings is None:
        return
    unknown = sorted(set(settings.assets) - set(config.assets))
    if unknown:
        where = f"[plugins.settings.{SETTINGS_NAME}.assets]"
        raise FireblocksConfigError(f"{where} names assets not in [assets]: {', '.join(unknown)}")
    settings.api_key()
    settings.secret_key()
    WebhookVerifier(
        public_key_pem=settings.webhook_public_key_pem(),
        jwks_url=settings.webhook_jwks_url,
        timeout_seconds=settings.timeout_seconds,
    )


@hookimpl
def custody_balances(config: ExchangeConfig, assets: Sequence[str]) -> list[CustodyBalance] | None:
    """Report every Fireblocks vault account's balance of each configured asset (raises if Fireblocks cannot)."""
    custody = custody_for(config)
    if custody is None:
        return None
    return custody.balances(assets)


def webhook_endpoint(custody: FireblocksCustody, verifier: WebhookVerifier, seen: SeenBodies | None = None) -> Any:
    """Return the starlette endpoint that receives Fireblocks webhooks for ``custody``."""
    seen = seen if seen is not None else SeenBodies()

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            await run_in_threadpool(verifier.verify, body, dict(request.headers))
        except WebhookSignatureError as exc:
            return JSONResponse({"error": f"refused: {exc}"}, status_code=401)
        try:
            event = parse_event(body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if seen.seen(body):
            return JSONResponse({"ok": True, "handled": "already"})
        if not event.about_transaction:
            seen.remember(body)
            return JSONResponse({"ok": True, "handled": "ignored", "type": event.type})
        try:
            transfer = await run_in_threadpool(custody.refresh, event.tx_id)
        except FireblocksError as exc:
            return JSONResponse({"error": f"Fireblocks could not be read: {exc}"}, status_code=503)
        seen.remember(body)
        if transfer is None:
            return JSONResponse({"ok": True, "handled": "not ours"})
        return JSONResponse({"ok": True, "withdrawal": transfer.withdrawal_id, "state": transfer.state.value})

    return receive


@hookimpl
def register_routes(config: ExchangeConfig) -> list[Any] | None:
    """Add the webhook route at ``webhook_path`` when the plugin is active."""
    settings = settings_for(config)
    custody = custody_for(config)
    if settings is None or custody is None:
        return None
    verifier = WebhookVerifier(
        public_key_pem=settings.webhook_public_key_pem(),
        jwks_url=settings.webhook_jwks_url,
        timeout_seconds=settings.timeout_seconds,
    )
    return [Route(settings.webhook_path, webhook_endpoint(custody, verifier), methods=["POST"])]
