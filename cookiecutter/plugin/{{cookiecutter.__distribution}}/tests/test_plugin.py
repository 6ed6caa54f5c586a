"""The plugin is installed, found through its entry point, listed by ``exchange plugins``, and can be disabled."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from exchange_framework.cli import main
from exchange_framework.config import load_config
from exchange_framework.plugins import ExchangePluginManager, make_plugin_manager, plugin_info

from {{ cookiecutter.__package }} import __version__, plugin
from {{ cookiecutter.__package }}.plugin import PLUGIN_NAME

DISTRIBUTION = "{{ cookiecutter.__distribution }}"


def implemented_hooks() -> set[str]:
    """Return the names of the hooks the plugin module implements."""
    return {name for name, value in vars(plugin).items() if hasattr(value, "exchange_framework_impl")}


def test_plugin_is_installed_and_discovered(pm: ExchangePluginManager) -> None:
    assert importlib.metadata.version(DISTRIBUTION) == __version__
    info = {info.name: info for info in plugin_info(pm)}[PLUGIN_NAME]
    assert info.source == f"entrypoint: {DISTRIBUTION} {__version__}"
    assert info.status == "loaded"
    assert set(info.hooks) == implemented_hooks()
    assert pm.get_plugin(PLUGIN_NAME) is plugin


def test_exchange_plugins_lists_it(config_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(config_path), "plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listed[PLUGIN_NAME]["source"] == f"entrypoint: {DISTRIBUTION} {__version__}"
    assert listed[PLUGIN_NAME]["hooks"] == sorted(implemented_hooks())


def test_operator_can_disable_it(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(plugins='disabled = ["{{ cookiecutter.__slug }}"]'))
    pm = make_plugin_manager(config)
    assert pm.get_plugin(PLUGIN_NAME) is None
    infos = {info.name: info for info in plugin_info(pm, include_skipped=True)}
    assert infos[PLUGIN_NAME].status == "disabled"
