"""Property tests: the case store against a model of its state machine, and the address matching rules."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exchange_framework.compliance import CaseError, CaseStatus, CaseStore, Subject
from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.compliance.ofac import address_key
from exchange_framework.interfaces import Decision, Outcome

REFERENCES = st.sampled_from(["1", "2", "3"])
DECISIONS = st.builds(
    lambda outcome, frozen: Decision(outcome, (FROZEN_REASON,) if frozen else ("look",), "p"),
    st.sampled_from([Outcome.HOLD, Outcome.REJECT]),
    st.booleans(),
)


@dataclass
class ModelCase:
    reference: str
    outcome: int
    frozen: bool
    decisions: int
    status: CaseStatus = CaseStatus.OPEN
    history: list[str] = field(default_factory=list)


class CaseMachine(RuleBasedStateMachine):
    """Random screenings and operator actions; the store must agree with a model after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.store = CaseStore(Path(self.tmp.name) / "compliance.db")
        self.model: dict[int, ModelCase] = {}

    def teardown(self) -> None:
        self.tmp.cleanup()

    def _open_for(self, reference: str) -> int | None:
        found = [i for i, c in self.model.items() if c.reference == reference and c.status is not CaseStatus.CLOSED]
        return found[-1] if found else None

    @rule(reference=REFERENCES, decision=DECISIONS)
    def screened(self, reference: str, decision: Decision) -> None:
        case = self.store.record(Subject.WITHDRAWAL, reference, 7, [decision])
        existing = self._open_for(reference)
        if existing is None:
            assert case.id not in self.model
            self.model[case.id] = ModelCase(reference, int(decision.outcome), FROZEN_REASON in decision.reasons, 1)
        else:
            assert case.id == existing  # never a second open case for the same subject
            model = self.model[existing]
            model.outcome = max(model.outcome, int(decision.outcome))
            model.frozen = model.frozen or FROZEN_REASON in decision.reasons
            model.decisions += 1

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), action=st.sampled_from(["escalate", "cleared", "confirmed"]))
    def operator(self, data: st.DataObject, action: str) -> None:
        case_id = data.draw(st.sampled_from(sorted(self.model)))
        model = self.model[case_id]
        allowed = {CaseStatus.OPEN} if action == "escalate" else {CaseStatus.OPEN, CaseStatus.ESCALATED}
        try:
            if action == "escalate":
                self.store.escalate(case_id, operator="op", note="n")
            else:
                self.store.resolve(case_id, operator="op", resolution=action, note="n")
        except CaseError:
            assert model.status not in allowed  # refused exactly when the model says so
            return
        assert model.status in allowed
        model.status = CaseStatus.ESCALATED if action == "escalate" else CaseStatus.CLOSED

    @invariant()
    def store_matches_model(self) -> None:
        cases = {case.id: case for case in self.store.list_cases(limit=10_000)}
        assert set(cases) == set(self.model)
        for case_id, model in self.model.items():
            case = cases[case_id]
            assert case.status is model.status and case.frozen is model.frozen
            assert {"hold": 1, "reject": 2}[case.outcome] == model.outcome
            assert len(case.decisions) == model.decisions
            assert (case.closed_ns is not None) is (model.status is CaseStatus.CLOSED)
        open_ids = [c.id for c in self.store.open_cases(limit=10_000)]
        assert open_ids == sorted(i for i, m in self.model.items() if m.status is not CaseStatus.CLOSED)


TestCaseMachine = CaseMachine.TestCase
TestCaseMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


HEX = st.text("0123456789abcdef", min_size=40, max_size=40)


@given(HEX, st.lists(st.booleans(), min_size=40, max_size=40))
def test_evm_addresses_match_in_any_letter_case(digits: str, upper: list[bool]) -> None:
    mixed = "".join(c.upper() if u else c for c, u in zip(digits, upper, strict=True))
    assert address_key("0x" + mixed) == address_key("0x" + digits) == "0x" + digits


BECH32 = st.text("qpzry9x8gf2tvdw0s3jn54khce6mua7l", min_size=20, max_size=60)


@given(st.sampled_from(["bc", "ltc", "tb", "dev"]), BECH32)
def test_bech32_addresses_match_in_either_single_case(hrp: str, data: str) -> None:
    address = f"{hrp}1{data}"
    assert address_key(address.upper()) == address_key(address) == address


BASE58 = st.text("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", min_size=26, max_size=35)


@given(st.sampled_from(["1", "3", "T", "L", "X"]), BASE58)
def test_base58_addresses_match_only_as_written(prefix: str, body: str) -> None:
    address = prefix + body
    if address not in (address.lower(), address.upper()):  # mixed case, as base58 addresses are
        assert address_key(address) == address
        assert address_key(address.swapcase()) != address_key(address)
