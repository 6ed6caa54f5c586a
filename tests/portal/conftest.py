"""Portal fixtures: the exchange on a real uvicorn server (the API tests' fixtures) and a form-posting client."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import httpx
import pytest

from exchange_framework.api.app import create_app
from exchange_framework.config import DEMO_CONFIG, load_config
from exchange_framework.node import with_data_dir
from exchange_framework.web import LoginLimiter, Web
from tests.api.conftest import Exchange, User, make_user
from tests.api.conftest import exchange as fresh_exchange  # a server of its own, for tests that trade
from tests.api.server import RunningServer, serve
from tests.api.test_wallet_api import chain_exchange  # with the dev chain and the real wallet service

__all__ = ["Exchange", "Portal", "PortalClient", "chain_exchange", "exchange", "fresh_exchange"]
_users = itertools.count(1)


@pytest.fixture(scope="session")
def portal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One exchange server shared by the account tests (each test gets users of its own)."""
    config = with_data_dir(load_config(DEMO_CONFIG), tmp_path_factory.mktemp("portal") / "data")
    with serve(create_app(config, settle_every=0.2, with_wallet=False)) as server:
        yield server


class Portal:
    """The shared server; ``alice`` and ``bob`` are funded users made for this test on first use."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.n = next(_users)
        self._users: dict[str, User] = {}

    @property
    def url(self) -> str:
        return self.server.url

    def user(self, name: str) -> User:
        if name not in self._users:
            self._users[name] = make_user(self.server, f"{name}{self.n}@example.com")
        return self._users[name]

    @property
    def alice(self) -> User:
        return self.user("alice")

    @property
    def bob(self) -> User:
        return self.user("bob")


@pytest.fixture
def exchange(portal_server: RunningServer) -> Portal:
    """The shared server, fresh login limits, and users of this test's own."""
    Web.of(portal_server.ctx).limiter = LoginLimiter()
    return Portal(portal_server)


PASSWORD = "correct horse battery staple"  # tests.api.conftest.make_user's
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


class PortalClient:
    """A browser without JavaScript: keeps cookies, reads each page's CSRF token and posts its forms."""

    def __init__(self, url: str, **headers: str) -> None:
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def token(self, path: str = "/login") -> str:
        page = self.http.get(path)
        match = _CSRF.search(page.text)
        assert match, f"no CSRF token on {path} ({page.status_code})"
        return match.group(1)

    def post(self, path: str, data: dict[str, str | list[str]], *, page: str | None = None) -> httpx.Response:
        """Post ``data`` as the form on ``page`` (default: ``path``) would, with that page's CSRF token."""
        return self.http.post(path, data={**data, "csrf_token": self.token(page or path)})

    def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, (response.status_code, response.text[:500])
        return self.http.get(response.headers["location"])

    def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        response = self.post("/login", {"email": email, "password": password})
        assert response.status_code == 303, response.text[:1000]
        return response


@pytest.fixture
def browser(exchange: Portal) -> Iterator[PortalClient]:
    client = PortalClient(exchange.url)
    yield client
    client.close()


@pytest.fixture
def alice(exchange: Portal) -> Iterator[PortalClient]:
    client = PortalClient(exchange.url)
    client.login(exchange.alice.email)
    yield client
    client.close()


@pytest.fixture
def bob(exchange: Portal) -> Iterator[PortalClient]:
    client = PortalClient(exchange.url)
    client.login(exchange.bob.email)
    yield client
    client.close()
