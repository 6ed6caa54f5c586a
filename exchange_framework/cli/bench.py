"""``exchange bench``: benchmarks that print figures and write JSON. Timings never fail anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from exchange_framework.bench.stats import write_json


def _report(result: dict[str, Any], json_path: Path | None) -> None:
    click.echo(f"{result['benchmark']}: {result['ops']:,} commands in {result['seconds']:.3f} s")
    click.echo(click.style(f"  {result['ops_per_s']:,} commands/s", bold=True))
    click.echo(
        f"  latency p50 {result['p50_us']:.2f} µs   p99 {result['p99_us']:.2f} µs   p99.9 {result['p999_us']:.2f} µs"
    )
    skip = {"benchmark", "ops", "seconds", "ops_per_s", "p50_us", "p99_us", "p999_us"}
    for key, value in result.items():
        if key not in skip:
            click.echo(
                f"  {key:<18} {value:,}"
                if isinstance(value, int) and not isinstance(value, bool)
                else f"  {key:<18} {value}"
            )
    write_json(result, json_path)
    if json_path is not None:
        click.echo(f"  wrote {json_path}")


_json_option = click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the result as JSON here."
)


@click.group()
def bench() -> None:
    """Measure the engine and the durable pipeline (figures, never pass/fail)."""


@bench.command()
@click.option("--ops", default=200_000, show_default=True, help="Commands to time (after a 20,000-command warm-up).")
@click.option("--seed", default=1, show_default=True, help="Seed of the order flow.")
@_json_option
def engine(ops: int, seed: int, json_path: Path | None) -> None:
    """A seeded flow (60 % passive limits, 25 % cancels, 15 % aggressive) straight into the engine, risk on."""
    from exchange_framework.bench.engine_bench import run

    _report(run(ops, seed), json_path)


@bench.command()
@click.option("--ops", default=200_000, show_default=True, help="Commands to send through the journal.")
@click.option("--seed", default=1, show_default=True, help="Seed of the order flow.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put the temporary journal (default: the system temp dir).",
)
@click.option(
    "--window", default=4_096, show_default=True, help="Commands in flight (submitted, not yet acknowledged)."
)
@click.option("--no-fsync", is_flag=True, help="Skip fsync (shows what durability costs; never run production so).")
@_json_option
def pipeline(ops: int, seed: int, directory: Path | None, window: int, no_fsync: bool, json_path: Path | None) -> None:
    """The same flow through the sequencer's group commit and the file journal into the engine."""
    from exchange_framework.bench.pipeline_bench import run

    if window < 256:
        raise click.BadParameter("must be at least 256 (one chunk)", param_hint="--window")
    _report(run(ops, seed, directory, fsync=not no_fsync, window=window), json_path)


@bench.command()
@click.option("--trades", default=100_000, show_default=True, help="Trades to settle (the flow runs until this many).")
@click.option(
    "--db",
    type=click.Choice(["sqlite", "postgres"]),
    default="sqlite",
    show_default=True,
    help="sqlite: a temporary file; postgres: DATABASE_URL's server, else a throwaway cluster.",
)
@click.option("--seed", default=1, show_default=True, help="Seed of the order flow.")
@click.option("--batch", default=10_000, show_default=True, help="Entries per database transaction.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put the temporary SQLite file (default: the system temp dir).",
)
@_json_option
def settlement(trades: int, db: str, seed: int, batch: int, directory: Path | None, json_path: Path | None) -> None:
    """The flow's events as balanced entries, applied to the ledger database, durable at each commit."""
    from exchange_framework.bench.settlement_bench import run

    if trades < 1:
        raise click.BadParameter("must be at least 1", param_hint="--trades")
    if batch < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch")
    result = run(trades, seed, db, batch=batch, directory=directory)
    click.echo(
        f"{result['benchmark']}: {result['ops']:,} trades ({result['entries']:,} entries, "
        f"{result['postings']:,} postings) in {result['seconds']:.3f} s"
    )
    click.echo(click.style(f"  {result['ops_per_s']:,} trades/s", bold=True))
    click.echo(f"  {result['entries_per_s']:,} entries/s   {result['postings_per_s']:,} postings/s")
    click.echo(
        f"  commit latency per {batch:,}-entry transaction: p50 {result['p50_us']:,.0f} µs   "
        f"p99 {result['p99_us']:,.0f} µs   p99.9 {result['p999_us']:,.0f} µs"
    )
    click.echo(f"  durability         {result['durability']}")
    write_json(result, json_path)
    if json_path is not None:
        click.echo(f"  wrote {json_path}")


