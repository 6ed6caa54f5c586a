"""The engine's view of customer balances: available and held, per asset, in atomic units."""

from __future__ import annotations

from exchange_framework.engine.book import Order


class Account:
    """Balances and open orders of one account inside one engine shard.

    ``available[asset] + held[asset]`` is what the account owns in this shard; ``held`` equals the sum of the
    holds of its open orders. Neither is ever negative.
    """

    __slots__ = ("account_id", "available", "held", "maker_ppm", "open_orders", "taker_ppm")

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self.available: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.open_orders: dict[int, Order] = {}  # order_id -> order, in placement order
        # The account's own fee rates (ppm), or None: the market's rates apply.
        self.maker_ppm: int | None = None
        self.taker_ppm: int | None = None

    def balance(self, asset: str) -> tuple[int, int]:
        """(available, held) of ``asset``."""
        return self.available.get(asset, 0), self.held.get(asset, 0)
