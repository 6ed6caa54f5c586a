"""``exchange trisa``: the operator's view of the TRISA network (directory lookups, counterparty health, transfers)."""

from __future__ import annotations

import click

from exchange_framework.cli import state
from exchange_trisa.directory import DirectoryError
from exchange_trisa.plugin import TrisaSettingsError, provider_for
from exchange_trisa.provider import TrisaProvider
from exchange_trisa.transport import TransportError

STATUS = {0: "unknown", 1: "healthy", 2: "unhealthy", 3: "danger", 4: "offline", 5: "maintenance"}


def _provider(ctx: click.Context) -> TrisaProvider:
    config = state(ctx).config_or_exit()
    try:
        provider = provider_for(config)
    except TrisaSettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if provider is None:
        raise click.ClickException("TRISA is not configured: add [plugins.settings.trisa] (see docs/travel-rule.md)")
    return provider


@click.group("trisa")
def trisa() -> None:
    """The TRISA travel rule network: look up counterparties and check that they answer."""


@trisa.command("lookup")
@click.argument("common_name")
@click.pass_context
def lookup(ctx: click.Context, common_name: str) -> None:
    """Show the directory's record of the VASP COMMON_NAME."""
    try:
        found = _provider(ctx).directory.lookup(common_name)
    except DirectoryError as exc:
        raise click.ClickException(str(exc)) from None
    if found is None:
        raise click.ClickException(f"the directory has no VASP {common_name!r}")
    key = "from its signing certificate" if found.sealing_key else "by KeyExchange"
    click.echo(
        f"{found.common_name}: {found.name or '-'} ({found.country or '-'}) at {found.endpoint}; sealing key {key}"
    )


@trisa.command("search")
@click.argument("name")
@click.option("--country", default="", help="ISO 3166-1 alpha-2 country code")
@click.pass_context
def search(ctx: click.Context, name: str, country: str) -> None:
    """List the VASPs whose name matches NAME."""
    try:
        found = _provider(ctx).directory.search(name, country=country)
    except DirectoryError as exc:
        raise click.ClickException(str(exc)) from None
    for vasp in found:
        click.echo(f"{vasp.common_name}\t{vasp.endpoint}")
    if not found:
        click.echo("no VASP matches")


@trisa.command("status")
@click.argument("common_name")
@click.pass_context
def status(ctx: click.Context, common_name: str) -> None:
    """Ask the VASP COMMON_NAME's node for its health, over mTLS with our certificate."""
    provider = _provider(ctx)
    try:
        found = provider.directory.lookup(common_name)
        if found is None:
            raise click.ClickException(f"the directory has no VASP {common_name!r}")
        health = provider.client.status(found.endpoint, name=found.common_name)
    except (DirectoryError, TransportError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{common_name} at {found.endpoint}: {STATUS.get(health, str(health))}")


@trisa.command("transfers")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, help="at most this many of each")
@click.pass_context
def transfers(ctx: click.Context, limit: int) -> None:
    """List the latest outgoing and incoming travel rule transfers and their answers (kept in trisa.db)."""
    store = _provider(ctx).store
    click.echo("outgoing (withdrawal, envelope, counterparty, state, code, message):")
    for out in store.outgoing(limit=limit):
        fields = (out.withdrawal_id, out.envelope_id, out.counterparty or "-", out.state, out.code, out.message)
        click.echo("  " + "\t".join(str(f) for f in fields))
    click.echo("incoming (peer, envelope, answer, beneficiary accounts, originators):")
    for _ns, record in store.incoming_list(limit=limit):
        answer = "accepted" if record.accepted else f"refused {record.code}: {record.message}"
        accounts = ", ".join(record.beneficiary_accounts) or "-"
        originators = "; ".join(record.originator_names) or "-"
        click.echo("  " + "\t".join((record.peer, record.envelope_id, answer, accounts, originators)))
