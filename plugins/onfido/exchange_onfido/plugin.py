"""The ``onfido`` plugin: Onfido as a KYC provider, and the route that receives Onfido's signed webhooks.

Active only when ``[plugins.settings.onfido]`` exists (see :class:`~exchange_onfido.client.Settings`); select it
with ``[compliance.kyc] provider = "onfido"``. The API and webhook tokens come from environment variables.

- ``start`` creates an applicant and a check of the configured reports; the check's id is the reference.
- ``status`` answers from the last decision once the check is complete; otherwise it asks Onfido
  (``GET /checks/{id}``). Any failure is a hold.
- The webhook route (``POST`` at ``webhook_path``) refuses a body whose ``X-SHA2-Signature`` does not verify with
  401 and changes nothing. For a verified ``check.*`` event about a check this exchange started it reads the check
  back from the API (the event is a notice, the API is the truth) and records the decision; a failure to read it
  answers 503 so that Onfido delivers the event again.
- The applicant is screened (``screen_onboarding``: sanctions lists) when the check starts, and a completed check's
  decision is written to the customer's KYC status through the exchange's onboarding gate
  (:meth:`~exchange_framework.compliance.onboarding.OnboardingGate.kyc_verified`): screened again, the tier is
  raised to ``verified_tier`` only for an account clear of onboarding cases; consider: pending review.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from exchange_framework import hookimpl
from exchange_framework.compliance.onboarding import Applicant, OnboardingGate
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import Decision, KycProvider, OnboardingRequest
from exchange_onfido.client import (
    PROVIDER,
    SIGNATURE_HEADER,
    Check,
    OnfidoClient,
    OnfidoError,
    Settings,
    check_decision,
    parse_webhook,
    verify_signature,
)
from exchange_onfido.store import CheckRecord, CheckStore

__all__ = ["OnfidoKycProvider", "provider_for", "register_kyc_providers", "register_routes", "startup"]

NAME = "onfido"
Verdict = Callable[[int, Decision], None]

_providers: dict[bytes, OnfidoKycProvider] = {}
_lock = threading.Lock()


class OnfidoKycProvider:
    """Verifies applicants with Onfido checks; also handles Onfido's webhook events."""

    name = PROVIDER

    def __init__(
        self,
        client: OnfidoClient,
        store: CheckStore,
        *,
        webhook_token: str,
        on_verdict: Verdict,
        gate: OnboardingGate | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.webhook_token = webhook_token
        self.on_verdict = on_verdict
        self.gate = gate  # the exchange's onboarding screening: the applicant is screened when the check starts

    def start(self, request: OnboardingRequest) -> str:
        """Create the applicant and a check; return the check id. Raise :class:`OnfidoError` if Onfido fails."""
        details = request.details
        first, last = details.get("first_name", ""), details.get("last_name", "")
        if not (first and last):
            first, _, last = " ".join(details.get("full_name", "").split()).rpartition(" ")
        if not (first and last):
            raise OnfidoError("an Onfido applicant needs a first and a last name (first_name/last_name or full_name)")
        applicant_id = self.client.create_applicant(
            {
                "first_name": first,
                "last_name": last,
                "dob": details.get("date_of_birth", ""),
                "email": details.get("email", ""),
            }
        )
        check = self.client.create_check(applicant_id)
        self.store.add(check.id, applicant_id, int(request.account), check.status, check_decision(check))
        if self.gate is not None:  # the name Onfido verifies, screened now and again when the check completes
            applicant = Applicant(
                account=int(request.account),
                full_name=f"{first} {last}",
                date_of_birth=details.get("date_of_birth", ""),
                country=request.country,
                email=details.get("email", ""),
                source=PROVIDER,
            )
            self.gate.screen(applicant, trigger="kyc_started")
        return check.id

    def status(self, reference: str) -> Decision:
        """The decision on a check: from the record once complete, else from Onfido; a hold on any failure."""
        record = self.store.get(reference)
        if record is None:
            return Decision.hold(f"{reference!r} is not an Onfido check this exchange started", provider=PROVIDER)
        if record.status == "complete":
            return record.decision
        try:
            check, decision = self.client.decide(reference)
        except OnfidoError as exc:
            return Decision.hold(f"Onfido gave no answer: {exc}", provider=PROVIDER)
        self._record(record, check, decision)
        return decision

    def _record(self, record: CheckRecord, check: Check, decision: Decision) -> None:
        if check.status == record.status and decision == record.decision:
            return
        self.store.update(record.check_id, check.status, decision)
        if check.status == "complete":
            self.on_verdict(record.account, decision)

    def handle_webhook(self, body: bytes, signature: str) -> tuple[int, dict[str, Any]]:
        """Process one webhook delivery; return the HTTP status and JSON body to answer with."""
        if not verify_signature(body, signature, self.webhook_token):
            return 401, {"error": f"the {SIGNATURE_HEADER} header does not match the body: event refused"}
        try:
            event = parse_webhook(body)
        except OnfidoError as exc:
            return 400, {"error": str(exc)}
        if event.payload.resource_type != "check":
            return 200, {"ignored": f"{event.payload.action} events are not used"}
        record = self.store.get(event.payload.object.id)
        if record is None:
            return 200, {"ignored": "not a check this exchange started"}
        try:
            check, decision = self.client.decide(record.check_id)
        except OnfidoError as exc:
            return 503, {"error": f"the check could not be read back from Onfido: {exc}"}
        self._record(record, check, decision)
        return 200, {"check": check.id, "status": check.status, "outcome": decision.outcome.name.lower()}

    async def webhook(self, request: Request) -> JSONResponse:
        """The starlette endpoint for Onfido's webhook."""
        body = await request.body()
        status, answer = await run_in_threadpool(self.handle_webhook, body, request.headers.get(SIGNATURE_HEADER, ""))
        return JSONResponse(answer, status_code=status)


def settings_for(config: ExchangeConfig | None) -> Settings | None:
    """Return the plugin's settings, or None if ``[plugins.settings.onfido]`` is absent (plugin inactive)."""
    if not isinstance(config, ExchangeConfig) or NAME not in config.plugins.settings:
        return None
    try:
        return msgspec.convert(dict(config.plugin_settings(NAME)), Settings)
    except (msgspec.ValidationError, ValueError) as exc:
        raise OnfidoError(f"[plugins.settings.onfido]: {exc}") from None


def _identity_verdict(data_dir: Path, tier: int, gate: OnboardingGate) -> Verdict:
    def record(account: int, decision: Decision) -> None:
        from exchange_framework.identity import IdentityStore

        identity = IdentityStore(f"sqlite:///{data_dir / 'identity.db'}")
        try:  # screened again (the applicant's data from the check's start) before any tier is raised
            gate.kyc_verified(identity, account, decision, tier=tier, provider=PROVIDER)
        finally:
            identity.close()

    return record


def provider_for(config: ExchangeConfig | None, *, on_verdict: Verdict | None = None) -> OnfidoKycProvider | None:
    """The exchange's Onfido provider (one per settings, tokens and data directory), or None if inactive."""
    settings = settings_for(config)
    if settings is None or config is None:
        return None
    api_token = os.environ.get(settings.api_token_env, "")
    webhook_token = os.environ.get(settings.webhook_token_env, "")
    if not api_token:
        raise OnfidoError(f"set the Onfido API token in the environment variable {settings.api_token_env}")
    if not webhook_token:
        raise OnfidoError(f"set the Onfido webhook token in the environment variable {settings.webhook_token_env}")
    data_dir = config.journal_path().parent
    key = msgspec.json.encode((settings, api_token, webhook_token, str(data_dir)))
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            gate = OnboardingGate(config)
            provider = _providers[key] = OnfidoKycProvider(
                OnfidoClient(settings, api_token=api_token),
                CheckStore(data_dir / "onfido.db"),
                webhook_token=webhook_token,
                on_verdict=on_verdict or _identity_verdict(data_dir, settings.verified_tier, gate),
                gate=gate,
            )
    return provider


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the settings and tokens as the exchange starts (a mistake stops the start with a clear message)."""
    provider_for(config)


@hookimpl
def register_kyc_providers(config: ExchangeConfig) -> list[KycProvider] | None:
    """Register the ``onfido`` provider when the plugin is configured."""
    provider = provider_for(config)
    return [provider] if provider is not None else None


@hookimpl
def register_routes(config: ExchangeConfig) -> list[Any] | None:
    """Add the webhook receiver at ``webhook_path`` when the plugin is configured."""
    provider = provider_for(config)
    if provider is None:
        return None
    return [Route(provider.client.settings.webhook_path, provider.webhook, methods=["POST"], name="onfido-webhook")]
