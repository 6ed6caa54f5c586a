"""Build engine event batches for monitoring tests: deposits, trades, withdrawals and transfers at given minutes."""

from __future__ import annotations

from exchange_framework.engine.events import (
    Event,
    FundsCredited,
    FundsDebited,
    FundsHeld,
    HeldFundsDebited,
    Trade,
)
from exchange_framework.types import Side

MARKETS = {"BTC-USD": ("BTC", "USD")}
T0 = 1_767_225_600 * 1_000_000_000
MINUTE = 60 * 1_000_000_000


class Journal:
    """A growing list of ``(ts_ns, events)`` batches with increasing seqs, like the node's listener gets."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[Event]]] = []
        self.seq = 0
        self.trades = 0

    def _add(self, minute: float, *events: Event) -> int:
        self.batches.append((T0 + int(minute * MINUTE), list(events)))
        return self.seq

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def deposit(self, minute: float, account: int, amount: int, asset: str = "USD", tx: str = "") -> int:
        seq = self._next()
        return self._add(minute, FundsCredited(seq, account, asset, amount, f"dep:test:{tx or seq}:0"))

    def withdraw(self, minute: float, account: int, amount: int, asset: str = "USD") -> int:
        held = self._next()
        self._add(minute, FundsHeld(held, account, asset, amount, f"wd:{held}"))
        seq = self._next()
        return self._add(minute, HeldFundsDebited(seq, account, asset, amount, f"wd:{held}"))

    def trade(self, minute: float, buyer: int, seller: int, sats: int, cents: int) -> int:
        seq = self._next()
        self.trades += 1
        return self._add(
            minute,
            Trade(seq, "BTC-USD", self.trades, cents * 100 // sats, sats, Side.BUY, 1, seller, 2, buyer, sats, cents,
                  0, 0, 0),
        )  # fmt: skip

    def transfer(self, minute: float, source: int, target: int, amount: int, asset: str = "USD") -> int:
        seq = self._next()
        ref = f"xfer:{seq}"
        return self._add(
            minute, FundsDebited(seq, source, asset, amount, ref), FundsCredited(seq, target, asset, amount, ref)
        )
