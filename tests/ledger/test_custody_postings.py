"""Posting rules of custody accounts: deposits into, withdrawals out of, and moves between omnibus accounts.

Custody (omnibus) accounts carry minus what custody holds on chain; network fees are an expense (negative).
"""

from __future__ import annotations

from exchange_framework.engine.commands import CreditFunds, DebitHeldFunds, HoldFunds, MoveCustody
from exchange_framework.ledger.postings import EXTERNAL, NETWORK_FEES, Posting, PostingRules, available, held
from tests.engine.helpers import MARKETS, Runner

HOT = "omnibus:hot:devchain"
DEPOSIT = "omnibus:deposit:devchain"


def test_deposit_sweep_withdrawal_and_fees_post_against_custody_accounts() -> None:
    run = Runner()
    rules = PostingRules(dict(MARKETS))
    assert rules.postings(run(CreditFunds(1, "ETH", 1_000, "dep:1", custody=DEPOSIT))) == [
        Posting(DEPOSIT, "ETH", -1_000),
        Posting(available(1), "ETH", 1_000),
    ]
    # sweep: 990 arrive at the hot wallet, 10 paid to the network
    assert rules.postings(run(MoveCustody("ETH", DEPOSIT, HOT, 990, 10, "sweep:1"))) == [
        Posting(DEPOSIT, "ETH", 1_000),
        Posting(HOT, "ETH", -990),
        Posting(NETWORK_FEES, "ETH", -10),
    ]
    rules.postings(run(HoldFunds(1, "ETH", 600, "wd:1")))
    assert rules.postings(run(DebitHeldFunds("wd:1", custody=HOT))) == [
        Posting(held(1), "ETH", -600),
        Posting(HOT, "ETH", 600),
    ]
    assert rules.postings(run(MoveCustody("ETH", HOT, "", 0, 7, "wd:1:fee"))) == [
        Posting(HOT, "ETH", 7),
        Posting(NETWORK_FEES, "ETH", -7),
    ]
    # what custody holds (minus the omnibus balance): 1000 - 10 - 600 - 7 = 383 in the hot wallet, 0 at deposits;
    # customers (400) + network fees (-17) == 383
    assert rules.postings(run(MoveCustody("ETH", HOT, "", 0, 7, "wd:1:fee"))) == []  # duplicate: refused


def test_commands_without_custody_still_balance_against_external() -> None:
    run = Runner()
    rules = PostingRules(dict(MARKETS))
    assert rules.postings(run(CreditFunds(1, "BTC", 50, "dep:old"))) == [
        Posting(EXTERNAL, "BTC", -50),
        Posting(available(1), "BTC", 50),
    ]
    rules.postings(run(HoldFunds(1, "BTC", 20, "wd:old")))
    assert rules.postings(run(DebitHeldFunds("wd:old"))) == [Posting(held(1), "BTC", -20), Posting(EXTERNAL, "BTC", 20)]
