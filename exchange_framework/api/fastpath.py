"""Serve the REST API's fixed paths without walking starlette's router and middleware.

Placing an order is the hot path, and most of its cost used to be the generic machinery around the endpoint:
every request went through the security-header wrapper, starlette's error and exception middleware (twice), a
linear scan of every route's regular expression (API, streams, admin, portal) and the request/response adapter,
each one a coroutine frame that is suspended and resumed while the order waits for the journal. The endpoints
already turn every error into Binance's error JSON themselves, so none of those layers changes their answer.

:class:`ApiFastPath` looks up ``(method, path)`` in a dict built once from the endpoint declarations and calls the
endpoint directly, adding the same security headers. Everything else (path parameters, ``HEAD``, websockets,
the portal, admin, plugin routes, a ``root_path`` deployment) falls through to the full starlette app, and a path
that a plugin or operator route also claims is never taken by the fast path: those routes come first in the
router, so they keep winning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from exchange_framework.api.endpoints import Endpoint

Responder = Callable[[Request], Awaitable[Response]]


def _claimed(route: BaseRoute, method: str, path: str) -> bool:
    """Whether ``route`` would answer ``method path`` (fully or as a method mismatch that shadows it)."""
    scope: Scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    match, _ = route.matches(scope)
    return match is not Match.NONE


def fast_responders(
    endpoints: Iterable[Endpoint], earlier_routes: Sequence[BaseRoute]
) -> dict[tuple[str, str], Responder]:
    """``(method, path) -> responder`` for every endpoint with a fixed path that no earlier route claims."""
    table: dict[tuple[str, str], Responder] = {}
    for endpoint in endpoints:
        if "{" in endpoint.path:
            continue
        if any(_claimed(route, endpoint.method, endpoint.path) for route in earlier_routes):
            continue
        table[(endpoint.method, endpoint.path)] = endpoint.responder()
    return table


class ApiFastPath:
    """ASGI app: the fixed-path REST endpoints straight from a dict; everything else to ``fallback``."""

    def __init__(
        self,
        app: ASGIApp,
        responders: Mapping[tuple[str, str], Responder],
        headers: Mapping[str, str],
        fallback: ASGIApp,
    ) -> None:
        self.app = app  # the starlette app: endpoints read their context from ``request.app.state``
        self.responders = dict(responders)
        self.fallback = fallback
        self._headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            responder = self.responders.get((scope["method"], scope["path"]))
            if responder is not None:
                scope["app"] = self.app
                response = await responder(Request(scope, receive))
                raw = response.raw_headers
                present = {name for name, _ in raw}
                raw.extend(header for header in self._headers if header[0] not in present)
                await response(scope, receive, send)
                return
        await self.fallback(scope, receive, send)
