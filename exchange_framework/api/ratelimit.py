"""Rate limits as Binance counts them: request weight per IP per minute, orders per account per 10 s and per day.

Counters use fixed windows aligned to the clock, like Binance's, and every response reports the caller's usage in
Binance's headers (``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S``, ``X-MBX-ORDER-COUNT-1D``). Going over a
limit answers HTTP 429 with code -1003 and a ``Retry-After`` header in seconds; nothing is executed.
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange_framework.api.errors import TOO_MANY_REQUESTS, ApiError

__all__ = ["Limits", "RateLimiter"]


@dataclass(frozen=True)
class Limits:
    """The limits one exchange enforces (and reports in ``exchangeInfo``)."""

    weight_per_minute: int = 6000
    orders_per_10s: int = 100
    orders_per_day: int = 200_000


class _Window:
    """Counts per key within fixed windows of ``length_ms``."""

    __slots__ = ("_counts", "_start", "length_ms")

    def __init__(self, length_ms: int) -> None:
        self.length_ms = length_ms
        self._start = 0
        self._counts: dict[str, int] = {}

    def used(self, key: str, now_ms: int) -> int:
        self._roll(now_ms)
        return self._counts.get(key, 0)

    def add(self, key: str, amount: int, now_ms: int) -> int:
        self._roll(now_ms)
        total = self._counts.get(key, 0) + amount
        self._counts[key] = total
        return total

    def retry_after_s(self, now_ms: int) -> int:
        return max(1, -(-(self._start + self.length_ms - now_ms) // 1000))

    def _roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % self.length_ms
        if start != self._start:
            self._start = start
            self._counts.clear()


class RateLimiter:
    """Request-weight and order-count limits; one instance per API process."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._weight = _Window(60_000)
        self._orders_10s = _Window(10_000)
        self._orders_day = _Window(86_400_000)

    def spend_weight(self, ip: str, weight: int, now_ms: int) -> dict[str, str]:
        """Count a request of ``weight`` from ``ip``; return the usage headers or raise 429."""
        used = self._weight.used(ip, now_ms)
        if used + weight > self.limits.weight_per_minute:
            raise ApiError(
                TOO_MANY_REQUESTS,
                f"Too much request weight used; current limit is {self.limits.weight_per_minute} request weight per "
                f"1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
                429,
                {"Retry-After": str(self._weight.retry_after_s(now_ms)), "X-MBX-USED-WEIGHT-1M": str(used)},
            )
        return {"X-MBX-USED-WEIGHT-1M": str(self._weight.add(ip, weight, now_ms))}

    def spend_order(self, account: int, now_ms: int) -> dict[str, str]:
        """Count a new order of ``account``; return the usage headers or raise 429."""
        key = str(account)
        for window, limit, name in (
            (self._orders_10s, self.limits.orders_per_10s, "10 SECOND"),
            (self._orders_day, self.limits.orders_per_day, "1 DAY"),
        ):
            if window.used(key, now_ms) + 1 > limit:
                raise ApiError(
                    TOO_MANY_REQUESTS,
                    f"Too many new orders; current limit is {limit} orders per {name}.",
                    429,
                    {"Retry-After": str(window.retry_after_s(now_ms))},
                )
        return {
            "X-MBX-ORDER-COUNT-10S": str(self._orders_10s.add(key, 1, now_ms)),
            "X-MBX-ORDER-COUNT-1D": str(self._orders_day.add(key, 1, now_ms)),
        }
