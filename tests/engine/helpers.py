"""Shared set-up for engine tests: a two-market shard, event translation and invariant checks."""

from __future__ import annotations

from collections import defaultdict

from exchange_framework.engine.book import NO_ASK
from exchange_framework.engine.commands import Command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import (
    AccountFeesChanged,
    BookDelta,
    Event,
    FundsCredited,
    FundsDebited,
    FundsHeld,
    FundsRejected,
    FundsReleased,
    HeldFundsDebited,
    MarketStatusChanged,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderReduced,
    OrderRejected,
    OrderReplaced,
    StopTriggered,
    Trade,
)
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.types import OrderType, Side

ASSETS = {
    "BTC": AssetSpec("BTC", 8),
    "ETH": AssetSpec("ETH", 18),
    "USDT": AssetSpec("USDT", 6),
}
MARKETS = {
    # odd multipliers and a maker rebate catch unit and rounding mistakes
    "BTC-USDT": MarketSpec(
        "BTC-USDT",
        "BTC",
        "USDT",
        base_per_lot=1_000,
        quote_per_tick_lot=7,
        min_qty=1,
        max_qty=50,
        max_price=1_000,
        maker_fee_ppm=-100,
        taker_fee_ppm=2_500,
    ),
    "ETH-USDT": MarketSpec(
        "ETH-USDT",
        "ETH",
        "USDT",
        base_per_lot=10,
        quote_per_tick_lot=3,
        min_qty=2,
        max_qty=40,
        max_price=500,
        min_notional=300,
        maker_fee_ppm=1_000,
        taker_fee_ppm=2_000,
    ),
}


def new_engine() -> MatchingEngine:
    return MatchingEngine(ASSETS, MARKETS)


class Runner:
    """Feeds commands with increasing sequence numbers and keeps the events and external flows."""

    def __init__(self, engine: MatchingEngine | None = None) -> None:
        self.engine = engine or new_engine()
        self.seq = self.engine.last_seq
        self.events: list[Event] = []
        self.net_in: dict[str, int] = defaultdict(int)  # credits minus debits per asset

    def __call__(self, command: Command) -> list[Event]:
        self.seq += 1
        self.engine.apply(self.seq, command)
        out = list(self.engine.events)
        self.engine.events.clear()
        self.events.extend(out)
        for ev in out:
            if isinstance(ev, FundsCredited):
                self.net_in[ev.asset] += ev.amount
            elif isinstance(ev, FundsDebited | HeldFundsDebited):
                self.net_in[ev.asset] -= ev.amount
        return out


def semantic(events: list[Event]) -> list[tuple[object, ...]]:
    """Engine events in the reference model's log format (book deltas are checked separately)."""
    out: list[tuple[object, ...]] = []
    for ev in events:
        if isinstance(ev, OrderAccepted):
            out.append(("accepted", ev.order_id, ev.held))
        elif isinstance(ev, (OrderRejected, FundsRejected)):
            out.append(("rejected", int(ev.reason)))
        elif isinstance(ev, Trade):
            out.append(
                (
                    "trade",
                    ev.price,
                    ev.qty,
                    ev.maker_order_id,
                    ev.taker_order_id,
                    ev.base_amount,
                    ev.quote_amount,
                    ev.maker_fee,
                    ev.taker_fee,
                    ev.taker_released,
                )
            )
        elif isinstance(ev, OrderCancelled):
            out.append(("cancelled", ev.order_id, int(ev.reason), ev.remaining_qty, ev.released))
        elif isinstance(ev, OrderFilled):
            out.append(("filled", ev.order_id, ev.released))
        elif isinstance(ev, OrderReduced):
            out.append(("reduced", ev.order_id, ev.qty, ev.remaining_qty, ev.released))
        elif isinstance(ev, OrderReplaced):
            out.append(("replaced", ev.order_id, ev.price, ev.qty, ev.kept_priority, ev.hold_delta))
        elif isinstance(ev, StopTriggered):
            out.append(("triggered", ev.order_id, ev.last_price))
        elif isinstance(ev, FundsCredited):
            out.append(("credited", ev.account, ev.asset, ev.amount))
        elif isinstance(ev, FundsDebited):
            out.append(("debited", ev.account, ev.asset, ev.amount))
        elif isinstance(ev, FundsHeld):
            out.append(("held", ev.account, ev.asset, ev.amount, ev.reference))
        elif isinstance(ev, FundsReleased):
            out.append(("released", ev.account, ev.asset, ev.amount, ev.reference))
        elif isinstance(ev, HeldFundsDebited):
            out.append(("debited_held", ev.account, ev.asset, ev.amount, ev.reference))
        elif isinstance(ev, AccountFeesChanged):
            out.append(("fees", ev.account, ev.maker_ppm, ev.taker_ppm))
        elif isinstance(ev, MarketStatusChanged):
            out.append(("status", ev.market, int(ev.status)))
        elif not isinstance(ev, BookDelta):
            raise AssertionError(f"unexpected event {ev!r}")
    return out


