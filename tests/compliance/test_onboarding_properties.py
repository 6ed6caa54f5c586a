"""Property: whatever the order of screenings, KYC approvals and officers' decisions, the fast frozen check agrees
with the account's standing, and a KYC tier rises only when the account is clear."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework import hookimpl
from exchange_framework.compliance.cases import CaseStatus, Subject
from exchange_framework.compliance.onboarding import Applicant, OnboardingGate, Standing, frozen_accounts
from exchange_framework.config import ExchangeConfig
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Decision, OnboardingRequest
from exchange_framework.plugins import make_plugin_manager
from tests.compliance.test_onboarding import SANCTIONED, config_with_list

NAMES = {"hit": SANCTIONED, "clean": "Alice Example", "error": "Alice Example"}
ACTIONS = st.sampled_from(["hit", "clean", "error", "approve", "clear", "confirm"])
_runs = itertools.count()


class Flaky:
    """Raises while ``failing`` is set (a vendor outage), otherwise has no opinion."""

    failing = False

    @hookimpl
    def screen_onboarding(self, config: ExchangeConfig, request: OnboardingRequest) -> Decision | None:
        if self.failing:
            raise TimeoutError("vendor timed out")
        return None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(ACTIONS, min_size=1, max_size=8))
def test_the_frozen_check_agrees_with_the_standing_and_tiers_rise_only_when_clear(
    demo_config: ExchangeConfig, tmp_path: Path, steps: list[str]
) -> None:
    root = tmp_path / f"run{next(_runs)}"
    config = config_with_list(demo_config, root / "data")
    flaky = Flaky()
    pm = make_plugin_manager(config)
    pm.register(flaky, name="flaky")
    gate = OnboardingGate(config, pm=pm)
    identity = IdentityStore(f"sqlite:///{root / 'identity.db'}")
    identity.create_schema()
    try:
        account = identity.create_user("p@example.com", "correct horse battery staple").id
        for step in steps:
            tier_before = identity.user(account).kyc_tier  # type: ignore[union-attr]
            if step in NAMES:
                flaky.failing = step == "error"
                gate.screen(Applicant(account=account, full_name=NAMES[step]), trigger="kyc_submitted")
                flaky.failing = False
            elif step == "approve":
                gate.apply_kyc(identity, account, Decision.allow(), tier=tier_before + 1, provider="manual")
            else:
                open_cases = [
                    c for c in gate.cases.find(Subject.ONBOARDING, str(account)) if c.status is not CaseStatus.CLOSED
                ]
                for case in open_cases:
                    resolution = "cleared" if step == "clear" else "confirmed"
                    gate.resolve(case.id, operator="o", resolution=resolution, note="n", identity=identity)
            standing = gate.standing(account)
            assert frozen_accounts(config).is_frozen(account) == (standing is Standing.FROZEN)
            tier_after = identity.user(account).kyc_tier  # type: ignore[union-attr]
            assert tier_after >= tier_before  # nothing here lowers a tier
            if tier_after > tier_before:
                assert standing is Standing.CLEAR, (steps, step)
    finally:
        identity.close()
