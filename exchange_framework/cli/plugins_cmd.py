"""``exchange plugins``: which plugins this exchange loads, where they come from, and the hooks they implement."""

from __future__ import annotations

import json

import click

from exchange_framework.cli import format_table, state
from exchange_framework.plugins import PluginError, plugin_info


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in defaults and disabled plugins.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, show_all: bool) -> None:
    """List the plugins the exchange loads: name, source, version and hooks.

    The source is "builtin" (a default shipped with the kernel), "entrypoint: <distribution> <version>" (an
    installed package) or "config" (a module listed in [plugins] modules).
    """
    run = state(ctx)
    run.config_or_exit()
    try:
        pm = run.plugin_manager()
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    infos = plugin_info(pm, include_skipped=show_all)
    if not show_all:
        infos = [info for info in infos if info.source != "builtin"]
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    if not infos:
        click.echo("No plugins installed besides the built-in defaults (list those with --all).")
        return
    headers = ["NAME", "SOURCE", "VERSION", "STATUS", "HOOKS"] if show_all else ["NAME", "SOURCE", "VERSION", "HOOKS"]
    rows = []
    for info in infos:
        row = [info.name, info.source, info.version or "-"]
        if show_all:
            row.append(info.status)
        row.append(", ".join(info.hooks) or "-")
        rows.append(row)
    for line in format_table(headers, rows):
        click.echo(line)
