"""The values market data hands out: trades, klines, book snapshots and changes, tickers. Integers only."""

from __future__ import annotations

import msgspec

from exchange_framework.types import MarketStatus


class TradeRecord(msgspec.Struct, frozen=True, gc=False):
    """A public trade: ``price`` in ticks, ``qty`` in lots, amounts in atomic units, ``time_ms`` from the journal."""

    market: str
    trade_id: int
    price: int
    qty: int
    base_amount: int
    quote_amount: int
    time_ms: int
    buyer_is_maker: bool
    seq: int


class AggTrade(msgspec.Struct, frozen=True, gc=False):
    """An aggregate trade: the consecutive fills of one taker order at one price in one command.

    ``agg_id`` counts aggregates per market from 1; ``first_trade_id``..``last_trade_id`` are the trades it holds,
    ``qty`` their lots in total.
    """

    market: str
    agg_id: int
    price: int
    qty: int
    first_trade_id: int
    last_trade_id: int
    time_ms: int
    buyer_is_maker: bool
    seq: int


class Kline(msgspec.Struct, gc=False):
    """One candle: prices in ticks, volumes in atomic units (base, quote), taker-buy volumes likewise.

    A kline with ``count == 0`` is a gap filler: every price is the previous close and the trade ids are -1.
    """

    open_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    count: int
    taker_buy_volume: int
    taker_buy_quote_volume: int
    first_trade_id: int
    last_trade_id: int


class DepthSnapshot(msgspec.Struct, frozen=True, gc=False):
    """The top of a book: ``(price ticks, qty lots)`` pairs, bids best (highest) first, asks best (lowest) first.

    ``last_update_id`` is the market's book update id (see :class:`BookUpdate`); ``seq`` the last applied seq.
    """

    market: str
    last_update_id: int
    seq: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class BookUpdate(msgspec.Struct, gc=False):
    """Book changes of one market: the new lots at each changed price (0: the level is gone).

    Update ids count, per market, the commands that changed its book (1, 2, 3, ... with no holes), so a client
    can tell that it missed something: the next update's ``first_update_id`` is this one's ``last_update_id + 1``.
    """

    market: str
    first_update_id: int
    last_update_id: int
    time_ms: int
    bids: dict[int, int]
    asks: dict[int, int]


class BookTicker(msgspec.Struct, frozen=True, gc=False):
    """Best bid and ask (ticks, lots); a side with no orders has price and qty 0."""

    market: str
    update_id: int
    bid_price: int
    bid_qty: int
    ask_price: int
    ask_qty: int


class Ticker24h(msgspec.Struct, frozen=True, gc=False):
    """Rolling 24-hour statistics of one market, in integers (see :meth:`MarketData.ticker_24h`).

    Prices in ticks, ``last_qty`` in lots, volumes in atomic units. With no trade in the window, open, high, low
    and last are the last trade's price (0 if the market never traded), volumes and count 0, trade ids -1.
    """

    market: str
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    last: int
    last_qty: int
    prev_close: int
    volume: int
    quote_volume: int
    count: int
    first_trade_id: int
    last_trade_id: int
    bid_price: int
    bid_qty: int
    ask_price: int
    ask_qty: int


class Changes(msgspec.Struct, gc=False):
    """What one :meth:`MarketData.apply` call changed, for the stream publishers.

    ``books``: one merged :class:`BookUpdate` per market whose book changed; ``trades``: new trades per market, in
    order; ``statuses``: markets whose status changed; ``agg_trades``: new aggregate trades per market, each in
    its final form. Klines (and tickers) changed for every market in ``trades``.
    """

    books: dict[str, BookUpdate]
    trades: dict[str, list[TradeRecord]]
    statuses: dict[str, MarketStatus]
    agg_trades: dict[str, list[AggTrade]]

    def __bool__(self) -> bool:
        return bool(self.books or self.trades or self.statuses)
