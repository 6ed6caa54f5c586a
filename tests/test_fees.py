"""Fee tiers and overrides: from 30-day volume to the SetAccountFees commands the engine needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exchange_framework.config import load_config
from exchange_framework.engine.commands import CreditFunds, PlaceOrder, SetAccountFees
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Trade
from exchange_framework.fees import WINDOW_NS, FeeSchedule, VolumeTracker, fee_commands
from exchange_framework.types import OrderType, Side

DAY = 24 * 3600 * 10**9
FEES = """
[fees]
maker = "0.001"
taker = "0.002"
volume_asset = "USDT"

[[fees.tiers]]
min_volume_30d = "100"
maker = "0.0008"
taker = "0.0015"

[[fees.tiers]]
min_volume_30d = "1000"
maker = "-0.0001"
taker = "0.001"

[fees.overrides."9"]
maker = "0"
taker = "0"
"""


def trade(maker: int, taker: int, quote_amount: int, market: str = "BTC-USDT") -> Trade:
    return Trade(1, market, 1, 100, 1, Side.BUY, 10, maker, 11, taker, 1, quote_amount, 0, 0, 0)


def test_schedule_in_engine_integers(write_config: Callable[..., Path]) -> None:
    schedule = FeeSchedule.from_config(load_config(write_config(FEES)))
    usdt = 10**6  # USDT has 6 decimals in the minimal config
    assert schedule.tiers == ((100 * usdt, (800, 1_500)), (1_000 * usdt, (-100, 1_000)))
    assert schedule.overrides == {9: (0, 0)}
    assert schedule.rates_for(1, 99 * usdt) is None
    assert schedule.rates_for(1, 100 * usdt) == (800, 1_500)
    assert schedule.rates_for(1, 5_000 * usdt) == (-100, 1_000)
    assert schedule.rates_for(9, 5_000 * usdt) == (0, 0)  # an override wins over any tier


def test_volume_counts_both_sides_and_expires_after_30_days(write_config: Callable[..., Path]) -> None:
    tracker = VolumeTracker.for_config(load_config(write_config(FEES)))
    tracker.observe(0, [trade(1, 2, 700)])
    tracker.observe(5 * DAY, [trade(2, 3, 300)])
    assert (tracker.volume(1), tracker.volume(2), tracker.volume(3)) == (700, 1_000, 300)
    tracker.expire(WINDOW_NS)  # the first trade is exactly 30 days old: out
    assert (tracker.volume(1), tracker.volume(2), tracker.volume(3)) == (0, 300, 300)
    assert tracker.accounts() == [2, 3]


def test_fee_commands_move_accounts_between_tiers_and_back(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(FEES))
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    schedule = FeeSchedule.from_config(config)
    tracker = VolumeTracker.for_config(config)
    seq = 0

    def apply(command: object) -> None:
        nonlocal seq
        seq += 1
        engine.apply(seq, command)  # type: ignore[arg-type]
        engine.events.clear()

    for account in (1, 2):
        apply(CreditFunds(account, "USDT", 10**12))
        apply(CreditFunds(account, "BTC", 10**12))
    # 150 USDT of volume for accounts 1 and 2: tier 1
    tracker.observe(DAY, [trade(1, 2, 150 * 10**6)])
    commands = fee_commands(engine, schedule, tracker, now_ns=2 * DAY)
    assert commands == [SetAccountFees(1, 800, 1_500), SetAccountFees(2, 800, 1_500), SetAccountFees(9, 0, 0)]
    for command in commands:
        apply(command)
    assert fee_commands(engine, schedule, tracker, now_ns=2 * DAY) == []  # nothing left to change
    # 31 days later the volume is gone: back to the market rates; the override stays
    commands = fee_commands(engine, schedule, tracker, now_ns=DAY + WINDOW_NS)
    assert commands == [SetAccountFees(1), SetAccountFees(2)]
    for command in commands:
        apply(command)
    assert engine.accounts[1].maker_ppm is None and engine.accounts[9].maker_ppm == 0


def test_trades_in_markets_quoted_in_another_asset_do_not_count(write_config: Callable[..., Path]) -> None:
    tracker = VolumeTracker.for_config(load_config(write_config(FEES)))
    tracker.observe(0, [trade(1, 2, 10**9, market="ETH-BTC")])
    assert tracker.volume(1) == 0


def test_a_real_trade_is_counted_from_the_engine_events(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(FEES))
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    tracker = VolumeTracker.for_config(config)
    market = next(iter(config.markets))
    engine.apply(1, CreditFunds(1, "USDT", 10**15))
    engine.apply(2, CreditFunds(2, "BTC", 10**15))
    engine.apply(3, PlaceOrder(2, market, Side.SELL, OrderType.LIMIT, 10, price=1_000))
    engine.apply(4, PlaceOrder(1, market, Side.BUY, OrderType.LIMIT, 10, price=1_000))
    tracker.observe(0, engine.events)
    quote = next(e.quote_amount for e in engine.events if isinstance(e, Trade))
    assert tracker.volume(1) == tracker.volume(2) == quote > 0


def test_the_running_exchanges_reviewer_tiers_accounts_and_leaves_hand_set_rates(
    write_config: Callable[..., Path],
) -> None:
    from exchange_framework.engine.events import AccountFeesChanged
    from exchange_framework.fees import FeeReviewer

    reviewer = FeeReviewer.for_config(load_config(write_config(FEES)))
    now = 40 * DAY
    reviewer.observe(now, [trade(1, 2, 150 * 10**6), trade(3, 4, 1)])
    reviewer.observe(now, [AccountFeesChanged(2, 5, 50, 400)])  # an operator set account 5 by hand
    due = reviewer.due(now)
    assert due == [SetAccountFees(1, 800, 1500), SetAccountFees(2, 800, 1500), SetAccountFees(9, 0, 0)]
    for command in due:  # the engine applied them; the reviewer learns it from the events, as in the exchange
        reviewer.observe(now, [AccountFeesChanged(3, command.account, command.maker_ppm, command.taker_ppm)])
    assert reviewer.due(now) == []
    # 30 days later the volume has expired: the tiered accounts go back to their markets' rates; 5 and 9 stay
    later = now + WINDOW_NS + DAY
    assert reviewer.due(later) == [SetAccountFees(1), SetAccountFees(2)]
