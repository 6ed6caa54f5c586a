"""Binance's kline intervals and where each kline opens (UTC, milliseconds since the epoch).

Fixed intervals up to ``3d`` open at multiples of their length counted from the epoch; ``1w`` opens on Mondays
00:00 UTC; ``1M`` on the first day of each calendar month.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONDAY_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday; the first Monday is 4 days later

_FIXED: dict[str, int] = {
    "1s": SECOND_MS,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
}

INTERVALS: tuple[str, ...] = (*_FIXED, "1w", "1M")
"""Every supported interval, shortest first (the names are case-sensitive: ``1m`` is a minute, ``1M`` a month)."""


def check_interval(interval: str) -> str:
    """Return ``interval`` if Binance knows it; else raise ``ValueError`` listing the valid ones."""
    if interval not in INTERVALS:
        raise ValueError(f"unknown kline interval {interval!r}: use one of {', '.join(INTERVALS)} (case-sensitive)")
    return interval


def open_time(interval: str, ts_ms: int) -> int:
    """Return the open time of the ``interval`` kline that contains ``ts_ms``."""
    step = _FIXED.get(interval)
    if step is not None:
        return ts_ms - ts_ms % step
    if interval == "1w":
        shifted = ts_ms - _MONDAY_OFFSET_MS
        return shifted - shifted % WEEK_MS + _MONDAY_OFFSET_MS
    if interval == "1M":
        return _month_start_ms(*_year_month(ts_ms))
    raise ValueError(check_interval(interval))


def next_open(interval: str, open_ms: int) -> int:
    """Return the open time of the kline after the one opening at ``open_ms``."""
    step = _FIXED.get(interval)
    if step is not None:
        return open_ms + step
    if interval == "1w":
        return open_ms + WEEK_MS
    if interval == "1M":
        year, month = _year_month(open_ms)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return _month_start_ms(year, month)
    raise ValueError(check_interval(interval))


def prev_open(interval: str, open_ms: int) -> int:
    """Return the open time of the kline before the one opening at ``open_ms``."""
    return open_time(interval, open_ms - 1)


def close_time(interval: str, open_ms: int) -> int:
    """Return a kline's close time as Binance reports it: the last millisecond before the next kline opens."""
    return next_open(interval, open_ms) - 1


def _month_start_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * SECOND_MS


def _year_month(ts_ms: int) -> tuple[int, int]:
    moment = _EPOCH + timedelta(milliseconds=ts_ms)
    return moment.year, moment.month
