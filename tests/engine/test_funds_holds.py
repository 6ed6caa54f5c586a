"""Withdrawal holds: funds reserved under a reference, then released or debited, each a sequenced command."""

from __future__ import annotations

from exchange_framework.engine.commands import DebitHeldFunds, HoldFunds, ReleaseFunds
from exchange_framework.engine.events import FundsHeld, FundsRejected, FundsReleased, HeldFundsDebited
from exchange_framework.engine.snapshot import restore, snapshot
from exchange_framework.ledger.postings import EXTERNAL, Posting, PostingRules, available, held
from exchange_framework.types import RejectReason
from tests.engine.helpers import MARKETS, check_invariants, new_engine
from tests.engine.scenario import BUY, M, funded, limit, place, state


def test_hold_then_debit_takes_the_funds_out_and_the_ledger_agrees() -> None:
    run = funded(1)
    rules = PostingRules(dict(MARKETS))
    seq, events = place(run, HoldFunds(1, "USDT", 400, "wd-1"))
    assert events == [FundsHeld(seq, 1, "USDT", 400, "wd-1")]
    assert run.engine.balance(1, "USDT") == (M - 400, 400)
    assert rules.postings(events) == [Posting(available(1), "USDT", -400), Posting(held(1), "USDT", 400)]
    seq, events = place(run, DebitHeldFunds("wd-1"))
    assert events == [HeldFundsDebited(seq, 1, "USDT", 400, "wd-1")]
    assert run.engine.balance(1, "USDT") == (M - 400, 0)
    assert rules.postings(events) == [Posting(held(1), "USDT", -400), Posting(EXTERNAL, "USDT", 400)]
    check_invariants(run.engine, run.net_in)


def test_a_released_hold_is_available_again() -> None:
    run = funded(1)
    place(run, HoldFunds(1, "BTC", 7, "wd-2"))
    seq, events = place(run, ReleaseFunds("wd-2"))
    assert events == [FundsReleased(seq, 1, "BTC", 7, "wd-2")]
    assert run.engine.balance(1, "BTC") == (M, 0)
    check_invariants(run.engine, run.net_in)


def test_held_funds_cannot_back_an_order() -> None:
    run = funded(1)
    place(run, HoldFunds(1, "USDT", M - 100, "wd-3"))
    _, events = place(run, limit(1, BUY, 100, 1))  # 700 quote units, only 100 available
    assert [e.reason for e in events] == [RejectReason.INSUFFICIENT_BALANCE]  # type: ignore[attr-defined]


def test_bad_holds_are_rejected_and_change_nothing() -> None:
    run = funded(1)
    place(run, HoldFunds(1, "USDT", 5, "wd-4"))
    before = state(run.engine)
    cases = [
        (HoldFunds(1, "USDT", 5, "wd-4"), RejectReason.DUPLICATE_REFERENCE),
        (HoldFunds(1, "USDT", M, "wd-5"), RejectReason.INSUFFICIENT_BALANCE),
        (HoldFunds(1, "DOGE", 5, "wd-6"), RejectReason.UNKNOWN_ASSET),
        (HoldFunds(1, "USDT", 0, "wd-7"), RejectReason.INVALID_AMOUNT),
        (HoldFunds(1, "USDT", 5, ""), RejectReason.INVALID_ORDER_PARAMETERS),
        (HoldFunds(9, "USDT", 5, "wd-8"), RejectReason.INSUFFICIENT_BALANCE),
        (ReleaseFunds("nope"), RejectReason.UNKNOWN_REFERENCE),
        (DebitHeldFunds("nope"), RejectReason.UNKNOWN_REFERENCE),
    ]
    for command, reason in cases:
        _, events = place(run, command)
        assert len(events) == 1 and isinstance(events[0], FundsRejected), command
        assert events[0].reason is reason, command
        assert state(run.engine) == before, command
    place(run, ReleaseFunds("wd-4"))
    _, events = place(run, ReleaseFunds("wd-4"))  # a hold ends once
    assert events[0].reason is RejectReason.UNKNOWN_REFERENCE  # type: ignore[attr-defined]


def test_holds_survive_a_snapshot() -> None:
    run = funded(1)
    place(run, HoldFunds(1, "ETH", 3, "wd-9"))
    copy = new_engine()
    restore(copy, snapshot(run.engine))
    assert copy.fund_holds == {"wd-9": (1, "ETH", 3)}
    assert snapshot(copy) == snapshot(run.engine)


def test_a_credit_or_debit_reference_is_used_once() -> None:
    """A retried deposit credit (same reference) is refused, so a crash and retry never credits twice."""
    from exchange_framework.engine.commands import CreditFunds, DebitFunds
    from exchange_framework.engine.engine import MatchingEngine
    from exchange_framework.engine.events import FundsCredited, FundsRejected
    from exchange_framework.engine.snapshot import restore, snapshot, state_hash
    from exchange_framework.types import RejectReason
    from tests.engine.helpers import ASSETS, MARKETS

    engine = MatchingEngine(ASSETS, MARKETS)
    engine.apply(1, CreditFunds(7, "BTC", 100, "dep:chain:tx:0"))
    engine.apply(2, CreditFunds(7, "BTC", 100, "dep:chain:tx:0"))
    engine.apply(3, DebitFunds(7, "BTC", 10, "dep:chain:tx:0"))
    engine.apply(4, CreditFunds(7, "BTC", 5))  # no reference: not tracked
    engine.apply(5, CreditFunds(7, "BTC", 5))
    kinds = [type(e) for e in engine.events]
    assert kinds == [FundsCredited, FundsRejected, FundsRejected, FundsCredited, FundsCredited]
    assert all(e.reason is RejectReason.DUPLICATE_REFERENCE for e in engine.events if isinstance(e, FundsRejected))
    assert engine.balance(7, "BTC") == (110, 0)
    copy = MatchingEngine(ASSETS, MARKETS)
    restore(copy, snapshot(engine))
    assert state_hash(copy) == state_hash(engine)
    copy.apply(6, CreditFunds(7, "BTC", 100, "dep:chain:tx:0"))
    assert isinstance(copy.events[-1], FundsRejected), "the reference survives a snapshot"
