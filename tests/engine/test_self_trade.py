"""Scenario tests: self-trade prevention, one test per mode, plus its effect on other accounts and on FOK.

BTC-USDT: 1 lot = 1_000 BTC units, 1 tick x 1 lot = 7 USDT units (a lot at 100 costs 700), taker fee 2_500 ppm.
Account 1 is the self-trader; account 2 is someone else.
"""

from __future__ import annotations

import pytest

from exchange_framework.engine.commands import PlaceOrder
from exchange_framework.engine.events import (
    BookDelta,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderReduced,
    OrderRejected,
    Trade,
    decode_event,
    encode_event,
)
from exchange_framework.types import CancelReason, RejectReason, StpMode, TimeInForce
from tests.engine.helpers import book_view, check_invariants
from tests.engine.scenario import (
    BTC,
    BUY,
    LIMIT,
    MARKET,
    SELL,
    M,
    accepted,
    deltas,
    funded,
    limit,
    place,
    state,
    trading,
)

SELF = CancelReason.SELF_TRADE


def trade(seq: int, trade_id: int, qty: int, maker: int, taker: int, taker_fee: int) -> Trade:
    """A buying taker (account 1) against a seller (account 2) at 100: base qty*1_000, quote qty*700."""
    return Trade(seq, BTC, trade_id, 100, qty, BUY, maker, 2, taker, 1, qty * 1_000, qty * 700, 0, taker_fee, 0)


# ---------------------------------------------------------------------------------------------------------- modes


def test_cancel_newest_cancels_the_incoming_order_and_keeps_the_resting_one() -> None:
    run = funded(1)
    m, _ = place(run, limit(1, SELL, 100, 3))
    t, events = place(run, limit(1, BUY, 100, 5, stp=StpMode.CANCEL_NEWEST))
    assert trading(events) == [
        accepted(t, 1, BUY, LIMIT, 100, 5, held=3_500),
        OrderCancelled(t, t, 1, BTC, SELF, 5, 3_500),
    ]
    assert book_view(run.engine)[BTC] == ([], [(m, 100, 3, 3)], [])
    assert run.engine.balance(1, "USDT") == (M, 0)
    assert run.engine.balance(1, "BTC") == (M - 3_000, 3_000)
    assert run.engine.next_trade_id == 1
    check_invariants(run.engine, run.net_in)


def test_cancel_oldest_cancels_the_resting_order_and_keeps_matching() -> None:
    run = funded(1, 2)
    m, _ = place(run, limit(1, SELL, 100, 3))
    o, _ = place(run, limit(2, SELL, 100, 2))
    t, events = place(run, limit(1, BUY, 100, 5, stp=StpMode.CANCEL_OLDEST))
    assert events == [
        accepted(t, 1, BUY, LIMIT, 100, 5, held=3_500),
        OrderCancelled(t, m, 1, BTC, SELF, 3, 3_000),
        trade(t, 1, 2, maker=o, taker=t, taker_fee=5),
        OrderFilled(t, o, 2, BTC, 0),
        BookDelta(t, BTC, SELL, 100, 0),
        BookDelta(t, BTC, BUY, 100, 3),
    ]
    assert book_view(run.engine)[BTC] == ([(t, 100, 3, 3)], [], [])
    assert run.engine.balance(1, "BTC") == (M + 2_000 - 5, 0)
    assert run.engine.balance(1, "USDT") == (M - 3_500, 2_100)
    check_invariants(run.engine, run.net_in)


def test_cancel_both_cancels_resting_and_incoming() -> None:
    run = funded(1, 2)
    m, _ = place(run, limit(1, SELL, 100, 3))
    o, _ = place(run, limit(2, SELL, 100, 2))
    t, events = place(run, limit(1, BUY, 100, 5, stp=StpMode.CANCEL_BOTH))
    assert events == [
        accepted(t, 1, BUY, LIMIT, 100, 5, held=3_500),
        OrderCancelled(t, m, 1, BTC, SELF, 3, 3_000),
        OrderCancelled(t, t, 1, BTC, SELF, 5, 3_500),
        BookDelta(t, BTC, SELL, 100, 2),
    ]
    assert book_view(run.engine)[BTC] == ([], [(o, 100, 2, 2)], [])
    assert run.engine.balance(1, "BTC") == (M, 0)
    assert run.engine.balance(1, "USDT") == (M, 0)
    check_invariants(run.engine, run.net_in)