@bench.command()
@click.option("--orders", default=20_000, show_default=True, help="Distinct signed order requests (sent in a loop).")
@click.option("--rest-seconds", default=10.0, show_default=True, help="How long the REST run lasts (at most 45).")
@click.option("--clients", default=1, show_default=True, help="Load-generating threads (wrk's -t).")
@click.option("--concurrency", default=64, show_default=True, help="Requests in flight (keep-alive connections).")
@click.option("--subscribers", default=1_000, show_default=True, help="WebSocket subscribers for the fan-out runs.")
@click.option("--rate", default=100, show_default=True, help="L2 messages per second each subscriber should get.")
@click.option("--seconds", default=5.0, show_default=True, help="How long each fan-out run lasts.")
@_json_option
def api(
    orders: int,
    rest_seconds: float,
    clients: int,
    concurrency: int,
    subscribers: int,
    rate: int,
    seconds: float,
    json_path: Path | None,
) -> None:
    """REST orders/s through one server worker (durable journal on), and WebSocket fan-out counting gaps.

    Fan-out is measured twice: through the hub in process (publish, encode once, queue to every subscriber) and
    over real WebSocket connections to one uvicorn worker.
    """
    from exchange_framework.bench import api_bench, ws_fanout_bench

    rest = api_bench.run(orders, seconds=rest_seconds, clients=clients, concurrency=concurrency)
    _report(rest, None)
    hub = ws_fanout_bench.run(subscribers=subscribers, rate=rate, seconds=seconds)
    _report(hub, None)
    sockets = api_bench.run_fanout(subscribers=subscribers, rate=rate, seconds=seconds)
    _report(sockets, None)
    combined = {**rest, "ws_fanout_in_process": hub, "ws_fanout_sockets": sockets}
    write_json(combined, json_path)
    if json_path is not None:
        click.echo(f"  wrote {json_path}")


@bench.command()
@click.option("--withdrawals", default=10_000, show_default=True, help="Clean withdrawals to screen (timed).")
@click.option("--entries", default=18_000, show_default=True, help="Entries of the synthetic SDN list.")
@click.option(
    "--sdn",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A directory with a real OFAC sdn.csv (and alt.csv, ...) to load instead of the synthetic list.",
)
@click.option("--seed", default=1, show_default=True)
@_json_option
def screening(withdrawals: int, entries: int, sdn: Path | None, seed: int, json_path: Path | None) -> None:
    """Withdrawal screening latency with the OFAC screener and a full-size SDN list (and name screening)."""
    from exchange_framework.bench.compliance_bench import run_screening

    if withdrawals < 1 or entries < 1:
        raise click.BadParameter("must be at least 1", param_hint="--withdrawals/--entries")
    result = run_screening(withdrawals, entries=entries, sdn=sdn, seed=seed)
    click.echo(
        f"{result['benchmark']}: {result['ops']:,} withdrawals screened in {result['seconds']:.3f} s "
        f"({result['sdn_entries']:,} entries, {result['sdn_names_and_aliases']:,} names and aliases, "
        f"{result['sdn_addresses']:,} addresses; loaded in {result['list_load_s']} s)"
    )
    click.echo(
        click.style(f"  screening step p50 {result['p50_us']:.1f} µs   p99 {result['p99_us']:.1f} µs", bold=True)
    )
    for key, label in (
        ("via_thread", "as the wallet runs it (asyncio.to_thread)"),
        ("listed_hold_with_case", "listed destination (frozen hold + case written)"),
        ("name_screening", "applicant name (fuzzy, every name and alias)"),
    ):
        figures = result[key]
        click.echo(
            f"  {label}: p50 {figures['p50_us']:,.1f} µs   p99 {figures['p99_us']:,.1f} µs   "
            f"max {figures['max_us']:,.1f} µs"
        )
    write_json(result, json_path)
    if json_path is not None:
        click.echo(f"  wrote {json_path}")


@bench.command()
@click.option("--events", default=1_000_000, show_default=True, help="Engine events to feed the monitor.")
@click.option("--customers", default=10_000, show_default=True, help="Synthetic customers per 60-day chunk.")
@click.option("--no-scoring", is_flag=True, help="Time the rules only.")
@click.option("--seed", default=1, show_default=True)
@_json_option
def monitoring(events: int, customers: int, no_scoring: bool, seed: int, json_path: Path | None) -> None:
    """Transaction monitoring throughput: events/s through the rules, then rules and the scoring model."""
    from exchange_framework.bench.compliance_bench import run_monitoring

    if events < 1 or customers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--events/--customers")
    result = run_monitoring(events, customers=customers, seed=seed, score=not no_scoring)
    click.echo(f"{result['benchmark']}: {result['ops']:,} events in {result['seconds']:.3f} s")
    click.echo(
        click.style(f"  {result['ops_per_s']:,} events/s", bold=True)
        + f" ({result['events_per_cpu_s']:,} per CPU second)"
    )
    click.echo(
        f"  per batch p50 {result['p50_us']:.1f} µs   p99 {result['p99_us']:.1f} µs   "
        f"alerts {result['alerts']:,} ({result['alerts_per_1k_events']} per 1,000 events)"
    )
    scored = result.get("with_scoring")
    if scored:
        click.echo(
            click.style(f"  with scoring: {scored['ops_per_s']:,} events/s", bold=True)
            + f" ({scored['events_per_cpu_s']:,} per CPU second; {scored['seconds']:.3f} s; per batch p99 "
            f"{scored['p99_us']:,.1f} µs)"
        )
    write_json(result, json_path)
    if json_path is not None:
        click.echo(f"  wrote {json_path}")
