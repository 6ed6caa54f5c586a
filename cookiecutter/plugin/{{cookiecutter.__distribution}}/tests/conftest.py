"""Fixtures: an ``exchange.toml`` that enables this plugin, and the exchange's plugin manager built from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.plugins import ExchangePluginManager, make_plugin_manager

# A small exchange. [plugins] enabled makes this plugin the only entry-point plugin that loads, so other
# packages installed in the same environment cannot change what the tests see.
EXCHANGE_TOML = """\
[brand]
name = "Plugin Test Exchange"

[assets.BTC]
decimals = 8

[assets.USDT]
decimals = 6

[markets."BTC-USDT"]
base = "BTC"
quote = "USDT"
tick_size = "0.01"
lot_size = "0.0001"

[plugins]
{plugins}

[plugins.settings.{{ cookiecutter.__slug }}]
{settings}
"""

ENABLE_ONLY_THIS = 'enabled = ["{{ cookiecutter.__slug }}"]'

# The plugin's example settings, as an operator would write them in exchange.toml.
SETTINGS = """\
{% include "kinds/" ~ cookiecutter.__kind ~ "/settings.toml" %}"""


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an exchange.toml with the given ``[plugins]`` lines and plugin settings, and return its path."""

    def write(*, plugins: str = ENABLE_ONLY_THIS, settings: str = SETTINGS) -> Path:
        path = tmp_path / "exchange.toml"
        path.write_text(EXCHANGE_TOML.format(plugins=plugins, settings=settings), encoding="utf-8")
        return path

    return write


@pytest.fixture
def config_path(write_config: Callable[..., Path]) -> Path:
    """The path of an exchange.toml that enables this plugin with its example settings."""
    return write_config()


@pytest.fixture
def config(config_path: Path) -> ExchangeConfig:
    """The exchange configuration that enables this plugin with its example settings."""
    return load_config(config_path)


@pytest.fixture
def pm(config: ExchangeConfig) -> ExchangePluginManager:
    """The exchange's plugin manager, built as the kernel builds it: defaults, then entry points."""
    return make_plugin_manager(config)
