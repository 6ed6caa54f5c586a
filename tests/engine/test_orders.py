"""Scenario tests: limit and market orders, fees, holds, sequence idempotence.

Markets (tests/engine/helpers.py):
- BTC-USDT: 1 lot = 1_000 BTC units, 1 tick x 1 lot = 7 USDT units, maker -100 ppm (rebate), taker 2_500 ppm.
- ETH-USDT: 1 lot = 10 ETH units, 1 tick x 1 lot = 3 USDT units, maker 1_000 ppm, taker 2_000 ppm,
  min_qty 2, min_notional 300.
Every expected amount below is worked out by hand in the comments.
"""

from __future__ import annotations

from exchange_framework.engine.commands import CancelOrder, CreditFunds
from exchange_framework.engine.events import BookDelta, OrderAccepted, OrderCancelled, OrderFilled, OrderRejected, Trade
from exchange_framework.engine.snapshot import snapshot
from exchange_framework.types import CancelReason, RejectReason, TimeInForce
from tests.engine.helpers import Runner, book_view, check_invariants
from tests.engine.scenario import (
    BTC,
    BUY,
    ETH,
    LIMIT,
    MARKET,
    SELL,
    M,
    accepted,
    funded,
    limit,
    mkt,
    orders_copy,
    place,
    state,
    trade,
    trading,
)

# ---------------------------------------------------------------------------------------------------------- limits


def test_fifo_within_one_price_level() -> None:
    run = funded(1, 2, 3, 4)
    a, _ = place(run, limit(1, SELL, 100, 2))
    b, _ = place(run, limit(2, SELL, 100, 3))
    c, _ = place(run, limit(3, SELL, 100, 1))
    t, events = place(run, limit(4, BUY, 100, 4))
    # 2 lots: base 2_000, quote 100*2*7 = 1_400; taker fee ceil(2_000*0.0025 = 5) = 5; rebate floor(0.14) = 0
    assert events == [
        accepted(t, 4, BUY, LIMIT, 100, 4, held=2_800),
        trade(t, 1, 100, 2, BUY, (a, 1), (t, 4), 2_000, 1_400, 0, 5),
        OrderFilled(t, a, 1, BTC, 0),
        trade(t, 2, 100, 2, BUY, (b, 2), (t, 4), 2_000, 1_400, 0, 5),
        OrderFilled(t, t, 4, BTC, 0),
        BookDelta(t, BTC, SELL, 100, 2),
    ]
    assert book_view(run.engine)[BTC][1] == [(b, 100, 1, 1), (c, 100, 1, 1)]
    assert run.engine.balance(4, "USDT") == (M - 2_800, 0)
    assert run.engine.balance(4, "BTC") == (M + 4_000 - 10, 0)
    assert run.engine.balance(2, "BTC") == (M - 3_000, 1_000)
    assert run.engine.balance(2, "USDT") == (M + 1_400, 0)
    check_invariants(run.engine, run.net_in)


def test_better_price_beats_earlier_time_across_levels() -> None:
    run = funded(1, 2, 3, 4)
    a, _ = place(run, limit(1, SELL, 102, 1))
    b, _ = place(run, limit(2, SELL, 101, 1))
    c, _ = place(run, limit(3, SELL, 100, 1))
    d, _ = place(run, limit(1, SELL, 101, 1))
    t, events = place(run, limit(4, BUY, 102, 3))
    # taker fee ceil(1_000*0.0025 = 2.5) = 3; released (102 - p) * 1 * 7
    assert trading(events) == [
        accepted(t, 4, BUY, LIMIT, 102, 3, held=102 * 3 * 7),
        trade(t, 1, 100, 1, BUY, (c, 3), (t, 4), 1_000, 700, 0, 3, released=14),
        OrderFilled(t, c, 3, BTC, 0),
        trade(t, 2, 101, 1, BUY, (b, 2), (t, 4), 1_000, 707, 0, 3, released=7),
        OrderFilled(t, b, 2, BTC, 0),
        trade(t, 3, 101, 1, BUY, (d, 1), (t, 4), 1_000, 707, 0, 3, released=7),
        OrderFilled(t, d, 1, BTC, 0),
        OrderFilled(t, t, 4, BTC, 0),
    ]
    assert [e for e in events if isinstance(e, BookDelta)] == [
        BookDelta(t, BTC, SELL, 100, 0),
        BookDelta(t, BTC, SELL, 101, 0),
    ]
    assert book_view(run.engine)[BTC][1] == [(a, 102, 1, 1)]
    assert run.engine.balance(4, "USDT") == (M - 700 - 707 - 707, 0)
    assert run.engine.balance(4, "BTC") == (M + 3_000 - 9, 0)
    check_invariants(run.engine, run.net_in)


