"""Bad input: every malformed or unacceptable command is refused with its exact reason and changes nothing.

"Changes nothing" is checked on the canonical state bytes (without ``last_seq``, which every applied command
advances) and on a field-by-field copy of ``engine.orders``.

BTC-USDT: lots 1..50, prices 1..1_000, 1 lot = 1_000 BTC units, 7 USDT units per tick x lot.
ETH-USDT: lots 2..40, prices 1..500, min notional 300 (price * qty * 3).
"""

from __future__ import annotations

import msgspec
import pytest

from exchange_framework.engine.commands import (
    CancelAll,
    CancelOrder,
    Command,
    CreditFunds,
    DebitFunds,
    PlaceOrder,
    ReplaceOrder,
    SetMarketStatus,
)
from exchange_framework.engine.events import (
    BookDelta,
    Event,
    FundsCredited,
    FundsDebited,
    FundsRejected,
    MarketStatusChanged,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    Trade,
)
from exchange_framework.engine.snapshot import engine_state
from exchange_framework.types import CancelReason, MarketStatus, RejectReason, TimeInForce
from tests.engine.helpers import Runner, book_view, check_invariants
from tests.engine.scenario import (
    BTC,
    BUY,
    ETH,
    MARKET,
    SELL,
    STOP_LIMIT,
    STOP_MARKET,
    limit,
    orders_copy,
    state,
)

R = RejectReason

# Order ids of the fixture below (= their sequence numbers).
ASK_2_110 = 7  # account 2: BTC sell 3@110, 1 lot taken by FILLED_BUY -> 2 left
BID_2_90 = 8  # account 2: BTC buy 2@90
ETH_ASK_2 = 9  # account 2: ETH sell 5@200
FILLED_BUY = 10  # account 1: BTC buy 1@110, filled at once
BID_1_95 = 11  # account 1: BTC buy 1@95, client order id "mine"
STOP_1 = 12  # account 1: BTC stop-limit sell 1 lot, stop 100, limit 100


def fixture() -> Runner:
    """Two accounts with resting orders, a waiting stop, a filled order and last price 110 in BTC-USDT."""
    run = Runner()
    for account in (1, 2):
        run(CreditFunds(account, "USDT", 100_000))
        run(CreditFunds(account, "BTC", 10_000))
        run(CreditFunds(account, "ETH", 1_000))
    run(limit(2, SELL, 110, 3))
    run(limit(2, BUY, 90, 2))
    run(limit(2, SELL, 200, 5, market=ETH))
    run(limit(1, BUY, 110, 1))
    run(limit(1, BUY, 95, 1, client_order_id="mine"))
    run(PlaceOrder(1, BTC, SELL, STOP_LIMIT, 1, price=100, stop_price=100))
    assert run.seq == STOP_1
    assert sorted(run.engine.orders) == [ASK_2_110, BID_2_90, ETH_ASK_2, BID_1_95, STOP_1]
    assert run.engine.books[BTC].last_price == 110
    # 100_000 - 770 (filled buy) - 665 (held for the 1@95 bid)
    assert run.engine.balance(1, "USDT") == (98_565, 665)
    # 10_000 + 1_000 - 3 (taker fee), 1_000 held for the stop
    assert run.engine.balance(1, "BTC") == (9_997, 1_000)
    check_invariants(run.engine, run.net_in)
    return run


def apply_unchanged(run: Runner, cmd: Command) -> list[Event]:
    """Apply ``cmd`` and assert that it changed nothing; return its events."""
    before, orders_before, client_ids = state(run.engine), orders_copy(run.engine), dict(run.engine.client_ids)
    events = run(cmd)
    assert state(run.engine) == before
    assert orders_copy(run.engine) == orders_before
    assert run.engine.client_ids == client_ids
    check_invariants(run.engine, run.net_in)
    return events


# ---------------------------------------------------------------------------------------------------------- place

CID_37 = "x" * 37

