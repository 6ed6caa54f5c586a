"""What every API handler needs: the running node, the identity store, unit conversions, limits and the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exchange_framework.api.endpoints import now_ms as wall_clock_ms
from exchange_framework.api.ratelimit import RateLimiter
from exchange_framework.api.units import Units
from exchange_framework.identity import IdentityStore
from exchange_framework.marketdata import MarketData
from exchange_framework.node import ExchangeNode

__all__ = ["ApiContext"]


@dataclass
class ApiContext:
    """Shared by every request of one API process (``request.app.state.api``)."""

    node: ExchangeNode
    identity: IdentityStore
    units: Units
    market_data: MarketData
    limiter: RateLimiter = field(default_factory=RateLimiter)
    now_ms: Callable[[], int] = wall_clock_ms
    in_flight: dict[tuple[int, str], asyncio.Future[Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # services other parts of the app attach (deposits, ...)
