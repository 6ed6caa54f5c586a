"""Scenario tests: stop orders (trigger, ordering, cascades, holds) and iceberg orders (display, refill, queue).

BTC-USDT: 1 lot = 1_000 BTC units, 1 tick x 1 lot = 7 USDT units, maker -100 ppm, taker 2_500 ppm.
A buying taker of 1 lot pays ceil(2.5) = 3 BTC units of fee, of 2 lots 5, of 3 lots ceil(7.5) = 8; rebates on
quote amounts below 10_000 round down to 0.
"""

from __future__ import annotations

import pytest

from exchange_framework.engine.commands import CancelOrder, PlaceOrder
from exchange_framework.engine.events import (
    BookDelta,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    StopTriggered,
    Trade,
)
from exchange_framework.engine.snapshot import restore, snapshot, state_hash
from exchange_framework.types import CancelReason, RejectReason, Side, TimeInForce
from tests.engine.helpers import Runner, book_view, check_invariants, new_engine
from tests.engine.scenario import (
    BTC,
    BUY,
    LIMIT,
    SELL,
    STOP_LIMIT,
    STOP_MARKET,
    M,
    deltas,
    funded,
    limit,
    place,
    state,
    trade,
    trading,
)


def stop_limit(account: int, side: Side, stop: int, price: int, qty: int) -> PlaceOrder:
    return PlaceOrder(account, BTC, side, STOP_LIMIT, qty, price=price, stop_price=stop)


def stop_market(account: int, side: Side, stop: int, qty: int, quote_cap: int = 0) -> PlaceOrder:
    return PlaceOrder(account, BTC, side, STOP_MARKET, qty, stop_price=stop, quote_cap=quote_cap)


def with_last_price_100() -> Runner:
    """Accounts 1-4 funded; one lot traded at 100 (trade id 1) between accounts 3 and 4; the book is empty."""
    run = funded(1, 2, 3, 4)
    place(run, limit(3, SELL, 100, 1))
    place(run, limit(4, BUY, 100, 1))
    assert run.engine.books[BTC].last_price == 100
    assert book_view(run.engine)[BTC] == ([], [], [])
    return run


# ---------------------------------------------------------------------------------------------------------- stops


def test_stop_limit_buy_triggers_when_last_trade_rises_to_stop() -> None:
    run = with_last_price_100()
    s, events = place(run, stop_limit(1, BUY, stop=105, price=106, qty=2))
    assert events == [OrderAccepted(s, s, 1, BTC, BUY, STOP_LIMIT, 106, 2, 105, 106 * 2 * 7, "")]
    assert book_view(run.engine)[BTC] == ([], [], [(s,)])
    a, _ = place(run, limit(2, SELL, 105, 2))
    b, _ = place(run, limit(2, SELL, 106, 3))
    t, events = place(run, limit(3, BUY, 105, 1))
    assert trading(events) == [
        OrderAccepted(t, t, 3, BTC, BUY, LIMIT, 105, 1, 0, 735, ""),
        trade(t, 2, 105, 1, BUY, (a, 2), (t, 3), 1_000, 735, 0, 3),
        OrderFilled(t, t, 3, BTC, 0),
        StopTriggered(t, s, 1, BTC, 105),
        trade(t, 3, 105, 1, BUY, (a, 2), (s, 1), 1_000, 735, 0, 3, released=7),
        OrderFilled(t, a, 2, BTC, 0),
        trade(t, 4, 106, 1, BUY, (b, 2), (s, 1), 1_000, 742, 0, 3),
        OrderFilled(t, s, 1, BTC, 0),
    ]
    assert deltas(events) == [BookDelta(t, BTC, SELL, 105, 0), BookDelta(t, BTC, SELL, 106, 2)]
    assert book_view(run.engine)[BTC] == ([], [(b, 106, 2, 2)], [])
    assert run.engine.balance(1, "USDT") == (M - 735 - 742, 0)
    assert run.engine.balance(1, "BTC") == (M + 2_000 - 6, 0)
    check_invariants(run.engine, run.net_in)