PLACE_CASES: list[tuple[str, PlaceOrder, RejectReason]] = [
    ("unknown market", limit(1, BUY, 100, 1, market="DOGE-USDT"), R.UNKNOWN_MARKET),
    ("empty market", limit(1, BUY, 100, 1, market=""), R.UNKNOWN_MARKET),
    ("qty zero", limit(1, BUY, 100, 0), R.INVALID_QUANTITY),
    ("qty negative", limit(1, BUY, 100, -3), R.INVALID_QUANTITY),
    ("qty below min", limit(1, BUY, 400, 1, market=ETH), R.QUANTITY_BELOW_MIN),
    ("qty above max", limit(1, BUY, 100, 51), R.QUANTITY_ABOVE_MAX),
    ("qty huge", limit(1, BUY, 100, 10**30), R.QUANTITY_ABOVE_MAX),
    ("market sell qty huge", PlaceOrder(1, BTC, SELL, MARKET, 10**30), R.QUANTITY_ABOVE_MAX),
    ("market sell qty zero", PlaceOrder(1, BTC, SELL, MARKET, 0), R.INVALID_QUANTITY),
    ("market buy qty above max", PlaceOrder(1, BTC, BUY, MARKET, 51, quote_cap=100), R.QUANTITY_ABOVE_MAX),
    ("price zero", limit(1, BUY, 0, 1), R.INVALID_PRICE),
    ("price negative", limit(1, BUY, -100, 1), R.INVALID_PRICE),
    ("price above max", limit(1, BUY, 1_001, 1), R.PRICE_ABOVE_MAX),
    ("price huge", limit(1, SELL, 10**30, 1), R.PRICE_ABOVE_MAX),
    ("eth price above max", limit(1, SELL, 501, 2, market=ETH), R.PRICE_ABOVE_MAX),
    ("notional below min", limit(1, BUY, 49, 2, market=ETH), R.NOTIONAL_BELOW_MIN),
    (
        "stop-limit notional below min",
        PlaceOrder(1, ETH, BUY, STOP_LIMIT, 2, price=49, stop_price=49),
        R.NOTIONAL_BELOW_MIN,
    ),
    ("float price", limit(1, BUY, 100.0, 1), R.INVALID_PRICE),
    ("str price", limit(1, BUY, "100", 1), R.INVALID_PRICE),
    ("bool price", limit(1, BUY, True, 1), R.INVALID_PRICE),
    ("float qty", limit(1, BUY, 100, 2.0), R.INVALID_ORDER_PARAMETERS),
    ("str qty", limit(1, BUY, 100, "2"), R.INVALID_ORDER_PARAMETERS),
    ("bool qty", limit(1, BUY, 100, True), R.INVALID_ORDER_PARAMETERS),
    ("float market qty", PlaceOrder(1, BTC, SELL, MARKET, 1.5), R.INVALID_ORDER_PARAMETERS),
    ("bool side", limit(1, True, 100, 1), R.INVALID_ORDER_PARAMETERS),
    ("plain int side", limit(1, 0, 100, 1), R.INVALID_ORDER_PARAMETERS),
    ("str side", limit(1, "BUY", 100, 1), R.INVALID_ORDER_PARAMETERS),
    ("str order type", PlaceOrder(1, BTC, BUY, "LIMIT", 1, price=100), R.INVALID_ORDER_PARAMETERS),
    ("plain int tif", limit(1, BUY, 100, 1, tif=1), R.INVALID_ORDER_PARAMETERS),
    ("plain int stp", limit(1, BUY, 100, 1, stp=0), R.INVALID_ORDER_PARAMETERS),
    ("account zero", limit(0, BUY, 100, 1), R.INVALID_ORDER_PARAMETERS),
    ("account negative", limit(-1, BUY, 100, 1), R.INVALID_ORDER_PARAMETERS),
    ("account str", limit("1", BUY, 100, 1), R.INVALID_ORDER_PARAMETERS),
    ("unknown account", limit(99, BUY, 100, 1), R.INSUFFICIENT_BALANCE),
    ("client order id too long", limit(1, BUY, 100, 1, client_order_id=CID_37), R.CLIENT_ORDER_ID_TOO_LONG),
    ("duplicate client order id", limit(1, BUY, 90, 1, client_order_id="mine"), R.DUPLICATE_CLIENT_ORDER_ID),
    (
        "duplicate client order id other market",
        limit(1, BUY, 150, 2, market=ETH, client_order_id="mine"),
        R.DUPLICATE_CLIENT_ORDER_ID,
    ),
    ("insufficient quote", limit(1, BUY, 1_000, 50), R.INSUFFICIENT_BALANCE),
    ("insufficient base (part is held)", limit(1, SELL, 200, 10), R.INSUFFICIENT_BALANCE),
    ("market buy cap above balance", PlaceOrder(1, BTC, BUY, MARKET, 1, quote_cap=98_566), R.INSUFFICIENT_BALANCE),
    ("market sell above balance", PlaceOrder(1, BTC, SELL, MARKET, 10), R.INSUFFICIENT_BALANCE),
    (
        "stop buy above balance",
        PlaceOrder(1, BTC, BUY, STOP_LIMIT, 50, price=1_000, stop_price=1_000),
        R.INSUFFICIENT_BALANCE,
    ),
    ("market with price", PlaceOrder(1, BTC, SELL, MARKET, 1, price=100), R.INVALID_ORDER_PARAMETERS),
    ("market post-only", PlaceOrder(1, BTC, SELL, MARKET, 1, post_only=True), R.INVALID_ORDER_PARAMETERS),
    ("market fok", PlaceOrder(1, BTC, SELL, MARKET, 1, tif=TimeInForce.FOK), R.INVALID_ORDER_PARAMETERS),
    ("market iceberg", PlaceOrder(1, BTC, SELL, MARKET, 5, display_qty=2), R.INVALID_ORDER_PARAMETERS),
    ("market buy without qty or cap", PlaceOrder(1, BTC, BUY, MARKET, 0), R.MARKET_BUY_NEEDS_CAP),
    ("market buy negative cap", PlaceOrder(1, BTC, BUY, MARKET, 1, quote_cap=-5), R.INVALID_ORDER_PARAMETERS),
    ("market buy float cap", PlaceOrder(1, BTC, BUY, MARKET, 0, quote_cap=500.0), R.INVALID_ORDER_PARAMETERS),
    ("quote cap on market sell", PlaceOrder(1, BTC, SELL, MARKET, 1, quote_cap=500), R.INVALID_ORDER_PARAMETERS),
    ("quote cap on limit", limit(1, BUY, 100, 1, quote_cap=500), R.INVALID_ORDER_PARAMETERS),
    ("post-only ioc", limit(1, BUY, 100, 1, post_only=True, tif=TimeInForce.IOC), R.INVALID_ORDER_PARAMETERS),
    ("post-only fok", limit(1, BUY, 100, 1, post_only=True, tif=TimeInForce.FOK), R.INVALID_ORDER_PARAMETERS),
    ("iceberg display equal qty", limit(1, BUY, 100, 5, display_qty=5), R.INVALID_ORDER_PARAMETERS),
    ("iceberg display above qty", limit(1, BUY, 100, 5, display_qty=6), R.INVALID_ORDER_PARAMETERS),
    ("iceberg display negative", limit(1, BUY, 100, 5, display_qty=-1), R.INVALID_ORDER_PARAMETERS),
    ("iceberg display float", limit(1, BUY, 100, 5, display_qty=2.0), R.INVALID_ORDER_PARAMETERS),
    ("iceberg ioc", limit(1, BUY, 100, 5, display_qty=2, tif=TimeInForce.IOC), R.INVALID_ORDER_PARAMETERS),
    ("iceberg fok", limit(1, BUY, 100, 5, display_qty=2, tif=TimeInForce.FOK), R.INVALID_ORDER_PARAMETERS),
    ("stop price on limit", limit(1, BUY, 100, 1, stop_price=120), R.INVALID_ORDER_PARAMETERS),
    ("stop price on market", PlaceOrder(1, BTC, SELL, MARKET, 1, stop_price=100), R.INVALID_ORDER_PARAMETERS),
    ("stop-limit without stop price", PlaceOrder(1, BTC, BUY, STOP_LIMIT, 1, price=120), R.INVALID_PRICE),
    ("stop-limit stop above max", PlaceOrder(1, BTC, BUY, STOP_LIMIT, 1, price=120, stop_price=1_001), R.INVALID_PRICE),
    ("stop-limit float stop", PlaceOrder(1, BTC, BUY, STOP_LIMIT, 1, price=120, stop_price=120.0), R.INVALID_PRICE),
    (
        "stop-limit post-only",
        PlaceOrder(1, BTC, BUY, STOP_LIMIT, 1, price=120, stop_price=120, post_only=True),
        R.INVALID_ORDER_PARAMETERS,
    ),
    (
        "stop-limit fok",
        PlaceOrder(1, BTC, BUY, STOP_LIMIT, 1, price=120, stop_price=120, tif=TimeInForce.FOK),
        R.INVALID_ORDER_PARAMETERS,
    ),
    (
        "stop-limit iceberg",
        PlaceOrder(1, BTC, BUY, STOP_LIMIT, 5, price=120, stop_price=120, display_qty=2),
        R.INVALID_ORDER_PARAMETERS,
    ),
    ("stop-market buy without cap", PlaceOrder(1, BTC, BUY, STOP_MARKET, 1, stop_price=120), R.MARKET_BUY_NEEDS_CAP),
    (
        "stop-market sell with cap",
        PlaceOrder(1, BTC, SELL, STOP_MARKET, 1, stop_price=100, quote_cap=5),
        R.INVALID_ORDER_PARAMETERS,
    ),
    (
        "buy stop would trigger",
        PlaceOrder(1, BTC, BUY, STOP_LIMIT, 1, price=110, stop_price=110),
        R.STOP_WOULD_TRIGGER_IMMEDIATELY,
    ),
    (
        "sell stop would trigger",
        PlaceOrder(1, BTC, SELL, STOP_MARKET, 1, stop_price=111),
        R.STOP_WOULD_TRIGGER_IMMEDIATELY,
    ),
    ("post-only would cross", limit(1, BUY, 110, 1, post_only=True), R.POST_ONLY_WOULD_CROSS),
    ("fok not fillable", limit(1, BUY, 110, 3, tif=TimeInForce.FOK), R.FOK_NOT_FILLABLE),
    ("fok against own bid only", limit(1, SELL, 95, 1, tif=TimeInForce.FOK), R.FOK_NOT_FILLABLE),
]


