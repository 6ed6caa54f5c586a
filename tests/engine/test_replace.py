"""Scenario tests: cancel (by id, by client order id), cancel-all (one market, all markets) and cancel-replace.

BTC-USDT: 1 lot = 1_000 BTC units, 1 tick x 1 lot = 7 USDT units. ETH-USDT: 1 lot = 10 ETH units, 3 USDT per
tick x lot.
"""

from __future__ import annotations

from exchange_framework.engine.commands import CancelAll, CancelOrder, CreditFunds, PlaceOrder, ReplaceOrder
from exchange_framework.engine.events import (
    BookDelta,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    StopTriggered,
    Trade,
)
from exchange_framework.types import CancelReason, OrderType, RejectReason
from tests.engine.helpers import Runner, book_view, check_invariants
from tests.engine.scenario import BTC, BUY, ETH, SELL, M, funded, limit, orders_copy, place, state, trading

USER = CancelReason.USER


# ---------------------------------------------------------------------------------------------------------- cancel


def test_cancel_by_order_id_releases_hold_and_empties_level() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, BUY, 100, 3))
    b, _ = place(run, limit(2, BUY, 100, 1))
    seq, events = place(run, CancelOrder(1, BTC, order_id=a))
    assert events == [
        OrderCancelled(seq, a, 1, BTC, USER, 3, 2_100),
        BookDelta(seq, BTC, BUY, 100, 1),
    ]
    assert book_view(run.engine)[BTC][0] == [(b, 100, 1, 1)]
    assert run.engine.balance(1, "USDT") == (M, 0)
    assert a not in run.engine.orders
    check_invariants(run.engine, run.net_in)


def test_cancel_by_client_order_id_and_the_id_can_be_reused() -> None:
    run = funded(1)
    a, _ = place(run, limit(1, SELL, 100, 2, client_order_id="abc"))
    seq, events = place(run, CancelOrder(1, BTC, client_order_id="abc"))
    assert events == [
        OrderCancelled(seq, a, 1, BTC, USER, 2, 2_000),
        BookDelta(seq, BTC, SELL, 100, 0),
    ]
    again, events = place(run, limit(1, SELL, 101, 1, client_order_id="abc"))
    assert events[0] == OrderAccepted(again, again, 1, BTC, SELL, OrderType.LIMIT, 101, 1, 0, 1_000, "abc")
    seq, events = place(run, CancelOrder(1, BTC, client_order_id="abc"))
    assert trading(events) == [OrderCancelled(seq, again, 1, BTC, USER, 1, 1_000)]
    check_invariants(run.engine, run.net_in)


def _orders_in_two_markets() -> tuple[Runner, list[int]]:
    """Account 1: BTC buy 2@100, ETH sell 4@200, BTC stop sell, BTC sell 1@120. Account 2: BTC buy 1@100."""
    run = funded(1, 2)
    a, _ = place(run, limit(1, BUY, 100, 2))
    b, _ = place(run, limit(1, SELL, 200, 4, market=ETH))
    c, _ = place(run, PlaceOrder(1, BTC, SELL, OrderType.STOP_LIMIT, 1, price=90, stop_price=95))
    d, _ = place(run, limit(1, SELL, 120, 1))
    e, _ = place(run, limit(2, BUY, 100, 1))
    return run, [a, b, c, d, e]


def test_cancel_all_in_one_market_cancels_stops_too_and_leaves_other_markets() -> None:
    run, (a, b, c, d, e) = _orders_in_two_markets()
    seq, events = place(run, CancelAll(1, BTC))
    # the cancels in order id order, then one book delta per changed level
    assert events == [
        OrderCancelled(seq, a, 1, BTC, USER, 2, 1_400),
        OrderCancelled(seq, c, 1, BTC, USER, 1, 1_000),
        OrderCancelled(seq, d, 1, BTC, USER, 1, 1_000),
        BookDelta(seq, BTC, BUY, 100, 1),
        BookDelta(seq, BTC, SELL, 120, 0),
    ]
    assert book_view(run.engine)[BTC] == ([(e, 100, 1, 1)], [], [])
    assert book_view(run.engine)[ETH] == ([], [(b, 200, 4, 4)], [])
    assert run.engine.balance(1, "USDT") == (M, 0)
    assert run.engine.balance(1, "BTC") == (M, 0)
    assert run.engine.balance(1, "ETH") == (M - 40, 40)
    check_invariants(run.engine, run.net_in)