def test_stop_market_sell_triggers_when_last_trade_falls_to_stop() -> None:
    run = with_last_price_100()
    s, events = place(run, stop_market(1, SELL, stop=95, qty=2))
    assert events == [OrderAccepted(s, s, 1, BTC, SELL, STOP_MARKET, 0, 2, 95, 2_000, "")]
    a, _ = place(run, limit(2, BUY, 95, 1))
    b, _ = place(run, limit(2, BUY, 94, 3))
    t, events = place(run, limit(3, SELL, 95, 1))
    # seller taker fees in quote: ceil(665/400 = 1.66) = 2, ceil(1_316/400 = 3.29) = 4
    assert trading(events) == [
        OrderAccepted(t, t, 3, BTC, SELL, LIMIT, 95, 1, 0, 1_000, ""),
        trade(t, 2, 95, 1, SELL, (a, 2), (t, 3), 1_000, 665, 0, 2),
        OrderFilled(t, a, 2, BTC, 0),
        OrderFilled(t, t, 3, BTC, 0),
        StopTriggered(t, s, 1, BTC, 95),
        trade(t, 3, 94, 2, SELL, (b, 2), (s, 1), 2_000, 1_316, 0, 4),
        OrderFilled(t, s, 1, BTC, 0),
    ]
    assert deltas(events) == [BookDelta(t, BTC, BUY, 95, 0), BookDelta(t, BTC, BUY, 94, 1)]
    assert run.engine.balance(1, "BTC") == (M - 2_000, 0)
    assert run.engine.balance(1, "USDT") == (M + 1_312, 0)
    check_invariants(run.engine, run.net_in)


def test_stops_wait_while_last_price_has_not_reached_them() -> None:
    run = with_last_price_100()
    buy_stop, _ = place(run, stop_limit(1, BUY, stop=105, price=106, qty=1))
    sell_stop, _ = place(run, stop_market(1, SELL, stop=95, qty=1))
    place(run, limit(2, SELL, 104, 1))
    _, events = place(run, limit(3, BUY, 104, 1))  # last 104 < 105
    place(run, limit(2, BUY, 96, 1))
    _, events2 = place(run, limit(3, SELL, 96, 1))  # last 96 > 95
    assert not any(isinstance(e, StopTriggered) for e in events + events2)
    assert book_view(run.engine)[BTC][2] == [(buy_stop,), (sell_stop,)]
    assert run.engine.balance(1, "USDT") == (M - 742, 742)
    assert run.engine.balance(1, "BTC") == (M - 1_000, 1_000)
    check_invariants(run.engine, run.net_in)


def test_stops_triggered_by_one_trade_run_in_order_id_order() -> None:
    run = with_last_price_100()
    # s1 is older but has the higher stop price: it must still run first
    s1, _ = place(run, stop_limit(1, BUY, stop=104, price=110, qty=1))
    s2, _ = place(run, stop_limit(2, BUY, stop=102, price=110, qty=1))
    a, _ = place(run, limit(3, SELL, 105, 1))
    b, _ = place(run, limit(3, SELL, 106, 1))
    c, _ = place(run, limit(3, SELL, 107, 1))
    t, events = place(run, limit(4, BUY, 105, 1))
    assert trading(events) == [
        OrderAccepted(t, t, 4, BTC, BUY, LIMIT, 105, 1, 0, 735, ""),
        trade(t, 2, 105, 1, BUY, (a, 3), (t, 4), 1_000, 735, 0, 3),
        OrderFilled(t, a, 3, BTC, 0),
        OrderFilled(t, t, 4, BTC, 0),
        StopTriggered(t, s1, 1, BTC, 105),
        trade(t, 3, 106, 1, BUY, (b, 3), (s1, 1), 1_000, 742, 0, 3, released=28),
        OrderFilled(t, b, 3, BTC, 0),
        OrderFilled(t, s1, 1, BTC, 0),
        StopTriggered(t, s2, 2, BTC, 106),
        trade(t, 4, 107, 1, BUY, (c, 3), (s2, 2), 1_000, 749, 0, 3, released=21),
        OrderFilled(t, c, 3, BTC, 0),
        OrderFilled(t, s2, 2, BTC, 0),
    ]
    assert deltas(events) == [
        BookDelta(t, BTC, SELL, 105, 0),
        BookDelta(t, BTC, SELL, 106, 0),
        BookDelta(t, BTC, SELL, 107, 0),
    ]
    assert book_view(run.engine)[BTC] == ([], [], [])
    check_invariants(run.engine, run.net_in)