@pytest.mark.parametrize(("cmd", "reason"), [c[1:] for c in PLACE_CASES], ids=[c[0] for c in PLACE_CASES])
def test_bad_order_is_rejected_with_exact_reason_and_changes_nothing(cmd: PlaceOrder, reason: RejectReason) -> None:
    run = fixture()
    events = apply_unchanged(run, cmd)
    assert events == [OrderRejected(run.seq, cmd.account, cmd.market, reason, cmd.client_order_id)]


@pytest.mark.parametrize(
    "cmd",
    [
        limit(1, BUY, 50, 2, market=ETH),  # notional exactly 300
        limit(1, BUY, 100, 1, client_order_id="y" * 36),
        limit(1, BUY, 1_000, 14),  # 98_000 <= 98_565 available
        limit(1, SELL, 200, 9),  # 9_000 <= 9_997 available
        limit(2, BUY, 90, 1, client_order_id="mine"),  # same client order id, other account
        PlaceOrder(1, BTC, BUY, MARKET, 1, quote_cap=98_565),
    ],
    ids=["min notional", "36-char client id", "quote just enough", "base just enough", "cid other account", "cap all"],
)
def test_boundary_orders_are_accepted(cmd: PlaceOrder) -> None:
    run = fixture()
    events = run(cmd)
    assert isinstance(events[0], OrderAccepted)
    check_invariants(run.engine, run.net_in)


