"""The built-in ``manual`` KYC provider: the portal's review queue behind the KycProvider interface; and the
kernel's fail-closed provider calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange_framework.compliance.kyc import KycSetupError, apply_verdict, kyc_provider, kyc_providers, kyc_verdict
from exchange_framework.config import DEMO_CONFIG, ExchangeConfig, parse_config
from exchange_framework.default_kyc import ManualKycProvider
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Decision, KycProvider, OnboardingRequest, Outcome
from exchange_framework.node import with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.portal.kyc import KycError, KycReviews
from exchange_framework.types import AccountId

DETAILS = {"full_name": "Ada Lovelace", "date_of_birth": "1990-12-10", "document_number": "P1234567"}


def kyc(identity: IdentityStore, account: int) -> tuple[int, str]:
    user = identity.user(account)
    assert user is not None
    return user.kyc_tier, user.kyc_status


@pytest.fixture
def config(tmp_path: Path) -> ExchangeConfig:
    return with_data_dir(parse_config(DEMO_CONFIG.read_text(encoding="utf-8"), root=DEMO_CONFIG.parent), tmp_path)


@pytest.fixture
def identity(config: ExchangeConfig) -> IdentityStore:
    store = IdentityStore(f"sqlite:///{config.journal_path().parent / 'identity.db'}")
    store.create_schema()
    return store


def test_manual_is_registered_by_default_and_is_the_configured_provider(
    config: ExchangeConfig, identity: IdentityStore
) -> None:
    pm = make_plugin_manager(config)
    provider = kyc_provider(pm, config)
    assert isinstance(provider, ManualKycProvider) and isinstance(provider, KycProvider)
    assert "manual" in kyc_providers(pm, config)
    with pytest.raises(KycSetupError, match=r"'onfido' is not a registered KYC provider \(registered: manual\)"):
        kyc_provider(pm, config, "onfido")


def test_start_queues_for_review_and_status_follows_the_operator(
    config: ExchangeConfig, identity: IdentityStore
) -> None:
    account = identity.create_user("ada@example.com", "a long enough password").id
    provider = kyc_provider(make_plugin_manager(config), config)
    reference = provider.start(OnboardingRequest(account=AccountId(account), country="gb", details=DETAILS))
    held = provider.status(reference)
    assert held.outcome is Outcome.HOLD and held.provider == "manual"
    assert kyc(identity, account)[1] == "pending"
    # the same queue the admin console works through
    reviews = KycReviews(config.journal_path().parent / "kyc.db", identity)
    (pending,) = reviews.submissions(status="pending")
    assert str(pending.id) == reference and pending.country == "GB" and pending.full_name == "Ada Lovelace"
    reviews.decide(pending.id, approve=True, operator="ops@example.com", tier=2)
    assert provider.status(reference) == Decision.allow("approved by ops@example.com at tier 2", provider="manual")
    assert kyc(identity, account) == (2, "approved")


def test_rejection_and_bad_input(config: ExchangeConfig, identity: IdentityStore) -> None:
    account = identity.create_user("bob@example.com", "a long enough password").id
    provider = ManualKycProvider.for_config(config)
    with pytest.raises(KycError, match="date of birth"):
        provider.start(
            OnboardingRequest(account=AccountId(account), country="DE", details={**DETAILS, "date_of_birth": ""})
        )
    assert provider.reviews.submissions() == []  # nothing recorded
    reference = provider.start(OnboardingRequest(account=AccountId(account), country="DE", details=DETAILS))
    provider.reviews.decide(int(reference), approve=False, operator="ops@example.com", note="document expired")
    assert provider.status(reference) == Decision.reject(
        "rejected by ops@example.com: document expired", provider="manual"
    )
    for unknown in ("999", "not-a-number"):
        assert provider.status(unknown).outcome is Outcome.HOLD


class Broken:
    name = "broken"

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def start(self, request: OnboardingRequest) -> str:
        return "x"

    def status(self, reference: str) -> Decision:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer  # type: ignore[return-value]


def test_kyc_verdict_fails_closed() -> None:
    assert kyc_verdict(Broken(TimeoutError("read timed out")), "x") == Decision.hold(
        "KYC provider broken failed: read timed out", provider="broken"
    )
    assert kyc_verdict(Broken("clear"), "x").outcome is Outcome.HOLD
    assert kyc_verdict(Broken(Decision.allow(provider="broken")), "x").outcome is Outcome.ALLOW


def test_apply_verdict_raises_tiers_and_never_lowers(identity: IdentityStore) -> None:
    account = identity.create_user("eve@example.com", "a long enough password").id
    apply_verdict(identity, account, Decision.hold())
    assert kyc(identity, account) == (0, "pending")
    apply_verdict(identity, account, Decision.allow(), tier=2)
    apply_verdict(identity, account, Decision.allow(), tier=1)
    assert kyc(identity, account) == (2, "approved")
    apply_verdict(identity, account, Decision.reject())
    assert kyc(identity, account) == (2, "rejected")
    with pytest.raises(ValueError, match="no user"):
        apply_verdict(identity, 999_999, Decision.allow())
