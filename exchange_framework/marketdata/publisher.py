"""Stream publishing: market data changes to encoded Binance stream messages on a :class:`~.hub.Hub`.

Trades, aggregate trades and book tickers go out as soon as their events are applied. Diff depth is merged per
market and sent every 100 ms (``@depth@100ms``) or 1000 ms (``@depth``): a message covers update ids ``U`` to
``u`` and holds the latest quantity of every level changed in between, so ``U`` is always the previous message's
``u + 1``.
Partial depth, klines and 24-hour tickers are sent on the same ticks (every 100 ms / 1 s), only for streams
that have subscribers; when a kline closes, its final state (``x`` true) is sent before the next one.
Nothing is encoded for a stream nobody listens to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from exchange_framework.engine.commands import Command
from exchange_framework.engine.events import Event
from exchange_framework.marketdata import binance
from exchange_framework.marketdata.hub import Hub
from exchange_framework.marketdata.records import BookUpdate, Changes
from exchange_framework.marketdata.state import MarketData
from exchange_framework.sequencer import JournalRecord

FAST_MS = 100
SLOW_MS = 1_000


class DepthBatcher:
    """Merges one market's book updates until drained: first ``U``, last ``u``, newest quantity per level."""

    def __init__(self) -> None:
        self._pending: dict[str, BookUpdate] = {}

    def add(self, update: BookUpdate) -> None:
        """Merge ``update`` into what is pending for its market.

        An update that does not continue the pending one (its book changed without this batcher seeing it)
        replaces it: the next message then starts above the previous ``u + 1``, and clients resync on that gap.
        """
        pending = self._pending.get(update.market)
        if pending is None or update.first_update_id != pending.last_update_id + 1:
            self._pending[update.market] = BookUpdate(
                update.market,
                update.first_update_id,
                update.last_update_id,
                update.time_ms,
                dict(update.bids),
                dict(update.asks),
            )
            return
        pending.last_update_id = update.last_update_id
        pending.time_ms = update.time_ms
        pending.bids.update(update.bids)
        pending.asks.update(update.asks)

    def drain(self) -> list[BookUpdate]:
        """Return the merged updates (one per market) and start over."""
        updates = list(self._pending.values())
        self._pending.clear()
        return updates


