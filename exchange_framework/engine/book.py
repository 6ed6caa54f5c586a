"""Order book structures: resting orders, FIFO price levels, one book per market.

Levels live in a ``SortedDict`` keyed so that the best price is always first: asks by price, bids by negated
price. Each level is a FIFO queue. A cancel marks the order dead and takes its quantity off the level at once
(O(1)); dead orders are dropped when they reach the head of the queue, or by compaction when they pile up.
All structures are msgspec structs with ``gc=False``: a deep book of resting orders adds nothing for the
cyclic garbage collector to walk.
"""

from __future__ import annotations

from collections import deque

import msgspec
from sortedcontainers import SortedDict, SortedList

from exchange_framework.engine.market import MarketSpec
from exchange_framework.types import MarketStatus, OrderType, Side, StpMode, TimeInForce


class Order(msgspec.Struct, gc=False):
    """An open order (resting, or waiting for its stop price).

    ``remaining`` is the whole open quantity in lots, hidden iceberg quantity included; ``visible`` is what the
    book shows (equal to ``remaining`` unless ``display`` > 0). ``hold`` is the atomic amount of the hold asset
    (quote for a buy, base for a sell) still reserved for this order.
    """

    order_id: int
    account: int
    market: str
    asset: str  # what the hold is in: quote for a buy, base for a sell
    side: Side
    type: OrderType
    price: int
    remaining: int
    visible: int
    display: int
    hold: int
    stop_price: int
    tif: TimeInForce
    stp: StpMode
    post_only: bool
    client_order_id: str
    live: bool = True


class Level(msgspec.Struct, gc=False):
    """One price level: a FIFO queue of orders and the visible quantity of its live ones."""

    side: Side
    price: int
    orders: deque[Order]
    market: str
    qty: int = 0
    count: int = 0  # live orders
    touched: bool = False  # set while the current command changed it (for book deltas)

    def compact(self) -> None:
        """Drop dead orders (cancelled in place) from the queue, keeping the live ones in priority order."""
        self.orders = deque(o for o in self.orders if o.live)


NO_ASK = 1 << 120  # best ask of an empty ask side: above any price


class Book:
    """The order book and stop book of one market.

    ``best_bid``/``best_ask`` cache the best prices (0 / ``NO_ASK`` when a side is empty) so that the common
    question "does this order cross?" costs one comparison; :meth:`refresh_best` recomputes them whenever a
    level is created or removed.
    """

    __slots__ = (
        "asks",
        "best_ask",
        "best_bid",
        "bids",
        "last_price",
        "range_high",
        "range_low",
        "spec",
        "status",
        "stops_buy",
        "stops_sell",
        "symbol",
    )

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.status: MarketStatus = spec.status
        self.asks: SortedDict = SortedDict()  # price -> Level
        self.bids: SortedDict = SortedDict()  # -price -> Level
        self.best_bid = 0
        self.best_ask = NO_ASK
        self.last_price = 0
        # Lowest and highest trade price since stops were last checked: a stop fires if any trade reached it.
        self.range_low = NO_ASK
        self.range_high = 0
        # Stop orders waiting for a trigger, as (stop_price, order_id).
        self.stops_buy: SortedList = SortedList()
        self.stops_sell: SortedList = SortedList()

    def refresh_best(self) -> None:
        """Recompute the cached best bid and ask from the levels."""
        self.best_bid = -self.bids.peekitem(0)[0] if self.bids else 0
        self.best_ask = self.asks.peekitem(0)[0] if self.asks else NO_ASK

    def side_levels(self, side: Side) -> SortedDict:
        """The levels holding resting orders of ``side``."""
        return self.bids if side is Side.BUY else self.asks

    def best(self, side: Side) -> Level | None:
        """The best level of ``side``, or None when that side is empty."""
        levels = self.bids if side is Side.BUY else self.asks
        if not levels:
            return None
        level: Level = levels.peekitem(0)[1]
        return level

    def iter_orders(self, side: Side) -> list[Order]:
        """Live resting orders of ``side`` in priority order (best price first, then time)."""
        return [o for level in self.side_levels(side).values() for o in level.orders if o.live]
