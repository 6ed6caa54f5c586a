"""The withdrawal-demand forecaster: how much the hot wallet should expect to pay out over the coming hours.

A deliberately simple, explainable model in integers, deterministic for the same history:

* **seasonal**: for each coming hour, the mean of what was withdrawn in the same hour of the week over the last
  ``lookback_weeks`` complete weeks (rounded up); their sum is the seasonal expectation for the horizon;
* **quantile**: the ``quantile`` (nearest rank) of the daily totals over the last ``7 * lookback_weeks`` days,
  scaled to the horizon (rounded up): a bad day, whatever its hour pattern;
* **demand** = the larger of the two, plus the safety ``margin`` (rounded up).

With less history than ``min_history_days`` (or none) there is no forecast: demand is 0 and the planner keeps the
hot wallet within its band alone. Hours are counted on the UTC clock from the epoch, so an hour of the week is
always the same instant of the week.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import msgspec

from exchange_framework.custody.tiers import BP, TierConfig
from exchange_framework.wallet.store import WithdrawalRow
from exchange_framework.wallet.types import WithdrawalStage

__all__ = ["DAY_NS", "HOUR_NS", "WEEK_HOURS", "Forecast", "forecast", "forecast_for", "wallet_history"]

HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS
WEEK_HOURS = 7 * 24


class Forecast(msgspec.Struct, frozen=True):
    """Forecast withdrawal demand of one asset on one chain, in atomic units, with how it was reached."""

    start_ns: int  # the start of the first forecast hour (the current hour)
    hourly: tuple[int, ...]  # the seasonal expectation of each hour of the horizon
    seasonal: int  # sum of ``hourly``
    quantile: int  # the daily-total quantile scaled to the horizon
    demand: int  # max(seasonal, quantile) plus the margin: what the hot wallet should be able to pay
    weeks: int  # complete weeks of history the seasonal part used
    days: int  # days of history the quantile used
    basis: str  # one line saying how ``demand`` was reached

    @property
    def horizon_hours(self) -> int:
        """How many hours the forecast covers."""
        return len(self.hourly)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def forecast(
    history: Iterable[tuple[int, int]],
    *,
    now_ns: int,
    horizon_hours: int = 24,
    lookback_weeks: int = 4,
    min_history_days: int = 7,
    quantile_bp: int = 9_500,
    margin_bp: int = 2_000,
    since_ns: int | None = None,
) -> Forecast:
    """Forecast demand for the ``horizon_hours`` starting with the hour of ``now_ns``.

    ``history`` is (timestamp ns, amount) of past withdrawals; events at or after ``now_ns`` are ignored.
    ``since_ns`` is when the history starts (default: the first withdrawal); less than ``min_history_days`` of it
    gives no forecast (demand 0). Amounts must be non-negative integers.
    """
    if horizon_hours < 1 or lookback_weeks < 1 or min_history_days < 1:
        raise ValueError("horizon_hours, lookback_weeks and min_history_days must be at least 1")
    if not (0 < quantile_bp <= BP) or margin_bp < 0:
        raise ValueError("quantile_bp must be in 1..10000 and margin_bp not negative")
    events = [(ts, amount) for ts, amount in history if ts < now_ns]  # integer sums: the order never matters
    for _ts, amount in events:
        if type(amount) is not int or amount < 0:
            raise ValueError(f"withdrawal amounts are non-negative integers, not {amount!r}")
    first_hour = now_ns // HOUR_NS
    start = since_ns if since_ns is not None else min((ts for ts, _ in events), default=now_ns)
    span = max(0, now_ns - start)
    if span < min_history_days * DAY_NS:
        why = "no withdrawal history" if not events else f"{span // DAY_NS} days of history"
        return Forecast(
            start_ns=first_hour * HOUR_NS,
            hourly=(0,) * horizon_hours,
            seasonal=0,
            quantile=0,
            demand=0,
            weeks=0,
            days=span // DAY_NS,
            basis=f"no forecast ({why}, fewer than {min_history_days}): the band alone",
        )
    weeks = min(lookback_weeks, span // (WEEK_HOURS * HOUR_NS))
    days = min(7 * lookback_weeks, span // DAY_NS)
    by_hour: dict[int, int] = defaultdict(int)
    for ts, amount in events:
        by_hour[ts // HOUR_NS] += amount
    hourly = tuple(
        _ceil_div(sum(by_hour.get(hour - WEEK_HOURS * w, 0) for w in range(1, weeks + 1)), weeks) if weeks else 0
        for hour in range(first_hour, first_hour + horizon_hours)
    )
    daily = [0] * days
    for ts, amount in events:
        back = (now_ns - 1 - ts) // DAY_NS  # 0: the 24 hours up to now
        if back < days:
            daily[back] += amount
    daily.sort()
    rank = max(1, _ceil_div(quantile_bp * days, BP))
    quantile_day = daily[rank - 1]
    quantile = _ceil_div(quantile_day * horizon_hours, 24)
    seasonal = sum(hourly)
    demand = _ceil_div(max(seasonal, quantile) * (BP + margin_bp), BP)
    which = "seasonal" if seasonal >= quantile else "quantile"
    basis = (
        f"{which}: same hours of the last {weeks} weeks sum to {seasonal}, the {quantile_bp / 100:g}th percentile "
        f"of {days} daily totals scaled to {horizon_hours} h is {quantile}; plus {margin_bp / 100:g} % margin"
    )
    return Forecast(
        start_ns=first_hour * HOUR_NS,
        hourly=hourly,
        seasonal=seasonal,
        quantile=quantile,
        demand=demand,
        weeks=weeks,
        days=days,
        basis=basis,
    )


def forecast_for(config: TierConfig, history: Iterable[tuple[int, int]], *, now_ns: int) -> Forecast:
    """Forecast with the horizon, lookback, quantile and margin of ``[custody.tiers]``."""
    return forecast(
        history,
        now_ns=now_ns,
        horizon_hours=config.horizon_hours,
        lookback_weeks=config.lookback_weeks,
        min_history_days=config.min_history_days,
        quantile_bp=config.quantile_bp,
        margin_bp=config.margin_bp,
    )


def wallet_history(rows: Iterable[WithdrawalRow], *, asset: str, chain: str) -> list[tuple[int, int]]:
    """(requested ns, amount) of the withdrawals of ``asset`` on ``chain`` among wallet store rows, leaving out
    rejected and cancelled ones: they never left the hot wallet."""
    gone = (WithdrawalStage.REJECTED, WithdrawalStage.CANCELLED)
    return [
        (row.requested_ns, row.amount)
        for row in rows
        if row.asset == asset and row.chain == chain and row.stage not in gone
    ]