def test_stop_cascade_a_triggered_stops_trade_triggers_the_next_stop() -> None:
    run = with_last_price_100()
    a, _ = place(run, limit(3, SELL, 102, 1))
    b, _ = place(run, limit(3, SELL, 103, 1))
    c, _ = place(run, limit(3, SELL, 104, 1))
    s1, _ = place(run, stop_limit(1, BUY, stop=102, price=103, qty=1))
    s2, _ = place(run, stop_limit(2, BUY, stop=103, price=104, qty=1))
    t, events = place(run, limit(4, BUY, 102, 1))
    # the trade at 102 only reaches s1; s1's trade at 103 then reaches s2
    assert trading(events) == [
        OrderAccepted(t, t, 4, BTC, BUY, LIMIT, 102, 1, 0, 714, ""),
        trade(t, 2, 102, 1, BUY, (a, 3), (t, 4), 1_000, 714, 0, 3),
        OrderFilled(t, a, 3, BTC, 0),
        OrderFilled(t, t, 4, BTC, 0),
        StopTriggered(t, s1, 1, BTC, 102),
        trade(t, 3, 103, 1, BUY, (b, 3), (s1, 1), 1_000, 721, 0, 3),
        OrderFilled(t, b, 3, BTC, 0),
        OrderFilled(t, s1, 1, BTC, 0),
        StopTriggered(t, s2, 2, BTC, 103),
        trade(t, 4, 104, 1, BUY, (c, 3), (s2, 2), 1_000, 728, 0, 3),
        OrderFilled(t, c, 3, BTC, 0),
        OrderFilled(t, s2, 2, BTC, 0),
    ]
    assert run.engine.books[BTC].last_price == 104
    assert book_view(run.engine)[BTC] == ([], [], [])
    check_invariants(run.engine, run.net_in)


def test_triggered_stop_limit_that_cannot_trade_rests_at_its_limit() -> None:
    run = with_last_price_100()
    s, _ = place(run, stop_limit(1, SELL, stop=98, price=97, qty=2))
    place(run, limit(2, BUY, 98, 1))
    t, events = place(run, limit(3, SELL, 98, 1))
    assert StopTriggered(t, s, 1, BTC, 98) in events
    assert BookDelta(t, BTC, SELL, 97, 2) in events
    assert book_view(run.engine)[BTC] == ([], [(s, 97, 2, 2)], [])
    assert run.engine.balance(1, "BTC") == (M - 2_000, 2_000)
    check_invariants(run.engine, run.net_in)


@pytest.mark.parametrize(
    ("side", "stop", "ok"),
    [
        (BUY, 100, False),  # last 100 >= stop 100
        (BUY, 99, False),
        (BUY, 101, True),
        (SELL, 100, False),  # last 100 <= stop 100
        (SELL, 101, False),
        (SELL, 99, True),
    ],
)
@pytest.mark.parametrize("kind", ["stop_limit", "stop_market"])
def test_stop_that_would_trigger_immediately_is_rejected(side: Side, stop: int, ok: bool, kind: str) -> None:
    run = with_last_price_100()
    if kind == "stop_limit":
        cmd = stop_limit(1, side, stop=stop, price=stop, qty=1)
    else:
        cmd = stop_market(1, side, stop=stop, qty=1, quote_cap=2_000 if side is BUY else 0)
    before = state(run.engine)
    seq, events = place(run, cmd)
    if ok:
        assert [type(e) for e in events] == [OrderAccepted]
        assert book_view(run.engine)[BTC][2] == [(seq,)]
    else:
        assert events == [OrderRejected(seq, 1, BTC, RejectReason.STOP_WOULD_TRIGGER_IMMEDIATELY, "")]
        assert state(run.engine) == before
    check_invariants(run.engine, run.net_in)


