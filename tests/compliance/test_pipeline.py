"""The screening pipeline: the strictest answer wins, failures hold, and every hold or rejection opens a case."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework import hookimpl
from exchange_framework.compliance import CaseStatus, CaseStore, Subject
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.interfaces import Decision, DepositRequest, OnboardingRequest, Outcome, WithdrawalRequest
from exchange_framework.plugins import ExchangePluginManager, make_plugin_manager, run_screening

WITHDRAWAL = WithdrawalRequest(42, 1001, "ETH", "devchain", 5 * 10**18, "dev1qqqqqq")
DEPOSIT = DepositRequest(1001, "ETH", "devchain", 10**18, "dev1ours", "ab" * 32, ("dev1theirs",))


class Provider:
    """A screening plugin answering every screen_* hook with whatever ``answer`` gives (or raises)."""

    def __init__(self, answer: Callable[[], object]) -> None:
        self.answer = answer

    @hookimpl
    def screen_withdrawal(self) -> object:
        return self.answer()

    @hookimpl
    def screen_deposit(self) -> object:
        return self.answer()

    @hookimpl
    def screen_onboarding(self) -> object:
        return self.answer()


def raise_(exc: Exception) -> Callable[[], object]:
    def answer() -> object:
        raise exc

    return answer


@pytest.fixture
def config(write_config: Callable[..., Path]) -> ExchangeConfig:
    return load_config(write_config())


def manager(config: ExchangeConfig, *answers: Callable[[], object]) -> ExchangePluginManager:
    pm = make_plugin_manager(config)
    for number, answer in enumerate(answers):
        pm.register(Provider(answer), name=f"provider-{number}")
    return pm


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (raise_(TimeoutError("provider timed out")), "screen_withdrawal failed: TimeoutError: provider timed out"),
        (raise_(ConnectionError("refused")), "screen_withdrawal failed: ConnectionError: refused"),
        (lambda: {"risk": "low"}, "screen_withdrawal returned {'risk': 'low'}, which is not a Decision"),
    ],
)
def test_errors_timeouts_garbage_and_silence_hold_and_open_a_case(
    config: ExchangeConfig, answer: Callable[[], object], reason: str
) -> None:
    pm = manager(config, lambda: Decision.allow(provider="fine"), answer)
    decision = run_screening(pm, "screen_withdrawal", config=config, request=WITHDRAWAL)
    assert decision.outcome is Outcome.HOLD and reason in decision.reasons
    (case,) = CaseStore.for_config(config).open_cases()
    assert case.subject is Subject.WITHDRAWAL and case.reference == "42" and case.account == 1001
    assert case.outcome == "hold" and case.status is CaseStatus.OPEN
    assert reason in [r for d in case.decisions for r in d.reasons]
    assert case.details["address"] == "dev1qqqqqq" and case.details["amount"] == str(5 * 10**18)


def test_silence_holds_and_opens_a_case(config: ExchangeConfig) -> None:
    pm = manager(config, lambda: None)
    decision = run_screening(pm, "screen_withdrawal", config=config, request=WITHDRAWAL)
    assert decision == Decision.hold("no screening provider gave a decision")
    (case,) = CaseStore.for_config(config).open_cases()
    assert [(d.provider, d.reasons) for d in case.decisions] == [("kernel", ("no screening provider gave a decision",))]


def test_an_allow_opens_no_case(config: ExchangeConfig) -> None:
    pm = manager(config, lambda: Decision.allow(provider="a"), lambda: Decision.allow(provider="b"))
    assert run_screening(pm, "screen_deposit", config=config, request=DEPOSIT).outcome is Outcome.ALLOW
    assert CaseStore.for_config(config).list_cases() == []


def test_deposit_and_onboarding_cases_name_their_subject(config: ExchangeConfig) -> None:
    pm = manager(config, lambda: Decision.reject("no", provider="p"))
    run_screening(pm, "screen_deposit", config=config, request=DEPOSIT)
    onboarding = OnboardingRequest(account=7, country="DE", details={"full_name": "A Person"})
    run_screening(pm, "screen_onboarding", config=config, request=onboarding)
    onboard_case, deposit_case = CaseStore.for_config(config).list_cases()
    assert deposit_case.subject is Subject.DEPOSIT and deposit_case.reference == f"devchain:{'ab' * 32}:dev1ours"
    assert deposit_case.details["source_addresses"] == "dev1theirs" and deposit_case.outcome == "reject"
    assert onboard_case.subject is Subject.ONBOARDING and onboard_case.reference == "7"
    assert onboard_case.details == {"country": "DE", "full_name": "A Person"}


def test_a_broken_case_store_does_not_change_the_decision(config: ExchangeConfig) -> None:
    (config.journal_path().parent / "compliance.db").mkdir(parents=True)  # a directory where the file should be
    pm = manager(config, lambda: Decision.hold("look", provider="p"))
    decision = run_screening(pm, "screen_withdrawal", config=config, request=WITHDRAWAL)
    assert decision == Decision.hold("look", provider="p")


OUTCOMES = st.sampled_from([Outcome.ALLOW, Outcome.HOLD, Outcome.REJECT, None, "error", "garbage"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.lists(OUTCOMES, min_size=0, max_size=4))
def test_the_combined_decision_is_never_more_permissive_than_any_provider(
    config: ExchangeConfig, answers: list[object]
) -> None:
    def answer_for(kind: object, number: int) -> Callable[[], object]:
        if kind == "error":
            return raise_(RuntimeError("boom"))
        if kind == "garbage":
            return lambda: "allow"
        if kind is None:
            return lambda: None
        assert isinstance(kind, Outcome)
        return lambda: Decision(kind, (f"p{number}",), f"p{number}")

    store = CaseStore.for_config(config)
    before = len(store.list_cases(limit=10_000))
    pm = manager(config, *(answer_for(kind, n) for n, kind in enumerate(answers)))
    decision = run_screening(pm, "screen_withdrawal", config=config, request=WITHDRAWAL)
    given_outcomes = [a for a in answers if isinstance(a, Outcome)]
    assert all(decision.outcome >= outcome for outcome in given_outcomes)
    if not given_outcomes or any(not isinstance(a, Outcome) for a in answers if a is not None):
        assert decision.outcome >= Outcome.HOLD  # silence, errors and garbage never let anything through
    cases = store.list_cases(limit=10_000)
    if decision.outcome is Outcome.ALLOW:
        assert len(cases) == before
    else:  # a case exists for it, at least as strict as the decision
        case = store.find(Subject.WITHDRAWAL, "42")[0]
        assert case.status is not CaseStatus.CLOSED
        assert {"allow": 0, "hold": 1, "reject": 2}[case.outcome] >= int(decision.outcome)
