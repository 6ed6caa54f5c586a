"""The plugin's hooks, exercised through the kernel: the start-up check and the command it adds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from exchange_framework.cli import main
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.plugins import ExchangePluginManager, make_plugin_manager

from {{ cookiecutter.__package }} import __version__
from {{ cookiecutter.__package }}.plugin import PLUGIN_NAME


def test_startup_accepts_the_example_settings(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    pm.hook.startup.call_historic(kwargs={"config": config})


@pytest.mark.parametrize("settings", ["", "greeting = 3", 'greeting = "  "'])
def test_startup_refuses_bad_settings(write_config: Callable[..., Path], settings: str) -> None:
    config = load_config(write_config(settings=settings))
    pm = make_plugin_manager(config)
    with pytest.raises(ValueError, match="greeting must be some text"):
        pm.hook.startup.call_historic(kwargs={"config": config})


def test_register_commands_adds_a_command_that_prints_the_greeting(config_path: Path) -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["--config", str(config_path), "--help"])
    assert listing.exit_code == 0, listing.output
    assert PLUGIN_NAME in listing.stdout
    result = runner.invoke(main, ["--config", str(config_path), PLUGIN_NAME])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Hello from ")
    assert f"({PLUGIN_NAME} {__version__})" in result.stdout


def test_command_reports_bad_settings(write_config: Callable[..., Path]) -> None:
    result = CliRunner().invoke(main, ["--config", str(write_config(settings="greeting = 3")), PLUGIN_NAME])
    assert result.exit_code == 1
    assert "greeting must be some text" in result.output