def test_stop_at_any_price_is_accepted_before_the_first_trade_and_fires_on_it() -> None:
    run = funded(1, 2, 3)
    buy_stop, events = place(run, stop_market(1, BUY, stop=50, qty=1, quote_cap=1_000))
    assert [type(e) for e in events] == [OrderAccepted]
    sell_stop, events = place(run, stop_market(1, SELL, stop=50, qty=1))
    assert [type(e) for e in events] == [OrderAccepted]
    a, _ = place(run, limit(2, SELL, 100, 2))
    t, events = place(run, limit(3, BUY, 100, 1))
    # first trade at 100: the buy stop (100 >= 50) fires, the sell stop (100 > 50) keeps waiting
    assert trading(events)[-4:] == [
        StopTriggered(t, buy_stop, 1, BTC, 100),
        trade(t, 2, 100, 1, BUY, (a, 2), (buy_stop, 1), 1_000, 700, 0, 3),
        OrderFilled(t, a, 2, BTC, 0),
        OrderFilled(t, buy_stop, 1, BTC, 300),
    ]
    assert book_view(run.engine)[BTC] == ([], [], [(sell_stop,)])
    check_invariants(run.engine, run.net_in)


def test_cancelling_a_waiting_stop_releases_its_hold() -> None:
    run = with_last_price_100()
    s1, _ = place(run, stop_limit(1, BUY, stop=105, price=106, qty=2))
    s2, _ = place(run, stop_market(1, BUY, stop=105, qty=2, quote_cap=3_000))
    s3, _ = place(run, stop_market(1, SELL, stop=90, qty=3))
    assert run.engine.balance(1, "USDT") == (M - 1_484 - 3_000, 4_484)
    seq, events = place(run, CancelOrder(1, BTC, s1))
    assert events == [OrderCancelled(seq, s1, 1, BTC, CancelReason.USER, 2, 1_484)]
    seq, events = place(run, CancelOrder(1, BTC, s2))
    assert events == [OrderCancelled(seq, s2, 1, BTC, CancelReason.USER, 2, 3_000)]
    seq, events = place(run, CancelOrder(1, BTC, s3))
    assert events == [OrderCancelled(seq, s3, 1, BTC, CancelReason.USER, 3, 3_000)]
    assert run.engine.balance(1, "USDT") == (M, 0)
    assert run.engine.balance(1, "BTC") == (M, 0)
    # a trade through the old stop prices triggers nothing any more
    place(run, limit(2, SELL, 105, 1))
    _, events = place(run, limit(3, BUY, 105, 1))
    assert not any(isinstance(e, StopTriggered) for e in events)
    check_invariants(run.engine, run.net_in)


def test_stop_market_buy_needs_a_quote_cap_and_spends_within_it() -> None:
    run = with_last_price_100()
    seq, events = place(run, stop_market(1, BUY, stop=105, qty=2))
    assert events == [OrderRejected(seq, 1, BTC, RejectReason.MARKET_BUY_NEEDS_CAP, "")]
    s, events = place(run, stop_market(1, BUY, stop=105, qty=2, quote_cap=3_000))
    assert events == [OrderAccepted(s, s, 1, BTC, BUY, STOP_MARKET, 0, 2, 105, 3_000, "")]
    place(run, limit(2, SELL, 105, 1))
    b, _ = place(run, limit(2, SELL, 106, 2))
    t, events = place(run, limit(3, BUY, 105, 1))
    # market buy: no price-improvement release; 2@106 = 1_484 spent, 1_516 of the cap released
    assert trading(events)[-4:] == [
        StopTriggered(t, s, 1, BTC, 105),
        trade(t, 3, 106, 2, BUY, (b, 2), (s, 1), 2_000, 1_484, 0, 5),
        OrderFilled(t, b, 2, BTC, 0),
        OrderFilled(t, s, 1, BTC, 1_516),
    ]
    assert run.engine.balance(1, "USDT") == (M - 1_484, 0)
    check_invariants(run.engine, run.net_in)


def test_quote_only_stop_market_buy_can_be_snapshotted_and_restored() -> None:
    """Regression: the waiting stop's internal open quantity (once 2**100) made snapshot() raise OverflowError."""
    run = with_last_price_100()
    s, events = place(run, stop_market(1, BUY, stop=105, qty=0, quote_cap=5_000))
    assert events == [OrderAccepted(s, s, 1, BTC, BUY, STOP_MARKET, 0, 0, 105, 5_000, "")]
    check_invariants(run.engine, run.net_in)
    data = snapshot(run.engine)
    resumed = new_engine()
    restore(resumed, data)
    assert state_hash(resumed) == state_hash(run.engine)


# ---------------------------------------------------------------------------------------------------------- icebergs


