"""The ``exchange`` command line.

Built-in commands are listed in :data:`BUILTIN_COMMANDS` as ``"module:attribute"`` strings and imported when first
needed; plugins add theirs through the ``register_commands`` hook, called once per run with a group to add to.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
import pluggy

from exchange_framework import __version__
from exchange_framework.config import ConfigError, ExchangeConfig, default_config_path, load_config

__all__ = ["BUILTIN_COMMANDS", "CliState", "ConfigProblem", "format_table", "main", "state"]

# Each entry must name a click command that imports: a broken entry is an error, never silently skipped.
BUILTIN_COMMANDS: list[str] = [
    "exchange_framework.cli.plugins_cmd:plugins",
    "exchange_framework.cli.config_cmd:config",
    "exchange_framework.cli.demo:demo",
    "exchange_framework.cli.run:run",
    "exchange_framework.cli.simulate:simulate",
    "exchange_framework.cli.replay:replay",
    "exchange_framework.cli.bench:bench",
    "exchange_framework.cli.ledger:ledger",
    "exchange_framework.cli.fees:fees",
    "exchange_framework.cli.audit:audit",
    "exchange_framework.cli.custody:custody",
    "exchange_framework.compliance.cli:compliance",
]

EPILOG = """\b
Examples:
  exchange demo                             the branded demo exchange: portal, API, market maker
  exchange demo --port 9000 --fresh         another port, starting over
  exchange simulate --orders 20000          a seeded market in the terminal (state kept in var/demo)
  exchange --config my.toml run --port 8000 serve your exchange (no demo users, no market maker)
  exchange replay var/demo/commands.journal rebuild state from a journal, print its hash
  exchange bench engine --ops 200000        engine throughput and latency (--json FILE)
  exchange config check                     validate ./exchange.toml (or the demo)
  exchange --config my.toml config check    validate another file
  exchange config check --json              the engine's integer specs as JSON
  exchange plugins --all                    list plugins, defaults included
  EXCHANGE_TRACE_HOOKS=1 exchange --help    trace every hook call to stderr

\b
The config is ./exchange.toml if it exists, else the packaged demo exchange.
Docs: docs/configuration.md, docs/plugins.md, docs/plugin-hooks.md
"""


@dataclass
class CliState:
    """What the ``exchange`` group hands its commands (``ctx.obj``): the config path, loaded on first use."""

    config_option: Path | None = None
    _config: ExchangeConfig | None = None
    _plugin_manager: pluggy.PluginManager | None = None
    _plugin_commands: dict[str, click.Command] | None = None
    plugin_error: str | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        """The ``--config`` path, or the default: ``./exchange.toml`` if present, else the demo config."""
        return self.config_option if self.config_option is not None else default_config_path()

    def config(self) -> ExchangeConfig:
        """Load and validate the config once; raise :class:`~exchange_framework.config.ConfigError`."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def config_or_exit(self) -> ExchangeConfig:
        """Like :meth:`config`, but a bad config ends the command with its errors and exit status 2."""
        try:
            return self.config()
        except ConfigError as exc:
            raise ConfigProblem(f"invalid configuration:\n{exc}") from None

    def plugin_manager(self) -> pluggy.PluginManager:
        """Build this run's plugin manager once, from the config."""
        from exchange_framework.plugins import make_plugin_manager

        if self._plugin_manager is None:
            self._plugin_manager = make_plugin_manager(self.config())
        return self._plugin_manager

    def plugin_commands(self) -> dict[str, click.Command]:
        """Return the commands plugins add through ``register_commands`` (empty if plugins cannot load)."""
        from exchange_framework.plugins import PluginError

        if self._plugin_commands is None:
            collector = click.Group("plugin-commands")
            try:
                self.plugin_manager().hook.register_commands(cli=collector)
            except (ConfigError, PluginError) as exc:
                self.plugin_error = str(exc)
            self._plugin_commands = dict(collector.commands)
        return self._plugin_commands


class ConfigProblem(click.ClickException):
    """The config file is missing or invalid: exit status 2, like any other usage error."""

    exit_code = 2


def state(ctx: click.Context) -> CliState:
    """Return the run's :class:`CliState`, whichever command's context ``ctx`` is."""
    root = ctx.find_root()
    run = root.ensure_object(CliState)
    if run.config_option is None and root.params.get("config_path") is not None:
        run.config_option = root.params["config_path"]
    return run


def _load_builtin(spec: str) -> click.Command:
    module_name, _, attribute = spec.partition(":")
    command = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(command, click.Command):
        raise RuntimeError(f"BUILTIN_COMMANDS entry {spec!r} does not name a click command")
    return command


class ExchangeGroup(click.Group):
    """The ``exchange`` group: built-in commands first, then whatever plugins register for this run."""

    def _builtins(self) -> dict[str, click.Command]:
        commands = {}
        for spec in BUILTIN_COMMANDS:
            command = _load_builtin(spec)
            commands[command.name or spec.rpartition(":")[2]] = command
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(self.commands) | set(self._builtins())
        run = state(ctx)
        names |= set(run.plugin_commands())
        if run.plugin_error:
            click.echo(f"warning: plugin commands are unavailable: {run.plugin_error}", err=True)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        builtins = self._builtins()
        if cmd_name in builtins:
            return builtins[cmd_name]
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        run = state(ctx)
        command = run.plugin_commands().get(cmd_name)
        if command is None and run.plugin_error:
            raise click.UsageError(
                f"no such command {cmd_name!r} (plugin commands could not be loaded: {run.plugin_error})", ctx
            )
        return command


@click.group(
    name="exchange", cls=ExchangeGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="EXCHANGE_CONFIG",
    help="The exchange.toml to use (also $EXCHANGE_CONFIG). Default: ./exchange.toml, else the demo exchange.",
)
@click.version_option(__version__, prog_name="exchange")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Run and manage a white-label cryptocurrency exchange."""
    state(ctx).config_option = config_path


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Lay out rows under headers in left-aligned columns two spaces apart."""
    cells = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
