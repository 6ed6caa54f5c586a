"""Market data state: L2 books, recent trades, klines and 24-hour tickers, fed by engine events.

:class:`MarketData` is a consumer like the ledger: it applies engine events idempotently by ``seq`` (events at or
below the last applied seq are ignored), keeps everything in integers (ticks, lots, atomic units) and is
deterministic: the same events with the same timestamps give the same state, update ids included, so a replay of
the journal after a restart continues the update ids clients already saw. It is not thread-safe: call it from
one thread (or one asyncio loop).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import Self

import msgspec
from sortedcontainers import SortedDict

from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.events import BookDelta, Event, MarketStatusChanged, Trade
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.marketdata.intervals import DAY_MS, INTERVALS, check_interval, next_open, open_time
from exchange_framework.marketdata.records import (
    AggTrade,
    BookTicker,
    BookUpdate,
    Changes,
    DepthSnapshot,
    Kline,
    Ticker24h,
    TradeRecord,
)
from exchange_framework.marketdata.symbols import SymbolMap
from exchange_framework.marketdata.units import MarketUnits
from exchange_framework.types import MarketStatus, Side

MAX_DEPTH_LIMIT = 5_000
MAX_TRADES_LIMIT = 1_000
MAX_KLINES_LIMIT = 1_000
_TICKER_KLINES = 24 * 60 + 2  # 1m klines a 24-hour window needs, plus the one before it (previous close)


class UnknownMarketError(KeyError):
    """A market id names no market of this exchange."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Market:
    """One market's state."""

    __slots__ = (
        "agg_taker",
        "agg_trades",
        "asks",
        "bids",
        "book_seq",
        "klines",
        "last_trade",
        "spec",
        "status",
        "trades",
        "units",
        "update_id",
    )

    def __init__(self, spec: MarketSpec, units: MarketUnits, trade_history: int, kline_history: int) -> None:
        self.spec = spec
        self.units = units
        self.status = spec.status
        self.bids: SortedDict = SortedDict()  # -price -> lots (negated: iteration is best first)
        self.asks: SortedDict = SortedDict()  # price -> lots
        self.update_id = 0
        self.book_seq = 0  # seq of the command that made update_id
        self.trades: deque[TradeRecord] = deque(maxlen=trade_history)
        self.last_trade: TradeRecord | None = None
        self.agg_trades: deque[AggTrade] = deque(maxlen=trade_history)
        self.agg_taker = 0  # taker order id of the newest aggregate
        self.klines: dict[str, deque[Kline]] = {
            interval: deque(maxlen=max(kline_history, _TICKER_KLINES) if interval == "1m" else kline_history)
            for interval in INTERVALS
        }


