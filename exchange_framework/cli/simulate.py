"""``exchange simulate``: one market fed by a seeded order generator through the durable journal, in the terminal."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import click

from exchange_framework.bench.workload import funding, order_flow
from exchange_framework.cli import state
from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.book import Book
from exchange_framework.engine.events import Event, Trade
from exchange_framework.engine.snapshot import state_hash
from exchange_framework.money import format_atomic, lots_to_qty, price_to_ticks, ticks_to_price
from exchange_framework.sequencer import FileJournal
from exchange_framework.shard import Shard
from exchange_framework.types import Side

DEMO_ACCOUNTS = 20
CHUNK = 256


class DemoView:
    """Formats one market's integers (ticks, lots, atomic units) as the decimals people read."""

    def __init__(self, config: ExchangeConfig, symbol: str) -> None:
        self.market = config.markets[symbol]
        self.spec = config.engine_markets()[symbol]
        assets = config.engine_assets()
        self.base_decimals = assets[self.spec.base].decimals
        self.quote_decimals = assets[self.spec.quote].decimals

    def price(self, ticks: int) -> str:
        return str(ticks_to_price(ticks, self.market.tick_size))

    def qty(self, lots: int) -> str:
        return str(lots_to_qty(lots, self.market.lot_size))

    def quote(self, atomic: int) -> str:
        return format_atomic(atomic, self.quote_decimals, trim=True)

    def trade_line(self, trade: Trade) -> str:
        side = click.style("BUY ", fg="green") if trade.taker_side is Side.BUY else click.style("SELL", fg="red")
        return (
            f"  #{trade.trade_id:<7} {side} {self.qty(trade.qty):>12} {self.spec.base} @ "
            f"{self.price(trade.price):>12} {self.spec.quote}   (maker {trade.maker_order_id}, "
            f"taker {trade.taker_order_id}, seq {trade.seq})"
        )

    def ladder(self, book: Book, depth: int) -> list[str]:
        asks = list(book.asks.values())[:depth]
        bids = list(book.bids.values())[:depth]
        widest = max([level.qty for level in asks + bids] or [1])
        lines = [f"  {'price (' + self.spec.quote + ')':>14}  {'quantity (' + self.spec.base + ')':>18}"]
        for level in reversed(asks):
            bar = "█" * max(1, round(24 * level.qty / widest))
            lines.append(click.style(f"  {self.price(level.price):>14}  {self.qty(level.qty):>18}  {bar}", fg="red"))
        if asks and bids:
            spread = asks[0].price - bids[0].price
            lines.append(f"  {'— spread ' + self.price(spread) + ' —':>34}")
        for level in bids:
            bar = "█" * max(1, round(24 * level.qty / widest))
            lines.append(click.style(f"  {self.price(level.price):>14}  {self.qty(level.qty):>18}  {bar}", fg="green"))
        return lines