def check_invariants(engine: MatchingEngine, net_in: dict[str, int]) -> None:
    """What must hold after every command, whatever the command was."""
    held_by_orders: dict[tuple[int, str], int] = defaultdict(int)
    for order in engine.orders.values():
        spec = engine.books[order.market].spec
        asset = spec.quote if order.side is Side.BUY else spec.base
        assert order.hold >= 0
        held_by_orders[(order.account, asset)] += order.hold
        # Every open order holds exactly its remaining exposure.
        if order.side is Side.SELL:
            assert order.hold == order.remaining * spec.base_per_lot, order
        elif order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            assert order.hold == order.price * order.remaining * spec.quote_per_tick_lot, order
    for account_id, asset, amount in engine.fund_holds.values():
        assert amount > 0
        held_by_orders[(account_id, asset)] += amount  # withdrawals in progress are held too
    totals: dict[str, int] = defaultdict(int)
    for acct in engine.accounts.values():
        for asset in engine.assets:
            available, held = acct.available[asset], acct.held[asset]
            assert available >= 0, (acct.account_id, asset, available)
            assert held == held_by_orders.get((acct.account_id, asset), 0), (acct.account_id, asset)
            totals[asset] += available + held
        assert set(acct.open_orders) == {o.order_id for o in engine.orders.values() if o.account == acct.account_id}
    for asset in engine.assets:
        # Zero-sum: what came in is with customers or in the fee account.
        assert totals[asset] + engine.fees_collected[asset] == net_in.get(asset, 0), asset
    for book in engine.books.values():
        best_bid, best_ask = book.best(Side.BUY), book.best(Side.SELL)
        if best_bid and best_ask:
            assert best_bid.price < best_ask.price, "crossed book"
        assert book.best_bid == (best_bid.price if best_bid else 0), "stale cached best bid"
        assert book.best_ask == (best_ask.price if best_ask else NO_ASK), "stale cached best ask"
        for side in (Side.BUY, Side.SELL):
            for key, level in book.side_levels(side).items():
                live = [o for o in level.orders if o.live]
                assert live, "empty level left on the book"
                assert key == (-level.price if side is Side.BUY else level.price)
                assert level.count == len(live)
                assert level.qty == sum(o.visible for o in live)
                for o in live:
                    assert o.price == level.price and o.side is side
                    assert 0 < o.visible <= o.remaining
                    assert o.visible <= o.display if o.display else o.visible == o.remaining
                    assert engine.orders[o.order_id] is o


def book_view(engine: MatchingEngine) -> dict[str, tuple[list[tuple[int, ...]], ...]]:
    """Resting orders per market and side in priority order, and waiting stop ids."""
    view = {}
    for symbol, book in engine.books.items():
        sides = tuple(
            [(o.order_id, o.price, o.remaining, o.visible) for o in book.iter_orders(side)]
            for side in (Side.BUY, Side.SELL)
        )
        stops = sorted(o.order_id for o in engine.orders.values() if o.market == symbol and o.type >= 2)
        view[symbol] = (*sides, [(s,) for s in stops])
    return view
