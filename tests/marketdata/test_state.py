"""MarketData: books, trades, klines and tickers from engine events; idempotent by seq; deterministic."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.engine.commands import Command
from exchange_framework.engine.events import BookDelta, MarketStatusChanged, Trade
from exchange_framework.marketdata import MarketData, UnknownMarketError
from exchange_framework.marketdata.intervals import DAY_MS, MINUTE_MS
from exchange_framework.types import MarketStatus, Side
from tests.marketdata.helpers import (
    ASSETS,
    COMMANDS,
    FUNDING,
    MARKETS,
    T0_NS,
    Driver,
    chunks,
    feed,
    limit,
    new_market_data,
)

T0_MS = T0_NS // 1_000_000


def trade_event(
    seq: int, trade_id: int, price: int, qty: int, taker: Side = Side.BUY, market: str = "BTC-USDT"
) -> Trade:
    spec = MARKETS[market]
    return Trade(
        seq,
        market,
        trade_id,
        price,
        qty,
        taker,
        1,
        1,
        2,
        2,
        qty * spec.base_per_lot,
        price * qty * spec.quote_per_tick_lot,
        0,
        0,
        0,
    )


def test_book_follows_deltas_and_reports_sorted_depth_with_update_id() -> None:
    data = new_market_data()
    changes = data.apply(
        T0_NS,
        [
            BookDelta(1, "BTC-USDT", Side.BUY, 100, 5),
            BookDelta(1, "BTC-USDT", Side.BUY, 102, 1),
            BookDelta(1, "BTC-USDT", Side.SELL, 110, 4),
            BookDelta(1, "BTC-USDT", Side.SELL, 105, 2),
        ],
    )
    assert changes.books["BTC-USDT"].first_update_id == changes.books["BTC-USDT"].last_update_id == 1
    data.apply(T0_NS, [BookDelta(3, "BTC-USDT", Side.BUY, 101, 7), BookDelta(3, "BTC-USDT", Side.SELL, 110, 0)])
    snapshot = data.depth("BTC-USDT")
    assert snapshot.bids == [(102, 1), (101, 7), (100, 5)]
    assert snapshot.asks == [(105, 2)]
    assert snapshot.last_update_id == 2  # two commands changed the book; seqs 1 and 3 do not leave a hole
    assert snapshot.seq == 3
    assert data.depth("BTC-USDT", limit=2).bids == [(102, 1), (101, 7)]
    ticker = data.book_ticker("BTC-USDT")
    assert (ticker.bid_price, ticker.bid_qty, ticker.ask_price, ticker.ask_qty, ticker.update_id) == (102, 1, 105, 2, 2)
    assert data.depth("ETH-USDT").last_update_id == 0


def test_events_at_or_below_the_last_applied_seq_are_ignored() -> None:
    data = new_market_data()
    batch = [BookDelta(5, "BTC-USDT", Side.BUY, 100, 5), trade_event(5, 1, 100, 1)]
    assert data.apply(T0_NS, batch)
    digest = data.digest()
    assert not data.apply(T0_NS, batch)  # the same batch again: nothing
    assert not data.apply(T0_NS + 10**9, [BookDelta(4, "BTC-USDT", Side.BUY, 100, 9)])  # an older seq: nothing
    assert data.digest() == digest
    assert data.last_seq == 5
    assert len(data.trades("BTC-USDT")) == 1


def test_a_batch_whose_seqs_go_backwards_or_name_an_unknown_market_changes_nothing() -> None:
    data = new_market_data()
    digest = data.digest()
    with pytest.raises(ValueError, match="backwards"):
        data.apply(T0_NS, [BookDelta(3, "BTC-USDT", Side.BUY, 100, 5), BookDelta(2, "BTC-USDT", Side.BUY, 99, 5)])
    with pytest.raises(ValueError, match="unknown market 'XRP-USDT'"):
        data.apply(T0_NS, [BookDelta(3, "BTC-USDT", Side.BUY, 100, 5), BookDelta(3, "XRP-USDT", Side.BUY, 9, 5)])
    assert data.digest() == digest
    assert data.last_seq == 0


def test_unknown_market_and_bad_limits_are_refused_with_a_clear_error() -> None:
    data = new_market_data()
    with pytest.raises(UnknownMarketError, match="unknown market 'XRP-USDT': use one of BTC-USDT, ETH-USDT"):
        data.depth("XRP-USDT")
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="limit must be a whole number from 1 to 5000"):
            data.depth("BTC-USDT", bad)
    with pytest.raises(ValueError, match="unknown kline interval '2m'"):
        data.klines("BTC-USDT", "2m")


def test_market_status_changes_are_kept() -> None:
    data = new_market_data()
    changes = data.apply(T0_NS, [MarketStatusChanged(1, "ETH-USDT", MarketStatus.HALTED)])
    assert changes.statuses == {"ETH-USDT": MarketStatus.HALTED}
    assert data.status("ETH-USDT") is MarketStatus.HALTED
    assert data.status("BTC-USDT") is MarketStatus.OPEN


def test_recent_trades_are_a_bounded_ring_with_from_id_lookup() -> None:
    data = new_market_data(trade_history=5)
    for i in range(1, 9):
        data.apply(T0_NS + i * 10**6, [trade_event(i, i * 2, 100 + i, 1, Side.SELL if i % 2 else Side.BUY)])
    assert [t.trade_id for t in data.trades("BTC-USDT")] == [8, 10, 12, 14, 16]
    assert [t.trade_id for t in data.trades("BTC-USDT", limit=2)] == [14, 16]
    assert [t.trade_id for t in data.trades("BTC-USDT", limit=2, from_id=11)] == [12, 14]
    assert [t.trade_id for t in data.trades("BTC-USDT", from_id=1)] == [8, 10, 12, 14, 16]  # older ones are gone
    assert data.trades("BTC-USDT", from_id=17) == []
    last = data.trades("BTC-USDT", limit=1)[0]
    assert (last.price, last.time_ms, last.buyer_is_maker) == (108, T0_MS + 8, False)
    assert data.last_price("BTC-USDT") == 108
    assert data.last_price("ETH-USDT") is None


def test_klines_aggregate_trades_per_interval() -> None:
    data = new_market_data()
    start = T0_MS - T0_MS % MINUTE_MS  # 22:13:00
    trades = [  # (ms after the minute, price, qty, taker side)
        (1_000, 100, 2, Side.BUY),
        (2_000, 104, 1, Side.SELL),
        (30_000, 98, 3, Side.BUY),
        (59_999, 101, 1, Side.SELL),
        (60_000, 103, 5, Side.BUY),  # the next minute
    ]
    for i, (offset, price, qty, side) in enumerate(trades, 1):
        data.apply((start + offset) * 1_000_000, [trade_event(i, i, price, qty, side)])
    first, second = data.klines("BTC-USDT", "1m")
    assert (first.open_time, first.open, first.high, first.low, first.close) == (start, 100, 104, 98, 101)
    assert (first.count, first.first_trade_id, first.last_trade_id) == (4, 1, 4)
    assert first.volume == 7 * 10_000
    assert first.quote_volume == 100 * 2 + 104 + 98 * 3 + 101
    assert (first.taker_buy_volume, first.taker_buy_quote_volume) == (5 * 10_000, 100 * 2 + 98 * 3)
    assert (second.open_time, second.open, second.close, second.count) == (start + MINUTE_MS, 103, 103, 1)
    (hour,) = data.klines("BTC-USDT", "1h")
    assert (hour.open, hour.high, hour.low, hour.close, hour.count) == (100, 104, 98, 103, 5)
    seconds = data.klines("BTC-USDT", "1s")
    assert len(seconds) == 60  # from second 1 to second 60, the quiet ones filled
    assert [k.count for k in seconds if k.count] == [1] * 5


def minute_klines(data: MarketData, minutes: list[int], start: int) -> None:
    for i, minute in enumerate(minutes, 1):
        data.apply((start + minute * MINUTE_MS) * 1_000_000, [trade_event(i, i, 100 + minute, 1)])


def test_klines_follow_binance_query_semantics_and_fill_gaps_at_the_previous_close() -> None:
    data = new_market_data()
    start = T0_MS - T0_MS % MINUTE_MS
    minute_klines(data, [0, 1, 4, 5], start)

    def opens(rows: list) -> list[int]:
        return [(row.open_time - start) // MINUTE_MS for row in rows]

    rows = data.klines("BTC-USDT", "1m")
    assert opens(rows) == [0, 1, 2, 3, 4, 5]
    gap = rows[2]
    assert (gap.open, gap.high, gap.low, gap.close, gap.count, gap.volume, gap.first_trade_id) == (
        101,
        101,
        101,
        101,
        0,
        0,
        -1,
    )
    assert opens(data.klines("BTC-USDT", "1m", limit=2)) == [4, 5]  # the most recent
    assert opens(data.klines("BTC-USDT", "1m", start_ms=start + 1, limit=2)) == [1, 2]  # open >= startTime
    assert opens(data.klines("BTC-USDT", "1m", start_ms=start + MINUTE_MS, limit=2)) == [1, 2]
    assert opens(data.klines("BTC-USDT", "1m", end_ms=start + 3 * MINUTE_MS, limit=2)) == [2, 3]  # open <= endTime
    assert opens(data.klines("BTC-USDT", "1m", start_ms=start, end_ms=start + MINUTE_MS + 1)) == [0, 1]
    assert opens(data.klines("BTC-USDT", "1m", start_ms=start - DAY_MS, limit=1)) == [0]  # nothing before the first
    assert data.klines("BTC-USDT", "1m", start_ms=start + 6 * MINUTE_MS) == []
    now = start + 8 * MINUTE_MS + 5
    assert opens(data.klines("BTC-USDT", "1m", now_ms=now, limit=4)) == [5, 6, 7, 8]
    current = data.kline("BTC-USDT", "1m", now)
    assert current is not None and (current.count, current.close) == (0, 105)
    assert data.kline("BTC-USDT", "1m", start - 1) is None
    assert data.klines("ETH-USDT", "1m") == []


def test_kline_history_is_bounded_per_interval_but_keeps_a_day_of_minutes() -> None:
    data = new_market_data(kline_history=3)
    start = T0_MS - T0_MS % MINUTE_MS
    minute_klines(data, list(range(10)), start)
    seconds = data.klines("BTC-USDT", "1s", limit=1000)
    assert [k.close for k in seconds if k.count] == [107, 108, 109]  # only the last 3 kept
    assert seconds[0].open_time == start + 7 * MINUTE_MS
    assert len(data.klines("BTC-USDT", "1m", limit=1000)) == 10  # the 24-hour ticker needs them


def test_ticker_24h_covers_a_rolling_window_starting_on_the_minute() -> None:
    data = new_market_data()
    start = T0_MS - T0_MS % MINUTE_MS
    # trades at minute 0 (price 100), minute 10 (110), minute 1440 (a day later: 90), minute 1441 (95)
    for i, (minute, price) in enumerate([(0, 100), (10, 110), (1440, 90), (1441, 95)], 1):
        data.apply((start + minute * MINUTE_MS + 500) * 1_000_000, [trade_event(i, i, price, i)])
    data.apply(T0_NS, [BookDelta(9, "BTC-USDT", Side.BUY, 94, 3), BookDelta(9, "BTC-USDT", Side.SELL, 96, 4)])
    now = start + 1441 * MINUTE_MS + 30_000
    ticker = data.ticker_24h("BTC-USDT", now)
    # the window opens at minute 1 (now - 24 h, on the minute): minute 0's trade is the previous close
    assert ticker.open_time == start + MINUTE_MS
    assert ticker.close_time == now
    assert (ticker.open, ticker.high, ticker.low, ticker.last, ticker.prev_close) == (110, 110, 90, 95, 100)
    assert (ticker.count, ticker.first_trade_id, ticker.last_trade_id, ticker.last_qty) == (3, 2, 4, 4)
    assert ticker.volume == (2 + 3 + 4) * 10_000
    assert ticker.quote_volume == 110 * 2 + 90 * 3 + 95 * 4
    assert (ticker.bid_price, ticker.bid_qty, ticker.ask_price, ticker.ask_qty) == (94, 3, 96, 4)
    quiet = data.ticker_24h("BTC-USDT", now + 2 * DAY_MS)
    assert (quiet.count, quiet.volume, quiet.first_trade_id, quiet.last_trade_id) == (0, 0, -1, -1)
    assert (quiet.open, quiet.high, quiet.low, quiet.last) == (95, 95, 95, 95)
    never = data.ticker_24h("ETH-USDT", now)
    assert (never.open, never.last, never.count, never.last_qty) == (0, 0, 0, 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=COMMANDS, cuts=st.lists(st.integers(0, 80), max_size=5))
def test_replaying_the_same_events_gives_identical_state_in_any_batching(
    commands: list[Command], cuts: list[int]
) -> None:
    driver = Driver(step_ns=7_777_777_777)  # 7.8 s apart: several klines of every short interval
    driver.run(FUNDING)
    driver.run(commands)
    one = new_market_data()
    feed(one, driver.batches)
    two = new_market_data()
    for chunk in chunks(driver.batches, cuts):  # a consumer that restarts and is fed again from an earlier point
        feed(two, chunk)
        feed(two, chunk)
    assert one.digest() == two.digest()
    for market in MARKETS:
        bids, asks = driver.engine_book(market)
        snapshot = one.depth(market, 5_000)
        assert (snapshot.bids, snapshot.asks) == (bids, asks)  # the same book as the engine's
        assert one.klines(market, "1m", limit=1000) == two.klines(market, "1m", limit=1000)


def test_assets_must_cover_every_market() -> None:
    with pytest.raises(ValueError, match="market BTC-USDT: unknown asset 'USDT'; pass the assets of every market"):
        MarketData({"BTC": ASSETS["BTC"]}, MARKETS)
    with pytest.raises(ValueError, match="trade_history and kline_history must be at least 1"):
        MarketData(ASSETS, MARKETS, trade_history=0)


def test_limit_orders_through_the_engine_give_one_update_id_per_command() -> None:
    driver = Driver()
    driver.run(FUNDING)
    data = new_market_data()
    feed(data, driver.batches)
    batches = driver.run(
        [
            limit(1, "BTC-USDT", Side.BUY, 100, 5),
            limit(1, "BTC-USDT", Side.BUY, 99, 5),
            limit(2, "BTC-USDT", Side.SELL, 99, 7),  # takes 100 and part of 99: two levels, one update id
        ]
    )
    ids = [
        (c.books["BTC-USDT"].first_update_id, c.books["BTC-USDT"].last_update_id)
        for c in (data.apply(*b) for b in batches)
    ]
    assert ids == [(1, 1), (2, 2), (3, 3)]
    assert data.depth("BTC-USDT").bids == [(99, 3)]


def test_aggregate_trades_join_one_taker_orders_fills_at_one_price() -> None:
    driver = Driver()
    driver.run(FUNDING)
    data = new_market_data(trade_history=4)
    feed(data, driver.batches)
    makers = [limit(1, "BTC-USDT", Side.SELL, 100, 2), limit(2, "BTC-USDT", Side.SELL, 100, 3)]
    makers.append(limit(1, "BTC-USDT", Side.SELL, 101, 4))
    feed(data, driver.run(makers))
    changes = [data.apply(*batch) for batch in driver.run([limit(3, "BTC-USDT", Side.BUY, 101, 6)])]
    aggs = data.agg_trades("BTC-USDT")
    assert [(a.agg_id, a.price, a.qty, a.first_trade_id, a.last_trade_id, a.buyer_is_maker) for a in aggs] == [
        (1, 100, 5, 1, 2, False),  # two makers at 100, one taker: one aggregate
        (2, 101, 1, 3, 3, False),
    ]
    assert changes[0].agg_trades["BTC-USDT"] == aggs  # each in its final form
    feed(data, driver.run([limit(3, "BTC-USDT", Side.BUY, 101, 1), limit(2, "BTC-USDT", Side.BUY, 101, 1)]))
    aggs = data.agg_trades("BTC-USDT")
    assert [(a.agg_id, a.price, a.qty) for a in aggs] == [(1, 100, 5), (2, 101, 1), (3, 101, 1), (4, 101, 1)]
    times = [a.time_ms for a in aggs]
    assert [a.agg_id for a in data.agg_trades("BTC-USDT", limit=2)] == [3, 4]
    assert [a.agg_id for a in data.agg_trades("BTC-USDT", from_id=2, limit=2)] == [2, 3]
    assert [a.agg_id for a in data.agg_trades("BTC-USDT", start_ms=times[2])] == [3, 4]
    assert [a.agg_id for a in data.agg_trades("BTC-USDT", start_ms=times[0], end_ms=times[2], limit=2)] == [1, 2]
    assert [a.agg_id for a in data.agg_trades("BTC-USDT", end_ms=times[1])] == [1, 2]
    with pytest.raises(ValueError, match="either from_id or start_ms/end_ms"):
        data.agg_trades("BTC-USDT", from_id=1, start_ms=0)
    feed(data, driver.run([limit(2, "BTC-USDT", Side.BUY, 101, 1)]))
    assert [a.agg_id for a in data.agg_trades("BTC-USDT")] == [2, 3, 4, 5]  # a bounded ring, ids go on