@click.command()
@click.option("--orders", default=5_000, show_default=True, help="How many generated commands to run.")
@click.option("--seed", default=7, show_default=True, help="Seed of the order generator (same seed, same run).")
@click.option("--market", "symbol", default=None, help="Market to trade (default: the first open market).")
@click.option("--mid-price", default="65000", show_default=True, help="Where the generated prices start.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the journal and snapshots live (default: the directory of [journal] path, var/demo for the "
    "packaged demo). Run again to resume from them.",
)
@click.option("--fresh", is_flag=True, help="Delete the data directory first and start from an empty exchange.")
@click.option("--depth", default=8, show_default=True, help="Book levels shown per side.")
@click.option("--trades", "show_trades", default=12, show_default=True, help="How many of the last trades to show.")
@click.pass_context
def simulate(
    ctx: click.Context,
    orders: int,
    seed: int,
    symbol: str | None,
    mid_price: str,
    data_dir: Path | None,
    fresh: bool,
    depth: int,
    show_trades: int,
) -> None:
    """Simulate a market in the terminal: seeded orders go through the durable journal into the matching engine.

    Prints the last trades and the order book. The journal and snapshots stay in --data-dir, so running the
    command again first recovers the exchange exactly as it was, then trades on.
    """
    config = state(ctx).config_or_exit()
    open_markets = [name for name, market in config.markets.items() if market.status == "open"]
    if symbol is None:
        if not open_markets:
            raise click.UsageError("the config has no open market to run the demo on")
        symbol = open_markets[0]
    if symbol not in open_markets:
        raise click.BadParameter(f"{symbol!r} is not an open market; choose one of: {', '.join(open_markets)}")
    if orders < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--orders")
    view = DemoView(config, symbol)
    mid_ticks = price_to_ticks(Decimal(mid_price), view.market.tick_size)

    journal_path = config.journal_path() if data_dir is None else data_dir / "commands.journal"
    data_dir = journal_path.parent
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    journal = FileJournal(journal_path, fsync=config.journal.fsync)
    trades: list[Trade] = []
    counts = {"events": 0}

    def on_events(events: Sequence[Event]) -> None:
        counts["events"] += len(events)
        trades.extend(e for e in events if isinstance(e, Trade))
        del trades[:-show_trades]

    brand = config.brand.name
    click.echo(click.style(f"{brand} — {symbol} simulation", bold=True))
    with click.progressbar(length=1, label="  recovering from the journal", show_percent=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        shard = Shard(config, journal=journal, snapshot_dir=data_dir / "snapshots", progress=progress)
    with shard:
        resumed = shard.recovered_seq
        if resumed:
            click.echo(f"  resumed at sequence {resumed}: {len(shard.engine.orders)} open orders recovered")
        shard.on_events = on_events
        spec = view.spec
        if not resumed:
            base_funds = 10 * 10**view.base_decimals
            quote_funds = 1_000_000 * 10**view.quote_decimals
            shard.execute(funding(spec, DEMO_ACCOUNTS, base_funds, quote_funds))
        first_seq = shard.sequencer.last_seq + 1
        lots = max(spec.min_qty, 1)
        flow = order_flow(
            spec,
            seed=seed + first_seq,
            first_seq=first_seq,
            accounts=DEMO_ACCOUNTS,
            mid=mid_ticks,
            spread=max(10, mid_ticks // 2000),
            max_lots=lots * 500,
        )
        shard.start()
        last_ticket = None
        with click.progressbar(length=orders, label="  trading") as bar:
            done = 0
            while done < orders:
                chunk = [next(flow) for _ in range(min(CHUNK, orders - done))]
                last_ticket = shard.submit_many(chunk)[-1]
                done += len(chunk)
                bar.update(len(chunk))
            if last_ticket is not None:
                last_ticket.wait(timeout=60)
        shard.sequencer.stop()
        snapshot_path = shard.take_snapshot()

        engine = shard.engine
        book = engine.books[symbol]
        click.echo(click.style(f"\nLast {len(trades)} trades", bold=True))
        for trade in trades:
            click.echo(view.trade_line(trade))
        click.echo(click.style(f"\nOrder book {symbol}", bold=True))
        for line in view.ladder(book, depth):
            click.echo(line)
        fees = engine.fees_collected
        click.echo(click.style("\nSummary", bold=True))
        click.echo(f"  commands journalled  {engine.last_seq} (this run: {orders}, {counts['events']} events)")
        click.echo(f"  trades so far        {engine.next_trade_id - 1}")
        click.echo(f"  last price           {view.price(book.last_price)} {spec.quote}")
        click.echo(f"  open orders          {len(engine.orders)}")
        click.echo(
            f"  fees collected       {format_atomic(fees[spec.base], view.base_decimals, trim=True)} {spec.base}, "
            f"{view.quote(fees[spec.quote])} {spec.quote}"
        )
        click.echo(f"  state hash           {state_hash(engine)}")
        click.echo(f"  journal              {journal.path}")
        click.echo(f"  snapshot             {snapshot_path}")
        click.echo(f"\nRun it again to resume from the journal, or check it with: exchange replay {journal.path}")
        click.echo("Post its money movements to the ledger with: exchange ledger settle && exchange ledger check")