@pytest.mark.parametrize(("qty", "fillable"), [(12, True), (13, False)])
def test_fok_counts_iceberg_hidden_qty_through_refills(qty: int, fillable: bool) -> None:
    run = funded(1, 2, 3)
    i, _ = place(run, limit(1, SELL, 100, 10, display_qty=3))
    o, _ = place(run, limit(2, SELL, 100, 2))
    before = state(run.engine)
    t, events = place(run, limit(3, BUY, 100, qty, tif=TimeInForce.FOK))
    if fillable:
        assert [(e.maker_order_id, e.qty) for e in events if isinstance(e, Trade)] == [
            (i, 3),
            (o, 2),
            (i, 3),
            (i, 3),
            (i, 1),
        ]
        assert trading(events)[-1] == OrderFilled(t, t, 3, BTC, 0)
    else:
        assert events == [OrderRejected(t, 3, BTC, RejectReason.FOK_NOT_FILLABLE, "")]
        assert state(run.engine) == before
    check_invariants(run.engine, run.net_in)


def test_iceberg_shows_only_its_display_qty() -> None:
    run = funded(1)
    i, events = place(run, limit(1, SELL, 100, 10, display_qty=3))
    assert events == [
        OrderAccepted(i, i, 1, BTC, SELL, LIMIT, 100, 10, 0, 10_000, ""),
        BookDelta(i, BTC, SELL, 100, 3),
    ]
    assert book_view(run.engine)[BTC][1] == [(i, 100, 10, 3)]
    assert run.engine.balance(1, "BTC") == (M - 10_000, 10_000)
    check_invariants(run.engine, run.net_in)


def test_iceberg_refill_goes_to_back_of_queue() -> None:
    run = funded(1, 2, 3, 4)
    i, _ = place(run, limit(1, SELL, 100, 10, display_qty=3))
    later, events = place(run, limit(2, SELL, 100, 2))
    assert deltas(events) == [BookDelta(later, BTC, SELL, 100, 5)]
    t1, events = place(run, limit(3, BUY, 100, 3))
    assert events == [
        OrderAccepted(t1, t1, 3, BTC, BUY, LIMIT, 100, 3, 0, 2_100, ""),
        trade(t1, 1, 100, 3, BUY, (i, 1), (t1, 3), 3_000, 2_100, 0, 8),
        OrderFilled(t1, t1, 3, BTC, 0),
        BookDelta(t1, BTC, SELL, 100, 5),  # the refilled slice: still 3 + 2 visible
    ]
    # the refilled slice now queues behind the order that arrived later
    assert book_view(run.engine)[BTC][1] == [(later, 100, 2, 2), (i, 100, 7, 3)]
    t2, events = place(run, limit(4, BUY, 100, 3))
    assert trading(events) == [
        OrderAccepted(t2, t2, 4, BTC, BUY, LIMIT, 100, 3, 0, 2_100, ""),
        trade(t2, 2, 100, 2, BUY, (later, 2), (t2, 4), 2_000, 1_400, 0, 5),
        OrderFilled(t2, later, 2, BTC, 0),
        trade(t2, 3, 100, 1, BUY, (i, 1), (t2, 4), 1_000, 700, 0, 3),
        OrderFilled(t2, t2, 4, BTC, 0),
    ]
    assert deltas(events) == [BookDelta(t2, BTC, SELL, 100, 2)]
    assert book_view(run.engine)[BTC][1] == [(i, 100, 6, 2)]
    check_invariants(run.engine, run.net_in)