def test_trade_at_maker_price_releases_buyers_price_improvement_and_rests_remainder() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 3))
    t, events = place(run, limit(2, BUY, 110, 5))
    # 3 lots at 100: quote 2_100; taker fee ceil(7.5) = 8; improvement (110-100)*3*7 = 210 released
    assert events == [
        accepted(t, 2, BUY, LIMIT, 110, 5, held=3_850),
        trade(t, 1, 100, 3, BUY, (a, 1), (t, 2), 3_000, 2_100, 0, 8, released=210),
        OrderFilled(t, a, 1, BTC, 0),
        BookDelta(t, BTC, SELL, 100, 0),
        BookDelta(t, BTC, BUY, 110, 2),
    ]
    assert run.engine.balance(2, "USDT") == (M - 3_850 + 210, 110 * 2 * 7)
    assert run.engine.balance(2, "BTC") == (M + 2_992, 0)
    assert book_view(run.engine)[BTC][0] == [(t, 110, 2, 2)]
    check_invariants(run.engine, run.net_in)


def test_sell_taker_below_best_bid_trades_at_bid_price() -> None:
    run = funded(1, 2)
    b, _ = place(run, limit(1, BUY, 110, 2))
    t, events = place(run, limit(2, SELL, 105, 1))
    # seller gets 110*7 = 770 less ceil(770*0.0025 = 1.925) = 2; buyer maker rebate floor(1_000*0.0001 = 0.1) = 0
    assert events == [
        accepted(t, 2, SELL, LIMIT, 105, 1, held=1_000),
        trade(t, 1, 110, 1, SELL, (b, 1), (t, 2), 1_000, 770, 0, 2),
        OrderFilled(t, t, 2, BTC, 0),
        BookDelta(t, BTC, BUY, 110, 1),
    ]
    assert run.engine.balance(2, "USDT") == (M + 768, 0)
    assert run.engine.balance(1, "USDT") == (M - 1_540, 770)
    check_invariants(run.engine, run.net_in)


def test_partial_fill_keeps_maker_at_head_of_queue() -> None:
    run = funded(1, 2, 3, 4)
    a, _ = place(run, limit(1, SELL, 100, 5))
    b, _ = place(run, limit(2, SELL, 100, 5))
    place(run, limit(3, BUY, 100, 2))
    assert book_view(run.engine)[BTC][1] == [(a, 100, 3, 3), (b, 100, 5, 5)]
    _, events = place(run, limit(4, BUY, 100, 4))
    assert [(e.maker_order_id, e.qty) for e in events if isinstance(e, Trade)] == [(a, 3), (b, 1)]
    assert book_view(run.engine)[BTC][1] == [(b, 100, 4, 4)]
    check_invariants(run.engine, run.net_in)


def test_gtc_remainder_rests_on_the_book() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 2))
    t, events = place(run, limit(2, BUY, 100, 5))
    assert trading(events)[-1] == OrderFilled(t, a, 1, BTC, 0)
    assert book_view(run.engine)[BTC] == ([(t, 100, 3, 3)], [], [])
    assert run.engine.balance(2, "USDT") == (M - 3_500, 2_100)
    check_invariants(run.engine, run.net_in)


