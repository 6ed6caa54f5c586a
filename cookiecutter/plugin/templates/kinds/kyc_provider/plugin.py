"""{{ cookiecutter.plugin_name.strip() }}: a KYC provider where a person reviews every application.

Each application becomes a case that waits (``Decision.hold``) until a reviewer records a verdict with
:meth:`ManualReviewKyc.decide`. Cases are kept in memory: after a restart an unknown case makes ``status`` raise, and
the kernel holds the application (fail closed). To verify through a vendor instead, create the vendor's check in
``start`` and translate its result in ``status``. Settings, in ``exchange.toml``::

    [plugins.settings.{{ cookiecutter.__slug }}]
    required_details = ["full_name", "date_of_birth"]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import Decision, OnboardingRequest, Outcome

PLUGIN_NAME = "{{ cookiecutter.__slug }}"
SETTINGS = f"[plugins.settings.{PLUGIN_NAME}]"


@dataclass
class Case:
    """One application under review: what the applicant sent, and the verdict once a reviewer gave one."""

    request: OnboardingRequest
    missing: tuple[str, ...]
    verdict: Decision | None = None


class ManualReviewKyc:
    """Verifies applicants by hand: every case is held until a reviewer allows or rejects it."""

    def __init__(self, required_details: Iterable[str] = (), *, name: str = PLUGIN_NAME) -> None:
        self.name = name
        self.required_details = tuple(required_details)
        self.cases: dict[str, Case] = {}
        self._numbers = itertools.count(1)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ManualReviewKyc:
        """Build the provider from the plugin's settings table; raise ``ValueError`` naming a bad key."""
        unknown = sorted(set(settings) - {"required_details"})
        if unknown:
            raise ValueError(f"{SETTINGS}: unknown key {unknown[0]!r}; known keys: required_details")
        required = settings.get("required_details", [])
        if not isinstance(required, list) or not all(isinstance(field, str) and field for field in required):
            raise ValueError(f"{SETTINGS} required_details must be a list of field names, not {required!r}")
        return cls(required)

    def start(self, request: OnboardingRequest) -> str:
        """Open a case for an applicant and return its reference; it waits for a reviewer."""
        reference = f"{self.name}-{next(self._numbers):06d}"
        missing = tuple(field for field in self.required_details if not request.details.get(field, "").strip())
        self.cases[reference] = Case(request, missing)
        return reference

    def status(self, reference: str) -> Decision:
        """Return the reviewer's verdict, or a hold saying what the case waits for; raise for an unknown case."""
        case = self._case(reference)
        if case.verdict is not None:
            return case.verdict
        if case.missing:
            return Decision.hold(f"missing details: {', '.join(case.missing)}", provider=self.name)
        return Decision.hold("awaiting a reviewer", provider=self.name)

    def decide(self, reference: str, verdict: Decision) -> None:
        """Record a reviewer's final verdict (allow or reject) on a case; a verdict cannot be changed."""
        case = self._case(reference)
        if verdict.outcome is Outcome.HOLD:
            raise ValueError(f"case {reference}: a reviewer's verdict is allow or reject, not hold")
        if case.verdict is not None:
            raise ValueError(f"case {reference} was already decided: {case.verdict.outcome.name.lower()}")
        if verdict.outcome is Outcome.ALLOW and case.missing:
            raise ValueError(f"case {reference} cannot be allowed: missing details: {', '.join(case.missing)}")
        case.verdict = Decision(verdict.outcome, verdict.reasons, self.name)

    def _case(self, reference: str) -> Case:
        try:
            return self.cases[reference]
        except KeyError:
            raise LookupError(f"{self.name}: no case {reference!r} (cases are kept in memory)") from None


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the plugin's settings as the exchange starts: a mistake stops the start with a clear error."""
    ManualReviewKyc.from_settings(config.plugin_settings(PLUGIN_NAME))


@hookimpl
def register_kyc_providers(config: ExchangeConfig) -> list[ManualReviewKyc]:
    """Register the provider, under the plugin's name."""
    return [ManualReviewKyc.from_settings(config.plugin_settings(PLUGIN_NAME))]
