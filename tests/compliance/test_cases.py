"""Compliance cases: opened by holds and rejections, worked by operators, every action audited (fail closed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange_framework.audit.log import AuditLog
from exchange_framework.compliance import CaseError, CaseStatus, CaseStore, Resolution, Subject
from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.interfaces import Decision


@pytest.fixture
def store(tmp_path: Path) -> CaseStore:
    ticks = iter(range(1_000, 10**9, 1_000))
    return CaseStore(tmp_path / "compliance.db", audit=AuditLog.open(tmp_path / "audit.log"), clock=lambda: next(ticks))


def test_a_hold_opens_a_case_with_every_decision(store: CaseStore) -> None:
    decisions = [Decision.allow("fine", provider="a"), Decision.hold("risky", "score 80", provider="b")]
    case = store.record(Subject.WITHDRAWAL, "7", 1001, decisions, {"asset": "ETH", "amount": "5"})
    assert case.status is CaseStatus.OPEN and case.outcome == "hold" and not case.frozen
    assert [(d.provider, d.outcome, d.reasons) for d in case.decisions] == [
        ("a", "allow", ("fine",)),
        ("b", "hold", ("risky", "score 80")),
    ]
    assert case.details == {"asset": "ETH", "amount": "5"} and case.account == 1001
    assert store.get(case.id) == case
    assert store.open_cases() == [case]


def test_the_same_subject_screened_again_adds_to_its_open_case(store: CaseStore) -> None:
    first = store.record(Subject.DEPOSIT, "dev:ab:dev1x", 5, [Decision.hold("a", provider="p")])
    second = store.record(Subject.DEPOSIT, "dev:ab:dev1x", 5, [Decision.reject("b", provider="q")])
    assert second.id == first.id and second.outcome == "reject" and len(second.decisions) == 2
    third = store.record(Subject.DEPOSIT, "dev:ab:dev1x", 5, [Decision.hold(FROZEN_REASON, provider="ofac")])
    assert third.outcome == "reject" and third.frozen  # never less strict than before
    assert len(store.list_cases()) == 1


def test_an_allow_opens_no_case(store: CaseStore) -> None:
    with pytest.raises(CaseError, match="every decision allowed"):
        store.record(Subject.ONBOARDING, "1", 1, [Decision.allow(provider="x")])
    assert store.list_cases() == []


def test_escalate_then_resolve_is_audited_and_closes(store: CaseStore, tmp_path: Path) -> None:
    case = store.record(Subject.WITHDRAWAL, "9", 2, [Decision.hold(FROZEN_REASON, provider="ofac")])
    assert case.frozen
    escalated = store.escalate(case.id, operator="alice", note="looks like a real hit")
    assert escalated.status is CaseStatus.ESCALATED
    closed = store.resolve(case.id, operator="bob", resolution="confirmed", note="reported to OFAC")
    assert closed.status is CaseStatus.CLOSED and closed.resolution is Resolution.CONFIRMED
    assert closed.resolved_by == "bob" and closed.resolution_note == "reported to OFAC" and closed.closed_ns
    assert [e.action for e in closed.history][-2:] == ["escalated", "resolved: confirmed"]
    assert store.open_cases() == []
    assert store.counts() == {CaseStatus.OPEN: 0, CaseStatus.ESCALATED: 0, CaseStatus.CLOSED: 1}
    entries = list(AuditLog.open(tmp_path / "audit.log").entries())
    assert [(e.actor, e.action, e.target) for e in entries[-2:]] == [
        ("alice", "compliance.case.escalate", f"case:{case.id}"),
        ("bob", "compliance.case.resolve", f"case:{case.id}"),
    ]
    # a new screening of the same subject after the close opens a new case
    again = store.record(Subject.WITHDRAWAL, "9", 2, [Decision.hold("x", provider="p")])
    assert again.id != case.id and [c.id for c in store.find(Subject.WITHDRAWAL, "9")] == [again.id, case.id]


@pytest.mark.parametrize(
    ("operator", "resolution", "note", "message"),
    [
        ("", "cleared", "n", "name the operator"),
        ("bob", "cleared", "  ", "write a note"),
        ("bob", "maybe", "n", "is not one of: cleared, confirmed"),
        ("bob", "cleared", "x" * 2001, "keep it to 2000"),
    ],
)
def test_bad_actions_are_refused_and_change_nothing(
    store: CaseStore, operator: str, resolution: str, note: str, message: str
) -> None:
    case = store.record(Subject.WITHDRAWAL, "1", 1, [Decision.hold("x", provider="p")])
    with pytest.raises(CaseError, match=message):
        store.resolve(case.id, operator=operator, resolution=resolution, note=note)
    assert store.get(case.id) == case


def test_closed_and_unknown_cases_refuse_actions(store: CaseStore) -> None:
    case = store.record(Subject.WITHDRAWAL, "1", 1, [Decision.hold("x", provider="p")])
    closed = store.resolve(case.id, operator="bob", resolution=Resolution.CLEARED, note="false positive")
    with pytest.raises(CaseError, match="is closed"):
        store.resolve(case.id, operator="bob", resolution="confirmed", note="changed my mind")
    with pytest.raises(CaseError, match="is closed"):
        store.escalate(case.id, operator="bob", note="n")
    with pytest.raises(CaseError, match="no compliance case 999"):
        store.escalate(999, operator="bob", note="n")
    assert store.get(case.id) == closed


def test_an_audit_log_that_cannot_be_written_refuses_the_action(store: CaseStore, tmp_path: Path) -> None:
    case = store.record(Subject.ONBOARDING, "3", 3, [Decision.hold("name", provider="ofac")])

    class BrokenAudit:
        def append(self, **kwargs: object) -> None:
            raise OSError("disk full")

    store.audit = BrokenAudit()  # type: ignore[assignment]  # a log whose disk is full
    with pytest.raises(OSError, match="disk full"):
        store.resolve(case.id, operator="bob", resolution="cleared", note="fine")
    assert store.get(case.id) == case


def test_listing_filters_and_pages(store: CaseStore) -> None:
    ids = [store.record(Subject.DEPOSIT, f"r{i}", 100 + i % 2, [Decision.hold("x", provider="p")]).id for i in range(5)]
    store.escalate(ids[1], operator="a", note="n")
    assert [c.id for c in store.list_cases(limit=2)] == [ids[4], ids[3]]
    assert [c.id for c in store.list_cases(before_id=ids[3])] == [ids[2], ids[1], ids[0]]
    assert [c.id for c in store.list_cases(statuses=[CaseStatus.ESCALATED])] == [ids[1]]
    assert [c.id for c in store.list_cases(account=101)] == [ids[3], ids[1]]
    assert store.list_cases(subject=Subject.WITHDRAWAL) == []
    assert [c.id for c in store.open_cases()] == ids


def test_frozen_case_keeps_the_subject_frozen_until_cleared(store: CaseStore) -> None:
    assert store.frozen_case(Subject.DEPOSIT, "d1") is None
    store.record(Subject.DEPOSIT, "d1", 1, [Decision.hold("risky", provider="kyt")])
    assert store.frozen_case(Subject.DEPOSIT, "d1") is None  # held for review, not frozen
    frozen = store.record(Subject.DEPOSIT, "d1", 1, [Decision.hold(FROZEN_REASON, provider="ofac")])
    assert store.frozen_case(Subject.DEPOSIT, "d1") == frozen
    confirmed = store.resolve(frozen.id, operator="bob", resolution="confirmed", note="true hit, reported")
    assert store.frozen_case(Subject.DEPOSIT, "d1") == confirmed  # a confirmed hit stays frozen
    again = store.record(Subject.DEPOSIT, "d1", 1, [Decision.hold(FROZEN_REASON, provider="ofac")])
    store.resolve(again.id, operator="bob", resolution="cleared", note="a namesake address on another chain")
    assert store.frozen_case(Subject.DEPOSIT, "d1") is None