def test_ioc_remainder_is_cancelled_and_its_hold_released() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 2))
    t, events = place(run, limit(2, BUY, 100, 5, tif=TimeInForce.IOC))
    assert events == [
        accepted(t, 2, BUY, LIMIT, 100, 5, held=3_500),
        trade(t, 1, 100, 2, BUY, (a, 1), (t, 2), 2_000, 1_400, 0, 5),
        OrderFilled(t, a, 1, BTC, 0),
        OrderCancelled(t, t, 2, BTC, CancelReason.IOC_REMAINDER, 3, 2_100),
        BookDelta(t, BTC, SELL, 100, 0),
    ]
    assert book_view(run.engine)[BTC] == ([], [], [])
    assert run.engine.balance(2, "USDT") == (M - 1_400, 0)
    check_invariants(run.engine, run.net_in)


def test_ioc_with_nothing_to_trade_is_cancelled_whole() -> None:
    run = funded(1)
    t, events = place(run, limit(1, SELL, 100, 4, tif=TimeInForce.IOC))
    assert events == [
        accepted(t, 1, SELL, LIMIT, 100, 4, held=4_000),
        OrderCancelled(t, t, 1, BTC, CancelReason.IOC_REMAINDER, 4, 4_000),
    ]
    assert run.engine.balance(1, "BTC") == (M, 0)
    check_invariants(run.engine, run.net_in)


def test_fok_fills_completely_across_levels() -> None:
    run = funded(1, 2, 3)
    a, _ = place(run, limit(1, SELL, 100, 2))
    b, _ = place(run, limit(2, SELL, 101, 2))
    t, events = place(run, limit(3, BUY, 101, 4, tif=TimeInForce.FOK))
    assert trading(events) == [
        accepted(t, 3, BUY, LIMIT, 101, 4, held=101 * 4 * 7),
        trade(t, 1, 100, 2, BUY, (a, 1), (t, 3), 2_000, 1_400, 0, 5, released=14),
        OrderFilled(t, a, 1, BTC, 0),
        trade(t, 2, 101, 2, BUY, (b, 2), (t, 3), 2_000, 1_414, 0, 5),
        OrderFilled(t, b, 2, BTC, 0),
        OrderFilled(t, t, 3, BTC, 0),
    ]
    assert book_view(run.engine)[BTC] == ([], [], [])
    check_invariants(run.engine, run.net_in)


def test_fok_not_fillable_is_rejected_and_changes_nothing() -> None:
    run = funded(1, 2, 3)
    place(run, limit(1, SELL, 100, 2))
    place(run, limit(2, SELL, 101, 2))
    for cmd in (
        limit(3, BUY, 101, 5, tif=TimeInForce.FOK, client_order_id="f1"),  # 4 lots within the limit, 5 wanted
        limit(3, BUY, 100, 3, tif=TimeInForce.FOK),  # only 2 lots at 100 or better
    ):
        before, orders_before = state(run.engine), orders_copy(run.engine)
        seq, events = place(run, cmd)
        assert events == [OrderRejected(seq, 3, BTC, RejectReason.FOK_NOT_FILLABLE, cmd.client_order_id)]
        assert state(run.engine) == before
        assert orders_copy(run.engine) == orders_before
    check_invariants(run.engine, run.net_in)


def test_post_only_rejected_when_it_would_cross() -> None:
    run = funded(1, 2)
    place(run, limit(1, SELL, 100, 2))
    before = state(run.engine)
    seq, events = place(run, limit(2, BUY, 100, 1, post_only=True))
    assert events == [OrderRejected(seq, 2, BTC, RejectReason.POST_ONLY_WOULD_CROSS, "")]
    assert state(run.engine) == before
    seq, events = place(run, limit(2, BUY, 101, 1, post_only=True))
    assert events == [OrderRejected(seq, 2, BTC, RejectReason.POST_ONLY_WOULD_CROSS, "")]
    check_invariants(run.engine, run.net_in)


def test_post_only_accepted_when_it_does_not_cross() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 100, 2))
    t, events = place(run, limit(2, BUY, 99, 1, post_only=True))
    assert events == [accepted(t, 2, BUY, LIMIT, 99, 1, held=693), BookDelta(t, BTC, BUY, 99, 1)]
    assert book_view(run.engine)[BTC][:2] == ([(t, 99, 1, 1)], [(a, 100, 2, 2)])
    check_invariants(run.engine, run.net_in)


# ---------------------------------------------------------------------------------------------------------- markets


