"""exchange_framework.web on its own, as the admin console uses it: role checks, login limits, static routes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from exchange_framework.config import load_config
from exchange_framework.identity import IdentityStore
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.web import SESSION_COOKIE, LoginLimiter, Web, safe_next, static_routes
from tests.conftest import MINIMAL_CONFIG

PASSWORD = "correct horse battery staple"


class Client:
    """Requests straight into an ASGI app (httpx's ASGI transport; no server, no lifespan needed here)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}

    def get(self, path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://exchange.test") as client:
                return await client.get(
                    path, headers={"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
                )

        return asyncio.run(go())


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Client, IdentityStore]]:
    """A tiny app with one administrator-only page, built on Web as the admin console would be."""
    path = tmp_path / "exchange.toml"
    path.write_text(MINIMAL_CONFIG, encoding="utf-8")
    config = load_config(path)
    identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    identity.create_schema()
    web = Web(config, identity, make_plugin_manager(config))

    async def secret(request: Request) -> Response:
        user = web.require_role(request, "administrator")
        return PlainTextResponse(f"hello {user.email}")

    app = Starlette(routes=[Route("/admin/secret", web.endpoint(secret, roles=("administrator", "compliance")))])
    yield Client(app), identity
    identity.close()


def test_role_checks(console: tuple[Client, IdentityStore]) -> None:
    client, identity = console
    anonymous = client.get("/admin/secret")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/admin/secret"

    user = identity.create_user("user@example.com", PASSWORD)
    client.cookies[SESSION_COOKIE] = identity.create_session(user.id)
    refused = client.get("/admin/secret")
    assert refused.status_code == 403 and "for administrator or compliance accounts" in refused.text

    compliance = identity.create_user("officer@example.com", PASSWORD, role="compliance")
    client.cookies[SESSION_COOKIE] = identity.create_session(compliance.id)
    inner = client.get("/admin/secret")  # the wrapper lets compliance in; the handler's own check is stricter
    assert inner.status_code == 403 and "for administrator accounts" in inner.text

    admin = identity.create_user("admin@example.com", PASSWORD, role="administrator")
    token = identity.create_session(admin.id)
    client.cookies[SESSION_COOKIE] = token
    assert client.get("/admin/secret").text == "hello admin@example.com"
    identity.revoke_session(admin.id, identity.sessions(admin.id)[0].token_hash)
    assert client.get("/admin/secret").status_code == 303  # a revoked session is no login


def test_login_limiter_window() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_ip=3, per_email=2, window_s=60, clock=lambda: now[0])
    assert limiter.blocked("1.2.3.4", "a@example.com") is None
    limiter.failed("1.2.3.4", "a@example.com")
    limiter.failed("1.2.3.4", "A@Example.com ")  # the same e-mail, however typed
    assert "wait 1 minute" in (limiter.blocked("5.6.7.8", "a@example.com") or "")
    assert limiter.blocked("1.2.3.4", "b@example.com") is None
    limiter.failed("1.2.3.4", "b@example.com")
    assert limiter.blocked("1.2.3.4", "c@example.com") is not None  # three from one address
    now[0] = 61.0
    assert limiter.blocked("1.2.3.4", "a@example.com") is None  # the window moved on
    limiter.failed("9.9.9.9", "d@example.com")
    limiter.succeeded("d@example.com")
    limiter.failed("9.9.9.9", "d@example.com")
    assert limiter.blocked("9.9.9.9", "d@example.com") is None  # success forgot the e-mail's failures


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/wallet", "/wallet"), ("/trade/BTCUSDT?x=1", "/trade/BTCUSDT?x=1"), ("//evil.test", "/"),
     ("https://evil.test", "/"), ("/\\evil.test", "/"), ("", "/"), (None, "/")],
)  # fmt: skip
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_logo_is_served_when_configured(tmp_path: Path) -> None:
    (tmp_path / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>", encoding="utf-8")
    with_logo = tmp_path / "exchange.toml"
    with_logo.write_text(MINIMAL_CONFIG.replace('name = "Test Exchange"', 'name = "T"\nlogo = "logo.svg"'), "utf-8")
    client = Client(Starlette(routes=static_routes(load_config(with_logo))))
    response = client.get("/brand/logo")
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
    assert client.get("/static/portal.css").status_code == 200
    assert client.get("/static/trade.js").status_code == 200
    (tmp_path / "plain").mkdir()
    plain = tmp_path / "plain" / "exchange.toml"
    plain.write_text(MINIMAL_CONFIG, "utf-8")
    client = Client(Starlette(routes=static_routes(load_config(plain))))
    missing = client.get("/brand/logo")
    assert missing.status_code == 404 and "set [brand] logo" in missing.text
