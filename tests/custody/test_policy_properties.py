"""Model-based property test of the policy engine: random submits, approvals, denials, releases, time and restarts.

An independent model of the policy in ``test_policy.policy_config`` predicts every answer. The invariants: nothing is
released that did not match an allow rule or collect k distinct, unexpired, non-requester approvals from the rule's
group with no deny; velocity sums never exceed the limit in any window; every engine call is audited.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from exchange_framework.audit import AuditLog, verify
from exchange_framework.custody.policy import PolicyEngine, PolicyError, RequestStatus
from exchange_framework.custody.rules import Rule, RuleAction, Tier, VelocityLimit
from tests.custody.test_policy import (
    COLD,
    FRIEND,
    HOT,
    HOUR,
    SECOND,
    STRANGER,
    WARM,
    Clock,
    Env,
    engine_of,
    policy_config,
    whitelist,
    withdrawal,
)
from tests.custody.test_whitelist import approvers

LIMIT = 5_000
WINDOW = HOUR
APPROVAL_TTL = 2 * HOUR
RELEASE_TTL = HOUR
GROUPS = {"treasury": {"alice", "bob", "carol"}, "security": {"dave", "erin"}}
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "mallory"]


@dataclass
class Model:
    """What the test believes about one request."""

    requester: str
    source: str
    amount: int
    status: str
    k: int = 0
    group: str | None = None
    approvals: dict[str, int] = field(default_factory=dict)
    decided: int = 0
    denied: bool = False


class PolicyMachine(RuleBasedStateMachine):
    """Drives one engine (with a real state file and audit log) and an independent model side by side."""

    @initialize()
    def start(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.env = Env(self.tmp)
        engine = self.env.start()
        whitelist(engine, FRIEND, asset="ETH")
        self.models: dict[str, Model] = {}
        self.velocity: list[tuple[int, int]] = []  # (time, amount) of every approval the model saw
        self.released: list[str] = []
        self.next_id = 1
        self.audited = self._audit_count()

    def teardown(self) -> None:
        if hasattr(self, "env"):
            engine_of(self.env).close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.env.clock.now

    def _audit_count(self) -> int:
        assert self.env.audit is not None
        return sum(1 for _ in self.env.audit.entries())

    def _expect_audited(self) -> None:
        count = self._audit_count()
        assert count > self.audited, "an engine call left no audit entry"
        self.audited = count

    def _velocity_allows(self, amount: int) -> bool:
        used = sum(a for t, a in self.velocity if self.now - WINDOW < t <= self.now)
        return used + amount <= LIMIT

    def _counting(self, m: Model) -> set[str]:
        members = GROUPS.get(m.group or "", set())
        return {p for p, t in m.approvals.items() if p in members and p != m.requester and self.now - t < APPROVAL_TTL}

    def _pick(self) -> st.SearchStrategy[str]:
        """Choose a request, favouring the undecided ones (where approvals, denials and releases matter)."""
        everything = st.sampled_from(sorted(self.models))
        live = sorted(rid for rid, m in self.models.items() if m.status in ("pending", "approved"))
        return st.sampled_from(live) | everything if live else everything

    def _approve_now(self, m: Model) -> str:
        if not self._velocity_allows(m.amount):
            return "blocked"
        self.velocity.append((self.now, m.amount))
        m.decided = self.now
        return "approved"

    # -- rules -----------------------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.models) < 6)  # few requests, so approvals, time and releases meet them
    @rule(
        amount=st.sampled_from([1, 999, 1_000, 1_001, 2_000, 2_500]) | st.integers(min_value=1, max_value=3_000),
        destination=st.sampled_from([FRIEND] * 7 + [STRANGER]),
        source=st.sampled_from([HOT] * 4 + [WARM] * 3 + [COLD]),
        requester=st.sampled_from(["service", "service", "alice", "dave"]),
        tamper=st.sampled_from([False] * 7 + [True]),
    )
    def submit(self, amount: int, destination: str, source: str, requester: str, tamper: bool) -> None:
        wid = self.next_id
        self.next_id += 1
        args = withdrawal(
            wid,
            amount,
            destination=destination,
            source=source,
            key_id="hot-eth" if source == HOT else "k",
            decoded_changes={"amount": amount + 1} if tamper else None,
        )
        args["requester"] = requester
        decision = engine_of(self.env).submit(**args)  # type: ignore[arg-type]
        m = Model(requester, source, amount, "pending")
        if tamper or destination != FRIEND or source == COLD:
            m.status = "blocked"
        elif source == HOT and amount <= 1_000:
            m.status = self._approve_now(m)
        else:
            m.k, m.group = (2, "treasury") if source == HOT else (1, "security")
        self.models[f"w{wid}"] = m
        assert decision.status.value == m.status, (decision, m)
        self._expect_audited()

    @precondition(lambda self: self.models)
    @rule(data=st.data())
    def approve(self, data: st.DataObject) -> None:
        rid = data.draw(self._pick(), label="request")
        m = self.models[rid]
        members = sorted(GROUPS.get(m.group or "", set()))
        people = st.sampled_from(PEOPLE)
        approver = data.draw(st.sampled_from(members) | people if members else people, label="approver")
        refused = (
            m.status != "pending"
            or approver not in GROUPS.get(m.group or "", set())
            or approver == m.requester
            or approver in self._counting(m)
        )
        try:
            decision = engine_of(self.env).approve(rid, approver=approver)
        except PolicyError:
            assert refused, (rid, approver, m)
        else:
            assert not refused, (rid, approver, m)
            m.approvals[approver] = self.now
            if len(self._counting(m)) >= m.k:
                m.status = self._approve_now(m)
            assert decision.status.value == m.status, (decision, m)
            if m.status == "approved":  # the independent check of what an approval needs
                assert len(self._counting(m)) >= m.k and not m.denied
        self._expect_audited()

    @precondition(lambda self: self.models)
    @rule(data=st.data(), approver=st.sampled_from([*PEOPLE, "service"]))
    def deny(self, data: st.DataObject, approver: str) -> None:
        rid = data.draw(self._pick(), label="request")
        m = self.models[rid]
        allowed = set().union(*GROUPS.values()) if m.group is None else GROUPS[m.group]
        refused = m.status not in ("pending", "approved") or approver not in allowed | {m.requester}
        try:
            engine_of(self.env).deny(rid, approver=approver, reason="property test")
        except PolicyError:
            assert refused
        else:
            assert not refused
            m.status, m.denied = "denied", True
        self._expect_audited()

    @precondition(lambda self: self.models)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        rid = data.draw(self._pick(), label="request")
        m = self.models[rid]
        try:
            approval = engine_of(self.env).release(rid)
        except PolicyError:
            if m.status == "approved":
                assert self.now - m.decided > RELEASE_TTL
                m.status = "expired"
        else:
            assert m.status == "approved" and not m.denied and self.now - m.decided <= RELEASE_TTL
            assert m.source != COLD and (m.k == 0 or m.source != HOT or m.amount > 1_000)
            assert approval.digests and approval.request_id == rid
            m.status = "released"
            self.released.append(rid)
        self._expect_audited()

    @rule(ns=st.sampled_from([1, SECOND, 1800 * SECOND, 3599 * SECOND, HOUR, HOUR + 1, 7199 * SECOND, 2 * HOUR]))
    def advance(self, ns: int) -> None:
        self.env.clock.now += ns

    @rule()
    def restart(self) -> None:
        self.env.restart()

    # -- invariants ------------------------------------------------------------------------------------------------

    @invariant()
    def statuses_agree(self) -> None:
        if not hasattr(self, "env"):
            return
        engine = engine_of(self.env)
        for rid, m in self.models.items():
            status = engine.status(rid).status
            if m.status == "approved" and status is RequestStatus.APPROVED:
                continue
            assert status.value == m.status, (rid, status, m)

    @invariant()
    def velocity_never_exceeds_the_limit(self) -> None:
        if not hasattr(self, "env"):
            return
        for end, _ in self.velocity:
            assert sum(a for t, a in self.velocity if end - WINDOW < t <= end) <= LIMIT

    @invariant()
    def audit_chain_is_whole(self) -> None:
        if hasattr(self, "env"):
            assert verify(self.tmp / "audit.log").ok


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0, 1, 10, 50, 99, 100, 101]), st.integers(min_value=1, max_value=6)), max_size=40
    )
)
def test_velocity_decisions_are_exactly_the_sliding_window_sums(steps: list[tuple[int, int]]) -> None:
    """Small allowed withdrawals against a 10-unit limit per 100 s: each is approved exactly when it fits."""
    config = policy_config(
        rules=[Rule("all hot", RuleAction.ALLOW, tier=Tier.HOT)],
        limits=[VelocityLimit("tight", "ETH", 100 * SECOND, 10)],
    )
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog.open(Path(tmp) / "audit.log", fsync=False, clock=clock)
        engine = PolicyEngine(config, whitelist_approvers=approvers(), audit=audit, clock=clock)
        whitelist(engine, FRIEND)
        approved: list[tuple[int, int]] = []
        for wid, (delay, amount) in enumerate(steps, start=1):
            clock.now += delay * SECOND
            used = sum(a for t, a in approved if clock.now - 100 * SECOND < t <= clock.now)
            decision = engine.submit(**withdrawal(wid, amount))  # type: ignore[arg-type]
            expected = RequestStatus.APPROVED if used + amount <= 10 else RequestStatus.BLOCKED
            assert decision.status is expected, (used, amount, decision)
            if expected is RequestStatus.APPROVED:
                approved.append((clock.now, amount))
        for end, _ in approved:
            assert sum(a for t, a in approved if end - 100 * SECOND < t <= end) <= 10
        audit.close()


PolicyMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestPolicyMachine = PolicyMachine.TestCase
