"""``exchange ledger``: migrate, settle, check, balances and statements."""

from __future__ import annotations

import asyncio
import csv
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from exchange_framework.cli import format_table, state
from exchange_framework.cli.replaying import replay_into_engine
from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.interfaces import CustodyBalance, LedgerStore
from exchange_framework.ledger.postings import available, held, is_customer
from exchange_framework.ledger.reconcile import breaks, reconcile, unverified
from exchange_framework.plugins import PluginError, collect_registered
from exchange_framework.sequencer import FileJournal, JournalError
from exchange_framework.wallet.custody import in_flight, stored_custody_report

T = TypeVar("T")


def open_store(ctx: click.Context) -> tuple[ExchangeConfig, LedgerStore]:
    """The ledger store named by ``[backends] ledger``, on ``[ledger] url``."""
    run = state(ctx)
    config = run.config_or_exit()
    backends = collect_registered(run.plugin_manager(), "register_ledger_stores", config=config)
    backend = backends.get(config.backends.ledger)
    if backend is None:
        raise PluginError(
            f"[backends] ledger = {config.backends.ledger!r}, but no plugin registers a ledger backend of that "
            f"name (registered: {', '.join(sorted(backends)) or 'none'})"
        )
    try:
        return config, backend.open(config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def run_with(store: LedgerStore, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on the event loop and close the store afterwards."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await store.close()

    return asyncio.run(main())


def _journal_option(f: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "--journal",
        "journal_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The command journal (default: [journal] path of the config).",
    )(f)


@click.group()
def ledger() -> None:
    """The double-entry ledger: schema, settlement, checks and statements."""


@ledger.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create the ledger's schema, or bring it to the newest version."""
    config, store = open_store(ctx)

    async def work() -> None:
        await store.create_schema()
        await store.ensure_assets(config.engine_assets())

    run_with(store, work)
    click.echo(f"ledger schema is up to date ({config.ledger_url().split('://')[0]})")


@ledger.command()
@_journal_option
@click.option("--batch", default=10_000, show_default=True, help="Entries per database transaction.")
@click.pass_context
def settle(ctx: click.Context, journal_path: Path | None, batch: int) -> None:
    """Apply every journalled command's money movements to the ledger (resumes at the high-water mark)."""
    from exchange_framework.ledger.settlement import Settlement

    config, store = open_store(ctx)
    path = journal_path or config.journal_path()
    try:
        journal = FileJournal(path, read_only=True)
    except JournalError as exc:
        raise click.ClickException(str(exc)) from None

    async def work() -> int:
        await store.create_schema()
        with click.progressbar(length=max(journal.last_seq, 1), label="settling", file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            settlement = Settlement(config, store, journal, batch_size=batch)
            return await settlement.run(progress=progress)

    with journal:
        mark = run_with(store, work)
    click.echo(f"ledger settled up to sequence {mark} of {journal.last_seq}")


@ledger.command()
@_journal_option
@click.pass_context
def check(ctx: click.Context, journal_path: Path | None) -> None:
    """Check the ledger: zero-sum per asset, no negative customer balance, the engine's balances and holds
    (rebuilt from the journal) equal the ledger's, and custody balances equal the omnibus accounts.

    Custody comes from the custody_balances hooks and from the wallet's own hot and deposit addresses on chain;
    each omnibus account is printed with the ledger's and custody's figures and their difference. Prints a report;
    exits with status 1 on any break.
    """
    config, store = open_store(ctx)
    path = journal_path or config.journal_path()

    async def work() -> tuple[int, dict[tuple[str, str], int]]:
        await store.create_schema()
        return await store.last_seq(), await store.balances()

    mark, balances = run_with(store, work)
    problems: list[str] = []
    totals: dict[str, int] = defaultdict(int)
    for (account, asset), amount in sorted(balances.items()):
        totals[asset] += amount
        if is_customer(account) and amount < 0:
            problems.append(f"{account} holds {amount} {asset}: a customer balance is negative")
    for asset, total in sorted(totals.items()):
        if total:
            problems.append(f"{asset}: accounts sum to {total}, not 0 (double entry broken)")
    click.echo(f"ledger at sequence {mark}: {len(balances)} balances in {len(totals)} assets")
    click.echo(f"  zero-sum per asset: {'ok' if not any('sum to' in p for p in problems) else 'BROKEN'}")

    engine = _engine_at(config, path, mark)
    if engine is None:
        click.echo(f"  engine comparison: skipped (no journal at {path})")
    else:
        before = len(problems)
        for account_id, acct in sorted(engine.accounts.items()):
            for asset in engine.assets:
                for code, want in (
                    (available(account_id), acct.available[asset]),
                    (held(account_id), acct.held[asset]),
                ):
                    got = balances.get((code, asset), 0)
                    if got != want:
                        problems.append(f"{code} {asset}: ledger {got}, engine {want}")
        for asset, want in engine.fees_collected.items():
            got = balances.get(("fees", asset), 0)
            if got != want:
                problems.append(f"fees {asset}: ledger {got}, engine {want}")
        click.echo(f"  engine balances and holds at sequence {mark}: {'ok' if len(problems) == before else 'BROKEN'}")

    pm = state(ctx).plugin_manager()
    assets = sorted(config.engine_assets())
    reports: list[CustodyBalance] = []
    try:
        for found in pm.hook.custody_balances(config=config, assets=assets):
            reports.extend(found or ())
        reports.extend(stored_custody_report(config, pm, assets))  # the wallet's own hot and deposit addresses
    except Exception as exc:  # custody that cannot be read fails the check, never passes it
        problems.append(f"custody balances could not be read: {type(exc).__name__}: {exc}")
        click.echo("  custody vs omnibus: BROKEN (custody could not be read)")
        rows = []
    else:
        rows = reconcile(balances, reports)
    if not rows:
        if not any(p.startswith("custody balances") for p in problems):
            click.echo("  custody vs omnibus: skipped (no omnibus account and no wallet reports balances)")
    else:
        found_breaks = breaks(rows)
        problems.extend(found_breaks)
        click.echo(f"  custody vs omnibus: {'ok' if not found_breaks else 'BROKEN'}")
        for line in unverified(rows):
            click.echo(click.style(f"  UNVERIFIED: {line}", fg="yellow"))
        table = [
            (r.account, r.asset, r.ledger, "-" if r.custody is None else r.custody, f"{r.difference:+d}") for r in rows
        ]
        for line in format_table(["ACCOUNT", "ASSET", "LEDGER", "CUSTODY", "DIFFERENCE"], table):
            click.echo(f"    {line}")
        moving = in_flight(config)
        if moving:
            click.echo("  in flight (on chain now, on the ledger at their depth; a difference may be them):")
            for line in moving:
                click.echo(f"    {line}")
    for problem in problems:
        click.echo(click.style(f"  BREAK: {problem}", fg="red"))
    if problems:
        raise SystemExit(1)
    click.echo(click.style("ledger check passed", fg="green"))


def _engine_at(config: ExchangeConfig, path: Path, mark: int) -> MatchingEngine | None:
    """The engine's state at ``mark``, rebuilt from the journal (None without a journal)."""
    try:
        journal = FileJournal(path, read_only=True)
    except JournalError:
        return None
    with journal:
        return replay_into_engine(config, journal, until_seq=mark)


@ledger.command()
@click.option("--account", default=None, help="Only this ledger account (e.g. customer:7:available, fees).")
@click.option("--asset", default=None, help="Only this asset.")
@click.pass_context
def balances(ctx: click.Context, account: str | None, asset: str | None) -> None:
    """Print ledger balances (atomic units)."""
    _, store = open_store(ctx)

    async def work() -> dict[tuple[str, str], int]:
        await store.create_schema()
        return await store.balances(account=account, asset=asset)

    rows = run_with(store, work)
    for line in format_table(["ACCOUNT", "ASSET", "BALANCE"], [(a, s, b) for (a, s), b in sorted(rows.items())]):
        click.echo(line)


@ledger.command()
@click.argument("account")
@click.option("--asset", required=True, help="The asset of the statement.")
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write CSV here."
)
@click.option("--page-size", default=1_000, show_default=True, help="Postings fetched per query.")
@click.pass_context
def statement(ctx: click.Context, account: str, asset: str, csv_path: Path | None, page_size: int) -> None:
    """Every posting of ACCOUNT in one asset, with the running balance (CSV with --csv)."""
    from exchange_framework.ledger.store import SqlLedgerStore

    _, store = open_store(ctx)
    if not isinstance(store, SqlLedgerStore):
        raise click.ClickException("statements need the SQL ledger store")

    async def work() -> list[tuple[int, int, int]]:
        await store.create_schema()
        rows: list[tuple[int, int, int]] = []
        after = 0
        while True:
            page = await store.history(account, asset, after_id=after, limit=page_size)
            rows.extend(page)
            if len(page) < page_size:
                return rows
            after = page[-1][0]

    rows = run_with(store, work)
    out = csv_path.open("w", newline="") if csv_path else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(["posting_id", "seq", "amount", "balance"])
        balance = 0
        for posting_id, seq, amount in rows:
            balance += amount
            writer.writerow([posting_id, seq, amount, balance])
    finally:
        if csv_path:
            out.close()
    if csv_path:
        click.echo(f"wrote {len(rows)} postings to {csv_path}")