def test_non_string_client_order_id_is_rejected() -> None:
    run = fixture()
    events = apply_unchanged(run, limit(1, BUY, 100, 1, client_order_id=None))
    assert [e.reason for e in events if isinstance(e, OrderRejected)] == [R.INVALID_ORDER_PARAMETERS]


def test_duplicate_client_order_id_allowed_again_once_the_first_order_is_closed() -> None:
    run = fixture()
    first = run.seq + 1
    assert isinstance(run(limit(1, BUY, 80, 1, client_order_id="dup"))[0], OrderAccepted)
    events = apply_unchanged(run, limit(1, BUY, 81, 1, client_order_id="dup"))
    assert events == [OrderRejected(run.seq, 1, BTC, R.DUPLICATE_CLIENT_ORDER_ID, "dup")]
    run(CancelOrder(1, BTC, first))
    second = run.seq + 1
    assert isinstance(run(limit(1, BUY, 110, 1, client_order_id="dup"))[0], OrderAccepted)  # fills at once
    assert second not in run.engine.orders
    assert isinstance(run(limit(1, BUY, 82, 1, client_order_id="dup"))[0], OrderAccepted)
    check_invariants(run.engine, run.net_in)


# ---------------------------------------------------------------------------------------------------------- cancel

CANCEL_CASES: list[tuple[str, Command, OrderRejected]] = [
    ("unknown order id", CancelOrder(1, BTC, 999), OrderRejected(0, 1, BTC, R.UNKNOWN_ORDER, "", 999)),
    ("already filled", CancelOrder(1, BTC, FILLED_BUY), OrderRejected(0, 1, BTC, R.UNKNOWN_ORDER, "", FILLED_BUY)),
    ("someone else's", CancelOrder(1, BTC, BID_2_90), OrderRejected(0, 1, BTC, R.NOT_ORDER_OWNER, "", BID_2_90)),
    ("someone else's stop", CancelOrder(2, BTC, STOP_1), OrderRejected(0, 2, BTC, R.NOT_ORDER_OWNER, "", STOP_1)),
    (
        "order of another market",
        CancelOrder(2, BTC, ETH_ASK_2),
        OrderRejected(0, 2, BTC, R.UNKNOWN_ORDER, "", ETH_ASK_2),
    ),
    (
        "unknown market",
        CancelOrder(1, "DOGE-USDT", BID_1_95),
        OrderRejected(0, 1, "DOGE-USDT", R.UNKNOWN_MARKET, "", BID_1_95),
    ),
    (
        "unknown client id",
        CancelOrder(1, BTC, client_order_id="nope"),
        OrderRejected(0, 1, BTC, R.UNKNOWN_ORDER, "nope"),
    ),
    (
        "client id of another account",
        CancelOrder(2, BTC, client_order_id="mine"),
        OrderRejected(0, 2, BTC, R.UNKNOWN_ORDER, "mine"),
    ),
    (
        "client id in another market",
        CancelOrder(1, ETH, client_order_id="mine"),
        OrderRejected(0, 1, ETH, R.UNKNOWN_ORDER, "mine"),
    ),
    ("neither id nor client id", CancelOrder(1, BTC), OrderRejected(0, 1, BTC, R.UNKNOWN_ORDER)),
    ("cancel-all unknown market", CancelAll(1, "DOGE-USDT"), OrderRejected(0, 1, "DOGE-USDT", R.UNKNOWN_MARKET)),
]


