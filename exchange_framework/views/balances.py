"""Customer balances (available and held per asset) kept in memory from engine events, by the ledger's own rules."""

from __future__ import annotations

from collections.abc import Sequence

from exchange_framework.engine.events import Event
from exchange_framework.engine.market import MarketSpec
from exchange_framework.ledger.postings import PostingRules

__all__ = ["BalanceView"]

_CUSTOMER = "customer:"


class BalanceView:
    """Every customer's available and held balance per asset, in atomic units.

    It applies :class:`~exchange_framework.ledger.postings.PostingRules` -- the settlement's rules -- to the
    events, so it always agrees with what the ledger will hold once settlement catches up.
    """

    def __init__(self, markets: dict[str, MarketSpec]) -> None:
        self._rules = PostingRules(markets)
        self._balances: dict[int, dict[str, list[int]]] = {}  # account -> asset -> [available, held]
        self.last_seq = 0

    def apply(self, seq: int, events: Sequence[Event]) -> None:
        """Apply the events of sequence number ``seq``; a ``seq`` already applied changes nothing."""
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        for posting in self._rules.postings(events):
            code = posting.account
            if not code.startswith(_CUSTOMER):
                continue
            _, account_text, kind = code.split(":")
            assets = self._balances.setdefault(int(account_text), {})
            pair = assets.setdefault(posting.asset, [0, 0])
            pair[0 if kind == "available" else 1] += posting.amount

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        """Return ``{asset: (available, held)}`` for ``account`` (assets it never held are absent)."""
        return {asset: (pair[0], pair[1]) for asset, pair in self._balances.get(account, {}).items()}

    def available(self, account: int, asset: str) -> int:
        """Return what ``account`` may spend of ``asset`` now."""
        pair = self._balances.get(account, {}).get(asset)
        return pair[0] if pair else 0
