"""Manual KYC: the customer submits details, the status becomes pending, an operator's decision sets the tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange_framework.identity import IdentityStore
from exchange_framework.portal.kyc import KycError, KycReviews
from tests.portal.conftest import Portal, PortalClient

DETAILS = {
    "full_name": "Alice  Example",
    "date_of_birth": "1990-04-25",
    "country": "de",
    "document_number": "c01x00t47",
}
NOW_NS = 1_764_000_000 * 10**9  # 2025-11-24


@pytest.fixture
def reviews(tmp_path: Path) -> Iterator[tuple[KycReviews, IdentityStore, int]]:
    identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    identity.create_schema()
    user = identity.create_user("kyc@example.com", "correct horse battery staple")
    store = KycReviews(tmp_path / "kyc.db", identity, clock=lambda: NOW_NS)
    yield store, identity, user.id
    store.close()
    identity.close()


def test_submission_is_pending_then_approved_with_a_tier(reviews: tuple[KycReviews, IdentityStore, int]) -> None:
    store, identity, account = reviews
    submitted = store.submit(account, **DETAILS)
    assert (submitted.full_name, submitted.country, submitted.document_number) == ("Alice Example", "DE", "C01X00T47")
    assert identity.user(account).kyc_status == "pending"  # type: ignore[union-attr]
    assert store.submissions(status="pending") == [submitted]
    with pytest.raises(KycError, match="already being reviewed"):
        store.submit(account, **DETAILS)
    decided = store.decide(submitted.id, approve=True, operator="ops@example.com", tier=2)
    assert decided.status == "approved" and decided.decided_by == "ops@example.com"
    user = identity.user(account)
    assert user is not None and (user.kyc_status, user.kyc_tier) == ("approved", 2)
    with pytest.raises(KycError, match="already decided"):
        store.decide(submitted.id, approve=False, operator="ops@example.com")


def test_rejection_lets_the_customer_submit_again(reviews: tuple[KycReviews, IdentityStore, int]) -> None:
    store, identity, account = reviews
    first = store.submit(account, **DETAILS)
    store.decide(first.id, approve=False, operator="ops@example.com", note="the photo is blurred")
    assert identity.user(account).kyc_status == "rejected"  # type: ignore[union-attr]
    second = store.submit(account, **DETAILS)
    assert store.latest(account) == second and second.status == "pending"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("full_name", "A", "Enter your full name"),
        ("date_of_birth", "25/04/1990", "as YYYY-MM-DD"),
        ("date_of_birth", "2015-01-01", "at least 18 years old"),
        ("country", "Germany", "two-letter code"),
        ("document_number", "no!", "document number as printed"),
    ],
)
def test_bad_details_say_what_to_fix_and_store_nothing(
    reviews: tuple[KycReviews, IdentityStore, int], field: str, value: str, message: str
) -> None:
    store, identity, account = reviews
    with pytest.raises(KycError, match=message):
        store.submit(account, **{**DETAILS, field: value})
    assert store.submissions() == [] and identity.user(account).kyc_status == "none"  # type: ignore[union-attr]


def test_kyc_page_submits_for_review(exchange: Portal, alice: PortalClient) -> None:
    page = alice.get("/kyc").text
    assert 'id="kyc-status">none<' in page and "An operator reviews your details" in page
    bad = alice.post("/kyc", {**DETAILS, "date_of_birth": "yesterday"})
    assert bad.status_code == 400 and "as YYYY-MM-DD" in bad.text and "Alice  Example" in bad.text
    response = alice.post("/kyc", DETAILS)
    page = alice.follow(response).text
    assert "your details were sent for review" in page and 'id="kyc-status">pending<' in page
    assert "waiting for review by our team" in page and 'action="/kyc"' not in page
    reviews = exchange.server.ctx.extras["kyc_reviews"]
    submission = reviews.latest(exchange.alice.account)
    reviews.decide(submission.id, approve=True, operator="ops@example.com", tier=1)
    assert "You are verified at tier 1." in alice.get("/kyc").text
