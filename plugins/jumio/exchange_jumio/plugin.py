"""The ``jumio`` plugin: Jumio's KYX platform as a KYC provider, and the route receiving Jumio's callbacks.

Active only when ``[plugins.settings.jumio]`` exists (see :class:`~exchange_jumio.client.Settings`); select it with
``[compliance.kyc] provider = "jumio"``. ``start`` creates an account with a workflow execution and returns
``"<account id>:<execution id>"`` (kept with the exchange account in ``jumio.db`` beside the journal); ``status``
answers from the record once processed, else reads the execution from Jumio. Any failure is a hold.

Callbacks (``POST`` at ``callback_path``) carry no signature of their own, so they are only a notice: the plugin
reads the execution back from Jumio's API with its own bearer token and records what the API says. A forged
callback can therefore change nothing that Jumio did not decide. A malformed body is refused 400, an execution the
exchange did not start is ignored, and a failure to read it back answers 503 so that Jumio calls again. A
processed execution's decision is written to the customer's KYC status through the exchange's onboarding gate
(:meth:`~exchange_framework.compliance.onboarding.OnboardingGate.kyc_verified`): the identity data the exchange
has (a name given at start, or the portal's KYC form) is sanctions-screened first, and without any the decision
holds; the tier is raised only for an account clear of onboarding cases.
"""

from __future__ import annotations

import os
import threading
import uuid
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
from exchange_jumio.client import PROVIDER, JumioClient, JumioError, Settings
from exchange_jumio.store import ExecutionRecord, ExecutionStore

__all__ = ["JumioKycProvider", "provider_for", "register_kyc_providers", "register_routes", "startup"]

NAME = "jumio"
Verdict = Callable[[int, Decision], None]


class _Id(msgspec.Struct, frozen=True):
    id: str


class _Callback(msgspec.Struct, frozen=True, rename="camel"):
    account: _Id
    workflow_execution: _Id


_providers: dict[bytes, JumioKycProvider] = {}
_lock = threading.Lock()