def test_cancel_all_across_markets_cancels_every_open_order_of_the_account() -> None:
    run, (a, b, c, d, e) = _orders_in_two_markets()
    seq, events = place(run, CancelAll(1))
    # in order id order, whatever the market; then one book delta per changed level, markets included
    assert events == [
        OrderCancelled(seq, a, 1, BTC, USER, 2, 1_400),
        OrderCancelled(seq, b, 1, ETH, USER, 4, 40),
        OrderCancelled(seq, c, 1, BTC, USER, 1, 1_000),
        OrderCancelled(seq, d, 1, BTC, USER, 1, 1_000),
        BookDelta(seq, BTC, BUY, 100, 1),
        BookDelta(seq, ETH, SELL, 200, 0),
        BookDelta(seq, BTC, SELL, 120, 0),
    ]
    assert list(run.engine.orders) == [e]
    for asset in ("USDT", "BTC", "ETH"):
        assert run.engine.balance(1, asset) == (M, 0)
    # nothing left: a second cancel-all is a no-op
    _, events = place(run, CancelAll(1))
    assert events == []
    check_invariants(run.engine, run.net_in)


# ---------------------------------------------------------------------------------------------------------- replace


def test_replace_same_price_smaller_qty_keeps_priority() -> None:
    run = funded(1, 2, 3)
    a, _ = place(run, limit(1, SELL, 100, 5))
    b, _ = place(run, limit(2, SELL, 100, 3))
    seq, events = place(run, ReplaceOrder(1, BTC, a, 100, 2))
    assert events == [
        OrderReplaced(seq, a, 1, BTC, 100, 2, True, -3_000),
        BookDelta(seq, BTC, SELL, 100, 5),
    ]
    assert book_view(run.engine)[BTC][1] == [(a, 100, 2, 2), (b, 100, 3, 3)]
    assert run.engine.balance(1, "BTC") == (M - 2_000, 2_000)
    _, events = place(run, limit(3, BUY, 100, 2))
    assert [e.maker_order_id for e in events if isinstance(e, Trade)] == [a]
    check_invariants(run.engine, run.net_in)


def test_replace_same_price_larger_qty_loses_priority() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 5))
    b, _ = place(run, limit(2, SELL, 100, 3))
    seq, events = place(run, ReplaceOrder(1, BTC, a, 100, 7))
    assert events == [
        OrderReplaced(seq, a, 1, BTC, 100, 7, False, 2_000),
        BookDelta(seq, BTC, SELL, 100, 10),
    ]
    assert book_view(run.engine)[BTC][1] == [(b, 100, 3, 3), (a, 100, 7, 7)]
    assert run.engine.balance(1, "BTC") == (M - 7_000, 7_000)
    check_invariants(run.engine, run.net_in)


def test_replace_to_new_price_loses_priority_even_when_qty_shrinks() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 5))
    b, _ = place(run, limit(2, SELL, 101, 3))
    seq, events = place(run, ReplaceOrder(1, BTC, a, 101, 4))
    assert events == [
        OrderReplaced(seq, a, 1, BTC, 101, 4, False, -1_000),
        BookDelta(seq, BTC, SELL, 100, 0),
        BookDelta(seq, BTC, SELL, 101, 7),
    ]
    assert book_view(run.engine)[BTC][1] == [(b, 101, 3, 3), (a, 101, 4, 4)]
    check_invariants(run.engine, run.net_in)


def test_replace_buy_to_lower_price_releases_the_difference() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, BUY, 100, 5))
    b, _ = place(run, limit(2, BUY, 98, 1))
    seq, events = place(run, ReplaceOrder(1, BTC, a, 98, 5))
    # hold 100*5*7 = 3_500 -> 98*5*7 = 3_430
    assert trading(events) == [OrderReplaced(seq, a, 1, BTC, 98, 5, False, -70)]
    assert book_view(run.engine)[BTC][0] == [(b, 98, 1, 1), (a, 98, 5, 5)]
    assert run.engine.balance(1, "USDT") == (M - 3_430, 3_430)
    check_invariants(run.engine, run.net_in)


def test_replace_back_to_the_same_price_does_not_restore_lost_priority() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 5))
    b, _ = place(run, limit(2, SELL, 100, 3))
    place(run, ReplaceOrder(1, BTC, a, 101, 5))
    place(run, ReplaceOrder(1, BTC, a, 100, 4))
    assert book_view(run.engine)[BTC][1] == [(b, 100, 3, 3), (a, 100, 4, 4)]
    check_invariants(run.engine, run.net_in)


