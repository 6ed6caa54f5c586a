"""Hypothesis: random command streams against the reference model, with invariants checked after every command."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.engine.commands import (
    CancelAll,
    CancelOrder,
    Command,
    CreditFunds,
    DebitFunds,
    DebitHeldFunds,
    HoldFunds,
    PlaceOrder,
    ReleaseFunds,
    ReplaceOrder,
    SetAccountFees,
    SetMarketStatus,
)
from exchange_framework.engine.snapshot import restore, snapshot, state_hash
from exchange_framework.types import MarketStatus, OrderType, Side, StpMode, TimeInForce
from tests.engine.helpers import ASSETS, MARKETS, Runner, book_view, check_invariants, new_engine, semantic
from tests.engine.reference_model import RefEngine

ACCOUNTS = st.integers(1, 3)
MARKET = st.sampled_from(["BTC-USDT", "ETH-USDT"])
PRICE = st.integers(95, 105)
QTY = st.integers(1, 12)
ORDER_ID = st.integers(10, 45)
CID = st.sampled_from(["", "", "", "a", "b"])


@st.composite
def place(draw: st.DrawFn) -> PlaceOrder:
    kind = draw(st.sampled_from(["limit", "limit", "limit", "ioc", "fok", "post", "iceberg", "market", "stop"]))
    side = draw(st.sampled_from(Side))
    common = dict(
        account=draw(ACCOUNTS),
        market=draw(MARKET),
        side=side,
        stp=draw(st.sampled_from(StpMode)),
        client_order_id=draw(CID),
    )
    qty = draw(QTY)
    if kind == "market":
        cap = draw(st.sampled_from([0, 0, 500, 5_000]))
        if side is Side.BUY and draw(st.booleans()):
            return PlaceOrder(type=OrderType.MARKET, qty=0, quote_cap=cap or 3_000, **common)
        return PlaceOrder(type=OrderType.MARKET, qty=qty, quote_cap=cap if side is Side.BUY else 0, **common)
    if kind == "stop":
        if draw(st.booleans()):
            return PlaceOrder(type=OrderType.STOP_LIMIT, qty=qty, price=draw(PRICE), stop_price=draw(PRICE), **common)
        return PlaceOrder(
            type=OrderType.STOP_MARKET,
            qty=qty,
            stop_price=draw(PRICE),
            quote_cap=4_000 if side is Side.BUY else 0,
            **common,
        )
    tif = {"ioc": TimeInForce.IOC, "fok": TimeInForce.FOK}.get(kind, TimeInForce.GTC)
    display = draw(st.integers(1, max(1, qty - 1))) if kind == "iceberg" and qty > 2 else 0
    return PlaceOrder(
        type=OrderType.LIMIT,
        qty=qty,
        price=draw(PRICE),
        tif=tif,
        post_only=kind == "post",
        display_qty=display,
        **common,
    )


COMMAND = st.one_of(
    *[place() for _ in range(12)],
    st.builds(CancelOrder, account=ACCOUNTS, market=MARKET, order_id=ORDER_ID),
    st.builds(CancelOrder, account=ACCOUNTS, market=MARKET, order_id=ORDER_ID),
    st.builds(CancelOrder, account=ACCOUNTS, market=MARKET, client_order_id=st.sampled_from(["a", "b"])),
    st.builds(CancelAll, account=ACCOUNTS, market=st.sampled_from(["", "BTC-USDT", "ETH-USDT"])),
    st.builds(ReplaceOrder, account=ACCOUNTS, market=MARKET, order_id=ORDER_ID, price=PRICE, qty=QTY),
    st.builds(ReplaceOrder, account=ACCOUNTS, market=MARKET, order_id=ORDER_ID, price=PRICE, qty=QTY),
    st.builds(CreditFunds, account=ACCOUNTS, asset=st.sampled_from(list(ASSETS)), amount=st.integers(1, 50_000)),
    st.builds(DebitFunds, account=ACCOUNTS, asset=st.sampled_from(list(ASSETS)), amount=st.integers(1, 20_000)),
    st.builds(SetMarketStatus, market=MARKET, status=st.sampled_from([MarketStatus.OPEN, MarketStatus.HALTED])),
    st.builds(SetMarketStatus, market=MARKET, status=st.just(MarketStatus.OPEN)),
    st.builds(
        HoldFunds,
        account=ACCOUNTS,
        asset=st.sampled_from(list(ASSETS)),
        amount=st.integers(1, 30_000),
        reference=st.sampled_from(["w1", "w2", "w3", ""]),
    ),
    st.builds(ReleaseFunds, reference=st.sampled_from(["w1", "w2", "w3", "nope"])),
    st.builds(DebitHeldFunds, reference=st.sampled_from(["w1", "w2", "w3"])),
    st.builds(
        SetAccountFees,
        account=ACCOUNTS,
        maker_ppm=st.sampled_from([None, -200, 0, 500, 3_000, -20_000]),
        taker_ppm=st.sampled_from([None, 0, 1_000, 7_000, 200_000]),
    ),
)

FUNDING = [
    CreditFunds(account, asset, amount)
    for account in (1, 2, 3)
    for asset, amount in (("USDT", 60_000), ("BTC", 40_000), ("ETH", 300))
]


def ref_book_view(ref: RefEngine) -> dict[str, tuple[list[tuple[int, ...]], ...]]:
    view = {}
    for symbol in MARKETS:
        sides = []
        for side in (Side.BUY, Side.SELL):
            orders = [o for o in ref.resting if o.market == symbol and o.side is side]
            orders.sort(key=lambda o: (-o.price if side is Side.BUY else o.price, o.prio))
            sides.append([(o.oid, o.price, o.remaining, o.visible) for o in orders])
        stops = sorted(o.oid for o in ref.stops if o.market == symbol)
        view[symbol] = (*sides, [(s,) for s in stops])
    return view


def targeted(data: st.DataObject, run: Runner) -> Command:
    """A cancel or replace aimed at one of the orders open right now (so they are not all misses)."""
    order = data.draw(st.sampled_from(sorted(run.engine.orders.values(), key=lambda o: o.order_id)))
    if data.draw(st.booleans()):
        return CancelOrder(order.account, order.market, order.order_id)
    same_price = data.draw(st.booleans())
    return ReplaceOrder(
        order.account,
        order.market,
        order.order_id,
        order.price if same_price else data.draw(PRICE),
        data.draw(st.integers(1, order.remaining + 3)),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(10, 120))
def test_engine_matches_reference_model_and_keeps_invariants(data: st.DataObject, length: int) -> None:
    run = Runner()
    ref = RefEngine(dict(ASSETS), dict(MARKETS))
    commands: list[Command] = []
    for seq in range(1, len(FUNDING) + length + 1):
        if seq <= len(FUNDING):
            command = FUNDING[seq - 1]
        elif run.engine.orders and data.draw(st.integers(0, 4)) == 0:
            command = targeted(data, run)
        else:
            command = data.draw(COMMAND)
        commands.append(command)
        before = len(ref.log)
        ref.apply(seq, command)
        got = semantic(run(command))
        assert got == ref.log[before:], f"command {seq}: {command!r}\nengine:    {got}\nreference: {ref.log[before:]}"
        check_invariants(run.engine, run.net_in)
    assert book_view(run.engine) == ref_book_view(ref)
    for (account, asset), available in ref.available.items():
        assert run.engine.balance(account, asset) == (available, ref.held.get((account, asset), 0))
    assert run.engine.fees_collected == ref.fees


@settings(max_examples=100, deadline=None)
@given(st.lists(COMMAND, min_size=10, max_size=100), st.integers(0, 80))
def test_snapshot_plus_tail_equals_full_replay(commands: list[Command], cut: int) -> None:
    stream = list(enumerate(FUNDING + commands, start=1))
    full = new_engine()
    full.apply_all(stream)
    cut = min(cut, len(stream))
    head = new_engine()
    head.apply_all(stream[:cut])
    resumed = new_engine()
    restore(resumed, snapshot(head))
    assert state_hash(resumed) == state_hash(head)
    resumed.events.clear()
    full_events_tail = []
    check = new_engine()
    for seq, command in stream:
        check.apply(seq, command)
        if seq > cut:
            full_events_tail.extend(check.events)
        check.events.clear()
    resumed.apply_all(stream[cut:])
    assert resumed.events == full_events_tail
    assert state_hash(resumed) == state_hash(full)
    assert snapshot(resumed) == snapshot(full)


@settings(max_examples=50, deadline=None)
@given(st.lists(COMMAND, min_size=10, max_size=100))
def test_replay_is_deterministic_and_idempotent_by_sequence(commands: list[Command]) -> None:
    stream = list(enumerate(FUNDING + commands, start=1))
    a, b = new_engine(), new_engine()
    a.apply_all(stream)
    b.apply_all(stream)
    assert a.events == b.events
    assert snapshot(a) == snapshot(b)
    # Re-delivering already applied commands changes nothing.
    events_before = list(b.events)
    b.apply_all(stream)
    assert b.events == events_before
    assert snapshot(a) == snapshot(b)
