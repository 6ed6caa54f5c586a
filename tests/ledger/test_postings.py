"""Posting rules: every event stream gives balanced entries whose balances equal the engine's, exactly."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.engine.commands import Command
from exchange_framework.ledger.postings import (
    EXTERNAL,
    FEES,
    Posting,
    PostingRules,
    UnbalancedEntry,
    available,
    check_balanced,
    held,
)
from tests.engine.helpers import MARKETS, Runner
from tests.engine.test_engine_properties import COMMAND, FUNDING


def settle(run: Runner, commands: list[Command]) -> tuple[dict[tuple[str, str], int], int]:
    """Feed commands, post each seq's events, return ledger balances and the number of entries."""
    rules = PostingRules(dict(MARKETS))
    balances: dict[tuple[str, str], int] = defaultdict(int)
    entries = 0
    for command in commands:
        events = run(command)
        postings = rules.postings(events)
        check_balanced(postings)
        entries += 1
        for p in postings:
            balances[(p.account, p.asset)] += p.amount
            if p.account.startswith("customer:"):
                assert balances[(p.account, p.asset)] >= 0, p
    return balances, entries


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(COMMAND, min_size=10, max_size=120))
def test_ledger_balances_equal_engine_balances_for_random_streams(commands: list[Command]) -> None:
    run = Runner()
    balances, _ = settle(run, FUNDING + commands)
    engine = run.engine
    for account_id, acct in engine.accounts.items():
        for asset in engine.assets:
            assert balances.get((available(account_id), asset), 0) == acct.available[asset]
            assert balances.get((held(account_id), asset), 0) == acct.held[asset]
    for asset in engine.assets:
        assert balances.get((FEES, asset), 0) == engine.fees_collected[asset]
        # zero-sum: everything customers and fees hold came from outside
        total = sum(amount for (account, a), amount in balances.items() if a == asset)
        assert total == 0
        assert -balances.get((EXTERNAL, asset), 0) == run.net_in.get(asset, 0)


def test_unbalanced_postings_are_refused() -> None:
    with pytest.raises(UnbalancedEntry, match="off by"):
        check_balanced([Posting(available(1), "BTC", 5), Posting(EXTERNAL, "BTC", -4)])
    with pytest.raises(UnbalancedEntry, match="not an integer"):
        check_balanced([Posting(available(1), "BTC", 1.0), Posting(EXTERNAL, "BTC", -1)])  # type: ignore[arg-type]
    check_balanced([Posting(available(1), "BTC", 5), Posting(EXTERNAL, "BTC", -5), Posting(FEES, "ETH", 0)])
