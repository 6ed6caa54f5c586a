"""The Onfido plugin against a local server implementing Onfido's API v3.6 (tests/compliance/kyc/onfido_server.py):
checks that complete after polls or through a signed webhook to the plugin's own route, fail-closed answers, and
Onfido's published webhook signature example."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from exchange_onfido import verify_signature
from exchange_onfido.client import OnfidoError, sign
from exchange_onfido.plugin import OnfidoKycProvider, provider_for
from starlette.applications import Starlette

from exchange_framework.compliance.cases import Subject
from exchange_framework.compliance.kyc import kyc_provider
from exchange_framework.compliance.onboarding import Standing
from exchange_framework.config import ExchangeConfig, parse_config
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import OnboardingRequest, Outcome
from exchange_framework.node import with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.types import AccountId
from tests.api.server import serve as serve_app
from tests.compliance.httpserver import serve
from tests.compliance.kyc.onfido_server import OnfidoState, handler_for
from tests.conftest import MINIMAL_CONFIG

API_TOKEN = "api_sandbox.test-token"
WEBHOOK_TOKEN = "a-webhook-token-for-tests"
DETAILS = {"full_name": "Ada King Lovelace", "date_of_birth": "1990-12-10", "email": "ada@example.com"}

# Onfido's published example (onfido/onfido-python, tests/test_classic_webhook_event_verification.py): the raw body
# of a check.completed event, the webhook token and the X-SHA2-Signature Onfido sent with it.
VECTOR_BODY = (
    b'{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"f2302f45-227d-413d-ad61-'
    b'09ec077a086a","status":"complete","completed_at_iso8601":"2024-04-04T09:21:21Z","href":"https://api.onfido.com'
    b'/v3.6/checks/f2302f45-227d-413d-ad61-09ec077a086a"}}}'
)
VECTOR_TOKEN = "wU99mE6jJ7nXOLFwZ0tJymM1lpI15pZh"
VECTOR_SIGNATURE = "77ebc3e418f26be6eebb47f7ebe551321de26734fc273961e075fc9ab163d9c7"


def test_onfido_published_webhook_signature_example() -> None:
    assert sign(VECTOR_BODY, VECTOR_TOKEN) == VECTOR_SIGNATURE
    assert verify_signature(VECTOR_BODY, VECTOR_SIGNATURE, VECTOR_TOKEN)
    assert verify_signature(VECTOR_BODY, VECTOR_SIGNATURE.upper(), VECTOR_TOKEN)  # hex compares in either case
    assert not verify_signature(VECTOR_BODY, VECTOR_SIGNATURE[:-1] + "8", VECTOR_TOKEN)
    assert not verify_signature(VECTOR_BODY + b" ", VECTOR_SIGNATURE, VECTOR_TOKEN)  # the raw body, byte for byte
    assert not verify_signature(VECTOR_BODY, VECTOR_SIGNATURE, "")


@dataclass
class Setup:
    state: OnfidoState
    provider: OnfidoKycProvider
    identity: IdentityStore
    account: int
    webhook_url: str

    def start(self) -> str:
        return self.provider.start(OnboardingRequest(account=AccountId(self.account), country="GB", details=DETAILS))

    def kyc(self) -> tuple[int, str]:
        user = self.identity.user(self.account)
        assert user is not None
        return user.kyc_tier, user.kyc_status

    def api_reads(self) -> int:
        return sum(1 for method, _path in self.state.requests if method == "GET")


def onfido_config(tmp_path: Path, base_url: str) -> ExchangeConfig:
    text = MINIMAL_CONFIG + (
        f'[plugins.settings.onfido]\nbase_url = "{base_url}"\ntimeout_seconds = 0.5\nverified_tier = 2\n\n'
        '[compliance.kyc]\nprovider = "onfido"\n\n'
        '[compliance.ofac]\nsource = "builtin"\n'  # applicants are sanctions-screened before a tier is raised
    )
    return with_data_dir(parse_config(text), tmp_path / "data")


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed_entry_points: None) -> Iterator[Setup]:
    monkeypatch.setenv("ONFIDO_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("ONFIDO_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    state = OnfidoState(api_token=API_TOKEN, webhook_token=WEBHOOK_TOKEN)
    with serve(handler_for(state)) as base_url:
        config = onfido_config(tmp_path, base_url)
        pm = make_plugin_manager(config)
        pm.hook.startup.call_historic(kwargs={"config": config})
        provider = kyc_provider(pm, config)  # the one [compliance.kyc] names, through the plugin manager
        assert isinstance(provider, OnfidoKycProvider)
        routes = [route for routes in pm.hook.register_routes(config=config) or [] for route in routes or []]
        identity = IdentityStore(f"sqlite:///{tmp_path / 'data' / 'identity.db'}")
        identity.create_schema()
        account = identity.create_user("ada@example.com", "a long enough password").id
        with serve_app(Starlette(routes=routes)) as app:  # type: ignore[arg-type]  # any ASGI app runs here
            state.webhook_url = app.url + "/hooks/onfido"
            yield Setup(state, provider, identity, account, state.webhook_url)
        identity.close()


def test_a_clear_check_completes_after_polls_and_raises_the_tier(setup: Setup) -> None:
    s = setup
    s.state.polls_to_complete = 2
    check_id = s.start()
    (applicant,) = s.state.applicants.values()
    assert (applicant["first_name"], applicant["last_name"], applicant["dob"]) == ("Ada King", "Lovelace", "1990-12-10")
    assert s.state.checks[check_id]["applicant_id"] == applicant["id"]
    assert [s.state.reports[r]["name"] for r in s.state.checks[check_id]["report_ids"]] == [
        "document",
        "facial_similarity_photo",
    ]
    first = s.provider.status(check_id)
    assert first.outcome is Outcome.HOLD and f"Onfido check {check_id} is in_progress" in first.reasons
    assert s.kyc()[0] == 0  # nothing verified yet
    second = s.provider.status(check_id)
    assert second.outcome is Outcome.ALLOW
    assert s.kyc() == (2, "approved")
    reads = s.api_reads()
    assert s.provider.status(check_id) == second and s.api_reads() == reads  # complete: answered from the record


def test_consider_through_the_signed_webhook_holds_for_review(setup: Setup) -> None:
    s = setup
    s.state.report_results = {"document": ("consider", "suspected")}
    check_id = s.start()
    assert s.state.complete(check_id) == 200
    reads = s.api_reads()
    decision = s.provider.status(check_id)
    assert s.api_reads() == reads  # the webhook already brought the decision in
    assert decision.outcome is Outcome.HOLD
    assert decision.reasons == (f"Onfido check {check_id} needs review (consider): document: consider (suspected)",)
    assert s.kyc() == (0, "pending")


def test_a_bad_signature_is_refused_and_changes_nothing(setup: Setup) -> None:
    s = setup
    check_id = s.start()
    record = s.provider.store.get(check_id)
    s.state._finish(check_id)  # Onfido has finished the check, but the exchange must not learn it from a forgery
    body = (
        b'{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"' + check_id.encode() + b'"}}}'
    )
    reads = s.api_reads()
    assert s.state.deliver(body, sign(body, "not-the-webhook-token")) == 401
    assert s.state.deliver(body, "") == 401
    assert s.state.deliver(body + b" ", sign(body, WEBHOOK_TOKEN)) == 401  # signed a different body
    response = httpx.post(s.webhook_url, content=body, headers={"X-SHA2-Signature": sign(body, "x")})
    assert response.status_code == 401 and "does not match" in response.json()["error"]
    assert s.api_reads() == reads and s.provider.store.get(check_id) == record
    assert s.kyc()[0] == 0
    # the genuine delivery is accepted
    assert s.state.deliver(body, sign(body, WEBHOOK_TOKEN)) == 200
    assert s.kyc() == (2, "approved")


def test_verified_webhooks_about_other_things_change_nothing(setup: Setup) -> None:
    s = setup
    check_id = s.start()
    unknown = b'{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"not-ours"}}}'
    assert s.state.deliver(unknown, sign(unknown, WEBHOOK_TOKEN)) == 200
    garbage = b'{"payload": "nothing"}'
    assert s.state.deliver(garbage, sign(garbage, WEBHOOK_TOKEN)) == 400
    assert s.provider.store.get(check_id).status == "in_progress"  # type: ignore[union-attr]


@pytest.mark.parametrize("fault", ["500", "timeout", "garbage"])
def test_any_failure_holds(setup: Setup, fault: str) -> None:
    s = setup
    check_id = s.start()
    s.state.fault = fault
    decision = s.provider.status(check_id)
    assert decision.outcome is Outcome.HOLD and decision.reasons[0].startswith("Onfido gave no answer")
    with pytest.raises(OnfidoError):
        s.start()
    # a webhook whose check cannot be read back asks Onfido to deliver it again, and changes nothing
    s.state.fault = None
    s.state._finish(check_id)
    s.state.fault = fault
    body = (
        b'{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"' + check_id.encode() + b'"}}}'
    )
    assert s.state.deliver(body, sign(body, WEBHOOK_TOKEN)) == 503
    assert s.provider.store.get(check_id).status == "in_progress"  # type: ignore[union-attr]
    s.state.fault = None
    assert s.provider.status(check_id).outcome is Outcome.ALLOW


def test_refusals_by_onfido_are_errors_that_name_the_problem(setup: Setup) -> None:
    s = setup
    with pytest.raises(OnfidoError, match="first and a last name"):
        s.provider.start(OnboardingRequest(account=AccountId(s.account), country="GB", details={"full_name": "Ada"}))
    s.state.api_token = "another-token"
    with pytest.raises(OnfidoError, match="HTTP 401"):
        s.start()
    assert s.state.applicants == {}
    assert s.provider.status("not-a-check").outcome is Outcome.HOLD


def test_missing_tokens_stop_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONFIDO_API_TOKEN", raising=False)
    monkeypatch.setenv("ONFIDO_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    config = onfido_config(tmp_path, "http://127.0.0.1:9")
    with pytest.raises(OnfidoError, match="ONFIDO_API_TOKEN"):
        provider_for(config)
    monkeypatch.setenv("ONFIDO_API_TOKEN", API_TOKEN)
    monkeypatch.delenv("ONFIDO_WEBHOOK_TOKEN")
    with pytest.raises(OnfidoError, match="ONFIDO_WEBHOOK_TOKEN"):
        provider_for(config)


def test_a_sanctioned_applicant_cleared_by_onfido_is_frozen_not_verified(setup: Setup) -> None:
    s = setup
    details = {"full_name": "Daniel Moreno", "date_of_birth": "1972-10-12", "email": "dm@example.com"}
    check_id = s.provider.start(OnboardingRequest(account=AccountId(s.account), country="BZ", details=details))
    assert s.state.complete(check_id) == 200  # Onfido says clear: the documents are genuine
    assert s.provider.status(check_id).outcome is Outcome.ALLOW
    assert s.kyc() == (0, "pending")  # but the name is on the SDN list: no tier, the account is frozen
    gate = s.provider.gate
    assert gate is not None and gate.standing(s.account) is Standing.FROZEN
    (case,) = gate.cases.find(Subject.ONBOARDING, str(s.account))
    assert any("SDN entry 15102" in r for d in case.decisions for r in d.reasons)
    assert [r.trigger for r in gate.screenings(s.account)] == ["kyc_started", "kyc_verified"]