@pytest.mark.parametrize(("cmd", "expected"), [c[1:] for c in CANCEL_CASES], ids=[c[0] for c in CANCEL_CASES])
def test_bad_cancel_is_rejected_and_changes_nothing(cmd: Command, expected: OrderRejected) -> None:
    run = fixture()
    events = apply_unchanged(run, cmd)
    assert events == [msgspec.structs.replace(expected, seq=run.seq)]


def test_cancel_all_of_an_account_without_orders_does_nothing() -> None:
    run = fixture()
    assert apply_unchanged(run, CancelAll(99)) == []
    assert apply_unchanged(run, CancelAll(1, ETH)) == []  # account 2's ETH order is not account 1's
    assert ETH_ASK_2 in run.engine.orders


# ---------------------------------------------------------------------------------------------------------- replace

REPLACE_CASES: list[tuple[str, ReplaceOrder, OrderRejected]] = [
    ("price zero", ReplaceOrder(1, BTC, BID_1_95, 0, 1), OrderRejected(0, 1, BTC, R.INVALID_PRICE, "mine", BID_1_95)),
    (
        "price above max",
        ReplaceOrder(1, BTC, BID_1_95, 1_001, 1),
        OrderRejected(0, 1, BTC, R.PRICE_ABOVE_MAX, "mine", BID_1_95),
    ),
    (
        "float price",
        ReplaceOrder(1, BTC, BID_1_95, 95.0, 1),
        OrderRejected(0, 1, BTC, R.INVALID_PRICE, "mine", BID_1_95),
    ),
    ("qty zero", ReplaceOrder(1, BTC, BID_1_95, 95, 0), OrderRejected(0, 1, BTC, R.INVALID_QUANTITY, "mine", BID_1_95)),
    (
        "qty above max",
        ReplaceOrder(1, BTC, BID_1_95, 95, 51),
        OrderRejected(0, 1, BTC, R.QUANTITY_ABOVE_MAX, "mine", BID_1_95),
    ),
    (
        "float qty",
        ReplaceOrder(1, BTC, BID_1_95, 95, 2.0),
        OrderRejected(0, 1, BTC, R.INVALID_QUANTITY, "mine", BID_1_95),
    ),
    (
        "no change",
        ReplaceOrder(1, BTC, BID_1_95, 95, 1),
        OrderRejected(0, 1, BTC, R.REPLACE_NO_CHANGE, "mine", BID_1_95),
    ),
    (
        "insufficient",
        ReplaceOrder(1, BTC, BID_1_95, 1_000, 50),
        OrderRejected(0, 1, BTC, R.INSUFFICIENT_BALANCE, "mine", BID_1_95),
    ),
    (
        "waiting stop",
        ReplaceOrder(1, BTC, STOP_1, 100, 2),
        OrderRejected(0, 1, BTC, R.REPLACE_NOT_SUPPORTED, "", STOP_1),
    ),
    (
        "someone else's",
        ReplaceOrder(1, BTC, BID_2_90, 91, 2),
        OrderRejected(0, 1, BTC, R.NOT_ORDER_OWNER, "", BID_2_90),
    ),
    ("unknown order", ReplaceOrder(1, BTC, 999, 95, 2), OrderRejected(0, 1, BTC, R.UNKNOWN_ORDER, "", 999)),
    (
        "filled order",
        ReplaceOrder(1, BTC, FILLED_BUY, 95, 2),
        OrderRejected(0, 1, BTC, R.UNKNOWN_ORDER, "", FILLED_BUY),
    ),
    ("other market", ReplaceOrder(1, ETH, BID_1_95, 95, 2), OrderRejected(0, 1, ETH, R.UNKNOWN_ORDER, "", BID_1_95)),
    (
        "eth notional",
        ReplaceOrder(2, ETH, ETH_ASK_2, 49, 2),
        OrderRejected(0, 2, ETH, R.NOTIONAL_BELOW_MIN, "", ETH_ASK_2),
    ),
]