def test_decrement_with_larger_taker_removes_resting_and_rests_the_rest() -> None:
    run = funded(1)
    m, _ = place(run, limit(1, SELL, 100, 3))
    t, events = place(run, limit(1, BUY, 100, 5, stp=StpMode.DECREMENT))
    assert events == [
        accepted(t, 1, BUY, LIMIT, 100, 5, held=3_500),
        OrderReduced(t, m, 1, BTC, 3, 0, 3_000),
        OrderCancelled(t, m, 1, BTC, SELF, 0, 0),
        OrderReduced(t, t, 1, BTC, 3, 2, 2_100),
        BookDelta(t, BTC, SELL, 100, 0),
        BookDelta(t, BTC, BUY, 100, 2),
    ]
    assert book_view(run.engine)[BTC] == ([(t, 100, 2, 2)], [], [])
    # no trade: BTC is untouched, only the buy's remaining 2 lots stay held
    assert run.engine.balance(1, "BTC") == (M, 0)
    assert run.engine.balance(1, "USDT") == (M - 1_400, 1_400)
    assert run.engine.fees_collected == {"BTC": 0, "ETH": 0, "USDT": 0}
    check_invariants(run.engine, run.net_in)


def test_decrement_with_smaller_taker_shrinks_resting_and_cancels_taker() -> None:
    run = funded(1)
    m, _ = place(run, limit(1, SELL, 100, 3))
    t, events = place(run, limit(1, BUY, 100, 2, stp=StpMode.DECREMENT))
    assert events == [
        accepted(t, 1, BUY, LIMIT, 100, 2, held=1_400),
        OrderReduced(t, m, 1, BTC, 2, 1, 2_000),
        OrderReduced(t, t, 1, BTC, 2, 0, 1_400),
        OrderCancelled(t, t, 1, BTC, SELF, 0, 0),
        BookDelta(t, BTC, SELL, 100, 1),
    ]
    assert book_view(run.engine)[BTC] == ([], [(m, 100, 1, 1)], [])
    assert run.engine.balance(1, "BTC") == (M - 1_000, 1_000)
    assert run.engine.balance(1, "USDT") == (M, 0)
    check_invariants(run.engine, run.net_in)


def test_decrement_then_trades_with_another_accounts_order() -> None:
    run = funded(1, 2)
    m, _ = place(run, limit(1, SELL, 100, 2))
    o, _ = place(run, limit(2, SELL, 100, 3))
    t, events = place(run, limit(1, BUY, 100, 4, stp=StpMode.DECREMENT))
    assert trading(events) == [
        accepted(t, 1, BUY, LIMIT, 100, 4, held=2_800),
        OrderReduced(t, m, 1, BTC, 2, 0, 2_000),
        OrderCancelled(t, m, 1, BTC, SELF, 0, 0),
        OrderReduced(t, t, 1, BTC, 2, 2, 1_400),
        trade(t, 1, 2, maker=o, taker=t, taker_fee=5),
        OrderFilled(t, t, 1, BTC, 0),
    ]
    assert book_view(run.engine)[BTC] == ([], [(o, 100, 1, 1)], [])
    assert run.engine.balance(1, "USDT") == (M - 1_400, 0)
    check_invariants(run.engine, run.net_in)