class StreamPublisher:
    """Applies engine events to :class:`MarketData` and publishes the resulting stream messages on ``hub``."""

    def __init__(self, data: MarketData, hub: Hub) -> None:
        self.data = data
        self.hub = hub
        self._fast = DepthBatcher()
        self._slow = DepthBatcher()
        self._next_fast = 0
        self._next_slow = 0
        self._parsed: dict[str, binance.StreamName] = {}
        self._foreign: set[str] = set()  # hub streams that are not market data streams (user data, ...)
        self._names: dict[tuple[str, str], str] = {}
        self._kline_open: dict[str, int] = {}  # kline stream -> open time of the kline it last sent
        self._traded: set[str] = set()  # markets that traded since the last 1 s tick (for !miniTicker@arr)

    def name(self, market: str, suffix: str) -> str:
        """Return the canonical stream name for ``market`` and ``suffix`` (cached)."""
        key = (market, suffix)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = binance.stream_name(self.data, market, suffix)
        return name

    def parse(self, name: str) -> binance.StreamName:
        """Parse a stream name (cached); raise :class:`~.binance.StreamNameError` for a bad one."""
        parsed = self._parsed.get(name)
        if parsed is None:
            parsed = binance.parse_stream(self.data, name)
            if len(self._parsed) < 100_000:
                self._parsed[name] = parsed
        return parsed

    def on_events(self, ts_ns: int, events: Sequence[Event]) -> Changes:
        """Apply a batch (see :meth:`MarketData.apply`), publish trades and book tickers, queue depth diffs."""
        data = self.data
        hub = self.hub
        changes = data.apply(ts_ns, events)
        self._traded.update(changes.trades)
        for market, records in changes.trades.items():
            stream = self.name(market, "trade")
            if hub.has_subscribers(stream):
                for record in records:
                    hub.publish(stream, binance.encode(binance.trade_event(data, record)))
        for market, aggs in changes.agg_trades.items():
            stream = self.name(market, "aggTrade")
            if hub.has_subscribers(stream):
                for agg in aggs:
                    hub.publish(stream, binance.encode(binance.agg_trade_event(data, agg)))
        for market, update in changes.books.items():
            self._fast.add(update)
            self._slow.add(update)
            stream = self.name(market, "bookTicker")
            if hub.has_subscribers(stream):
                hub.publish(stream, binance.encode(binance.book_ticker_event(data, data.book_ticker(market))))
        return changes

    def applied_sink(
        self, loop: asyncio.AbstractEventLoop
    ) -> Callable[[Sequence[JournalRecord], Sequence[Command], Sequence[Event]], None]:
        """Return a :class:`~exchange_framework.shard.Shard` ``on_applied`` sink feeding this publisher on ``loop``.

        The shard calls it on its writer thread; each batch's events are handed to :meth:`on_events` on the loop
        with their records' journal timestamp (split by timestamp if a batch had several).
        """

        def sink(records: Sequence[JournalRecord], commands: Sequence[Command], events: Sequence[Event]) -> None:
            if not events:
                return
            first_ts = records[0].ts_ns
            if all(record.ts_ns == first_ts for record in records):
                loop.call_soon_threadsafe(self.on_events, first_ts, list(events))
                return
            ts_of = {record.seq: record.ts_ns for record in records}
            run: list[Event] = []
            run_ts = ts_of[events[0].seq]
            for event in events:
                ts = ts_of[event.seq]
                if ts != run_ts:
                    loop.call_soon_threadsafe(self.on_events, run_ts, run)
                    run, run_ts = [], ts
                run.append(event)
            loop.call_soon_threadsafe(self.on_events, run_ts, run)

        return sink

    def tick(self, now_ms: int) -> None:
        """Send what is due at ``now_ms``: depth every 100 ms / 1 s; partial depth, klines and tickers likewise."""
        if now_ms >= self._next_fast:
            self._next_fast = now_ms - now_ms % FAST_MS + FAST_MS
            self._flush_depth(self._fast, "depth@100ms", now_ms)
            self._periodic(now_ms, FAST_MS)
        if now_ms >= self._next_slow:
            self._next_slow = now_ms - now_ms % SLOW_MS + SLOW_MS
            self._flush_depth(self._slow, "depth", now_ms)
            self._periodic(now_ms, SLOW_MS)

    def _flush_depth(self, batcher: DepthBatcher, suffix: str, now_ms: int) -> None:
        data = self.data
        hub = self.hub
        for update in batcher.drain():
            stream = self.name(update.market, suffix)
            if hub.has_subscribers(stream):
                hub.publish(stream, binance.encode(binance.depth_update(data, update, now_ms)))

    def _periodic(self, now_ms: int, speed_ms: int) -> None:
        data = self.data
        hub = self.hub
        kline_open = self._kline_open
        traded: set[str] = set()
        if speed_ms == SLOW_MS:
            self._kline_open = {}  # keep only the kline streams that still have subscribers
            traded, self._traded = self._traded, set()
        foreign = self._foreign
        for name in hub.streams():
            if name in foreign:
                continue
            try:
                stream = self.parse(name)
            except binance.StreamNameError:
                if len(foreign) < 100_000:
                    foreign.add(name)
                continue
            kind = stream.kind
            payload: binance.Json | list[binance.Json]
            if kind == "partialDepth" and stream.speed_ms == speed_ms:
                payload = binance.partial_depth(data, data.depth(stream.market, stream.levels))
            elif speed_ms != SLOW_MS:
                continue
            elif kind == "kline":
                kline = data.kline(stream.market, stream.interval, now_ms)
                if kline is None:
                    continue
                previous = kline_open.get(name)
                if previous is not None and previous != kline.open_time:  # the last one closed: its final state
                    rows = data.klines(stream.market, stream.interval, start_ms=previous, limit=1)
                    if rows and rows[0].open_time == previous:
                        closed = binance.kline_event(data, stream.market, stream.interval, rows[0], now_ms)
                        hub.publish(name, binance.encode(closed))
                self._kline_open[name] = kline.open_time
                payload = binance.kline_event(data, stream.market, stream.interval, kline, now_ms)
            elif kind == "ticker":
                payload = binance.ticker_event(data, data.ticker_24h(stream.market, now_ms), now_ms)
            elif kind == "miniTicker":
                payload = binance.mini_ticker_event(data, data.ticker_24h(stream.market, now_ms), now_ms)
            elif kind == "allMiniTickers":
                if not traded:
                    continue
                payload = [
                    binance.mini_ticker_event(data, data.ticker_24h(market, now_ms), now_ms)
                    for market in data.markets()
                    if market in traded
                ]
            else:
                continue
            hub.publish(name, binance.encode(payload))

    async def run(self, clock: Callable[[], int] = time.time_ns, period_ms: int = FAST_MS) -> None:
        """Call :meth:`tick` every ``period_ms`` with ``clock()`` (ns) until cancelled."""
        while True:
            self.tick(clock() // 1_000_000)
            await asyncio.sleep(period_ms / 1000)
