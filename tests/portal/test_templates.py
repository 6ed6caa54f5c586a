"""Three-tier templates: the operator's folder, then plugins', then the default theme, with the default: prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.web import KERNEL_TEMPLATES, make_environment, template_dirs
from exchange_framework.web.templating import operator_template_dir
from tests.conftest import MINIMAL_CONFIG

BRANDED_BASE = """{% extends "default:base.html" %}
{% block footer %}Operated by Branded Ltd{% endblock %}
"""


class ThemePlugin:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def register_template_dirs(self, config: ExchangeConfig) -> list[Path]:
        return [self.folder]

    @hookimpl
    def prepare_jinja2_environment(self, env: Any) -> None:
        env.filters["shout"] = lambda text: f"{text.upper()}!"

    @hookimpl
    def extra_template_vars(self, template: str) -> dict[str, Any]:
        return {"plugin_note": f"rendering {template}"}


def config_in(folder: Path, extra: str = "") -> ExchangeConfig:
    path = folder / "exchange.toml"
    path.write_text(MINIMAL_CONFIG + extra, encoding="utf-8")
    return load_config(path)


def test_operator_templates_beside_the_config_override_one_block(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "base.html").write_text(BRANDED_BASE, encoding="utf-8")
    config = config_in(tmp_path)
    env = make_environment(config, make_plugin_manager(config))
    html = env.get_template("error.html").render(status=404, message="gone", flashes=[], user=None, csrf_field="")
    assert "Operated by Branded Ltd" in html and "&copy; Test Exchange" not in html
    assert "gone" in html and "/static/portal.css" in html  # the rest of the default base is kept


def test_portal_templates_key_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "theme").mkdir()
    (tmp_path / "theme" / "_nav.html").write_text("<nav>custom nav</nav>", encoding="utf-8")
    config = config_in(tmp_path, '\n[portal]\ntemplates = "theme"\n')
    assert operator_template_dir(config) == tmp_path / "theme"
    env = make_environment(config, make_plugin_manager(config))
    html = env.get_template("index.html").render(markets=[], flashes=[], user=None, csrf_field="")
    assert "custom nav" in html


def test_a_missing_templates_folder_is_an_error_that_names_it(tmp_path: Path) -> None:
    config = config_in(tmp_path, '\n[portal]\ntemplates = "nope"\n')
    with pytest.raises(FileNotFoundError, match=r"\[portal\] templates = 'nope'"):
        make_environment(config, make_plugin_manager(config))


def test_hook_register_template_dirs_sit_between_operator_and_kernel(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugin_templates"
    plugin_dir.mkdir()
    (plugin_dir / "_nav.html").write_text("<nav>{{ 'plugin nav' | shout }}</nav>", encoding="utf-8")
    (plugin_dir / "base.html").write_text("plugin base", encoding="utf-8")
    operator = tmp_path / "templates"
    operator.mkdir()
    (operator / "base.html").write_text(BRANDED_BASE, encoding="utf-8")
    config = config_in(tmp_path)
    pm = make_plugin_manager(config)
    pm.register(ThemePlugin(plugin_dir), name="theme")
    assert template_dirs(config, pm) == [operator, plugin_dir, KERNEL_TEMPLATES]
    env = make_environment(config, pm)
    html = env.get_template("index.html").render(markets=[], flashes=[], user=None, csrf_field="")
    assert "PLUGIN NAV!" in html  # the plugin's partial and its filter
    assert "Operated by Branded Ltd" in html and "plugin base" not in html  # the operator's base wins


def test_hook_prepare_jinja2_environment_adds_a_filter(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    pm = make_plugin_manager(config)
    pm.register(ThemePlugin(tmp_path), name="theme")
    env = make_environment(config, pm)
    assert env.from_string("{{ 'hi' | shout }}").render() == "HI!"


def test_autoescape_is_on(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    env = make_environment(config, make_plugin_manager(config))
    html = env.get_template("error.html").render(status=400, message="<script>x</script>", flashes=[], user=None)
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html


def test_hook_extra_template_vars_reach_pages(tmp_path: Path) -> None:
    from starlette.requests import Request

    from exchange_framework.identity import IdentityStore
    from exchange_framework.web import Web

    config = config_in(tmp_path)
    pm = make_plugin_manager(config)
    pm.register(ThemePlugin(tmp_path), name="theme")
    identity = IdentityStore("sqlite:///:memory:")
    identity.create_schema()
    web = Web(config, identity, pm)
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"", "state": {}})
    values = web.context(request, "index.html", {"markets": []})
    assert values["plugin_note"] == "rendering index.html"
    assert len(values["csrf_token"]) == 64 and values["user"] is None
    identity.close()


def test_the_demo_ignores_a_templates_folder_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exchange_framework.config import DEMO_CONFIG

    (tmp_path / "templates").mkdir()
    monkeypatch.chdir(tmp_path)
    assert operator_template_dir(load_config(DEMO_CONFIG)) is None