def test_decrement_on_own_iceberg_takes_hidden_quantity_too() -> None:
    run = funded(1)
    i, _ = place(run, limit(1, SELL, 100, 10, display_qty=3))
    t, events = place(run, limit(1, BUY, 100, 8, stp=StpMode.DECREMENT))
    assert trading(events) == [
        accepted(t, 1, BUY, LIMIT, 100, 8, held=5_600),
        OrderReduced(t, i, 1, BTC, 8, 2, 8_000),
        OrderReduced(t, t, 1, BTC, 8, 0, 5_600),
        OrderCancelled(t, t, 1, BTC, SELF, 0, 0),
    ]
    assert book_view(run.engine)[BTC][1] == [(i, 100, 2, 2)]
    assert deltas(events) == [BookDelta(t, BTC, SELL, 100, 2)]
    check_invariants(run.engine, run.net_in)


# ---------------------------------------------------------------------------------------------------------- others


@pytest.mark.parametrize(
    ("mode", "expected_book"),
    [
        # account 2's first order trades; the own order stops the taker; account 2's later order is untouched
        (StpMode.CANCEL_NEWEST, "m_y"),
        # the own order is cancelled; both of account 2's orders trade; the rest rests
        (StpMode.CANCEL_OLDEST, "rest"),
    ],
)
def test_stp_does_not_affect_other_accounts_orders_at_the_same_level(mode: StpMode, expected_book: str) -> None:
    run = funded(1, 2)
    x, _ = place(run, limit(2, SELL, 100, 2))
    m, _ = place(run, limit(1, SELL, 100, 3))
    y, _ = place(run, limit(2, SELL, 100, 2))
    t, events = place(run, limit(1, BUY, 100, 6, stp=mode))
    if expected_book == "m_y":
        assert trading(events) == [
            accepted(t, 1, BUY, LIMIT, 100, 6, held=4_200),
            trade(t, 1, 2, maker=x, taker=t, taker_fee=5),
            OrderFilled(t, x, 2, BTC, 0),
            OrderCancelled(t, t, 1, BTC, SELF, 4, 2_800),
        ]
        assert book_view(run.engine)[BTC] == ([], [(m, 100, 3, 3), (y, 100, 2, 2)], [])
    else:
        assert trading(events) == [
            accepted(t, 1, BUY, LIMIT, 100, 6, held=4_200),
            trade(t, 1, 2, maker=x, taker=t, taker_fee=5),
            OrderFilled(t, x, 2, BTC, 0),
            OrderCancelled(t, m, 1, BTC, SELF, 3, 3_000),
            trade(t, 2, 2, maker=y, taker=t, taker_fee=5),
            OrderFilled(t, y, 2, BTC, 0),
        ]
        assert book_view(run.engine)[BTC] == ([(t, 100, 2, 2)], [], [])
    check_invariants(run.engine, run.net_in)


def test_another_account_trades_normally_with_an_order_stp_left_alone() -> None:
    run = funded(1, 2)
    m, _ = place(run, limit(1, SELL, 100, 3))
    place(run, limit(1, BUY, 100, 5))  # CANCEL_NEWEST by default
    t, events = place(run, limit(2, BUY, 100, 3, stp=StpMode.CANCEL_BOTH))
    assert trading(events)[1:] == [
        Trade(t, BTC, 1, 100, 3, BUY, m, 1, t, 2, 3_000, 2_100, 0, 8, 0),
        OrderFilled(t, m, 1, BTC, 0),
        OrderFilled(t, t, 2, BTC, 0),
    ]
    check_invariants(run.engine, run.net_in)


def test_market_sell_against_own_bid_is_cancelled_and_releases_base() -> None:
    run = funded(1)
    b, _ = place(run, limit(1, BUY, 100, 2))
    t, events = place(run, PlaceOrder(1, BTC, SELL, MARKET, 4))
    assert trading(events) == [
        OrderAccepted(t, t, 1, BTC, SELL, MARKET, 0, 4, 0, 4_000, ""),
        OrderCancelled(t, t, 1, BTC, SELF, 4, 4_000),
    ]
    assert book_view(run.engine)[BTC][0] == [(b, 100, 2, 2)]
    check_invariants(run.engine, run.net_in)


