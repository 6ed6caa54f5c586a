"""The KYC provider, exercised through the kernel's hook calls: cases open, wait, and take a reviewer's verdict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.interfaces import Decision, KycProvider, OnboardingRequest, Outcome
from exchange_framework.plugins import ExchangePluginManager, collect_registered, make_plugin_manager
from exchange_framework.types import AccountId

from {{ cookiecutter.__package }}.plugin import PLUGIN_NAME, ManualReviewKyc

COMPLETE = {"full_name": "Alice Example", "date_of_birth": "1990-01-31", "address": "1 High Street, London"}


@pytest.fixture
def provider(pm: ExchangePluginManager, config: ExchangeConfig) -> ManualReviewKyc:
    """The provider the plugin registers."""
    registered = collect_registered(pm, "register_kyc_providers", config=config)[PLUGIN_NAME]
    assert isinstance(registered, KycProvider)
    assert isinstance(registered, ManualReviewKyc)
    return registered


def applicant(**details: str) -> OnboardingRequest:
    return OnboardingRequest(account=AccountId(42), country="GB", details=details)


def test_registers_a_provider_under_the_plugin_name(provider: ManualReviewKyc) -> None:
    assert provider.name == PLUGIN_NAME


def test_a_new_case_waits_for_a_reviewer(provider: ManualReviewKyc) -> None:
    reference = provider.start(applicant(**COMPLETE))
    decision = provider.status(reference)
    assert decision.outcome is Outcome.HOLD
    assert decision.reasons == ("awaiting a reviewer",)


def test_each_case_gets_its_own_reference(provider: ManualReviewKyc) -> None:
    references = {provider.start(applicant(**COMPLETE)) for _ in range(3)}
    assert len(references) == 3


@pytest.mark.parametrize("outcome", [Outcome.ALLOW, Outcome.REJECT])
def test_the_reviewers_verdict_is_the_status(provider: ManualReviewKyc, outcome: Outcome) -> None:
    reference = provider.start(applicant(**COMPLETE))
    provider.decide(reference, Decision(outcome, ("reviewed by Bob",)))
    assert provider.status(reference) == Decision(outcome, ("reviewed by Bob",), PLUGIN_NAME)


def test_a_verdict_cannot_be_changed_or_be_a_hold(provider: ManualReviewKyc) -> None:
    reference = provider.start(applicant(**COMPLETE))
    with pytest.raises(ValueError, match="allow or reject, not hold"):
        provider.decide(reference, Decision.hold("not sure"))
    provider.decide(reference, Decision.reject("forged passport"))
    with pytest.raises(ValueError, match="already decided: reject"):
        provider.decide(reference, Decision.allow())
    assert provider.status(reference).outcome is Outcome.REJECT


def test_an_incomplete_application_is_held_and_cannot_be_allowed(provider: ManualReviewKyc) -> None:
    reference = provider.start(applicant(full_name="Alice Example", address=" "))
    decision = provider.status(reference)
    assert decision.outcome is Outcome.HOLD
    assert decision.reasons == ("missing details: date_of_birth, address",)
    with pytest.raises(ValueError, match="cannot be allowed"):
        provider.decide(reference, Decision.allow())


def test_an_unknown_case_raises_so_the_kernel_holds(provider: ManualReviewKyc) -> None:
    with pytest.raises(LookupError, match="no case 'nope'"):
        provider.status("nope")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ('required_details = "full_name"', "must be a list of field names"),
        ('required_details = [""]', "must be a list of field names"),
        ("required = []", "unknown key 'required'"),
    ],
)
def test_bad_settings_stop_the_start(write_config: Callable[..., Path], settings: str, message: str) -> None:
    config = load_config(write_config(settings=settings))
    pm = make_plugin_manager(config)
    with pytest.raises(ValueError, match=message):
        pm.hook.startup.call_historic(kwargs={"config": config})