def test_replace_that_crosses_trades_immediately() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, BUY, 99, 2))
    b, _ = place(run, limit(2, SELL, 101, 3))
    seq, events = place(run, ReplaceOrder(1, BTC, a, 102, 2))
    # hold 99*2*7 = 1_386 -> 102*2*7 = 1_428 (+42); trade at 101 releases (102-101)*2*7 = 14
    assert events == [
        OrderReplaced(seq, a, 1, BTC, 102, 2, False, 42),
        Trade(seq, BTC, 1, 101, 2, BUY, b, 2, a, 1, 2_000, 1_414, 0, 5, 14),
        OrderFilled(seq, a, 1, BTC, 0),
        BookDelta(seq, BTC, BUY, 99, 0),
        BookDelta(seq, BTC, SELL, 101, 1),
    ]
    assert a not in run.engine.orders
    assert run.engine.balance(1, "USDT") == (M - 1_414, 0)
    assert run.engine.balance(1, "BTC") == (M + 1_995, 0)
    check_invariants(run.engine, run.net_in)


def test_replace_needing_more_balance_than_available_is_rejected_and_changes_nothing() -> None:
    run = funded(2)
    run(CreditFunds(4, "USDT", 1_400))
    a, _ = place(run, limit(4, BUY, 100, 2, client_order_id="x"))
    place(run, limit(2, BUY, 100, 1))
    assert run.engine.balance(4, "USDT") == (0, 1_400)
    for price, qty in ((100, 3), (101, 2)):
        before, orders_before = state(run.engine), orders_copy(run.engine)
        seq, events = place(run, ReplaceOrder(4, BTC, a, price, qty))
        assert events == [OrderRejected(seq, 4, BTC, RejectReason.INSUFFICIENT_BALANCE, "x", a)]
        assert state(run.engine) == before
        assert orders_copy(run.engine) == orders_before
    # a replace that needs less is fine
    seq, events = place(run, ReplaceOrder(4, BTC, a, 99, 2))
    assert trading(events) == [OrderReplaced(seq, a, 4, BTC, 99, 2, False, -14)]
    check_invariants(run.engine, run.net_in)


def test_replace_with_same_price_and_qty_is_rejected_no_change() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 5, client_order_id="c"))
    place(run, limit(2, BUY, 100, 2))  # 3 lots remain open
    before = state(run.engine)
    seq, events = place(run, ReplaceOrder(1, BTC, a, 100, 3))
    assert events == [OrderRejected(seq, 1, BTC, RejectReason.REPLACE_NO_CHANGE, "c", a)]
    assert state(run.engine) == before
    check_invariants(run.engine, run.net_in)


def test_replacing_a_waiting_stop_is_not_supported() -> None:
    run = funded(1)
    s, _ = place(run, PlaceOrder(1, BTC, BUY, OrderType.STOP_LIMIT, 2, price=106, stop_price=105))
    before = state(run.engine)
    seq, events = place(run, ReplaceOrder(1, BTC, s, 107, 2))
    assert events == [OrderRejected(seq, 1, BTC, RejectReason.REPLACE_NOT_SUPPORTED, "", s)]
    assert state(run.engine) == before
    check_invariants(run.engine, run.net_in)


def test_post_only_order_replaced_to_a_crossing_price_is_rejected() -> None:
    run = funded(1, 2)
    place(run, limit(2, SELL, 105, 1))
    a, _ = place(run, limit(1, BUY, 100, 2, post_only=True))
    for price in (105, 106):
        before = state(run.engine)
        seq, events = place(run, ReplaceOrder(1, BTC, a, price, 2))
        assert events == [OrderRejected(seq, 1, BTC, RejectReason.POST_ONLY_WOULD_CROSS, "", a)]
        assert state(run.engine) == before
    seq, events = place(run, ReplaceOrder(1, BTC, a, 104, 2))
    assert trading(events) == [OrderReplaced(seq, a, 1, BTC, 104, 2, False, 56)]
    assert book_view(run.engine)[BTC][0] == [(a, 104, 2, 2)]
    check_invariants(run.engine, run.net_in)


