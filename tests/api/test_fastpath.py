"""The REST fast path answers exactly as the full starlette app would, and never shadows an earlier route."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from exchange_framework.api.app import SECURITY_HEADERS, SecurityHeaders, api_endpoints, create_app
from exchange_framework.api.fastpath import ApiFastPath
from exchange_framework.config import ExchangeConfig
from exchange_framework.node import with_data_dir
from tests.api.conftest import Exchange
from tests.api.server import serve

PUBLIC = ["/api/v3/ping", "/api/v3/time", "/api/v3/exchangeInfo", "/api/v3/depth?symbol=BTCUSDT&limit=5"]
VOLATILE = {"date", "content-length", "x-mbx-used-weight", "x-mbx-used-weight-1m"}


def _fast(exchange: Exchange) -> ApiFastPath:
    wrapped = exchange.server.app._wrapped
    assert isinstance(wrapped, ApiFastPath)
    return wrapped


def _without_clock(response: httpx.Response) -> object:
    body = response.json()
    if isinstance(body, dict):
        body.pop("serverTime", None)
    return body


def test_every_fixed_api_path_is_served_by_the_fast_path(exchange: Exchange) -> None:
    fast = _fast(exchange)
    fixed = {(e.method, e.path) for e in api_endpoints() if "{" not in e.path}
    assert set(fast.responders) == fixed
    assert ("POST", "/api/v3/order") in fast.responders


def test_fast_path_and_router_answer_the_same(exchange: Exchange) -> None:
    fast = _fast(exchange)
    assert isinstance(fast.fallback, SecurityHeaders)
    router_only = ApiFastPath(fast.app, {}, SECURITY_HEADERS, fallback=fast.fallback)  # everything via starlette

    async def both(path: str) -> tuple[httpx.Response, httpx.Response]:
        answers = []
        for app in (fast, router_only):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                answers.append(await client.get(path))
        return answers[0], answers[1]

    for path in [*PUBLIC, "/api/v3/depth?symbol=NOPE", "/api/v3/account"]:
        quick, slow = exchange.server.call(lambda p=path: both(p))
        assert quick.status_code == slow.status_code, path
        assert _without_clock(quick) == _without_clock(slow), path
        strip = lambda r: {k: v for k, v in r.headers.items() if k not in VOLATILE}  # noqa: E731
        assert strip(quick) == strip(slow), path
        for name in SECURITY_HEADERS:
            assert name in quick.headers, (path, name)


def test_a_plugin_route_on_an_api_path_still_wins(demo_config: ExchangeConfig, tmp_path: Path) -> None:
    async def mine(_request: Request) -> Response:
        return PlainTextResponse("operator's own time")

    config = with_data_dir(demo_config, tmp_path / "data")
    app = create_app(config, extra_routes=[Route("/api/v3/time", mine, methods=["GET"])])
    assert isinstance(app._wrapped, ApiFastPath)
    assert ("GET", "/api/v3/time") not in app._wrapped.responders
    assert ("GET", "/api/v3/ping") in app._wrapped.responders
    with serve(app) as server:
        response = httpx.get(f"{server.url}/api/v3/time")
        assert response.text == "operator's own time"
        assert response.headers["x-frame-options"] == "DENY"
        assert httpx.get(f"{server.url}/api/v3/ping").json() == {}


def test_head_and_unknown_paths_fall_through_to_the_router(exchange: Exchange) -> None:
    assert httpx.head(f"{exchange.url}/api/v3/time").status_code == 200
    missing = httpx.get(f"{exchange.url}/api/v3/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["x-content-type-options"] == "nosniff"