class MarketData:
    """Books, trades, klines and tickers of every market, rebuilt from engine events.

    ``trade_history`` recent trades and ``kline_history`` klines per interval are kept per market (the ``1m``
    series keeps at least a day and a minute, for the 24-hour ticker).
    """

    def __init__(
        self,
        assets: Mapping[str, AssetSpec],
        markets: Mapping[str, MarketSpec],
        *,
        trade_history: int = 1_000,
        kline_history: int = 1_000,
    ) -> None:
        if trade_history < 1 or kline_history < 1:
            raise ValueError("trade_history and kline_history must be at least 1")
        self.symbols = SymbolMap(markets)
        self.last_seq = 0
        self._markets: dict[str, _Market] = {}
        for name, spec in markets.items():
            missing = [asset for asset in (spec.base, spec.quote) if asset not in assets]
            if missing:
                raise ValueError(f"market {name}: unknown asset {missing[0]!r}; pass the assets of every market")
            units = MarketUnits(spec, assets[spec.base], assets[spec.quote])
            self._markets[name] = _Market(spec, units, trade_history, kline_history)

    @classmethod
    def from_config(cls, config: ExchangeConfig, *, trade_history: int = 1_000, kline_history: int = 1_000) -> Self:
        """Return empty market data for the markets of an exchange configuration."""
        return cls(
            config.engine_assets(),
            config.engine_markets(),
            trade_history=trade_history,
            kline_history=kline_history,
        )

    # -- feeding ------------------------------------------------------------------------------------------------

    def apply(self, ts_ns: int, events: Sequence[Event]) -> Changes:
        """Apply a batch of engine events stamped ``ts_ns`` (the journal time of their commands).

        Events with ``seq`` at or below :attr:`last_seq` are ignored, so feeding a batch twice changes nothing;
        a command's events must all arrive in one call. Raise ``ValueError`` (and change nothing) if seqs go
        backwards within the batch or an event names an unknown market. Return what changed.
        """
        last = self.last_seq
        top = last
        markets = self._markets
        for event in events:
            seq = event.seq
            if seq <= last:
                continue
            if seq < top:
                raise ValueError(f"event seqs go backwards within a batch ({top} then {seq}); apply them in order")
            top = seq
            if isinstance(event, Trade | BookDelta | MarketStatusChanged) and event.market not in markets:
                raise ValueError(f"event for unknown market {event.market!r}: market data and engine configs differ")
        changes = Changes({}, {}, {}, {})
        if top == last:
            return changes
        ts_ms = ts_ns // 1_000_000
        for event in events:
            if event.seq <= last:
                continue
            if type(event) is BookDelta:
                self._book(event, ts_ms, changes)
            elif type(event) is Trade:
                self._trade(event, ts_ms, changes)
            elif type(event) is MarketStatusChanged:
                markets[event.market].status = event.status
                changes.statuses[event.market] = event.status
        self.last_seq = top
        return changes

    def _book(self, event: BookDelta, ts_ms: int, changes: Changes) -> None:
        state = self._markets[event.market]
        if state.book_seq != event.seq:
            state.book_seq = event.seq
            state.update_id += 1
        bid = event.side is Side.BUY
        levels = state.bids if bid else state.asks
        key = -event.price if bid else event.price
        if event.qty:
            levels[key] = event.qty
        else:
            levels.pop(key, None)
        update = changes.books.get(event.market)
        if update is None:
            update = changes.books[event.market] = BookUpdate(
                event.market, state.update_id, state.update_id, ts_ms, {}, {}
            )
        update.last_update_id = state.update_id
        update.time_ms = ts_ms
        (update.bids if bid else update.asks)[event.price] = event.qty

    def _trade(self, event: Trade, ts_ms: int, changes: Changes) -> None:
        state = self._markets[event.market]
        record = TradeRecord(
            event.market,
            event.trade_id,
            event.price,
            event.qty,
            event.base_amount,
            event.quote_amount,
            ts_ms,
            event.taker_side is Side.SELL,
            event.seq,
        )
        state.trades.append(record)
        state.last_trade = record
        changes.trades.setdefault(event.market, []).append(record)
        self._aggregate(state, event, ts_ms, changes)
        taker_buy = event.taker_side is Side.BUY
        price = event.price
        for interval, series in state.klines.items():
            start = open_time(interval, ts_ms)
            kline = series[-1] if series else None
            if kline is None or start > kline.open_time:
                kline = Kline(start, price, price, price, price, 0, 0, 0, 0, 0, event.trade_id, event.trade_id)
                series.append(kline)
            # A timestamp before the current kline (a clock step back) counts in the current kline.
            if price > kline.high:
                kline.high = price
            elif price < kline.low:
                kline.low = price
            kline.close = price
            kline.volume += event.base_amount
            kline.quote_volume += event.quote_amount
            kline.count += 1
            kline.last_trade_id = event.trade_id
            if taker_buy:
                kline.taker_buy_volume += event.base_amount
                kline.taker_buy_quote_volume += event.quote_amount

    @staticmethod
    def _aggregate(state: _Market, event: Trade, ts_ms: int, changes: Changes) -> None:
        aggs = state.agg_trades
        last = aggs[-1] if aggs else None
        new = changes.agg_trades.setdefault(event.market, [])
        if (
            last is not None
            and last.seq == event.seq
            and state.agg_taker == event.taker_order_id
            and last.price == event.price
        ):
            merged = AggTrade(
                last.market,
                last.agg_id,
                last.price,
                last.qty + event.qty,
                last.first_trade_id,
                event.trade_id,
                last.time_ms,
                last.buyer_is_maker,
                last.seq,
            )
            aggs[-1] = merged
            new[-1] = merged  # the same command, so the same apply() call: it is the newest in ``new``
            return
        agg_id = last.agg_id + 1 if last is not None else 1
        state.agg_taker = event.taker_order_id
        record = AggTrade(
            event.market,
            agg_id,
            event.price,
            event.qty,
            event.trade_id,
            event.trade_id,
            ts_ms,
            event.taker_side is Side.SELL,
            event.seq,
        )
        aggs.append(record)
        new.append(record)

    # -- queries ------------------------------------------------------------------------------------------------

    def markets(self) -> list[str]:
        """Return every market id, in configuration order."""
        return list(self._markets)

    def units(self, market: str) -> MarketUnits:
        """Return the decimal formatters of ``market``."""
        return self._market(market).units

    def spec(self, market: str) -> MarketSpec:
        """Return the engine spec ``market`` was configured with."""
        return self._market(market).spec

    def status(self, market: str) -> MarketStatus:
        """Return the market's current status (from ``MarketStatusChanged`` events)."""
        return self._market(market).status

    def update_id(self, market: str) -> int:
        """Return the market's current book update id."""
        return self._market(market).update_id

    def depth(self, market: str, limit: int = 100) -> DepthSnapshot:
        """Return the best ``limit`` levels (1..5000; more are capped) of each side, with the book's update id."""
        state = self._market(market)
        limit = _check_limit(limit, MAX_DEPTH_LIMIT)
        bids = [(-price, qty) for price, qty in islice(state.bids.items(), limit)]
        asks = list(islice(state.asks.items(), limit))
        return DepthSnapshot(market, state.update_id, self.last_seq, bids, asks)

    def book_ticker(self, market: str) -> BookTicker:
        """Return the best bid and ask."""
        state = self._market(market)
        bid_price, bid_qty = state.bids.peekitem(0) if state.bids else (0, 0)
        ask_price, ask_qty = state.asks.peekitem(0) if state.asks else (0, 0)
        return BookTicker(market, state.update_id, -bid_price, bid_qty, ask_price, ask_qty)

    def last_price(self, market: str) -> int | None:
        """Return the last trade's price in ticks, or None if the market has not traded."""
        trade = self._market(market).last_trade
        return None if trade is None else trade.price

    def trades(self, market: str, limit: int = 500, from_id: int | None = None) -> list[TradeRecord]:
        """Return recent trades, oldest first: the newest ``limit`` (1..1000), or ``limit`` from trade ``from_id``.

        Only the last ``trade_history`` trades are kept; ``from_id`` older than those starts at the oldest kept.
        """
        state = self._market(market)
        limit = _check_limit(limit, MAX_TRADES_LIMIT)
        trades = state.trades
        if from_id is None:
            start = max(len(trades) - limit, 0)
        else:
            start = bisect_left(trades, from_id, key=_trade_id)
        return list(islice(trades, start, start + limit))

    def agg_trades(
        self,
        market: str,
        limit: int = 500,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[AggTrade]:
        """Return aggregate trades oldest first, as ``GET /api/v3/aggTrades`` does.

        ``from_id``: ``limit`` (1..1000) aggregates from that aggregate id on; ``start_ms``/``end_ms`` (inclusive):
        the first ``limit`` in that time range; none of them: the newest ``limit``. Only the last
        ``trade_history`` aggregates are kept. ``from_id`` together with a time raises ``ValueError``.
        """
        state = self._market(market)
        limit = _check_limit(limit, MAX_TRADES_LIMIT)
        aggs = state.agg_trades
        if from_id is not None:
            if start_ms is not None or end_ms is not None:
                raise ValueError("give either from_id or start_ms/end_ms, not both")
            start = bisect_left(aggs, from_id, key=_agg_id)
            return list(islice(aggs, start, start + limit))
        if start_ms is None and end_ms is None:
            return list(islice(aggs, max(len(aggs) - limit, 0), None))
        start = 0 if start_ms is None else bisect_left(aggs, start_ms, key=_agg_time)
        stop = len(aggs) if end_ms is None else bisect_right(aggs, end_ms, key=_agg_time)
        return list(islice(aggs, start, min(stop, start + limit)))

    def klines(
        self,
        market: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
        now_ms: int | None = None,
    ) -> list[Kline]:
        """Return klines oldest first, as Binance's ``GET /api/v3/klines`` does.

        With ``start_ms``, the first ``limit`` (1..1000) klines opening at or after it; otherwise the last
        ``limit`` ones; ``end_ms`` leaves out klines opening after it. Intervals without trades between kept
        klines are filled with empty klines at the previous close; with ``now_ms``, so are the ones up to the
        kline containing ``now_ms``. Nothing older than the oldest kept kline is returned.
        """
        state = self._market(market)
        series = state.klines[check_interval(interval)]
        limit = _check_limit(limit, MAX_KLINES_LIMIT)
        if not series:
            return []
        first = series[0].open_time
        last = series[-1].open_time
        if now_ms is not None:
            last = max(last, open_time(interval, now_ms))
        low = first
        if start_ms is not None:
            low = open_time(interval, start_ms)
            if low < start_ms:
                low = next_open(interval, low)
            low = max(low, first)
        high = last if end_ms is None else min(last, open_time(interval, end_ms))
        if low > high:
            return []
        if start_ms is not None:
            return list(islice(_forward(series, interval, low, high), limit))
        result = list(islice(_backward(series, interval, low, high), limit))
        result.reverse()
        return result

    def kline(self, market: str, interval: str, now_ms: int) -> Kline | None:
        """Return the kline containing ``now_ms`` (an empty one at the last close if nothing traded in it yet)."""
        rows = self.klines(market, interval, limit=1, now_ms=now_ms, end_ms=now_ms)
        if not rows or rows[0].open_time != open_time(interval, now_ms):
            return None
        return rows[0]

    def ticker_24h(self, market: str, now_ms: int) -> Ticker24h:
        """Return rolling 24-hour statistics at ``now_ms``.

        The window starts on the minute: it covers the 1m klines opening from ``now_ms - 24h`` rounded down to
        the minute up to ``now_ms`` (so up to 59,999 ms more than 24 hours, as Binance's rolling-window tickers).
        """
        state = self._market(market)
        start = open_time("1m", now_ms - DAY_MS)
        volume = quote_volume = count = 0
        first_id = last_id = -1
        open_ = high = low = close = prev_close = 0
        for kline in reversed(state.klines["1m"]):
            if kline.open_time > now_ms:
                continue
            if kline.open_time < start:
                prev_close = kline.close
                break
            if not count:
                close, high, low, last_id = kline.close, kline.high, kline.low, kline.last_trade_id
            else:
                high = max(high, kline.high)
                low = min(low, kline.low)
            open_ = kline.open
            first_id = kline.first_trade_id
            volume += kline.volume
            quote_volume += kline.quote_volume
            count += kline.count
        trade = state.last_trade
        last_qty = 0 if trade is None else trade.qty
        if not count:
            open_ = high = low = close = prev_close = 0 if trade is None else trade.price
        book = self.book_ticker(market)
        return Ticker24h(
            market,
            start,
            now_ms,
            open_,
            high,
            low,
            close,
            last_qty,
            prev_close,
            volume,
            quote_volume,
            count,
            first_id,
            last_id,
            book.bid_price,
            book.bid_qty,
            book.ask_price,
            book.ask_qty,
        )

    def digest(self) -> str:
        """Return a SHA-256 hex digest of the whole state: equal digests mean equal market data."""
        h = hashlib.sha256()
        h.update(msgspec.msgpack.encode(self.last_seq))
        for name, state in self._markets.items():
            h.update(
                msgspec.msgpack.encode(
                    [
                        name,
                        int(state.status),
                        state.update_id,
                        state.book_seq,
                        list(state.bids.items()),
                        list(state.asks.items()),
                        list(state.trades),
                        list(state.agg_trades),
                        state.agg_taker,
                        {interval: list(series) for interval, series in state.klines.items()},
                    ]
                )
            )
        return h.hexdigest()

    def _market(self, market: str) -> _Market:
        state = self._markets.get(market)
        if state is None:
            known = ", ".join(self._markets) or "none"
            raise UnknownMarketError(f"unknown market {market!r}: use one of {known}")
        return state


def _trade_id(trade: TradeRecord) -> int:
    return trade.trade_id


def _agg_id(agg: AggTrade) -> int:
    return agg.agg_id


def _agg_time(agg: AggTrade) -> int:
    return agg.time_ms


def _kline_open(kline: Kline) -> int:
    return kline.open_time


def _check_limit(limit: int, maximum: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number from 1 to {maximum}, not {limit!r}")
    return min(limit, maximum)


def _flat(open_ms: int, price: int) -> Kline:
    return Kline(open_ms, price, price, price, price, 0, 0, 0, 0, 0, -1, -1)


def _forward(series: deque[Kline], interval: str, low: int, high: int) -> Iterator[Kline]:
    """Klines opening from ``low`` to ``high`` (both within the series' span), gaps filled, oldest first."""
    index = bisect_left(series, low, key=_kline_open)
    previous = series[index - 1] if index else None
    t = low
    size = len(series)
    while t <= high:
        kline = series[index] if index < size else None
        if kline is not None and kline.open_time == t:
            yield kline
            previous = kline
            index += 1
        elif previous is not None:
            yield _flat(t, previous.close)
        t = next_open(interval, t)


def _backward(series: deque[Kline], interval: str, low: int, high: int) -> Iterator[Kline]:
    """Klines opening from ``high`` down to ``low``, gaps filled, newest first."""
    index = bisect_right(series, high, key=_kline_open) - 1
    t = open_time(interval, high)
    while t >= low and index >= 0:
        kline = series[index]
        if kline.open_time == t:
            yield kline
            index -= 1
        else:  # t is after series[index]: a gap
            yield _flat(t, kline.close)
        t = open_time(interval, t - 1)
