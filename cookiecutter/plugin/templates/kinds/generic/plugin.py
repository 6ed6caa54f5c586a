"""{{ cookiecutter.plugin_name.strip() }}: hook implementations for the exchange framework.

A starting point: a start-up check of the plugin's settings and an ``exchange {{ cookiecutter.__slug }}`` command.
Add any hook from the framework's ``docs/plugin-hooks.md``: a function named after the hook, marked with
``@hookimpl``, accepting only the arguments it needs. The plugin's settings live in ``exchange.toml``::

    [plugins.settings.{{ cookiecutter.__slug }}]
    greeting = "Hello"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from exchange_framework import hookimpl
from exchange_framework.cli import state
from exchange_framework.config import ExchangeConfig

from {{ cookiecutter.__package }} import __version__

PLUGIN_NAME = "{{ cookiecutter.__slug }}"
SETTINGS = f"[plugins.settings.{PLUGIN_NAME}]"


def greeting(settings: Mapping[str, Any]) -> str:
    """Return the ``greeting`` setting; raise ``ValueError`` saying what to write if it is missing or not text."""
    value = settings.get("greeting")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'{SETTINGS} greeting must be some text, such as greeting = "Hello"; got {value!r}')
    return value


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the plugin's settings as the exchange starts: a mistake stops the start with a clear error."""
    greeting(config.plugin_settings(PLUGIN_NAME))


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``exchange {{ cookiecutter.__slug }}``, which prints the plugin's greeting and version."""

    @cli.command(name=PLUGIN_NAME)
    @click.pass_context
    def command(ctx: click.Context) -> None:
        """Print the {{ cookiecutter.__slug }} plugin's greeting and version."""
        config = state(ctx).config_or_exit()
        try:
            text = greeting(config.plugin_settings(PLUGIN_NAME))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{text} ({PLUGIN_NAME} {__version__})")