def test_market_sell_walks_the_bids_best_price_first() -> None:
    run = funded(1, 2, 3)
    a, _ = place(run, limit(1, BUY, 100, 2))
    b, _ = place(run, limit(2, BUY, 99, 3))
    t, events = place(run, mkt(3, SELL, 4))
    # seller taker fee in quote: ceil(1_400*0.0025 = 3.5) = 4, ceil(1_386*0.0025 = 3.465) = 4
    assert events == [
        accepted(t, 3, SELL, MARKET, 0, 4, held=4_000),
        trade(t, 1, 100, 2, SELL, (a, 1), (t, 3), 2_000, 1_400, 0, 4),
        OrderFilled(t, a, 1, BTC, 0),
        trade(t, 2, 99, 2, SELL, (b, 2), (t, 3), 2_000, 1_386, 0, 4),
        OrderFilled(t, t, 3, BTC, 0),
        BookDelta(t, BTC, BUY, 100, 0),
        BookDelta(t, BTC, BUY, 99, 1),
    ]
    assert run.engine.balance(3, "BTC") == (M - 4_000, 0)
    assert run.engine.balance(3, "USDT") == (M + 1_396 + 1_382, 0)
    check_invariants(run.engine, run.net_in)


def _two_ask_levels() -> tuple[Runner, int, int]:
    """Asks: 2 lots at 100 (account 1), 3 lots at 101 (account 2). Account 4 has only 10_000 USDT."""
    run = funded(1, 2)
    run(CreditFunds(4, "USDT", 10_000))
    a, _ = place(run, limit(1, SELL, 100, 2))
    b, _ = place(run, limit(2, SELL, 101, 3))
    return run, a, b


def test_market_buy_by_qty_without_cap_holds_whole_quote_balance_then_releases_rest() -> None:
    run, a, b = _two_ask_levels()
    t, events = place(run, mkt(4, BUY, 3))
    # no price improvement on market buys; spent 1_400 + 707 = 2_107
    assert trading(events) == [
        accepted(t, 4, BUY, MARKET, 0, 3, held=10_000),
        trade(t, 1, 100, 2, BUY, (a, 1), (t, 4), 2_000, 1_400, 0, 5),
        OrderFilled(t, a, 1, BTC, 0),
        trade(t, 2, 101, 1, BUY, (b, 2), (t, 4), 1_000, 707, 0, 3),
        OrderFilled(t, t, 4, BTC, 10_000 - 2_107),
    ]
    assert run.engine.balance(4, "USDT") == (10_000 - 2_107, 0)
    assert run.engine.balance(4, "BTC") == (3_000 - 8, 0)
    check_invariants(run.engine, run.net_in)


def test_market_buy_by_qty_with_cap_releases_unused_cap() -> None:
    run, a, b = _two_ask_levels()
    t, events = place(run, mkt(4, BUY, 4, quote_cap=5_000))
    # 2@100 = 1_400, 2@101 = 1_414 -> 2_814 spent, 2_186 of the cap released
    assert trading(events) == [
        accepted(t, 4, BUY, MARKET, 0, 4, held=5_000),
        trade(t, 1, 100, 2, BUY, (a, 1), (t, 4), 2_000, 1_400, 0, 5),
        OrderFilled(t, a, 1, BTC, 0),
        trade(t, 2, 101, 2, BUY, (b, 2), (t, 4), 2_000, 1_414, 0, 5),
        OrderFilled(t, t, 4, BTC, 2_186),
    ]
    assert run.engine.balance(4, "USDT") == (10_000 - 2_814, 0)
    assert book_view(run.engine)[BTC][1] == [(b, 101, 1, 1)]
    check_invariants(run.engine, run.net_in)


