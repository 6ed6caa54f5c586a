"""Shorthands shared by the engine scenario tests: market and side names, funded runners, order commands,
expected events and state snapshots for "changes nothing" checks.

Markets and their units are described in tests/engine/helpers.py.
"""

from __future__ import annotations

from typing import Any

import msgspec

from exchange_framework.engine.commands import Command, CreditFunds, PlaceOrder
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import BookDelta, Event, OrderAccepted, Trade
from exchange_framework.engine.snapshot import engine_state
from exchange_framework.types import OrderType, Side
from tests.engine.helpers import Runner

BTC = "BTC-USDT"
ETH = "ETH-USDT"
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
STOP_LIMIT, STOP_MARKET = OrderType.STOP_LIMIT, OrderType.STOP_MARKET
M = 1_000_000  # every funded account starts with this much of each asset


def funded(*accounts: int) -> Runner:
    """A fresh runner in which each of ``accounts`` has been credited ``M`` USDT, BTC and ETH."""
    run = Runner()
    for account in accounts:
        for asset in ("USDT", "BTC", "ETH"):
            run(CreditFunds(account, asset, M))
    return run


def limit(account: Any, side: Any, price: Any, qty: Any, market: str = BTC, **kw: Any) -> PlaceOrder:
    """A limit order; ``kw`` are further ``PlaceOrder`` fields (tif, display_qty, client_order_id, ...).

    The first four are typed ``Any`` because the bad-input tests pass malformed values on purpose.
    """
    return PlaceOrder(account, market, side, LIMIT, qty, price=price, **kw)


def mkt(account: int, side: Side, qty: int, market: str = BTC, **kw: Any) -> PlaceOrder:
    """A market order; ``kw`` are further ``PlaceOrder`` fields (quote_cap, stp, ...)."""
    return PlaceOrder(account, market, side, MARKET, qty, **kw)


def place(run: Runner, cmd: Command) -> tuple[int, list[Event]]:
    """Apply ``cmd``; return its sequence number (the order id, if accepted) and its events."""
    events = run(cmd)
    return run.seq, events


def trading(events: list[Event]) -> list[Event]:
    """``events`` without the book deltas."""
    return [e for e in events if not isinstance(e, BookDelta)]


def deltas(events: list[Event]) -> list[Event]:
    """Only the book deltas of ``events``."""
    return [e for e in events if isinstance(e, BookDelta)]


def accepted(
    seq: int, account: int, side: Side, otype: OrderType, price: int, qty: int, held: int, market: str = BTC
) -> OrderAccepted:
    """The ``OrderAccepted`` of an order placed by command ``seq`` (so its order id is ``seq``), no stop price
    and no client order id."""
    return OrderAccepted(seq, seq, account, market, side, otype, price, qty, 0, held, "")


def trade(
    seq: int,
    trade_id: int,
    price: int,
    qty: int,
    taker_side: Side,
    maker: tuple[int, int],
    taker: tuple[int, int],
    base: int,
    quote: int,
    maker_fee: int,
    taker_fee: int,
    released: int = 0,
    market: str = BTC,
) -> Trade:
    """A ``Trade`` event; ``maker``/``taker`` are (order id, account)."""
    return Trade(
        seq, market, trade_id, price, qty, taker_side, *maker, *taker, base, quote, maker_fee, taker_fee, released
    )


def state(engine: MatchingEngine) -> bytes:
    """Canonical state bytes without ``last_seq`` (which every applied command advances, rejected or not)."""
    st = engine_state(engine)
    del st["last_seq"]
    return msgspec.msgpack.encode(st)


def orders_copy(engine: MatchingEngine) -> dict[int, dict[str, Any]]:
    """A field-by-field copy of ``engine.orders``, to compare before and after a command."""
    return {oid: msgspec.structs.asdict(o) for oid, o in engine.orders.items()}