def test_iceberg_whole_hidden_qty_taken_by_one_large_taker() -> None:
    run = funded(1, 2, 3)
    i, _ = place(run, limit(1, SELL, 100, 10, display_qty=3))
    other, _ = place(run, limit(2, SELL, 100, 2))
    t, events = place(run, limit(3, BUY, 100, 12))
    # slices of 3, the other order (queued ahead of the first refill), then refills until the iceberg is done
    assert trading(events) == [
        OrderAccepted(t, t, 3, BTC, BUY, LIMIT, 100, 12, 0, 8_400, ""),
        trade(t, 1, 100, 3, BUY, (i, 1), (t, 3), 3_000, 2_100, 0, 8),
        trade(t, 2, 100, 2, BUY, (other, 2), (t, 3), 2_000, 1_400, 0, 5),
        OrderFilled(t, other, 2, BTC, 0),
        trade(t, 3, 100, 3, BUY, (i, 1), (t, 3), 3_000, 2_100, 0, 8),
        trade(t, 4, 100, 3, BUY, (i, 1), (t, 3), 3_000, 2_100, 0, 8),
        trade(t, 5, 100, 1, BUY, (i, 1), (t, 3), 1_000, 700, 0, 3),
        OrderFilled(t, i, 1, BTC, 0),
        OrderFilled(t, t, 3, BTC, 0),
    ]
    assert deltas(events) == [BookDelta(t, BTC, SELL, 100, 0)]
    assert sum(e.qty for e in events if isinstance(e, Trade) and e.maker_order_id == i) == 10
    assert run.engine.balance(1, "BTC") == (M - 10_000, 0)
    assert run.engine.balance(1, "USDT") == (M + 7_000, 0)
    assert run.engine.balance(3, "BTC") == (M + 12_000 - 32, 0)
    assert run.engine.balance(3, "USDT") == (M - 8_400, 0)
    check_invariants(run.engine, run.net_in)


def test_iceberg_that_crosses_trades_first_then_rests_showing_display() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 2))
    i, events = place(run, limit(2, BUY, 100, 10, display_qty=3))
    assert [(e.maker_order_id, e.qty) for e in events if isinstance(e, Trade)] == [(a, 2)]
    assert deltas(events) == [BookDelta(i, BTC, SELL, 100, 0), BookDelta(i, BTC, BUY, 100, 3)]
    assert book_view(run.engine)[BTC][0] == [(i, 100, 8, 3)]
    assert run.engine.balance(2, "USDT") == (M - 7_000, 8 * 700)
    check_invariants(run.engine, run.net_in)


def test_iceberg_cancel_releases_hold_of_hidden_qty_too() -> None:
    run = funded(1, 2)
    i, _ = place(run, limit(1, SELL, 100, 10, display_qty=3))
    place(run, limit(2, BUY, 100, 4))  # 3 + 1 from the first refill
    assert book_view(run.engine)[BTC][1] == [(i, 100, 6, 2)]
    seq, events = place(run, CancelOrder(1, BTC, i))
    assert events == [
        OrderCancelled(seq, i, 1, BTC, CancelReason.USER, 6, 6_000),
        BookDelta(seq, BTC, SELL, 100, 0),
    ]
    assert run.engine.balance(1, "BTC") == (M - 4_000, 0)
    check_invariants(run.engine, run.net_in)


def test_triggered_ioc_stop_limit_cancels_its_remainder() -> None:
    run = with_last_price_100()
    s, _ = place(run, PlaceOrder(1, BTC, BUY, STOP_LIMIT, 3, price=105, stop_price=105, tif=TimeInForce.IOC))
    a, _ = place(run, limit(2, SELL, 105, 2))
    t, events = place(run, limit(3, BUY, 105, 1))
    assert trading(events)[-4:] == [
        StopTriggered(t, s, 1, BTC, 105),
        trade(t, 3, 105, 1, BUY, (a, 2), (s, 1), 1_000, 735, 0, 3),
        OrderFilled(t, a, 2, BTC, 0),
        OrderCancelled(t, s, 1, BTC, CancelReason.IOC_REMAINDER, 2, 2 * 735),
    ]
    assert book_view(run.engine)[BTC] == ([], [], [])
    check_invariants(run.engine, run.net_in)


def test_sell_stop_triggers_on_a_trade_below_it_even_if_the_sweep_ends_above() -> None:
    run = funded(1, 2, 3)
    place(run, limit(2, SELL, 110, 1))
    place(run, limit(3, BUY, 110, 1))  # last price 110
    s, _ = place(run, stop_market(1, SELL, stop=105, qty=1))
    place(run, limit(2, BUY, 90, 1))
    place(run, limit(2, SELL, 100, 1))
    place(run, limit(2, SELL, 112, 1))
    _, events = place(run, limit(3, BUY, 112, 2))
    assert [e.price for e in events if isinstance(e, Trade)][:2] == [100, 112]
    assert any(isinstance(e, StopTriggered) and e.order_id == s for e in events)
    assert book_view(run.engine)[BTC][2] == []
    check_invariants(run.engine, run.net_in)