def test_replace_iceberg_keeps_priority_and_its_display() -> None:
    run = funded(1, 2)
    i, _ = place(run, limit(1, SELL, 100, 10, display_qty=3))
    o, _ = place(run, limit(2, SELL, 100, 2))
    seq, events = place(run, ReplaceOrder(1, BTC, i, 100, 6))
    assert trading(events) == [OrderReplaced(seq, i, 1, BTC, 100, 6, True, -4_000)]
    assert book_view(run.engine)[BTC][1] == [(i, 100, 6, 3), (o, 100, 2, 2)]
    # an iceberg cannot be shrunk to its display size or below
    seq, events = place(run, ReplaceOrder(1, BTC, i, 100, 3))
    assert events == [OrderRejected(seq, 1, BTC, RejectReason.INVALID_ORDER_PARAMETERS, "", i)]
    check_invariants(run.engine, run.net_in)


def test_replaced_order_can_still_be_cancelled_by_client_order_id() -> None:
    run = funded(1)
    a, _ = place(run, limit(1, BUY, 100, 2, client_order_id="keep-me"))
    place(run, ReplaceOrder(1, BTC, a, 90, 3))
    seq, events = place(run, CancelOrder(1, BTC, client_order_id="keep-me"))
    assert trading(events) == [OrderCancelled(seq, a, 1, BTC, USER, 3, 90 * 3 * 7)]
    assert run.engine.balance(1, "USDT") == (M, 0)
    check_invariants(run.engine, run.net_in)


def test_replace_into_own_resting_order_is_stopped_by_self_trade_prevention() -> None:
    run = funded(1)
    s, _ = place(run, limit(1, SELL, 100, 1))
    a, _ = place(run, limit(1, BUY, 99, 2))
    seq, events = place(run, ReplaceOrder(1, BTC, a, 101, 2))
    # the replaced order is the taker: CANCEL_NEWEST (its default) cancels it, the own ask stays
    assert trading(events) == [
        OrderReplaced(seq, a, 1, BTC, 101, 2, False, 28),
        OrderCancelled(seq, a, 1, BTC, CancelReason.SELF_TRADE, 2, 101 * 2 * 7),
    ]
    assert book_view(run.engine)[BTC] == ([], [(s, 100, 1, 1)], [])
    assert run.engine.balance(1, "USDT") == (M, 0)
    check_invariants(run.engine, run.net_in)


def test_replace_that_trades_triggers_waiting_stops() -> None:
    run = funded(1, 2, 3)
    place(run, limit(2, SELL, 100, 1))
    place(run, limit(3, BUY, 100, 1))  # trade 1, last price 100
    stop, _ = place(run, PlaceOrder(3, BTC, SELL, OrderType.STOP_MARKET, 1, stop_price=99))
    bid98, _ = place(run, limit(2, BUY, 98, 1))
    a, _ = place(run, limit(1, SELL, 105, 1))
    bid99, _ = place(run, limit(2, BUY, 99, 1))
    seq, events = place(run, ReplaceOrder(1, BTC, a, 99, 1))
    # the replaced ask trades at 99, which fires the sell stop at 99; the stop sells into the bid at 98
    assert trading(events) == [
        OrderReplaced(seq, a, 1, BTC, 99, 1, False, 0),
        Trade(seq, BTC, 2, 99, 1, SELL, bid99, 2, a, 1, 1_000, 693, 0, 2, 0),
        OrderFilled(seq, bid99, 2, BTC, 0),
        OrderFilled(seq, a, 1, BTC, 0),
        StopTriggered(seq, stop, 3, BTC, 99),
        Trade(seq, BTC, 3, 98, 1, SELL, bid98, 2, stop, 3, 1_000, 686, 0, 2, 0),
        OrderFilled(seq, bid98, 2, BTC, 0),
        OrderFilled(seq, stop, 3, BTC, 0),
    ]
    assert book_view(run.engine)[BTC] == ([], [], [])
    check_invariants(run.engine, run.net_in)


def test_fifo_survives_many_cancelled_orders_at_one_level() -> None:
    run = funded(1, 2)
    ids = [place(run, limit(2, SELL, 100, 1))[0] for _ in range(100)]
    keep = [ids[5], ids[50], ids[99]]
    for oid in ids:
        if oid not in keep:
            place(run, CancelOrder(2, BTC, oid))
    assert book_view(run.engine)[BTC][1] == [(oid, 100, 1, 1) for oid in keep]
    late, _ = place(run, limit(2, SELL, 100, 1))
    _, events = place(run, limit(1, BUY, 100, 4))
    assert [e.maker_order_id for e in events if isinstance(e, Trade)] == [*keep, late]
    assert run.engine.balance(2, "BTC") == (M - 4_000, 0)
    check_invariants(run.engine, run.net_in)
