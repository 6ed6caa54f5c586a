"""Reconciliation of omnibus accounts (minus what custody holds) with custody reports, account by account."""

from __future__ import annotations

from exchange_framework.interfaces import CustodyBalance
from exchange_framework.ledger.reconcile import OTHER, ReconRow, breaks, reconcile, unverified

HOT = "omnibus:hot:devchain"
DEPOSIT = "omnibus:deposit:devchain"


def test_named_reports_are_compared_account_by_account_with_the_exact_difference() -> None:
    balances = {(HOT, "ETH"): -990, (DEPOSIT, "ETH"): 0, ("customer:1:available", "ETH"): 1_000, ("fees", "ETH"): 0}
    reports = [
        CustodyBalance("wallet", "ETH", "hot:devchain", 700, HOT),
        CustodyBalance("wallet", "ETH", "hot:devchain", 200, HOT),  # two hot addresses add up
        CustodyBalance("wallet", "ETH", "deposit:devchain", 0, DEPOSIT),
    ]
    rows = reconcile(balances, reports)
    assert rows == [ReconRow(DEPOSIT, "ETH", 0, 0, 0), ReconRow(HOT, "ETH", 990, 900, -90)]
    assert [r.ok for r in rows] == [True, False]
    assert breaks(rows) == [f"{HOT} ETH: ledger 990, custody 900, difference -90"]


def test_unnamed_reports_cover_the_accounts_no_report_names_and_unreported_balances_are_unverified() -> None:
    balances = {(HOT, "BTC"): -5, ("omnibus:cold:bitcoin", "BTC"): -100, ("omnibus:hot:evm", "ETH"): -7}
    reports = [
        CustodyBalance("wallet", "BTC", "hot", 5, HOT),
        CustodyBalance("vault", "BTC", "cold-1", 100),  # no account: compared with the BTC accounts nobody names
    ]
    rows = reconcile(balances, reports)
    assert rows == [
        ReconRow(HOT, "BTC", 5, 5, 0),
        ReconRow("omnibus:hot:evm", "ETH", 7, None, -7),
        ReconRow(OTHER, "BTC", 100, 100, 0),
    ]
    assert breaks(rows) == []
    assert unverified(rows) == ["omnibus:hot:evm ETH: the ledger says custody holds 7, but no wallet reports it"]
    assert not rows[1].ok
    assert reconcile({}, []) == []
