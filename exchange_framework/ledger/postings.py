"""From engine events to balanced postings: the ledger's rules, pure and deterministic.

Every engine event that moves money becomes a set of postings (account, asset, amount) that sums to zero per
asset. Customer money lives in two accounts per asset, ``available`` and ``held``, mirroring the engine; fees go to
``fees``. Money entering or leaving the exchange is balanced against the custody account it arrived in or left from
(``omnibus:<tier>:<chain>``), or against ``external`` when the command names none (internal transfers, journals
from before custody accounts). Custody accounts carry the NEGATIVE of what custody holds on chain, so the zero sum
reads: customers + fees + network fees (negative: paid) + external == what custody holds. ``docs/ledger.md``
explains the accounts. The events of one sequence number always settle together, so both legs of a trade and both
fees land in one database transaction (DvP).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from exchange_framework.engine.commands import custody_account, is_custody_account
from exchange_framework.engine.events import (
    CustodyMoved,
    Event,
    FundsCredited,
    FundsDebited,
    FundsHeld,
    FundsReleased,
    HeldFundsDebited,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderReduced,
    OrderReplaced,
    Trade,
)
from exchange_framework.engine.market import MarketSpec
from exchange_framework.types import Side

FEES = "fees"
EXTERNAL = "external"
NETWORK_FEES = "network_fees"
"""What the exchange paid the networks (miners, validators) out of custody: negative, like an expense."""

__all__ = [
    "EXTERNAL",
    "FEES",
    "NETWORK_FEES",
    "Entry",
    "Posting",
    "PostingRules",
    "UnbalancedEntry",
    "available",
    "check_balanced",
    "custody_account",
    "held",
    "is_custody_account",
    "is_customer",
]


def available(account: int) -> str:
    """The ledger account holding what customer ``account`` may spend."""
    return f"customer:{account}:available"


def held(account: int) -> str:
    """The ledger account holding what customer ``account`` has reserved for open orders and withdrawals."""
    return f"customer:{account}:held"


def is_customer(code: str) -> bool:
    """Customer accounts may never go negative."""
    return code.startswith("customer:")


class Posting(msgspec.Struct, array_like=True, gc=False, frozen=True):
    """One line of a balanced entry: ``amount`` atomic units of ``asset`` into (+) or out of (-) ``account``."""

    account: str
    asset: str
    amount: int


class Entry(msgspec.Struct, gc=False):
    """All postings caused by one sequenced command; ``ts_ns`` is the journal's timestamp of that command."""

    seq: int
    postings: list[Posting]
    ts_ns: int = 0


class UnbalancedEntry(ValueError):
    """A set of postings does not sum to zero for some asset."""


def check_balanced(postings: Iterable[Posting]) -> None:
    """Raise :class:`UnbalancedEntry` unless the postings sum to zero per asset."""
    totals: dict[str, int] = {}
    for p in postings:
        if type(p.amount) is not int:
            raise UnbalancedEntry(f"posting to {p.account}: amount {p.amount!r} is not an integer")
        totals[p.asset] = totals.get(p.asset, 0) + p.amount
    off = {asset: total for asset, total in totals.items() if total}
    if off:
        raise UnbalancedEntry(f"postings do not balance: off by {off} (per asset, in atomic units)")


