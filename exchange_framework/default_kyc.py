"""Built-in plugin: the manual KYC review as a :class:`~exchange_framework.interfaces.KycProvider` named ``manual``.

It is the same review queue the portal's KYC page fills and the admin console's KYC queue decides
(:class:`~exchange_framework.portal.kyc.KycReviews`, ``kyc.db`` beside the journal): one queue for operators, whether
a customer typed their details into the portal or another part of the exchange started the verification through
the provider interface. ``start`` records a submission (the applicant's ``full_name``, ``date_of_birth`` and
``document_number`` from the request's details, the document's issuing country from its ``country``) and returns
its id; ``status`` answers hold while it is pending, allow once approved, reject once rejected.

Registered ``trylast``: a vendor plugin's providers come first, and ``[plugins] disabled =
["exchange_framework.default_kyc"]`` removes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from exchange_framework.config import ExchangeConfig
from exchange_framework.hookspecs import hookimpl
from exchange_framework.interfaces import Decision, KycProvider, OnboardingRequest

__all__ = ["PROVIDER", "ManualKycProvider"]

PROVIDER = "manual"

if TYPE_CHECKING:  # the portal (starlette) is imported on first use, not when plugins load
    from exchange_framework.portal.kyc import KycReviews


class ManualKycProvider:
    """Applicants reviewed by an operator in the admin console (the portal's KYC review store)."""

    name = PROVIDER

    def __init__(self, reviews: Callable[[], KycReviews]) -> None:
        self._open = reviews
        self._reviews: KycReviews | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: ExchangeConfig) -> ManualKycProvider:
        """The provider of the exchange ``config`` describes (``kyc.db`` and ``identity.db`` beside the journal)."""

        def open_reviews() -> KycReviews:
            from exchange_framework.identity import IdentityStore
            from exchange_framework.portal.kyc import KycReviews

            data_dir = config.journal_path().parent
            return KycReviews(data_dir / "kyc.db", IdentityStore(f"sqlite:///{data_dir / 'identity.db'}"))

        return cls(open_reviews)

    @property
    def reviews(self) -> KycReviews:
        """The review store, opened on first use."""
        with self._lock:
            if self._reviews is None:
                self._reviews = self._open()
            return self._reviews

    def start(self, request: OnboardingRequest) -> str:
        """Queue the applicant for an operator's review; return the submission id. Bad details raise ``KycError``."""
        details = request.details
        submission = self.reviews.submit(
            int(request.account),
            full_name=details.get("full_name", ""),
            date_of_birth=details.get("date_of_birth", ""),
            country=request.country,
            document_number=details.get("document_number", ""),
        )
        return str(submission.id)

    def status(self, reference: str) -> Decision:
        """Hold while the submission waits for an operator; allow once approved; reject once rejected."""
        if not reference.isdigit():
            return Decision.hold(f"{reference!r} is not a manual KYC submission id", provider=PROVIDER)
        found = self.reviews.get(int(reference))
        if found is None:
            return Decision.hold(f"there is no manual KYC submission {reference}", provider=PROVIDER)
        if found.status == "approved":
            return Decision.allow(f"approved by {found.decided_by} at tier {found.tier}", provider=PROVIDER)
        if found.status == "rejected":
            note = f": {found.note}" if found.note else ""
            return Decision.reject(f"rejected by {found.decided_by}{note}", provider=PROVIDER)
        return Decision.hold("waiting for an operator's review", provider=PROVIDER)


@hookimpl(trylast=True)
def register_kyc_providers(config: ExchangeConfig) -> list[KycProvider]:
    """Register the manual review queue as the ``manual`` KYC provider."""
    return [ManualKycProvider.for_config(config)]
