"""How an API endpoint is declared: its route, weight, security and parameters, in one place.

:func:`endpoint` wraps a handler ``async (ctx, call) -> body`` into a starlette endpoint that reads the parameters,
counts rate limits, checks the key and signature for the declared security, turns :class:`ApiError` into Binance's
error JSON and adds the usage headers. The same declarations produce the OpenAPI document, so the document and
the routes cannot drift apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exchange_framework.api.auth import API_KEY_HEADER, authenticate
from exchange_framework.api.errors import UNKNOWN, ApiError
from exchange_framework.api.params import Params
from exchange_framework.identity import ApiKeyInfo, Scope

__all__ = ["Call", "Endpoint", "Param", "Security", "endpoint", "routes_of"]

_log = logging.getLogger(__name__)


class Security(Enum):
    """Binance's endpoint security types."""

    NONE = "NONE"  # public
    USER_STREAM = "USER_STREAM"  # API key, no signature
    USER_DATA = "USER_DATA"  # key + signature, read scope
    TRADE = "TRADE"  # key + signature, trade scope
    WITHDRAW = "WITHDRAW"  # key + signature, withdraw scope

    @property
    def scope(self) -> Scope | None:
        return {
            Security.USER_STREAM: Scope.READ,
            Security.USER_DATA: Scope.READ,
            Security.TRADE: Scope.TRADE,
            Security.WITHDRAW: Scope.WITHDRAW,
        }.get(self)


@dataclass(frozen=True)
class Param:
    """A documented parameter."""

    name: str
    type: str = "string"  # OpenAPI type: string, integer, number (as a decimal string), boolean
    required: bool = False
    description: str = ""


@dataclass
class Call:
    """One request as a handler sees it."""

    request: Request
    params: Params
    now_ms: int
    key: ApiKeyInfo | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def account(self) -> int:
        """The calling account (only for endpoints that require a key)."""
        assert self.key is not None, "a keyed endpoint"
        return self.key.account


Handler = Callable[[Any, Call], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """An endpoint's declaration."""

    method: str
    path: str
    summary: str
    handler: Handler
    security: Security = Security.NONE
    weight: int = 1
    params: tuple[Param, ...] = ()
    tag: str = "market"
    order: bool = False  # counts against the order-rate limits

    def route(self) -> Route:
        """The starlette route serving this endpoint."""
        return Route(self.path, self.responder(), methods=[self.method], name=f"{self.method} {self.path}")

    def responder(self) -> Callable[[Request], Awaitable[Response]]:
        """The function answering one request: it never raises (errors become Binance's error JSON)."""

        async def serve(request: Request) -> Response:
            ctx = request.app.state.api
            now_ms = ctx.now_ms()
            headers: dict[str, str] = {}
            try:
                body = ""
                if request.method in ("POST", "PUT"):
                    body = (await request.body()).decode("utf-8", "replace")
                params = Params(request.scope["query_string"].decode("latin-1"), body)
                ip = request.client.host if request.client else ""
                headers.update(ctx.limiter.spend_weight(ip, self.weight, now_ms))
                key = None
                scope = self.security.scope
                if scope is not None:
                    key = authenticate(
                        ctx.identity,
                        api_key=request.headers.get(API_KEY_HEADER),
                        params=params,
                        client_ip=ip,
                        now_ms=now_ms,
                        scope=scope,
                        signed=self.security is not Security.USER_STREAM,
                    )
                    if self.order:
                        headers.update(ctx.limiter.spend_order(key.account, now_ms))
                call = Call(request, params, now_ms, key, headers)
                result = await self.handler(ctx, call)
            except ApiError as exc:
                exc.headers = {**headers, **exc.headers}
                return exc.response()
            except Exception:
                _log.exception("%s %s failed", self.method, self.path)
                return ApiError(UNKNOWN, "An unknown error occurred while processing the request.", 500).response()
            if isinstance(result, Response):
                result.headers.update(headers)
                return result
            return JSONResponse(result, headers=headers)

        serve.__name__ = self.handler.__name__
        serve.__doc__ = self.summary
        return serve


def endpoint(
    method: str,
    path: str,
    summary: str,
    *,
    security: Security = Security.NONE,
    weight: int = 1,
    params: tuple[Param, ...] = (),
    tag: str = "market",
    order: bool = False,
    registry: list[Endpoint],
) -> Callable[[Handler], Handler]:
    """Declare the decorated handler as an endpoint and add it to ``registry``."""

    def decorate(handler: Handler) -> Handler:
        registry.append(Endpoint(method, path, summary, handler, security, weight, params, tag, order))
        return handler

    return decorate


def routes_of(registry: list[Endpoint]) -> list[Route]:
    """The routes of every endpoint in ``registry``."""
    return [e.route() for e in registry]


def now_ms() -> int:
    """The wall clock in milliseconds (requests' timestamps are checked against it)."""
    return time.time_ns() // 1_000_000
