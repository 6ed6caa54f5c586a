"""Velocity limits: integer sums of approved withdrawal amounts over sliding time windows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from exchange_framework.custody.rules import Tier, VelocityLimit, VelocityScope

__all__ = ["VelocityEvent", "breached_limits", "prune", "window_sum"]


class VelocityEvent(msgspec.Struct, frozen=True):
    """An approved withdrawal, counted against velocity limits from ``ts_ns`` on."""

    ts_ns: int
    request_id: str
    chain: str
    asset: str
    account: int
    tier: Tier
    amount: int


def window_sum(events: Iterable[VelocityEvent], limit: VelocityLimit, *, account: int, now_ns: int) -> int:
    """Return what counts against ``limit`` in the window ``(now_ns - window, now_ns]`` (for ``account``'s key)."""
    start = now_ns - limit.window_ns
    return sum(
        e.amount
        for e in events
        if start < e.ts_ns <= now_ns
        and limit.applies(chain=e.chain, asset=e.asset, tier=e.tier)
        and (limit.per is VelocityScope.ASSET or e.account == account)
    )


def breached_limits(
    events: Sequence[VelocityEvent],
    limits: Iterable[VelocityLimit],
    candidate: VelocityEvent,
) -> list[str]:
    """Return a reason for each limit that ``candidate`` would take over its maximum (empty: within limits)."""
    reasons = []
    for limit in limits:
        if not limit.applies(chain=candidate.chain, asset=candidate.asset, tier=candidate.tier):
            continue
        used = window_sum(events, limit, account=candidate.account, now_ns=candidate.ts_ns)
        if used + candidate.amount > limit.max_amount:
            scope = "" if limit.per is VelocityScope.ASSET else f" for account {candidate.account}"
            reasons.append(
                f"velocity limit {limit.name!r}: {used} already approved{scope} in the window, plus {candidate.amount} "
                f"would exceed {limit.max_amount} {limit.asset} atomic units"
            )
    return reasons


def prune(events: Sequence[VelocityEvent], limits: Iterable[VelocityLimit], now_ns: int) -> list[VelocityEvent]:
    """Drop events older than the longest window (they can no longer count against any limit)."""
    longest = max((limit.window_ns for limit in limits), default=0)
    return [e for e in events if e.ts_ns > now_ns - longest]