def test_market_buy_by_quote_only_fills_and_releases_unused_cap() -> None:
    run, a, b = _two_ask_levels()
    t, events = place(run, mkt(4, BUY, 0, quote_cap=2_000))
    # 2_000 buys 2 lots at 100 (1_400); the 600 left cannot buy one lot at 101 (707)
    assert trading(events) == [
        accepted(t, 4, BUY, MARKET, 0, 0, held=2_000),
        trade(t, 1, 100, 2, BUY, (a, 1), (t, 4), 2_000, 1_400, 0, 5),
        OrderFilled(t, a, 1, BTC, 0),
        OrderFilled(t, t, 4, BTC, 600),
    ]
    assert run.engine.balance(4, "USDT") == (10_000 - 1_400, 0)
    assert book_view(run.engine)[BTC][1] == [(b, 101, 3, 3)]
    check_invariants(run.engine, run.net_in)


def test_market_buy_by_quote_only_that_empties_the_book_is_cancelled_no_liquidity() -> None:
    run = funded(1)
    run(CreditFunds(4, "USDT", 10_000))
    a, _ = place(run, limit(1, SELL, 100, 2))
    t, events = place(run, mkt(4, BUY, 0, quote_cap=5_000))
    assert trading(events) == [
        accepted(t, 4, BUY, MARKET, 0, 0, held=5_000),
        trade(t, 1, 100, 2, BUY, (a, 1), (t, 4), 2_000, 1_400, 0, 5),
        OrderFilled(t, a, 1, BTC, 0),
        OrderCancelled(t, t, 4, BTC, CancelReason.NO_LIQUIDITY, 0, 3_600),
    ]
    check_invariants(run.engine, run.net_in)


def test_market_orders_without_liquidity_are_cancelled_and_release_the_whole_hold() -> None:
    run = funded(1)
    t1, events1 = place(run, mkt(1, BUY, 3, quote_cap=5_000))
    t2, events2 = place(run, mkt(1, SELL, 2))
    t3, events3 = place(run, mkt(1, BUY, 1))
    assert events1 == [
        accepted(t1, 1, BUY, MARKET, 0, 3, held=5_000),
        OrderCancelled(t1, t1, 1, BTC, CancelReason.NO_LIQUIDITY, 3, 5_000),
    ]
    assert events2 == [
        accepted(t2, 1, SELL, MARKET, 0, 2, held=2_000),
        OrderCancelled(t2, t2, 1, BTC, CancelReason.NO_LIQUIDITY, 2, 2_000),
    ]
    assert events3 == [
        accepted(t3, 1, BUY, MARKET, 0, 1, held=M),
        OrderCancelled(t3, t3, 1, BTC, CancelReason.NO_LIQUIDITY, 1, M),
    ]
    assert run.engine.balance(1, "USDT") == (M, 0)
    assert run.engine.balance(1, "BTC") == (M, 0)
    check_invariants(run.engine, run.net_in)


def test_market_sell_partly_filled_cancels_rest_with_no_liquidity() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, BUY, 100, 2))
    t, events = place(run, mkt(2, SELL, 5))
    assert [(e.maker_order_id, e.price, e.qty) for e in events if isinstance(e, Trade)] == [(a, 100, 2)]
    assert trading(events)[-1] == OrderCancelled(t, t, 2, BTC, CancelReason.NO_LIQUIDITY, 3, 3_000)
    assert run.engine.balance(2, "BTC") == (M - 2_000, 0)
    check_invariants(run.engine, run.net_in)


def test_market_buy_cap_exhausted_mid_book_is_cancelled_quote_cap_reached() -> None:
    run, a, b = _two_ask_levels()
    t, events = place(run, mkt(4, BUY, 4, quote_cap=2_000))
    assert trading(events) == [
        accepted(t, 4, BUY, MARKET, 0, 4, held=2_000),
        trade(t, 1, 100, 2, BUY, (a, 1), (t, 4), 2_000, 1_400, 0, 5),
        OrderFilled(t, a, 1, BTC, 0),
        OrderCancelled(t, t, 4, BTC, CancelReason.QUOTE_CAP_REACHED, 2, 600),
    ]
    assert run.engine.balance(4, "USDT") == (10_000 - 1_400, 0)
    assert book_view(run.engine)[BTC][1] == [(b, 101, 3, 3)]
    check_invariants(run.engine, run.net_in)


