"""A market-maker bot for the demo: quotes a ladder around a drifting mid price and now and then takes liquidity.

It trades through :meth:`ExchangeNode.submit` like any client (sequenced, journalled, settled), from two engine
accounts below the first customer account. The same seed gives the same price path; wall-clock timing makes the
interleaving with people's orders vary, as on a real exchange.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from exchange_framework.engine.commands import CancelAll, PlaceOrder
from exchange_framework.engine.market import MarketSpec
from exchange_framework.node import ExchangeNode, NodeClosed
from exchange_framework.types import OrderType, Side, TimeInForce

__all__ = ["MAKER_ACCOUNT", "TAKER_ACCOUNT", "MarketMaker", "Quote"]

_log = logging.getLogger(__name__)
MAKER_ACCOUNT = 1
TAKER_ACCOUNT = 2


@dataclass
class Quote:
    """How one market is quoted: mid price and spread in ticks, levels per side, lots per level."""

    mid: int
    spread: int
    levels: int = 6
    lots: int = 1


class MarketMaker:
    """Requotes every market every ``interval`` seconds; every ``take_every`` rounds the taker sends a market order."""

    def __init__(
        self,
        node: ExchangeNode,
        quotes: dict[str, Quote],
        *,
        seed: int = 7,
        interval: float = 1.0,
        take_every: int = 3,
    ) -> None:
        self.node = node
        self.quotes = quotes
        self.rng = random.Random(seed)
        self.interval = interval
        self.take_every = take_every
        self.rounds = 0

    async def run(self) -> None:
        """Quote until cancelled (or the node stops)."""
        while True:
            try:
                await self.round()
            except NodeClosed:
                return
            except Exception:
                _log.exception("market maker round failed")
            await asyncio.sleep(self.interval)

    async def round(self) -> None:
        """One requote of every market (and maybe a trade)."""
        self.rounds += 1
        rng = self.rng
        for market, quote in self.quotes.items():
            spec = self.node.markets[market]
            quote.mid = max(quote.spread * 4, quote.mid + rng.randint(-2, 2) * max(1, quote.spread // 4))
            await self.node.submit(CancelAll(account=MAKER_ACCOUNT, market=market))
            for level in range(1, quote.levels + 1):
                lots = _lots(spec, quote.lots * rng.randint(1, 4))
                for side, price in (
                    (Side.BUY, quote.mid - quote.spread * level),
                    (Side.SELL, quote.mid + quote.spread * level),
                ):
                    await self.node.submit(
                        PlaceOrder(MAKER_ACCOUNT, market, side, OrderType.LIMIT, lots, price, tif=TimeInForce.GTC)
                    )
            if self.rounds % self.take_every == 0:
                side = Side.BUY if rng.random() < 0.5 else Side.SELL
                await self.node.submit(
                    PlaceOrder(
                        TAKER_ACCOUNT, market, side, OrderType.MARKET, _lots(spec, quote.lots * rng.randint(1, 3))
                    )
                )


def _lots(spec: MarketSpec, lots: int) -> int:
    return max(spec.min_qty, lots)
