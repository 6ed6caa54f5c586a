"""``exchange replay``: rebuild engine state from a journal and print its hash."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import click

from exchange_framework.cli import state
from exchange_framework.engine.commands import decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import encode_event
from exchange_framework.engine.snapshot import restore, state_hash
from exchange_framework.sequencer import FileJournal, JournalError, JournalRecord, SnapshotStore, recover


@click.command()
@click.argument("journal_path", metavar="PATH", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--snapshots",
    "snapshot_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Start from the newest valid snapshot in this directory instead of from sequence 1.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def replay(ctx: click.Context, journal_path: Path, snapshot_dir: Path | None, as_json: bool) -> None:
    """Rebuild the engine's state from the journal at PATH and print a hash of it.

    The journal is opened read-only: replay works beside a running exchange and never changes the file (a torn
    tail is reported and left alone).

    The same journal always gives the same state hash and the same events hash: compare them across machines
    or against a running exchange to prove nothing diverged. The exchange's config (--config) must define the
    journal's markets and assets.
    """
    config = state(ctx).config_or_exit()
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    events_digest = hashlib.sha256()
    counts = {"events": 0}
    events = engine.events

    def apply(record: JournalRecord) -> None:
        engine.apply(record.seq, decode_command(record.payload))
        for event in events:
            events_digest.update(encode_event(event))
        counts["events"] += len(events)
        events.clear()

    try:
        journal = FileJournal(journal_path, read_only=True)
    except JournalError as exc:
        raise click.ClickException(str(exc)) from None
    with journal, click.progressbar(length=max(journal.last_seq, 1), label="replaying", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.pos)

        snapshots = SnapshotStore(snapshot_dir) if snapshot_dir is not None else None
        try:
            last = recover(journal, snapshots, lambda data: restore(engine, data), apply, progress=progress)
        except JournalError as exc:
            raise click.ClickException(str(exc)) from None
    result = {
        "journal": str(journal_path),
        "last_seq": last,
        "events": counts["events"],
        "events_sha256": events_digest.hexdigest(),
        "trades": engine.next_trade_id - 1,
        "open_orders": len(engine.orders),
        "state_sha256": state_hash(engine),
        "from_snapshot": snapshot_dir is not None,
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"replayed      {last} commands ({counts['events']} events)")
    click.echo(f"trades        {result['trades']}")
    click.echo(f"open orders   {result['open_orders']}")
    click.echo(f"state hash    {result['state_sha256']}")
    if snapshot_dir is None:
        click.echo(f"events hash   {result['events_sha256']}")
    else:
        click.echo("events hash   (only the events after the snapshot were replayed)")