def test_market_buy_cap_buys_partial_slice_of_a_level() -> None:
    run, _, b = _two_ask_levels()
    # 3_000: 2@100 (1_400), then 1_600 // 707 = 2 lots at 101 (1_414), 186 left
    t, events = place(run, mkt(4, BUY, 0, quote_cap=3_000))
    assert [(e.price, e.qty) for e in events if isinstance(e, Trade)] == [(100, 2), (101, 2)]
    assert trading(events)[-1] == OrderFilled(t, t, 4, BTC, 186)
    assert book_view(run.engine)[BTC][1] == [(b, 101, 1, 1)]
    check_invariants(run.engine, run.net_in)


# ---------------------------------------------------------------------------------------------------------- fees


def test_btc_taker_fee_rounds_up_and_maker_rebate_rounds_down() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 715, 3))
    t, events = place(run, limit(2, BUY, 715, 3))
    # quote 715*3*7 = 15_015: rebate 15_015*100/1e6 = 1.5015 -> -1 (down in size)
    # base 3_000: taker fee 3_000*2_500/1e6 = 7.5 -> 8 (up)
    assert trading(events)[1] == trade(t, 1, 715, 3, BUY, (a, 1), (t, 2), 3_000, 15_015, -1, 8)
    assert run.engine.balance(1, "USDT") == (M + 15_016, 0)
    assert run.engine.balance(2, "BTC") == (M + 2_992, 0)
    assert run.engine.fees_collected == {"BTC": 8, "ETH": 0, "USDT": -1}
    check_invariants(run.engine, run.net_in)


def test_sell_taker_pays_fee_in_quote_and_buying_maker_gets_rebate_in_base() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, BUY, 100, 15))
    t, events = place(run, limit(2, SELL, 100, 15))
    # quote 10_500: taker fee 26.25 -> 27; base 15_000: rebate 1.5 -> -1
    assert trading(events)[1] == trade(t, 1, 100, 15, SELL, (a, 1), (t, 2), 15_000, 10_500, -1, 27)
    assert run.engine.balance(1, "BTC") == (M + 15_001, 0)
    assert run.engine.balance(2, "USDT") == (M + 10_473, 0)
    assert run.engine.fees_collected == {"BTC": -1, "ETH": 0, "USDT": 27}
    check_invariants(run.engine, run.net_in)


def test_eth_positive_maker_and_taker_fees_round_up() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, SELL, 101, 10, market=ETH))
    t, events = place(run, limit(2, BUY, 101, 10, market=ETH))
    # base 100: taker fee 100*2_000/1e6 = 0.2 -> 1; quote 101*10*3 = 3_030: maker fee 3.03 -> 4
    assert trading(events) == [
        accepted(t, 2, BUY, LIMIT, 101, 10, held=3_030, market=ETH),
        trade(t, 1, 101, 10, BUY, (a, 1), (t, 2), 100, 3_030, 4, 1, market=ETH),
        OrderFilled(t, a, 1, ETH, 0),
        OrderFilled(t, t, 2, ETH, 0),
    ]
    assert run.engine.balance(1, "USDT") == (M + 3_026, 0)
    assert run.engine.balance(1, "ETH") == (M - 100, 0)
    assert run.engine.balance(2, "ETH") == (M + 99, 0)
    assert run.engine.fees_collected == {"BTC": 0, "ETH": 1, "USDT": 4}
    check_invariants(run.engine, run.net_in)


def test_eth_exact_fee_is_not_rounded() -> None:
    run = funded(1, 2)
    a, _ = place(run, limit(1, BUY, 100, 10, market=ETH))
    t, events = place(run, limit(2, SELL, 100, 10, market=ETH))
    # quote 3_000: taker fee 3_000*2_000/1e6 = 6 exactly; base 100: maker fee 0.1 -> 1
    assert trading(events)[1] == trade(t, 1, 100, 10, SELL, (a, 1), (t, 2), 100, 3_000, 1, 6, market=ETH)
    assert run.engine.fees_collected == {"BTC": 0, "ETH": 1, "USDT": 6}
    check_invariants(run.engine, run.net_in)