class PostingRules:
    """Turns engine events into postings; remembers which asset each open order holds.

    Events that release a hold (fills, cancels, reductions, replaces) name the order, not the asset: the asset
    comes from the order's side, learnt from ``OrderAccepted`` (or from a restored engine's open orders).
    """

    def __init__(self, markets: dict[str, MarketSpec]) -> None:
        self.markets = markets
        self.hold_asset: dict[int, str] = {}  # open order id -> asset its hold is in

    def remember_open_orders(self, orders: Iterable[tuple[int, str]]) -> None:
        """Seed the order -> hold asset map, e.g. from an engine restored from a snapshot."""
        self.hold_asset.update(orders)

    def postings(self, events: Iterable[Event]) -> list[Posting]:
        """The postings for ``events`` (normally all events of one sequence number), netted.

        Movements of the same account in the same asset are added up (a taker sweeping ten makers pays out of its
        hold once, not ten times), in the order each account and asset first appears; zero nets are dropped.
        The events themselves, every trade with its fees, can always be regenerated from the journal.
        """
        out = self._gross(events)
        if len(out) <= 2:
            return out
        net: dict[tuple[str, str], int] = {}
        for p in out:
            key = (p.account, p.asset)
            net[key] = net.get(key, 0) + p.amount
        if len(net) == len(out):
            return out
        return [Posting(account, asset, amount) for (account, asset), amount in net.items() if amount]

    def _gross(self, events: Iterable[Event]) -> list[Posting]:
        out: list[Posting] = []
        add = out.append
        for ev in events:
            if isinstance(ev, Trade):
                spec = self.markets[ev.market]
                base, quote = spec.base, spec.quote
                if ev.taker_side is Side.BUY:
                    buyer, seller = ev.taker_account, ev.maker_account
                    buyer_fee, seller_fee = ev.taker_fee, ev.maker_fee
                else:
                    buyer, seller = ev.maker_account, ev.taker_account
                    buyer_fee, seller_fee = ev.maker_fee, ev.taker_fee
                # quote: from the buyer's hold to the seller, less the seller's fee
                add(Posting(held(buyer), quote, -(ev.quote_amount + ev.taker_released)))
                if ev.taker_released:
                    add(Posting(available(buyer), quote, ev.taker_released))
                add(Posting(available(seller), quote, ev.quote_amount - seller_fee))
                if seller_fee:
                    add(Posting(FEES, quote, seller_fee))
                # base: from the seller's hold to the buyer, less the buyer's fee
                add(Posting(held(seller), base, -ev.base_amount))
                add(Posting(available(buyer), base, ev.base_amount - buyer_fee))
                if buyer_fee:
                    add(Posting(FEES, base, buyer_fee))
            elif isinstance(ev, OrderAccepted):
                spec = self.markets[ev.market]
                asset = spec.quote if ev.side is Side.BUY else spec.base
                self.hold_asset[ev.order_id] = asset
                add(Posting(available(ev.account), asset, -ev.held))
                add(Posting(held(ev.account), asset, ev.held))
            elif isinstance(ev, OrderFilled | OrderCancelled):
                asset = self.hold_asset.pop(ev.order_id)
                if ev.released:
                    add(Posting(held(ev.account), asset, -ev.released))
                    add(Posting(available(ev.account), asset, ev.released))
            elif isinstance(ev, OrderReduced):
                if ev.released:
                    asset = self.hold_asset[ev.order_id]
                    add(Posting(held(ev.account), asset, -ev.released))
                    add(Posting(available(ev.account), asset, ev.released))
            elif isinstance(ev, OrderReplaced):
                if ev.hold_delta:
                    asset = self.hold_asset[ev.order_id]
                    add(Posting(available(ev.account), asset, -ev.hold_delta))
                    add(Posting(held(ev.account), asset, ev.hold_delta))
            elif isinstance(ev, FundsCredited):
                add(Posting(ev.custody or EXTERNAL, ev.asset, -ev.amount))
                add(Posting(available(ev.account), ev.asset, ev.amount))
            elif isinstance(ev, FundsHeld):
                add(Posting(available(ev.account), ev.asset, -ev.amount))
                add(Posting(held(ev.account), ev.asset, ev.amount))
            elif isinstance(ev, FundsReleased):
                add(Posting(held(ev.account), ev.asset, -ev.amount))
                add(Posting(available(ev.account), ev.asset, ev.amount))
            elif isinstance(ev, HeldFundsDebited):
                add(Posting(held(ev.account), ev.asset, -ev.amount))
                add(Posting(ev.custody or EXTERNAL, ev.asset, ev.amount))
            elif isinstance(ev, CustodyMoved):
                # custody accounts carry minus what custody holds: the payer's goes up, the payee's down
                add(Posting(ev.from_account, ev.asset, ev.amount + ev.fee))
                if ev.amount:
                    add(Posting(ev.to_account, ev.asset, -ev.amount))
                if ev.fee:
                    add(Posting(NETWORK_FEES, ev.asset, -ev.fee))
            elif isinstance(ev, FundsDebited):
                add(Posting(available(ev.account), ev.asset, -ev.amount))
                add(Posting(EXTERNAL, ev.asset, ev.amount))
        return out
