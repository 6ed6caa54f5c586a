"""The withdrawal-demand forecaster: seasonal spikes covered, quantile of bad days, short history falls back."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_framework.custody.tiers import TierConfig
from exchange_framework.custody.tiers_forecast import (
    DAY_NS,
    HOUR_NS,
    WEEK_HOURS,
    forecast,
    forecast_for,
    wallet_history,
)
from exchange_framework.wallet.store import WalletStore
from exchange_framework.wallet.types import WithdrawalStage

WEEK_NS = WEEK_HOURS * HOUR_NS
T0 = 2_000 * WEEK_NS  # a week boundary on the epoch clock
SPIKE_HOUR = 3 * 24 + 14  # hour of the week of the weekly spike (day 3, 14:00)
BASE = 1_000  # withdrawn every hour
SPIKE = 500_000  # withdrawn at the spike hour, every week


def weekly_history(weeks: int, *, jitter: random.Random | None = None) -> list[tuple[int, int]]:
    """``weeks`` of hourly withdrawals of BASE, plus SPIKE once a week, at random instants within each hour."""
    rng = jitter or random.Random(7)
    events = []
    for hour in range(weeks * WEEK_HOURS):
        at = T0 + hour * HOUR_NS + rng.randrange(HOUR_NS)
        events.append((at, BASE))
        if hour % WEEK_HOURS == SPIKE_HOUR:
            events.append((at, SPIKE))
    return events


def actual(events: list[tuple[int, int]], start: int, hours: int) -> int:
    return sum(a for ts, a in events if start <= ts < start + hours * HOUR_NS)


def test_the_forecast_covers_the_weekly_spike_it_has_seen_before() -> None:
    history = weekly_history(6)
    now = T0 + 6 * WEEK_NS + (SPIKE_HOUR - 10) * HOUR_NS  # ten hours before this week's spike
    f = forecast(history, now_ns=now, quantile_bp=5_000, margin_bp=0)
    assert f.weeks == 4 and f.days == 28
    assert f.hourly[10] == BASE + SPIKE  # the spike hour, from the same hour of the last four weeks
    assert all(h == BASE for i, h in enumerate(f.hourly) if i != 10)
    assert f.seasonal == 24 * BASE + SPIKE
    assert f.quantile == 24 * BASE  # the median day has no spike
    assert f.demand == f.seasonal and f.basis.startswith("seasonal")
    # what the same process then withdraws in the next 24 hours is covered
    future = weekly_history(7, jitter=random.Random(8))
    assert actual(future, now, 24) <= f.demand


def test_a_quiet_day_gets_a_smaller_seasonal_forecast_than_the_spike_day() -> None:
    history = weekly_history(6)
    spike_day = forecast(history, now_ns=T0 + 6 * WEEK_NS + 3 * 24 * HOUR_NS, quantile_bp=5_000, margin_bp=0)
    quiet_day = forecast(history, now_ns=T0 + 6 * WEEK_NS + 5 * 24 * HOUR_NS, quantile_bp=5_000, margin_bp=0)
    assert spike_day.demand == 24 * BASE + SPIKE
    assert quiet_day.demand == 24 * BASE


def test_a_high_quantile_of_daily_totals_covers_bad_days_whatever_their_hour() -> None:
    history = weekly_history(6)
    f = forecast(history, now_ns=T0 + 6 * WEEK_NS + 5 * 24 * HOUR_NS, quantile_bp=9_500, margin_bp=0)
    assert f.quantile == 24 * BASE + SPIKE  # 4 spike days of 28: the 27th smallest is a spike day
    assert f.demand == f.quantile and f.basis.startswith("quantile")


def test_the_margin_is_added_and_rounded_up() -> None:
    history = [(T0 + d * DAY_NS, 999) for d in range(10)]
    f = forecast(history, now_ns=T0 + 10 * DAY_NS, horizon_hours=24, quantile_bp=10_000, margin_bp=2_000)
    assert f.quantile == 999
    assert f.demand == 1_199  # ceil(999 * 1.2) = ceil(1198.8)


def test_the_quantile_scales_to_the_horizon_rounding_up() -> None:
    history = [(T0 + d * DAY_NS, 1_000) for d in range(10)]
    f = forecast(history, now_ns=T0 + 10 * DAY_NS, horizon_hours=5, quantile_bp=10_000, margin_bp=0)
    assert f.horizon_hours == 5 and f.quantile == 209  # ceil(1000 * 5 / 24)


@pytest.mark.parametrize("history", [[], [(T0, 10**9)], [(T0 + h * HOUR_NS, 5) for h in range(72)]])
def test_empty_or_short_history_falls_back_to_the_band(history: list[tuple[int, int]]) -> None:
    f = forecast(history, now_ns=T0 + 4 * DAY_NS, min_history_days=7)
    assert f.demand == 0 and f.seasonal == 0 and f.quantile == 0
    assert f.hourly == (0,) * 24
    assert "the band alone" in f.basis


def test_an_explicit_start_of_history_counts_quiet_days() -> None:
    history = [(T0 + 9 * DAY_NS, 700)]
    f = forecast(history, now_ns=T0 + 10 * DAY_NS, since_ns=T0, quantile_bp=10_000, margin_bp=0)
    assert f.days == 10 and f.quantile == 700


def test_withdrawals_at_or_after_now_are_ignored() -> None:
    history = weekly_history(5)
    now = T0 + 5 * WEEK_NS - 3 * DAY_NS
    assert forecast(history, now_ns=now) == forecast([e for e in history if e[0] < now], now_ns=now)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30 * DAY_NS), st.integers(0, 10**30)), max_size=60), st.randoms())
def test_the_forecast_is_deterministic_whatever_the_order(events: list[tuple[int, int]], rng: random.Random) -> None:
    history = [(T0 + ts, a) for ts, a in events]
    shuffled = list(history)
    rng.shuffle(shuffled)
    now = T0 + 30 * DAY_NS
    first = forecast(history, now_ns=now, since_ns=T0)
    assert first == forecast(shuffled, now_ns=now, since_ns=T0)
    assert first.demand >= max(first.seasonal, first.quantile)
    assert all(type(x) is int for x in (first.demand, first.seasonal, first.quantile, *first.hourly))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=28, max_size=28), st.integers(1, 10_000))
def test_the_quantile_covers_at_least_that_share_of_past_days(totals: list[int], quantile_bp: int) -> None:
    history = [(T0 + d * DAY_NS + HOUR_NS, t) for d, t in enumerate(totals)]
    f = forecast(history, now_ns=T0 + 28 * DAY_NS, since_ns=T0, quantile_bp=quantile_bp, margin_bp=0)
    covered = sum(1 for t in totals if t <= f.quantile)
    assert covered * 10_000 >= quantile_bp * 28


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative integers"):
        forecast([(T0, 1.5)], now_ns=T0 + 10 * DAY_NS)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least 1"):
        forecast([], now_ns=T0, horizon_hours=0)


def test_forecast_for_uses_the_configured_settings() -> None:
    config = TierConfig(horizon_hours=6, lookback_weeks=1, min_history_days=1, quantile_bp=10_000, margin_bp=0)
    history = [(T0 + h * HOUR_NS, 10) for h in range(48)]
    f = forecast_for(config, history, now_ns=T0 + 48 * HOUR_NS)
    assert f.horizon_hours == 6 and f.weeks == 0 and f.quantile == 60  # 240 a day, a quarter of it


def test_wallet_history_reads_the_wallet_store_leaving_out_what_never_left() -> None:
    store = WalletStore(":memory:")
    try:
        kept = store.insert_withdrawal(
            account=1, chain="bitcoin", asset="BTC", amount=5_000, address="a", memo="", now_ns=T0
        )
        rejected = store.insert_withdrawal(
            account=1, chain="bitcoin", asset="BTC", amount=7_000, address="a", memo="", now_ns=T0 + 1
        )
        store.insert_withdrawal(account=1, chain="ethereum", asset="ETH", amount=9, address="b", memo="", now_ns=T0)
        rejected.stage = WithdrawalStage.REJECTED
        store.save(rejected, T0 + 2)
        rows = store.withdrawals(limit=100)
        assert wallet_history(rows, asset="BTC", chain="bitcoin") == [(kept.requested_ns, 5_000)]
    finally:
        store.close()
