"""The exchange's web application: the REST API (and, as they land, streams, portal and admin) on one ASGI app.

:func:`create_app` builds it from a config. Its lifespan starts the :class:`~exchange_framework.node.ExchangeNode`
and opens the identity store and the operator audit log (:func:`open_audit_log`); plugins add routes
(``register_routes``, matched first) and middleware (``asgi_wrapper``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange_framework import admin, portal
from exchange_framework.api import market, streams, trading, userstream
from exchange_framework.api import wallet as wallet_api
from exchange_framework.api.context import ApiContext
from exchange_framework.api.endpoints import Endpoint, routes_of
from exchange_framework.api.fastpath import ApiFastPath, fast_responders
from exchange_framework.api.openapi import openapi_document
from exchange_framework.api.ratelimit import Limits, RateLimiter
from exchange_framework.api.units import Units
from exchange_framework.api.userstream import ListenKeys, UserStreamPublisher
from exchange_framework.audit import AuditLog
from exchange_framework.compliance.cases import CaseStore
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.tiers_service import TierPlanner, make_tier_planner
from exchange_framework.fees import FeeReviewer
from exchange_framework.identity import IdentityStore
from exchange_framework.marketdata import Hub, MarketData, StreamPublisher
from exchange_framework.node import ExchangeNode, NodeClosed
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.wallet.setup import make_wallet

if TYPE_CHECKING:
    from exchange_framework.compliance.monitoring import Monitor

__all__ = ["SECURITY_HEADERS", "ExchangeApp", "api_endpoints", "create_app", "open_audit_log"]

_log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def api_endpoints() -> list[Endpoint]:
    """Every REST endpoint of the kernel, in the order they are matched."""
    # Trading first: routes are tried in order, and placing orders is the hot path.
    return [*trading.ENDPOINTS, *market.ENDPOINTS, *userstream.ENDPOINTS, *wallet_api.ENDPOINTS]


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    config: ExchangeConfig,
    *,
    pm: pluggy.PluginManager | None = None,
    identity_url: str | None = None,
    limits: Limits | None = None,
    settle_every: float = 1.0,
    extra_routes: Sequence[BaseRoute] = (),
    on_started: Callable[[ApiContext], Any] | None = None,
    with_wallet: bool = True,
) -> ExchangeApp:
    """Build the exchange's ASGI app for ``config``.

    The node's data (journal, snapshots, SQLite ledger) lives where ``config`` says; the identity store defaults to
    ``identity.db`` beside the journal. ``on_started(ctx)`` runs once everything is up (the demo seeds users there).
    The wallet (deposits and withdrawals) runs when a plugin registers a chain adapter and ``with_wallet`` is set.
    """
    pm = pm if pm is not None else make_plugin_manager(config)
    node = ExchangeNode(config, pm=pm, settle_every=settle_every)
    data_dir: Path = node.data_dir
    identity = IdentityStore(identity_url or f"sqlite:///{data_dir / 'identity.db'}")
    market_data = MarketData(node.assets, node.markets)
    hub = Hub()
    publisher = StreamPublisher(market_data, hub)
    node.add_listener(publisher.on_events, history=market_data.apply)  # history: state only, nothing to publish
    ctx = ApiContext(
        node=node, identity=identity, units=Units(config), limiter=RateLimiter(limits), market_data=market_data
    )
    ctx.extras.update(hub=hub, publisher=publisher, listen_keys=ListenKeys())
    reviewer = FeeReviewer.for_config(config)
    node.add_listener(reviewer.observe)
    monitor = _transaction_monitor(config)
    if monitor is not None:
        node.add_listener(monitor.on_batch)
        ctx.extras["monitor"] = monitor
    node.add_command_listener(UserStreamPublisher(ctx, hub).on_command)
    wallet = make_wallet(config, pm, node, identity, audit=lambda: ctx.extras.get("audit")) if with_wallet else None
    if wallet is not None:
        ctx.extras["wallet"] = wallet
    tier_planner = _tier_planner(config, pm, node, wallet, ctx) if wallet is not None else None
    endpoints = api_endpoints()

    async def openapi(_request: Any) -> JSONResponse:
        return JSONResponse(openapi_document(config, endpoints))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Plugins check their settings first: a mistake stops the start before anything else runs.
        pm.hook.startup.call_historic(kwargs={"config": config})
        identity.create_schema()
        audit = open_audit_log(config, ctx)
        if monitor is not None:  # alerts open compliance cases (the admin console's queue)
            monitor.cases = CaseStore.for_config(config)
        await node.start()
        ticker = asyncio.create_task(publisher.run(), name="market-data streams")
        fee_task = asyncio.create_task(_review_fees(node, reviewer, config.fees.review_minutes), name="fee tiers")
        if wallet is not None:
            await wallet.start()
        tiers_task = asyncio.create_task(tier_planner.run(), name="custody tiers") if tier_planner else None
        try:
            if on_started is not None:
                result = on_started(ctx)
                if hasattr(result, "__await__"):
                    await result
            yield
        finally:
            if tiers_task is not None:
                tiers_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tiers_task
            if wallet is not None:
                await wallet.close()
            fee_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fee_task
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await node.close()
            identity.close()
            try:
                pm.hook.shutdown(config=config)
            except Exception:
                _log.exception("a plugin's shutdown hook failed")
            if audit is not None:
                ctx.extras.pop("audit", None)
                audit.close()

    plugin_routes: list[BaseRoute] = [r for routes in pm.hook.register_routes(config=config) if routes for r in routes]
    routes: list[BaseRoute] = [
        *plugin_routes,
        *extra_routes,
        *routes_of(endpoints),
        *streams.routes(),
        *admin.routes(ctx),
        *portal.routes(ctx),
        Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.api = ctx
    responders = fast_responders(endpoints, [*plugin_routes, *extra_routes])
    wrapped: ASGIApp = ApiFastPath(app, responders, SECURITY_HEADERS, fallback=SecurityHeaders(app))
    for wrapper in pm.hook.asgi_wrapper(config=config):
        if wrapper is not None:
            wrapped = wrapper(wrapped)
    return ExchangeApp(app, wrapped, ctx)


def open_audit_log(config: ExchangeConfig, ctx: ApiContext) -> AuditLog | None:
    """Open the operator audit log at ``ctx.extras["audit"]``, unless something already did.

    The log is at ``[audit] path`` when the config sets it or was read from a file (where ``exchange audit`` looks);
    a config built in memory without one keeps it beside the journal (``audit.log`` in the node's data directory),
    never in the current directory. If it cannot be opened (a torn last line, no disk), the exchange still serves
    customers and the reason is kept in ``ctx.extras["audit_error"]``: operator actions, which must be audited, are
    then refused (fail closed).
    """
    if "audit" in ctx.extras:
        return None
    explicit = config.source is not None or "audit" in config.model_fields_set
    path = config.audit_path() if explicit else ctx.node.data_dir / "audit.log"
    try:
        audit = AuditLog.open(path, fsync=config.audit.fsync)
    except Exception as exc:  # every operator action is refused until this is fixed
        _log.error("the audit log could not be opened: %s", exc)
        ctx.extras["audit_error"] = str(exc)
        return None
    ctx.extras["audit"] = audit
    return audit


def _transaction_monitor(config: ExchangeConfig) -> Monitor | None:
    """The transaction monitor of ``[compliance.monitoring]`` (rules, and scores when its model loads), or ``None``
    if it cannot run here (the ``monitoring`` extra is not installed, or the model is unusable: logged)."""
    try:
        from exchange_framework.compliance.monitoring import Monitor

        monitor: Monitor = Monitor.for_config(config)
        return monitor
    except Exception as exc:
        _log.error("transaction monitoring is off: %s", exc)
        return None


def _tier_planner(
    config: ExchangeConfig, pm: pluggy.PluginManager, node: ExchangeNode, wallet: Any, ctx: ApiContext
) -> TierPlanner | None:
    """The custody tier planner (``ctx.extras["tiers"]``): re-plans every ``[custody.tiers] plan_minutes`` and only
    proposes; approved sweeps are executed through the policy engine (docs/custody-tiers.md). None without
    ``[custody]`` or if it cannot be set up (logged: the exchange still serves customers)."""
    try:
        planner = make_tier_planner(config, pm, node, wallet, audit=lambda: ctx.extras.get("audit"))
    except Exception as exc:
        _log.error("custody tier planning is off: %s", exc)
        return None
    if planner is not None:
        ctx.extras["tiers"] = planner
    return planner


async def _review_fees(node: ExchangeNode, reviewer: FeeReviewer, minutes: int) -> None:
    """Sequence the fee-tier changes that 30-day volumes call for, every ``minutes`` (0: never)."""
    if minutes <= 0:
        return
    while True:
        try:
            for command in reviewer.due(time.time_ns()):  # the wall clock at the edge; the commands are sequenced
                await node.submit(command)
        except NodeClosed:
            return
        except Exception:
            _log.exception("fee tier review failed; trying again later")
        await asyncio.sleep(minutes * 60)


class ExchangeApp:
    """The exchange's ASGI app: the Starlette app (:attr:`app`) inside its middleware, and the API context."""

    def __init__(self, app: Starlette, wrapped: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx
        self._wrapped = wrapped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._wrapped(scope, receive, send)