@pytest.mark.parametrize(("cmd", "expected"), [c[1:] for c in REPLACE_CASES], ids=[c[0] for c in REPLACE_CASES])
def test_bad_replace_is_rejected_and_changes_nothing(cmd: ReplaceOrder, expected: OrderRejected) -> None:
    run = fixture()
    events = apply_unchanged(run, cmd)
    assert events == [msgspec.structs.replace(expected, seq=run.seq)]


# ---------------------------------------------------------------------------------------------------------- funds

FUNDS_CASES: list[tuple[str, Command, RejectReason]] = [
    ("credit unknown asset", CreditFunds(1, "DOGE", 5, "r"), R.UNKNOWN_ASSET),
    ("credit zero", CreditFunds(1, "USDT", 0, "r"), R.INVALID_AMOUNT),
    ("credit negative", CreditFunds(1, "USDT", -5, "r"), R.INVALID_AMOUNT),
    ("credit float", CreditFunds(1, "USDT", 5.0, "r"), R.INVALID_AMOUNT),
    ("credit bool", CreditFunds(1, "USDT", True, "r"), R.INVALID_AMOUNT),
    ("credit account zero", CreditFunds(0, "USDT", 5, "r"), R.UNKNOWN_ACCOUNT),
    ("credit account negative", CreditFunds(-1, "USDT", 5, "r"), R.UNKNOWN_ACCOUNT),
    ("credit account str", CreditFunds("1", "USDT", 5, "r"), R.UNKNOWN_ACCOUNT),
    ("debit unknown asset", DebitFunds(1, "DOGE", 5, "r"), R.UNKNOWN_ASSET),
    ("debit zero", DebitFunds(1, "USDT", 0, "r"), R.INVALID_AMOUNT),
    ("debit negative", DebitFunds(1, "USDT", -5, "r"), R.INVALID_AMOUNT),
    ("debit over available (held not usable)", DebitFunds(1, "USDT", 98_566, "r"), R.INSUFFICIENT_BALANCE),
    ("debit asset never credited", DebitFunds(99, "USDT", 1, "r"), R.INSUFFICIENT_BALANCE),
]


