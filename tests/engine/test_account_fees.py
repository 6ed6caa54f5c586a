"""Per-account fee rates: overrides and tier assignments arrive as sequenced SetAccountFees commands."""

from __future__ import annotations

import pytest

from exchange_framework.engine.commands import SetAccountFees
from exchange_framework.engine.events import AccountFeesChanged, OrderRejected, Trade
from exchange_framework.engine.snapshot import restore, snapshot
from exchange_framework.types import RejectReason
from tests.engine.helpers import check_invariants, new_engine
from tests.engine.scenario import BUY, SELL, funded, limit, place, state


def only_trade(events: list[object]) -> Trade:
    trades = [e for e in events if isinstance(e, Trade)]
    assert len(trades) == 1
    return trades[0]


def test_account_rates_replace_the_market_rates_for_that_account_only() -> None:
    run = funded(1, 2, 3)
    # BTC-USDT: maker -100 ppm (rebate), taker 2,500 ppm; 1 lot = 1,000 sat; 1 tick x 1 lot = 7 quote units
    seq, events = place(run, SetAccountFees(2, maker_ppm=-500, taker_ppm=1_000))
    assert events == [AccountFeesChanged(seq, 2, -500, 1_000)]
    place(run, limit(1, SELL, 100, 10))  # account 1 (market rates) makes
    _, events = place(run, limit(2, BUY, 100, 10))  # account 2 (own rates) takes: 10,000 sat
    t = only_trade(events)
    assert (t.base_amount, t.quote_amount) == (10_000, 7_000)
    assert t.taker_fee == 10  # 1,000 ppm of 10,000 sat (the buyer pays in base)
    assert t.maker_fee == 0  # -100 ppm of 7,000 = -0.7, a rebate rounded down in size to 0
    place(run, limit(2, SELL, 100, 10))  # now account 2 makes
    _, events = place(run, limit(3, BUY, 100, 10))  # account 3 (market rates) takes
    t = only_trade(events)
    assert t.maker_fee == -3  # -500 ppm of 7,000 quote = -3.5: a 3-unit rebate
    assert t.taker_fee == 25  # 2,500 ppm of 10,000 sat
    check_invariants(run.engine, run.net_in)


def test_clearing_the_override_restores_the_market_rates() -> None:
    run = funded(1, 2)
    place(run, SetAccountFees(2, maker_ppm=0, taker_ppm=0))
    seq, events = place(run, SetAccountFees(2))
    assert events == [AccountFeesChanged(seq, 2, None, None)]
    place(run, limit(1, SELL, 100, 10))
    _, events = place(run, limit(2, BUY, 100, 10))
    assert only_trade(events).taker_fee == 25


@pytest.mark.parametrize(
    ("maker", "taker"),
    [(None, 1_000), (1_000, None), (-10_001, 0), (0, -1), (100_001, 0), (0, 100_001), (1.5, 0), (0, "1")],
)
def test_invalid_rates_are_rejected_and_change_nothing(maker: object, taker: object) -> None:
    run = funded(1)
    before = state(run.engine)
    seq, events = place(run, SetAccountFees(1, maker_ppm=maker, taker_ppm=taker))  # type: ignore[arg-type]
    assert events == [OrderRejected(seq, 1, "", RejectReason.INVALID_FEE_RATE)]
    assert state(run.engine) == before


def test_account_rates_survive_a_snapshot() -> None:
    run = funded(1)
    place(run, SetAccountFees(1, maker_ppm=-200, taker_ppm=800))
    copy = new_engine()
    restore(copy, snapshot(run.engine))
    acct = copy.accounts[1]
    assert (acct.maker_ppm, acct.taker_ppm) == (-200, 800)
    assert snapshot(copy) == snapshot(run.engine)
