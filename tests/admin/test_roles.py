"""The role table is what the server enforces: every admin route, every role, the customer and the anonymous visitor."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import Route

from exchange_framework.admin.policy import ACTIONS, OPERATOR_ROLES, ROUTES, AdminRoute, allowed
from exchange_framework.identity.store import ROLES
from tests.admin.conftest import ROLES_AND_CUSTOMER, Admin, AdminClient, audit_entries

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def concrete(route: AdminRoute, account: int) -> str:
    values = {"account": str(account), "submission": "1", "withdrawal": "1", "case": "1", "market": "BTC-USDT"}
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


@pytest.mark.parametrize("role", ROLES_AND_CUSTOMER)
def test_every_route_enforces_the_role_table(admin: Admin, role: str) -> None:
    client = admin.as_role(role)
    account = admin.user(role).account
    before = len(audit_entries(admin.server))
    denied = 0
    for route in ROUTES:
        path = concrete(route, account)
        response = request(client, route, path)
        if allowed(role, route.action):
            # Pages render; forms (sent empty) are refused for what they lack, or 404 without a wallet on this server.
            expected = (200,) if route.method == "GET" else (303, 404)
            assert response.status_code in expected, (role, route, response.status_code, response.text[:300])
            assert not response.headers.get("location", "").startswith("/login"), (role, route)
        else:
            assert response.status_code == 403, (role, route, response.status_code)
            assert "ask an administrator for access" in response.text
            denied += 1
    assert (denied == len(ROUTES)) is (role == "user")
    refused_actions = [e for e in audit_entries(admin.server)[before:] if e.actor == client.email]
    allowed_posts = [r for r in ROUTES if r.method == "POST" and allowed(role, r.action)]
    assert len(refused_actions) <= len(allowed_posts)  # only forms the role may send can reach the audit log


def test_anonymous_visitors_are_sent_to_login_everywhere(admin: Admin) -> None:
    with httpx.Client(base_url=admin.url) as anonymous:
        for route in ROUTES:
            path = concrete(route, 1)
            response = anonymous.request(route.method, path)
            assert response.status_code == 303, (route, response.status_code)
            assert response.headers["location"].startswith("/login?next=/admin"), route


def test_a_customer_sees_403_with_what_to_do(admin: Admin) -> None:
    customer = admin.as_role("user")
    page = customer.get("/admin")
    assert page.status_code == 403
    assert "Not allowed" in page.text and "ask an administrator" in page.text