def test_fees_are_collected_per_asset_and_every_asset_stays_zero_sum() -> None:
    run = funded(1, 2, 3)
    place(run, limit(1, SELL, 715, 3))
    place(run, limit(2, BUY, 715, 3))  # BTC +8, USDT -1
    place(run, limit(3, BUY, 100, 15))
    place(run, limit(1, SELL, 100, 15))  # BTC -1, USDT +27
    place(run, limit(2, SELL, 101, 10, market=ETH))
    place(run, limit(3, BUY, 101, 10, market=ETH))  # ETH +1, USDT +4
    assert run.engine.fees_collected == {"BTC": 7, "ETH": 1, "USDT": 30}
    for asset in ("BTC", "ETH", "USDT"):
        customers = sum(sum(run.engine.balance(acct, asset)) for acct in (1, 2, 3))
        assert customers + run.engine.fees_collected[asset] == 3 * M
    check_invariants(run.engine, run.net_in)


# ---------------------------------------------------------------------------------------------------------- holds


def test_accepted_hold_is_notional_for_buys_and_base_for_sells() -> None:
    run = funded(1)
    cases = [
        (limit(1, BUY, 100, 3), 100 * 3 * 7, "USDT"),
        (limit(1, SELL, 200, 3), 3 * 1_000, "BTC"),
        (limit(1, BUY, 100, 4, market=ETH), 100 * 4 * 3, "USDT"),
        (limit(1, SELL, 200, 4, market=ETH), 4 * 10, "ETH"),
    ]
    for cmd, held, asset in cases:
        available_before, held_before = run.engine.balance(1, asset)
        _, events = place(run, cmd)
        assert isinstance(events[0], OrderAccepted)
        assert events[0].held == held
        available, held_now = run.engine.balance(1, asset)
        assert (available, held_now) == (available_before - held, held_before + held)
    assert run.engine.balance(1, "USDT") == (M - 2_100 - 1_200, 3_300)
    check_invariants(run.engine, run.net_in)


def test_cancel_releases_exactly_the_hold() -> None:
    run = funded(1)
    b, _ = place(run, limit(1, BUY, 123, 4))
    s, _ = place(run, limit(1, SELL, 300, 7))
    seq, events = place(run, CancelOrder(1, BTC, b))
    assert events == [
        OrderCancelled(seq, b, 1, BTC, CancelReason.USER, 4, 123 * 4 * 7),
        BookDelta(seq, BTC, BUY, 123, 0),
    ]
    seq, events = place(run, CancelOrder(1, BTC, s))
    assert events == [
        OrderCancelled(seq, s, 1, BTC, CancelReason.USER, 7, 7_000),
        BookDelta(seq, BTC, SELL, 300, 0),
    ]
    assert run.engine.balance(1, "USDT") == (M, 0)
    assert run.engine.balance(1, "BTC") == (M, 0)
    check_invariants(run.engine, run.net_in)


def test_cancel_after_partial_fill_releases_only_remaining_hold() -> None:
    run = funded(1, 2)
    b, _ = place(run, limit(1, BUY, 100, 5))
    place(run, limit(2, SELL, 100, 2))
    assert run.engine.balance(1, "USDT") == (M - 3_500, 2_100)
    seq, events = place(run, CancelOrder(1, BTC, b))
    assert trading(events) == [OrderCancelled(seq, b, 1, BTC, CancelReason.USER, 3, 2_100)]
    assert run.engine.balance(1, "USDT") == (M - 1_400, 0)
    check_invariants(run.engine, run.net_in)


# ---------------------------------------------------------------------------------------------------------- sequence


def test_command_with_already_applied_sequence_number_is_ignored() -> None:
    run = funded(1, 2)
    place(run, limit(1, SELL, 100, 2))
    before = snapshot(run.engine)
    last = run.engine.last_seq
    for seq in (last, last - 1, 1):
        assert run.engine.apply(seq, limit(2, BUY, 100, 2)) is False
        assert run.engine.apply(seq, CreditFunds(2, "USDT", 5)) is False
    assert run.engine.events == []
    assert snapshot(run.engine) == before
    assert run.engine.apply(last + 1, limit(2, BUY, 100, 2)) is True
    assert run.engine.last_seq == last + 1
    assert book_view(run.engine)[BTC] == ([], [], [])
    run.engine.events.clear()
    check_invariants(run.engine, run.net_in)
