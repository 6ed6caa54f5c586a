"""A plugin's own portal page, written as docs/portal.md shows: Web.of(request.app.state.api), login, CSRF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from exchange_framework import hookimpl
from exchange_framework.api.app import create_app
from exchange_framework.config import DEMO_CONFIG, ExchangeConfig, load_config
from exchange_framework.node import with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.web import Form, Web
from tests.api.conftest import make_user
from tests.api.server import serve
from tests.portal.conftest import PortalClient

SAVED: list[str] = []


async def rewards(request: Request) -> Response:
    web = Web.of(request.app.state.api)
    user = web.require_user(request)
    if request.method == "POST":
        form = Form(await web.form(request))
        SAVED.append(form.text("wish", required=True))
        return web.redirect(request, "/rewards", "Saved.", "success")
    return web.render(request, "rewards.html", {"points": 42, "email": user.email})


async def page(request: Request) -> Response:
    return await Web.of(request.app.state.api).endpoint(rewards, login=True)(request)


class RewardsPlugin:
    def __init__(self, templates: Path) -> None:
        self.templates = templates

    @hookimpl
    def register_routes(self, config: ExchangeConfig) -> list[Any]:
        return [Route("/rewards", page, methods=["GET", "POST"])]

    @hookimpl
    def register_template_dirs(self, config: ExchangeConfig) -> list[Path]:
        return [self.templates]


def test_a_plugin_page_uses_the_portal_web_layer(tmp_path: Path) -> None:
    templates = tmp_path / "plugin_templates"
    templates.mkdir()
    (templates / "rewards.html").write_text(
        '{% extends "base.html" %}{% block content %}<p id="points">{{ email }} has {{ points }} points</p>'
        '<form method="post" action="/rewards">{{ csrf_field }}<input name="wish"></form>{% endblock %}',
        encoding="utf-8",
    )
    config = with_data_dir(load_config(DEMO_CONFIG), tmp_path / "data")
    pm = make_plugin_manager(config)
    pm.register(RewardsPlugin(templates), name="rewards")
    with serve(create_app(config, pm=pm, settle_every=0.2, with_wallet=False)) as server:
        user = make_user(server, "plugin@example.com")
        client = PortalClient(server.url)
        try:
            assert client.get("/rewards").headers["location"] == "/login?next=/rewards"
            client.login(user.email)
            page_html = client.get("/rewards").text
            assert "plugin@example.com has 42 points" in page_html and "Demo Exchange" in page_html
            assert client.http.post("/rewards", data={"wish": "x"}).status_code == 403
            saved = client.post("/rewards", {"wish": "a pony"})
            assert "Saved." in client.follow(saved).text and SAVED == ["a pony"]
        finally:
            client.close()
