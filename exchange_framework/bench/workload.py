"""A seeded order flow for benchmarks and the demo: mostly passive limits, cancels, some aggressive orders.

The mix is about 60 % passive limit orders placed around a drifting mid price, 25 % cancels of earlier orders
(some already filled: those are rejected, as real cancels often are) and 15 % aggressive limit and market orders.
The same seed always gives the same commands.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from exchange_framework.engine.commands import CancelOrder, Command, CreditFunds, PlaceOrder
from exchange_framework.engine.market import MarketSpec
from exchange_framework.types import OrderType, Side, TimeInForce


def funding(spec: MarketSpec, accounts: int, base_amount: int, quote_amount: int) -> list[Command]:
    """Credits that give every account ``base_amount`` and ``quote_amount`` atomic units."""
    out: list[Command] = []
    for account in range(1, accounts + 1):
        out.append(CreditFunds(account, spec.base, base_amount, f"bench:{account}:{spec.base}"))
        out.append(CreditFunds(account, spec.quote, quote_amount, f"bench:{account}:{spec.quote}"))
    return out


def order_flow(
    spec: MarketSpec,
    *,
    seed: int,
    first_seq: int,
    accounts: int = 1_000,
    mid: int = 10_000,
    spread: int = 50,
    max_lots: int = 20,
) -> Iterator[Command]:
    """Endless seeded commands for ``spec``; ``first_seq`` is the sequence number the first one will get.

    Order ids equal sequence numbers, so the generator knows the ids of the orders it placed and can cancel them.
    """
    rng = random.Random(seed)
    rand = rng.random
    randint = rng.randint
    placed: list[tuple[int, int]] = []  # (order id, account) of passive orders placed so far
    seq = first_seq
    symbol = spec.symbol
    lo_qty = max(1, spec.min_qty)
    while True:
        roll = rand()
        account = randint(1, accounts)
        if rand() < 0.01:  # slow random walk of the mid price
            mid = max(spread * 3, mid + randint(-3, 3))
        if roll < 0.60:
            side = Side.BUY if rand() < 0.5 else Side.SELL
            offset = randint(1, spread)
            price = mid - offset if side is Side.BUY else mid + offset
            yield PlaceOrder(account, symbol, side, OrderType.LIMIT, randint(lo_qty, max_lots), price)
            placed.append((seq, account))
        elif roll < 0.85 and placed:
            index = randint(0, len(placed) - 1)
            order_id, owner = placed[index]
            placed[index] = placed[-1]
            placed.pop()
            yield CancelOrder(owner, symbol, order_id)
        elif roll < 0.95:
            side = Side.BUY if rand() < 0.5 else Side.SELL
            through = randint(0, spread // 5)
            price = mid + through if side is Side.BUY else mid - through
            yield PlaceOrder(
                account, symbol, side, OrderType.LIMIT, randint(lo_qty, max_lots), price, tif=TimeInForce.IOC
            )
        else:
            side = Side.BUY if rand() < 0.5 else Side.SELL
            yield PlaceOrder(account, symbol, side, OrderType.MARKET, randint(lo_qty, max_lots))
        seq += 1