class JumioKycProvider:
    """Verifies applicants with Jumio workflow executions; also handles Jumio's callbacks."""

    name = PROVIDER

    def __init__(
        self, client: JumioClient, store: ExecutionStore, *, on_verdict: Verdict, gate: OnboardingGate | None = None
    ) -> None:
        self.client = client
        self.store = store
        self.on_verdict = on_verdict
        self.gate = gate  # the exchange's onboarding screening: an applicant's name given at start is screened

    def start(self, request: OnboardingRequest) -> str:
        """Start a workflow execution for the applicant; raise :class:`JumioError` if Jumio fails."""
        account = int(request.account)
        execution = self.client.create_account(account, f"kyc-{account}-{uuid.uuid4().hex}")
        held = Decision.hold(f"Jumio workflow execution {execution.reference} is INITIATED", provider=PROVIDER)
        self.store.save(execution.reference, account, "INITIATED", held)
        details = request.details
        if self.gate is not None and (details.get("full_name") or details.get("last_name")):
            name = details.get("full_name") or f"{details.get('first_name', '')} {details.get('last_name', '')}"
            applicant = Applicant(
                account=account,
                full_name=" ".join(name.split()),
                date_of_birth=details.get("date_of_birth", ""),
                country=request.country,
                email=details.get("email", ""),
                source=PROVIDER,
            )
            self.gate.screen(applicant, trigger="kyc_started")
        return execution.reference

    def status(self, reference: str) -> Decision:
        """The decision on an execution: from the record once processed, else from Jumio; a hold on any failure."""
        record = self.store.get(reference)
        if record is None:
            return Decision.hold(f"{reference!r} is not a Jumio execution this exchange started", provider=PROVIDER)
        if record.status == "PROCESSED":
            return record.decision
        try:
            status, decision = self.client.decide(reference)
        except JumioError as exc:
            return Decision.hold(f"Jumio gave no answer: {exc}", provider=PROVIDER)
        self._record(record, status, decision)
        return decision

    def _record(self, record: ExecutionRecord, status: str, decision: Decision) -> None:
        if status == record.status and decision == record.decision:
            return
        self.store.save(record.reference, record.account, status, decision)
        if status == "PROCESSED":
            self.on_verdict(record.account, decision)

    def handle_callback(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Process one callback; return the HTTP status and JSON body to answer with."""
        try:
            callback = msgspec.json.decode(body, type=_Callback)
        except msgspec.DecodeError as exc:
            return 400, {"error": f"not a Jumio callback: {exc}"}
        record = self.store.get(f"{callback.account.id}:{callback.workflow_execution.id}")
        if record is None:
            return 200, {"ignored": "not a workflow execution this exchange started"}
        try:
            status, decision = self.client.decide(record.reference)
        except JumioError as exc:
            return 503, {"error": f"the execution could not be read back from Jumio: {exc}"}
        self._record(record, status, decision)
        return 200, {"status": status, "outcome": decision.outcome.name.lower()}

    async def callback(self, request: Request) -> JSONResponse:
        """The starlette endpoint for Jumio's callbacks."""
        status, answer = await run_in_threadpool(self.handle_callback, await request.body())
        return JSONResponse(answer, status_code=status)


def settings_for(config: ExchangeConfig | None) -> Settings | None:
    """Return the plugin's settings, or None if ``[plugins.settings.jumio]`` is absent (plugin inactive)."""
    if not isinstance(config, ExchangeConfig) or NAME not in config.plugins.settings:
        return None
    try:
        return msgspec.convert(dict(config.plugin_settings(NAME)), Settings)
    except (msgspec.ValidationError, ValueError) as exc:
        raise JumioError(f"[plugins.settings.jumio]: {exc}") from None


def _identity_verdict(data_dir: Path, tier: int, gate: OnboardingGate) -> Verdict:
    def record(account: int, decision: Decision) -> None:
        from exchange_framework.identity import IdentityStore

        identity = IdentityStore(f"sqlite:///{data_dir / 'identity.db'}")
        try:  # screened (the identity data the exchange has: none at all holds) before any tier is raised
            gate.kyc_verified(identity, account, decision, tier=tier, provider=PROVIDER)
        finally:
            identity.close()

    return record


def provider_for(config: ExchangeConfig | None, *, on_verdict: Verdict | None = None) -> JumioKycProvider | None:
    """The exchange's Jumio provider (one per settings, credentials and data directory), or None if inactive."""
    settings = settings_for(config)
    if settings is None or config is None:
        return None
    client_id = os.environ.get(settings.client_id_env, "")
    secret = os.environ.get(settings.client_secret_env, "")
    if not (client_id and secret):
        raise JumioError(
            f"set the Jumio API credentials in the environment variables {settings.client_id_env} and "
            f"{settings.client_secret_env}"
        )
    data_dir = config.journal_path().parent
    key = msgspec.json.encode((settings, client_id, secret, str(data_dir)))
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            gate = OnboardingGate(config)
            provider = _providers[key] = JumioKycProvider(
                JumioClient(settings, client_id=client_id, client_secret=secret),
                ExecutionStore(data_dir / "jumio.db"),
                on_verdict=on_verdict or _identity_verdict(data_dir, settings.verified_tier, gate),
                gate=gate,
            )
    return provider


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the settings and credentials as the exchange starts (a mistake stops the start with a clear message)."""
    provider_for(config)


@hookimpl
def register_kyc_providers(config: ExchangeConfig) -> list[KycProvider] | None:
    """Register the ``jumio`` provider when the plugin is configured."""
    provider = provider_for(config)
    return [provider] if provider is not None else None


@hookimpl
def register_routes(config: ExchangeConfig) -> list[Any] | None:
    """Add the callback receiver at ``callback_path`` when the plugin is configured."""
    provider = provider_for(config)
    if provider is None:
        return None
    return [Route(provider.client.settings.callback_path, provider.callback, methods=["POST"], name="jumio-callback")]