@pytest.mark.parametrize(("cmd", "reason"), [c[1:] for c in FUNDS_CASES], ids=[c[0] for c in FUNDS_CASES])
def test_bad_funds_command_is_rejected_and_changes_nothing(cmd: CreditFunds | DebitFunds, reason: RejectReason) -> None:
    run = fixture()
    events = apply_unchanged(run, cmd)
    assert events == [FundsRejected(run.seq, cmd.account, cmd.asset, reason, "r")]
    assert 99 not in run.engine.accounts


def test_debit_of_exactly_the_available_balance_is_accepted() -> None:
    run = fixture()
    assert run(DebitFunds(1, "USDT", 98_565, "w")) == [FundsDebited(run.seq, 1, "USDT", 98_565, "w")]
    assert run.engine.balance(1, "USDT") == (0, 665)
    assert run(CreditFunds(5, "ETH", 7, "new")) == [FundsCredited(run.seq, 5, "ETH", 7, "new")]
    check_invariants(run.engine, run.net_in)


# ---------------------------------------------------------------------------------------------------------- status


def test_set_status_of_unknown_market_or_with_bad_status_is_rejected() -> None:
    run = fixture()
    events = apply_unchanged(run, SetMarketStatus("DOGE-USDT", MarketStatus.HALTED))
    assert events == [OrderRejected(run.seq, 0, "DOGE-USDT", R.UNKNOWN_MARKET)]
    events = apply_unchanged(run, SetMarketStatus(BTC, 1))
    assert events == [OrderRejected(run.seq, 0, BTC, R.INVALID_ORDER_PARAMETERS)]


