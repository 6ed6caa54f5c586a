"""Shared set-up for market data tests: a two-market exchange, an engine driver and a random command strategy."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hypothesis import strategies as st

from exchange_framework.engine.commands import CancelAll, CancelOrder, Command, CreditFunds, PlaceOrder
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.marketdata import MarketData
from exchange_framework.types import OrderType, Side, TimeInForce

ASSETS = {"BTC": AssetSpec("BTC", 8), "ETH": AssetSpec("ETH", 18), "USDT": AssetSpec("USDT", 6)}
MARKETS = {
    # tick 0.01 USDT, lot 0.0001 BTC: base_per_lot 10^4 satoshi, one tick-lot costs 0.000001 USDT = 1 atomic unit
    "BTC-USDT": MarketSpec("BTC-USDT", "BTC", "USDT", base_per_lot=10_000, quote_per_tick_lot=1),
    # tick 0.5 USDT, lot 0.001 ETH: base_per_lot 10^15 wei, one tick-lot costs 0.0005 USDT = 500 atomic units
    "ETH-USDT": MarketSpec("ETH-USDT", "ETH", "USDT", base_per_lot=10**15, quote_per_tick_lot=500),
}
T0_NS = 1_700_000_000_000 * 1_000_000  # 2023-11-14T22:13:20Z

FUNDING: list[Command] = [
    CreditFunds(account, asset, amount)
    for account in (1, 2, 3)
    for asset, amount in (("USDT", 10**15), ("BTC", 10**12), ("ETH", 10**24))
]


def new_market_data(**options: int) -> MarketData:
    return MarketData(ASSETS, MARKETS, **options)


def limit(
    account: int, market: str, side: Side, price: int, qty: int, tif: TimeInForce = TimeInForce.GTC
) -> PlaceOrder:
    return PlaceOrder(account=account, market=market, side=side, type=OrderType.LIMIT, qty=qty, price=price, tif=tif)


class Driver:
    """Runs commands through a real engine, one journal timestamp per command, and keeps the event batches."""

    def __init__(self, start_ns: int = T0_NS, step_ns: int = 1_000_000) -> None:
        self.engine = MatchingEngine(ASSETS, MARKETS)
        self.seq = 0
        self.ts_ns = start_ns
        self.step_ns = step_ns
        self.batches: list[tuple[int, list[Event]]] = []

    def run(self, commands: Iterable[Command], *, step_ns: int | None = None) -> list[tuple[int, list[Event]]]:
        """Apply ``commands``; return their ``(ts_ns, events)`` batches (one per command that had events)."""
        new: list[tuple[int, list[Event]]] = []
        for command in commands:
            self.seq += 1
            self.ts_ns += self.step_ns if step_ns is None else step_ns
            self.engine.apply(self.seq, command)
            if self.engine.events:
                new.append((self.ts_ns, self.engine.events))
                self.engine.events = []
        self.batches.extend(new)
        return new

    def engine_book(self, market: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        book = self.engine.books[market]
        bids = [(-key, level.qty) for key, level in book.bids.items() if level.qty]
        asks = [(key, level.qty) for key, level in book.asks.items() if level.qty]
        return bids, asks


def feed(data: MarketData, batches: Iterable[tuple[int, list[Event]]]) -> None:
    for ts_ns, events in batches:
        data.apply(ts_ns, events)


MARKET = st.sampled_from(list(MARKETS))
ACCOUNT = st.integers(1, 3)


@st.composite
def order_command(draw: st.DrawFn) -> Command:
    kind = draw(st.sampled_from(["limit", "limit", "limit", "limit", "ioc", "market", "cancel", "cancel", "all"]))
    market = draw(MARKET)
    account = draw(ACCOUNT)
    side = draw(st.sampled_from(Side))
    if kind == "cancel":
        return CancelOrder(account=account, market=market, order_id=draw(st.integers(1, 80)))
    if kind == "all":
        return CancelAll(account=account, market=market)
    qty = draw(st.integers(1, 20))
    if kind == "market":
        return PlaceOrder(
            account=account,
            market=market,
            side=side,
            type=OrderType.MARKET,
            qty=qty,
            quote_cap=10**12 if side is Side.BUY else 0,
        )
    price = draw(st.integers(95, 105))
    return limit(account, market, side, price, qty, TimeInForce.IOC if kind == "ioc" else TimeInForce.GTC)


COMMANDS = st.lists(order_command(), min_size=1, max_size=60)


def chunks(items: list[tuple[int, list[Event]]], cuts: Iterable[int]) -> Iterator[list[tuple[int, list[Event]]]]:
    start = 0
    for cut in sorted(set(cuts)):
        if start < cut < len(items):
            yield items[start:cut]
            start = cut
    yield items[start:]
