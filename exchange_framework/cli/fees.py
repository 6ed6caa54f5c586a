"""``exchange fees``: which accounts should have their own fee rates now (tiers, overrides), and sequence them."""

from __future__ import annotations

import time
from pathlib import Path

import click

from exchange_framework.cli import format_table, state
from exchange_framework.cli.replaying import replay_into_engine
from exchange_framework.engine.commands import SetAccountFees, encode_command
from exchange_framework.fees import FeeSchedule, VolumeTracker, fee_commands
from exchange_framework.money import format_atomic, ppm_to_rate
from exchange_framework.sequencer import FileJournal, JournalError, Sequencer


@click.group()
def fees() -> None:
    """Fee tiers and per-account overrides."""


@fees.command()
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The command journal (default: [journal] path of the config).",
)
@click.option("--apply", "apply_", is_flag=True, help="Journal the commands (the exchange must not be running).")
@click.pass_context
def plan(ctx: click.Context, journal_path: Path | None, apply_: bool) -> None:
    """Show the fee-rate changes [fees] asks for now: overrides, and tiers by each account's 30-day volume.

    The volume comes from the journal (trades, with the sequencer's timestamps). With --apply the changes are
    sequenced as SetAccountFees commands, so every replay charges the same fees.
    """
    config = state(ctx).config_or_exit()
    path = journal_path or config.journal_path()
    schedule = FeeSchedule.from_config(config)
    tracker = VolumeTracker.for_config(config)
    try:
        journal = FileJournal(path, read_only=not apply_)
    except JournalError as exc:
        raise click.ClickException(str(exc)) from None
    with journal:
        engine = replay_into_engine(
            config, journal, on_events=lambda record, events: tracker.observe(record.ts_ns, events)
        )
        commands = fee_commands(engine, schedule, tracker, now_ns=time.time_ns())  # wall clock: at the edge only
        decimals = config.assets[schedule.volume_asset].decimals if schedule.volume_asset else 0
        rows = []
        for command in commands:
            wanted = "market rates" if command.maker_ppm is None else _rates(command)
            volume = format_atomic(tracker.volume(command.account), decimals, trim=True)
            rows.append((command.account, volume, wanted))
        if not rows:
            click.echo("every account already has the rates the schedule asks for")
            return
        for line in format_table(["ACCOUNT", f"30-DAY VOLUME ({schedule.volume_asset or '-'})", "NEW RATES"], rows):
            click.echo(line)
        if apply_:
            records = Sequencer(journal).append_batch([encode_command(c) for c in commands])
            click.echo(f"journalled {len(records)} SetAccountFees commands (seq {records[0].seq}..{records[-1].seq})")
        else:
            click.echo("dry run: add --apply to journal these changes")


def _rates(command: SetAccountFees) -> str:
    assert command.maker_ppm is not None and command.taker_ppm is not None
    return f"maker {ppm_to_rate(command.maker_ppm).normalize():f}, taker {ppm_to_rate(command.taker_ppm).normalize():f}"