def test_fok_blocked_by_own_order_is_rejected_unless_cancel_oldest() -> None:
    run = funded(1, 2)
    m, _ = place(run, limit(1, SELL, 100, 2))
    o, _ = place(run, limit(2, SELL, 100, 5))
    for mode in (StpMode.CANCEL_NEWEST, StpMode.CANCEL_BOTH, StpMode.DECREMENT):
        before = state(run.engine)
        seq, events = place(run, limit(1, BUY, 100, 3, tif=TimeInForce.FOK, stp=mode))
        assert events == [OrderRejected(seq, 1, BTC, RejectReason.FOK_NOT_FILLABLE, "")]
        assert state(run.engine) == before
    t, events = place(run, limit(1, BUY, 100, 3, tif=TimeInForce.FOK, stp=StpMode.CANCEL_OLDEST))
    assert trading(events) == [
        accepted(t, 1, BUY, LIMIT, 100, 3, held=2_100),
        OrderCancelled(t, m, 1, BTC, SELF, 2, 2_000),
        trade(t, 1, 3, maker=o, taker=t, taker_fee=8),
        OrderFilled(t, t, 1, BTC, 0),
    ]
    assert book_view(run.engine)[BTC][1] == [(o, 100, 2, 2)]
    check_invariants(run.engine, run.net_in)


def test_fok_is_not_partly_filled_when_iceberg_refill_queues_behind_own_order() -> None:
    """Regression: the FOK dry run once counted the iceberg's hidden lots at its first queue position."""
    run = funded(1, 2)
    place(run, limit(2, SELL, 100, 10, display_qty=3))  # another account's iceberg: 3 shown, 7 hidden
    place(run, limit(1, SELL, 100, 2))  # own order, queued behind the iceberg's first slice
    before = state(run.engine)
    seq, events = place(run, limit(1, BUY, 100, 5, tif=TimeInForce.FOK, stp=StpMode.CANCEL_NEWEST))
    # after the first 3-lot slice the refill goes behind the own order: 5 lots cannot fill without self-trading
    assert events == [OrderRejected(seq, 1, BTC, RejectReason.FOK_NOT_FILLABLE, "")]
    assert state(run.engine) == before
    check_invariants(run.engine, run.net_in)


def test_fok_through_iceberg_refills_fills_when_own_order_is_cancelled_oldest() -> None:
    run = funded(1, 2)
    i, _ = place(run, limit(2, SELL, 100, 10, display_qty=3))
    m, _ = place(run, limit(1, SELL, 100, 2))
    t, events = place(run, limit(1, BUY, 100, 5, tif=TimeInForce.FOK, stp=StpMode.CANCEL_OLDEST))
    assert trading(events) == [
        accepted(t, 1, BUY, LIMIT, 100, 5, held=3_500),
        trade(t, 1, 3, maker=i, taker=t, taker_fee=8),
        OrderCancelled(t, m, 1, BTC, SELF, 2, 2_000),
        trade(t, 2, 2, maker=i, taker=t, taker_fee=5),
        OrderFilled(t, t, 1, BTC, 0),
    ]
    assert book_view(run.engine)[BTC][1] == [(i, 100, 5, 1)]
    check_invariants(run.engine, run.net_in)


def test_decrement_on_quote_only_market_buy_reports_encodable_events() -> None:
    """Regression: OrderReduced once leaked the internal quote-only quantity (2**100 - cut), unencodable."""
    run = funded(1)
    m, _ = place(run, limit(1, SELL, 100, 3))
    t, events = place(run, PlaceOrder(1, BTC, BUY, MARKET, 0, quote_cap=5_000, stp=StpMode.DECREMENT))
    assert trading(events) == [
        OrderAccepted(t, t, 1, BTC, BUY, MARKET, 0, 0, 0, 5_000, ""),
        OrderReduced(t, m, 1, BTC, 3, 0, 3_000),
        OrderCancelled(t, m, 1, BTC, SELF, 0, 0),
        OrderReduced(t, t, 1, BTC, 3, 0, 0),
        OrderCancelled(t, t, 1, BTC, CancelReason.NO_LIQUIDITY, 0, 5_000),
    ]
    for event in events:
        assert decode_event(encode_event(event)) == event
    check_invariants(run.engine, run.net_in)
