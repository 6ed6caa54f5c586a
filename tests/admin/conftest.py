"""Admin console fixtures: the exchange on a real uvicorn server (the API tests' fixtures), operators of every role
logged in through the portal's login form, and helpers to read the audit log the app writes."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from exchange_framework.admin.policy import OPERATOR_ROLES
from exchange_framework.api.app import create_app
from exchange_framework.audit import AuditEntry, AuditLog, verify
from exchange_framework.cli import main
from exchange_framework.config import DEMO_CONFIG, load_config
from exchange_framework.node import with_data_dir
from exchange_framework.web import LoginLimiter, Web
from tests.api.conftest import User, make_user
from tests.api.server import RunningServer, serve
from tests.portal.conftest import PASSWORD, PortalClient

__all__ = ["Admin", "AdminClient", "audit_entries", "audit_ok", "flash"]

_n = itertools.count(1)
_FLASH = re.compile(r'<div class="flash flash-(\w+)"[^>]*>(.*?)</div>', re.S)


def flash(page: httpx.Response) -> tuple[str, str]:
    """The first flash message of a page: (kind, text)."""
    match = _FLASH.search(page.text)
    assert match, f"no flash message on {page.url} ({page.status_code}): {page.text[:800]}"
    return match.group(1), html.unescape(match.group(2))


class AdminClient(PortalClient):
    """A browser without JavaScript, logged in as an operator (or a customer), posting admin forms."""

    def __init__(self, url: str, email: str) -> None:
        super().__init__(url)
        self.email = email

    def act(self, path: str, data: dict[str, str], *, page: str) -> httpx.Response:
        """Post an admin form as ``page`` shows it and follow the redirect to the page with its flash message."""
        return self.follow(self.post(path, data, page=page))


def login(url: str, email: str) -> AdminClient:
    client = AdminClient(url, email)
    client.login(email, PASSWORD)
    return client


def audit_entries(server: RunningServer) -> list[AuditEntry]:
    log = server.ctx.extras["audit"]
    assert isinstance(log, AuditLog)
    return list(log.entries())


def audit_ok(server: RunningServer) -> None:
    """The audit file verifies end to end, and ``exchange audit verify`` says so with the log's newest hash."""
    log = server.ctx.extras["audit"]
    path: Path = log.store.path
    assert path.parent == server.ctx.node.data_dir or server.ctx.node.config.source is not None  # never the cwd
    report = verify(path)
    assert report.ok, report.problem
    head = log.head()
    assert head is not None and report.head == head.hash
    result = CliRunner().invoke(main, ["audit", "verify", str(path), "--expect-head", head.hash])
    assert result.exit_code == 0 and result.stdout.startswith(f"ok: {head.seq} entries, head "), result.output


class Admin:
    """The shared server with an operator of every role, a customer, and clients logged in as each."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.n = next(_n)
        self.clients: dict[str, AdminClient] = {}
        self.users: dict[str, User] = {}

    @property
    def url(self) -> str:
        return self.server.url

    def user(self, name: str, role: str = "user") -> User:
        if name not in self.users:
            user = make_user(self.server, f"{name}{self.n}@example.com")
            if role != "user":
                self.server.ctx.identity.set_role(user.account, role)
            self.users[name] = user
        return self.users[name]

    def client(self, name: str, role: str = "user") -> AdminClient:
        if name not in self.clients:
            self.clients[name] = login(self.url, self.user(name, role).email)
        return self.clients[name]

    def as_role(self, role: str) -> AdminClient:
        """A client logged in with ``role`` (``user`` is a customer)."""
        return self.client(role, role)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture(scope="session")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One exchange server (no chains) shared by the admin tests; each test makes operators of its own."""
    config = with_data_dir(load_config(DEMO_CONFIG), tmp_path_factory.mktemp("admin") / "data")
    with serve(create_app(config, settle_every=0.2, with_wallet=False)) as server:
        yield server


@pytest.fixture
def admin(admin_server: RunningServer) -> Iterator[Admin]:
    Web.of(admin_server.ctx).limiter = LoginLimiter()
    found = Admin(admin_server)
    yield found
    found.close()


@pytest.fixture
def own_admin(tmp_path: Path) -> Iterator[Admin]:
    """A server of this test's own (for tests that break it)."""
    config = with_data_dir(load_config(DEMO_CONFIG), tmp_path / "data")
    with serve(create_app(config, settle_every=0.2, with_wallet=False)) as server:
        found = Admin(server)
        yield found
        found.close()


ROLES_AND_CUSTOMER = (*OPERATOR_ROLES, "user")
