"""The Jumio plugin against a local server implementing the KYX platform API (tests/compliance/kyc/jumio_server.py):
the OAuth2 token, account + workflow execution, status and decision, and fail-closed answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from exchange_jumio.client import JumioError
from exchange_jumio.plugin import JumioKycProvider, provider_for
from starlette.applications import Starlette

from exchange_framework.compliance.kyc import kyc_provider
from exchange_framework.compliance.onboarding import Standing
from exchange_framework.config import ExchangeConfig, parse_config
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Decision, OnboardingRequest, Outcome
from exchange_framework.node import with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.types import AccountId
from tests.api.server import serve as serve_app
from tests.compliance.httpserver import serve
from tests.compliance.kyc.jumio_server import JumioState, handler_for, post
from tests.conftest import MINIMAL_CONFIG

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"


def jumio_config(base_url: str, data_dir: Path) -> ExchangeConfig:
    return with_data_dir(
        parse_config(
            MINIMAL_CONFIG + f'[plugins.settings.jumio]\nauth_url = "{base_url}"\naccount_url = "{base_url}"\n'
            f'retrieval_url = "{base_url}"\ntimeout_seconds = 2\ncallback_url = "https://exchange.example/hooks/jumio"\n\n'
            '[compliance.kyc]\nprovider = "jumio"\n\n'
            '[compliance.ofac]\nsource = "builtin"\n'  # applicants are sanctions-screened before a tier is raised
        ),
        data_dir,
    )


@dataclass
class Setup:
    state: JumioState
    provider: JumioKycProvider
    identity: IdentityStore
    account: int
    callback_url: str

    def start(self, account: int | None = None) -> str:
        details = {"full_name": "Grace Brewster Hopper", "date_of_birth": "1986-12-09"}
        return self.provider.start(
            OnboardingRequest(account=AccountId(account or self.account), country="US", details=details)
        )

    def kyc(self) -> tuple[int, str]:
        user = self.identity.user(self.account)
        assert user is not None
        return user.kyc_tier, user.kyc_status


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed_entry_points: None) -> Iterator[Setup]:
    monkeypatch.setenv("JUMIO_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("JUMIO_CLIENT_SECRET", CLIENT_SECRET)
    state = JumioState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with serve(handler_for(state)) as base_url:
        config = jumio_config(base_url, tmp_path / "data")
        pm = make_plugin_manager(config)
        provider = kyc_provider(pm, config)
        assert isinstance(provider, JumioKycProvider)
        routes = [route for routes in pm.hook.register_routes(config=config) or [] for route in routes or []]
        identity = IdentityStore(f"sqlite:///{tmp_path / 'data' / 'identity.db'}")
        identity.create_schema()
        account = identity.create_user("ada@example.com", "a long enough password").id
        with serve_app(Starlette(routes=routes)) as app:  # type: ignore[arg-type]  # any ASGI app runs here
            yield Setup(state, provider, identity, account, app.url + "/hooks/jumio")
        identity.close()


def test_token_account_and_status_through_to_passed(setup: Setup) -> None:
    s = setup
    reference = s.start()
    account_id, execution_id = reference.split(":")
    created = s.state.accounts[account_id]["request"]
    assert created["userReference"] == str(s.account) and created["workflowDefinition"] == {"key": 10013}
    assert created["callbackUrl"] == "https://exchange.example/hooks/jumio"
    assert created["customerInternalReference"].startswith(f"kyc-{s.account}-")
    assert s.state.executions[execution_id]["account"] == account_id
    assert s.provider.status(reference) == Decision.hold(
        f"Jumio workflow execution {reference} is ACQUIRED", provider="jumio"
    )
    assert s.provider.status(reference) == Decision.allow(
        f"Jumio workflow execution {reference} passed", provider="jumio"
    )
    assert s.state.token_requests == 1  # one token, reused
    assert s.kyc() == (1, "approved")


@pytest.mark.parametrize(
    ("decision_type", "outcome"),
    [("REJECTED", Outcome.REJECT), ("WARNING", Outcome.HOLD), ("NOT_EXECUTED", Outcome.HOLD), ("ODD", Outcome.HOLD)],
)
def test_jumio_decisions_map_to_outcomes(setup: Setup, decision_type: str, outcome: Outcome) -> None:
    s = setup
    s.state.decision_type = decision_type
    s.state.reads_to_process = 1
    assert s.provider.status(s.start()).outcome is outcome


def test_an_expired_token_is_replaced(setup: Setup) -> None:
    s = setup
    s.provider.client._expires = 0.0  # the client's own clock says so, and the server's too
    s.state.expire_tokens()
    reference = s.start()
    assert s.state.token_requests == 1
    s.provider.client._expires = 0.0
    s.state.expire_tokens()
    assert s.provider.status(reference).outcome is Outcome.HOLD
    assert s.state.token_requests == 2


@pytest.mark.parametrize("fault", ["500", "garbage"])
def test_any_failure_holds(setup: Setup, fault: str) -> None:
    s = setup
    reference = s.start()
    s.state.fault = fault
    decision = s.provider.status(reference)
    assert decision.outcome is Outcome.HOLD and decision.reasons[0].startswith("Jumio gave no answer")
    with pytest.raises(JumioError):
        s.start()
    assert s.provider.status("not-a-reference").outcome is Outcome.HOLD


def test_wrong_credentials_and_missing_ones(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    s = setup
    s.state.client_secret = "rotated"
    s.provider.client._expires = 0.0
    with pytest.raises(JumioError, match="HTTP 401"):
        s.start()
    assert s.state.accounts == {}
    monkeypatch.delenv("JUMIO_CLIENT_SECRET")
    with pytest.raises(JumioError, match="JUMIO_CLIENT_SECRET"):
        provider_for(jumio_config("http://127.0.0.1:9", Path("unused")))


def test_a_callback_brings_the_decision_in_from_the_api(setup: Setup) -> None:
    s = setup
    reference = s.start()
    _account_id, execution_id = reference.split(":")
    s.state.process(execution_id)
    assert s.state.callback(s.callback_url, execution_id) == 200
    assert s.kyc() == (1, "approved")
    statuses = s.state.executions[execution_id]["reads"]
    assert s.provider.status(reference).outcome is Outcome.ALLOW
    assert s.state.executions[execution_id]["reads"] == statuses  # answered from the record


def test_forged_or_bad_callbacks_change_nothing(setup: Setup) -> None:
    s = setup
    s.state.decision_type = "PASSED"
    reference = s.start()
    _account_id, execution_id = reference.split(":")
    record = s.provider.store.get(reference)
    # a callback claiming PROCESSED while Jumio's API says otherwise: only what the API says is recorded
    assert s.state.callback(s.callback_url, execution_id) == 200
    after = s.provider.store.get(reference)
    assert after is not None and after.status != "PROCESSED" and s.kyc()[0] == 0
    assert post(s.callback_url, b'{"account": "x"}') == 400
    unknown = b'{"account": {"id": "a"}, "workflowExecution": {"id": "w"}}'
    assert post(s.callback_url, unknown) == 200
    s.state.process(execution_id)
    s.state.fault = "500"
    before = s.provider.store.get(reference)
    assert s.state.callback(s.callback_url, execution_id) == 503  # Jumio will call again
    assert s.provider.store.get(reference) == before and s.kyc()[0] == 0
    assert record is not None and record.status == "INITIATED"


def test_without_any_identity_data_a_processed_execution_holds(setup: Setup) -> None:
    s = setup
    reference = s.provider.start(OnboardingRequest(account=AccountId(s.account), country="US"))  # no name given
    s.state.process(reference.split(":")[1])
    assert s.provider.status(reference).outcome is Outcome.ALLOW  # Jumio passed the documents
    assert s.kyc() == (0, "pending")  # the exchange has no name to screen: held, not verified
    gate = s.provider.gate
    assert gate is not None and gate.standing(s.account) is Standing.HELD
