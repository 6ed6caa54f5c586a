"""Plugins in the admin console: pages from ``register_admin_pages`` in the navigation, custody tiers from
``custody_balances`` on the custody page (a real pluggy plugin registered with the app's plugin manager)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from exchange_framework import hookimpl
from exchange_framework.admin import plugin_page
from exchange_framework.api.app import create_app
from exchange_framework.config import DEMO_CONFIG, load_config
from exchange_framework.interfaces import AdminPage, CustodyBalance
from exchange_framework.node import with_data_dir
from exchange_framework.plugins import make_plugin_manager
from tests.admin.conftest import Admin, audit_entries
from tests.api.server import RunningServer, serve


class ColdStoragePlugin:
    """Adds an admin page (behind a role, every request audited, with ``plugin_page``) and reports custody tiers."""

    @hookimpl
    def register_admin_pages(self) -> list[AdminPage]:
        return [AdminPage(name="cold-storage", title="Cold storage", path="/admin/plugins/cold-storage")]

    @hookimpl
    def register_routes(self) -> list[Any]:
        async def page(request: Request) -> Response:
            return PlainTextResponse("cold storage ceremonies")

        return [Route("/admin/plugins/cold-storage", plugin_page(page, name="cold-storage", roles=["custody"]))]

    @hookimpl
    def custody_balances(self, assets: list[str]) -> list[CustodyBalance]:
        return [
            CustodyBalance(source="cold-storage", asset="BTC", wallet="cold-1", amount=250_000_000),
            CustodyBalance(source="cold-storage", asset="BTC", wallet="warm-1", amount=12_345_678),
        ]


@pytest.fixture
def plugin_admin(tmp_path: Path) -> Iterator[Admin]:
    config = with_data_dir(load_config(DEMO_CONFIG), tmp_path / "data")
    pm = make_plugin_manager(config)
    pm.register(ColdStoragePlugin(), name="cold-storage")
    server: RunningServer
    with serve(create_app(config, pm=pm, settle_every=0.2, with_wallet=False)) as server:
        admin = Admin(server)
        yield admin
        admin.close()


def test_plugin_pages_are_in_the_navigation_and_custody_tiers_on_the_custody_page(plugin_admin: Admin) -> None:
    custody = plugin_admin.as_role("custody")
    dashboard = custody.get("/admin")
    assert 'href="/admin/plugins/cold-storage" class="plugin-page">Cold storage</a>' in dashboard.text
    assert custody.get("/admin/plugins/cold-storage?ceremony=7").text == "cold storage ceremonies"
    entry = audit_entries(plugin_admin.server)[-1]
    assert (entry.actor, entry.action, entry.target) == (
        custody.email,
        "admin.plugin.cold-storage",
        "/admin/plugins/cold-storage",
    )
    assert (entry.details["method"], entry.details["query"]) == ("GET", "ceremony=7")
    before = len(audit_entries(plugin_admin.server))
    assert plugin_admin.as_role("support").get("/admin/plugins/cold-storage").status_code == 403
    assert plugin_admin.as_role("administrator").get("/admin/plugins/cold-storage").status_code == 403
    anonymous = httpx.get(f"{plugin_admin.url}/admin/plugins/cold-storage")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    assert len(audit_entries(plugin_admin.server)) == before
    ctx = plugin_admin.server.ctx
    working = ctx.extras.pop("audit")
    try:
        refused = custody.get("/admin/plugins/cold-storage")
        assert refused.status_code == 503 and "cold storage ceremonies" not in refused.text
    finally:
        ctx.extras["audit"] = working
    page = custody.get("/admin/custody")
    assert page.text.count('class="custody-row"') == 2
    assert "cold-1" in page.text and "2.50000000" in page.text and "0.12345678" in page.text
    assert "2.62345678" in page.text  # the BTC total over both tiers
    assert "The ledger could not be read" not in page.text