def test_halted_market_rejects_new_orders_and_replaces_but_allows_cancels() -> None:
    run = fixture()
    assert run(SetMarketStatus(BTC, MarketStatus.HALTED)) == [MarketStatusChanged(run.seq, BTC, MarketStatus.HALTED)]
    for cmd in (
        limit(1, BUY, 100, 1),
        PlaceOrder(1, BTC, SELL, MARKET, 1),
        PlaceOrder(1, BTC, SELL, STOP_MARKET, 1, stop_price=90),
        limit(1, BUY, 1, 0),  # even an invalid one: the status is checked first
    ):
        events = apply_unchanged(run, cmd)
        assert events == [OrderRejected(run.seq, 1, BTC, R.MARKET_NOT_OPEN, "")]
    events = apply_unchanged(run, ReplaceOrder(1, BTC, BID_1_95, 96, 1))
    assert events == [OrderRejected(run.seq, 1, BTC, R.MARKET_NOT_OPEN, "mine", BID_1_95)]
    # the other market is not affected
    assert isinstance(run(limit(1, BUY, 100, 3, market=ETH))[0], OrderAccepted)
    # cancels work: one order, then all of account 1's (the stop too)
    events = run(CancelOrder(2, BTC, BID_2_90))
    assert events == [
        OrderCancelled(run.seq, BID_2_90, 2, BTC, CancelReason.USER, 2, 1_260),
        BookDelta(run.seq, BTC, BUY, 90, 0),
    ]
    events = run(CancelAll(1, BTC))
    assert [e for e in events if not isinstance(e, BookDelta)] == [
        OrderCancelled(run.seq, BID_1_95, 1, BTC, CancelReason.USER, 1, 665),
        OrderCancelled(run.seq, STOP_1, 1, BTC, CancelReason.USER, 1, 1_000),
    ]
    # reopened: orders are accepted again
    run(SetMarketStatus(BTC, MarketStatus.OPEN))
    assert isinstance(run(limit(1, BUY, 100, 1))[0], OrderAccepted)
    check_invariants(run.engine, run.net_in)


def test_closing_a_market_cancels_every_open_order_and_releases_holds() -> None:
    run = fixture()
    events = run(SetMarketStatus(BTC, MarketStatus.CLOSED))
    s = run.seq
    closed = CancelReason.MARKET_CLOSED
    assert events == [
        MarketStatusChanged(s, BTC, MarketStatus.CLOSED),
        OrderCancelled(s, ASK_2_110, 2, BTC, closed, 2, 2_000),
        OrderCancelled(s, BID_2_90, 2, BTC, closed, 2, 1_260),
        OrderCancelled(s, BID_1_95, 1, BTC, closed, 1, 665),
        OrderCancelled(s, STOP_1, 1, BTC, closed, 1, 1_000),
        BookDelta(s, BTC, SELL, 110, 0),
        BookDelta(s, BTC, BUY, 90, 0),
        BookDelta(s, BTC, BUY, 95, 0),
    ]
    assert book_view(run.engine)[BTC] == ([], [], [])
    assert sorted(run.engine.orders) == [ETH_ASK_2]
    for account in (1, 2):
        for asset in ("USDT", "BTC"):
            assert run.engine.balance(account, asset)[1] == 0
    assert run.engine.balance(2, "ETH") == (950, 50)
    assert "mine" not in {cid for _, cid in run.engine.client_ids}
    # nothing can be placed, cancelled or replaced in a closed market
    events = apply_unchanged(run, limit(1, BUY, 100, 1))
    assert events == [OrderRejected(run.seq, 1, BTC, R.MARKET_NOT_OPEN, "")]
    events = apply_unchanged(run, CancelOrder(1, BTC, BID_1_95))
    assert events == [OrderRejected(run.seq, 1, BTC, R.MARKET_NOT_OPEN, "", BID_1_95)]
    events = apply_unchanged(run, ReplaceOrder(1, BTC, BID_1_95, 96, 1))
    assert events == [OrderRejected(run.seq, 1, BTC, R.MARKET_NOT_OPEN, "", BID_1_95)]
    # the other market still trades
    events = run(limit(1, BUY, 200, 2, market=ETH))
    assert [(e.maker_order_id, e.qty) for e in events if isinstance(e, Trade)] == [(ETH_ASK_2, 2)]
    check_invariants(run.engine, run.net_in)


def test_already_applied_sequence_number_changes_nothing() -> None:
    run = fixture()
    before = engine_state(run.engine)
    for seq in (run.seq, 1):
        assert run.engine.apply(seq, CreditFunds(1, "USDT", 10)) is False
        assert run.engine.apply(seq, CancelAll(1)) is False
    assert run.engine.events == []
    assert engine_state(run.engine) == before
