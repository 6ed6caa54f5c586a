"""Klines and the 24-hour ticker against a naive computation over the same trades (hypothesis)."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_framework.engine.events import Trade
from exchange_framework.marketdata.intervals import DAY_MS, INTERVALS, next_open, open_time
from exchange_framework.types import Side
from tests.marketdata.helpers import MARKETS, T0_NS, new_market_data

SPEC = MARKETS["BTC-USDT"]
T0_MS = T0_NS // 1_000_000

TRADES = st.lists(
    st.tuples(
        st.integers(0, 40 * 60 * 60 * 1000),  # ms after the previous trade's time, sometimes hours
        st.integers(1, 1_000),  # price
        st.integers(1, 50),  # qty
        st.sampled_from(Side),
    ),
    min_size=1,
    max_size=40,
).map(lambda rows: [(row[0] // (1 + (i % 3) * 1000), *row[1:]) for i, row in enumerate(rows)])  # mix of gaps


def timeline(rows: list[tuple[int, int, int, Side]]) -> list[tuple[int, int, int, Side]]:
    out, t = [], T0_MS
    for gap, price, qty, side in rows:
        t += gap
        out.append((t, price, qty, side))
    return out


def event(seq: int, t: int, price: int, qty: int, side: Side) -> Trade:
    base, quote = qty * SPEC.base_per_lot, price * qty * SPEC.quote_per_tick_lot
    return Trade(seq, "BTC-USDT", seq, price, qty, side, 1, 1, 2, 2, base, quote, 0, 0, 0)


@settings(max_examples=80, deadline=None)
@given(rows=TRADES, interval=st.sampled_from(INTERVALS), now_offset=st.integers(0, 3 * DAY_MS))
def test_klines_and_ticker_match_a_naive_computation(rows: list, interval: str, now_offset: int) -> None:
    trades = timeline(rows)
    data = new_market_data(kline_history=5_000)
    for seq, (t, price, qty, side) in enumerate(trades, 1):
        data.apply(t * 1_000_000, [event(seq, t, price, qty, side)])

    groups: dict[int, list[tuple[int, int, int, int, Side]]] = defaultdict(list)
    for seq, (t, price, qty, side) in enumerate(trades, 1):
        groups[open_time(interval, t)].append((seq, t, price, qty, side))
    klines = data.klines("BTC-USDT", interval, start_ms=0, limit=1_000)
    assert klines[0].open_time == min(groups)
    previous_close = None
    for kline in klines:  # contiguous, each the naive aggregate or a flat gap filler at the previous close
        group = groups.get(kline.open_time)
        if group is None:
            assert kline.count == 0 and kline.open == kline.high == kline.low == kline.close == previous_close
        else:
            prices = [g[2] for g in group]
            assert (kline.open, kline.high, kline.low, kline.close) == (prices[0], max(prices), min(prices), prices[-1])
            assert kline.count == len(group)
            assert (kline.first_trade_id, kline.last_trade_id) == (group[0][0], group[-1][0])
            assert kline.volume == sum(g[3] for g in group) * SPEC.base_per_lot
            assert kline.quote_volume == sum(g[2] * g[3] for g in group) * SPEC.quote_per_tick_lot
            assert kline.taker_buy_volume == sum(g[3] for g in group if g[4] is Side.BUY) * SPEC.base_per_lot
        previous_close = kline.close
    for before, after in pairwise(klines):
        assert after.open_time == next_open(interval, before.open_time)
    if len(klines) < 1_000:
        assert klines[-1].open_time == max(groups)

    now = trades[-1][0] + now_offset
    ticker = data.ticker_24h("BTC-USDT", now)
    start = open_time("1m", now - DAY_MS)
    window = [(seq, *row) for seq, row in enumerate(trades, 1) if start <= row[0] <= now]
    assert ticker.count == len(window)
    assert ticker.volume == sum(w[3] for w in window) * SPEC.base_per_lot
    if window:
        assert (ticker.open, ticker.last) == (window[0][2], window[-1][2])
        assert (ticker.high, ticker.low) == (max(w[2] for w in window), min(w[2] for w in window))
        assert (ticker.first_trade_id, ticker.last_trade_id) == (window[0][0], window[-1][0])
    before = [row for row in trades if row[0] < start]
    if window and before:
        assert ticker.prev_close == before[-1][1]
    assert ticker.last_qty == trades[-1][2]
