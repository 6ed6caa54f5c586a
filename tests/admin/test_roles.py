"""The role table is what the server enforces: every admin route, every role, the customer and the anonymous visitor."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.routing import Route

from exchange_framework.admin.policy import ACTIONS, OPERATOR_ROLES, ROUTES, AdminRoute, allowed
from exchange_framework.identity.store import ROLES
from exchange_framework.web import LoginLimiter, Web
from tests.admin.conftest import ROLES_AND_CUSTOMER, Admin, AdminClient, audit_entries
from tests.api.server import RunningServer

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def concrete(route: AdminRoute, account: int) -> str:
    values = {
        "account": str(account),
        "submission": "1",
        "withdrawal": "1",
        "case": "1",
        "sweep": "1",
        "market": "BTC-USDT",
    }
    return _PARAM.sub(lambda m: values[m.group(1)], route.path)


def request(client: AdminClient, route: AdminRoute, path: str) -> httpx.Response:
    if route.method == "GET":
        return client.get(path)
    # A valid CSRF token from a page every logged-in visitor can open: refusals must come from the role check.
    return client.http.post(path, data={"csrf_token": client.token("/account")})


def test_the_table_names_every_admin_route_of_the_app_and_only_known_actions(admin: Admin) -> None:
    served = {
        (method, r.path)
        for r in admin.server.app.app.routes
        if isinstance(r, Route) and r.path.startswith("/admin")
        for method in (r.methods or ()) - {"HEAD"}
    }
    assert served == {(r.method, r.path) for r in ROUTES}
    assert {r.action for r in ROUTES} == set(ACTIONS)
    for action, roles in ACTIONS.items():
        assert roles <= set(OPERATOR_ROLES), action
        assert "user" not in roles
    assert set(OPERATOR_ROLES) | {"user"} == set(ROLES)


def test_least_privilege_in_the_table() -> None:
    assert all(allowed("administrator", action) for action in ACTIONS)
    assert not any(allowed("user", action) for action in ACTIONS)
    assert {a for a in ACTIONS if allowed("support", a)} == {"dashboard.view", "users.view"}
    assert {a for a in ACTIONS if allowed("custody", a)} == {
        "dashboard.view",
        "withdrawals.view",
        "withdrawals.approve",
        "custody.view",
    }
    compliance = {a for a in ACTIONS if allowed("compliance", a)}
    assert {"kyc.decide", "deposits.resolve", "withdrawals.screening", "alerts.view"} <= compliance
    assert not compliance & {"withdrawals.approve", "users.role", "markets.status", "fees.override", "custody.view"}
    assert not allowed("nobody", "dashboard.view") and not allowed("administrator", "no.such.action")


@pytest.fixture(scope="module")
def logged_in(admin_server: RunningServer) -> Iterator[dict[str, tuple[AdminClient, int]]]:
    """A client logged in with every role (and as a customer), with that user's account number."""
    Web.of(admin_server.ctx).limiter = LoginLimiter()
    admin = Admin(admin_server)
    yield {role: (admin.as_role(role), admin.user(role).account) for role in ROLES_AND_CUSTOMER}
    admin.close()


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.parametrize("role", ROLES_AND_CUSTOMER)
def test_every_route_enforces_the_role_table(
    logged_in: dict[str, tuple[AdminClient, int]], admin_server: RunningServer, role: str, route: AdminRoute
) -> None:
    client, account = logged_in[role]
    before = len(audit_entries(admin_server))
    response = request(client, route, concrete(route, account))
    if allowed(role, route.action):
        # Pages render; forms (sent empty) are refused for what they lack, or 404 without a wallet on this server.
        expected = (200,) if route.method == "GET" else (303, 404)
        assert response.status_code in expected, (response.status_code, response.text[:300])
        assert not response.headers.get("location", "").startswith("/login")
    else:
        assert response.status_code == 403, response.status_code
        assert "ask an administrator for access" in response.text
        assert len(audit_entries(admin_server)) == before  # a refused role reaches nothing, not even the log


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_anonymous_visitors_are_sent_to_login(admin_server: RunningServer, route: AdminRoute) -> None:
    with httpx.Client(base_url=admin_server.url) as anonymous:
        response = anonymous.request(route.method, concrete(route, 1))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/admin")


def test_a_customer_sees_403_with_what_to_do(admin: Admin) -> None:
    customer = admin.as_role("user")
    page = customer.get("/admin")
    assert page.status_code == 403
    assert "Not allowed" in page.text and "ask an administrator" in page.text
