"""Reconciliation: the ledger's custody (omnibus) accounts against what the wallets report holding on chain.

Custody accounts carry minus what custody holds (``docs/ledger.md``), so the ledger's view of an account is
``-balance``. Reports that name their account (:attr:`CustodyBalance.account`) are compared account by account;
reports without one are compared, per asset, with the omnibus accounts no report names. An omnibus account with a
balance that nothing reports (a chain whose adapter cannot read balances yet) is listed as unverified: it is
shown, never counted as agreeing, but it is not a difference either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from exchange_framework.interfaces import CustodyBalance

__all__ = ["OTHER", "ReconRow", "breaks", "reconcile", "unverified"]

OTHER = "omnibus:* (reported without an account)"


class ReconRow(NamedTuple):
    """One account and asset: what the ledger says custody holds, what custody reports (``None``: nothing
    reports it), and the difference (custody minus ledger)."""

    account: str
    asset: str
    ledger: int
    custody: int | None
    difference: int

    @property
    def ok(self) -> bool:
        """Whether the two agree."""
        return self.custody is not None and self.difference == 0


def reconcile(balances: Mapping[tuple[str, str], int], reports: Iterable[CustodyBalance]) -> list[ReconRow]:
    """Compare the ledger's omnibus ``balances`` (by (account, asset)) with custody ``reports``; rows sorted."""
    ledger: dict[tuple[str, str], int] = {
        key: -amount for key, amount in balances.items() if key[0].startswith("omnibus:")
    }
    named: dict[tuple[str, str], int] = defaultdict(int)
    unnamed: dict[str, int] = defaultdict(int)
    for item in reports:
        if item.account:
            named[(item.account, item.asset)] += item.amount
        else:
            unnamed[item.asset] += item.amount
    rows: list[ReconRow] = []
    for key in sorted(set(ledger) | set(named)):
        account, asset = key
        want = ledger.get(key, 0)
        if key in named:
            rows.append(ReconRow(account, asset, want, named[key], named[key] - want))
        elif asset not in unnamed and want:
            rows.append(ReconRow(account, asset, want, None, -want))
    for asset in sorted(unnamed):
        want = sum(v for (account, a), v in ledger.items() if a == asset and (account, a) not in named)
        rows.append(ReconRow(OTHER, asset, want, unnamed[asset], unnamed[asset] - want))
    return rows


def unverified(rows: Iterable[ReconRow]) -> list[str]:
    """Omnibus balances nothing reports, one sentence each."""
    return [
        f"{row.account} {row.asset}: the ledger says custody holds {row.ledger}, but no wallet reports it"
        for row in rows
        if row.custody is None
    ]


def breaks(rows: Iterable[ReconRow]) -> list[str]:
    """What is wrong, one sentence per reported row that does not agree."""
    out = []
    for row in rows:
        if row.custody is not None and row.difference:
            out.append(
                f"{row.account} {row.asset}: ledger {row.ledger}, custody {row.custody}, difference {row.difference:+d}"
            )
    return out
