"""The Jumio plugin against a local server implementing the KYX platform API (tests/compliance/kyc/jumio_server.py):
the OAuth2 token, account + workflow execution, status and decision, and fail-closed answers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from exchange_jumio.client import JumioError
from exchange_jumio.plugin import JumioKycProvider, provider_for

from exchange_framework.compliance.kyc import kyc_provider
from exchange_framework.config import ExchangeConfig, parse_config
from exchange_framework.interfaces import Decision, OnboardingRequest, Outcome
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.types import AccountId
from tests.compliance.httpserver import serve
from tests.compliance.kyc.jumio_server import JumioState, handler_for
from tests.conftest import MINIMAL_CONFIG

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"


def jumio_config(base_url: str) -> ExchangeConfig:
    return parse_config(
        MINIMAL_CONFIG + f'[plugins.settings.jumio]\nauth_url = "{base_url}"\naccount_url = "{base_url}"\n'
        f'retrieval_url = "{base_url}"\ntimeout_seconds = 2\ncallback_url = "https://exchange.example/hooks/jumio"\n\n'
        '[compliance.kyc]\nprovider = "jumio"\n'
    )


@dataclass
class Setup:
    state: JumioState
    provider: JumioKycProvider

    def start(self, account: int = 1001) -> str:
        return self.provider.start(OnboardingRequest(account=AccountId(account), country="US"))


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch, installed_entry_points: None) -> Iterator[Setup]:
    monkeypatch.setenv("JUMIO_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("JUMIO_CLIENT_SECRET", CLIENT_SECRET)
    state = JumioState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with serve(handler_for(state)) as base_url:
        config = jumio_config(base_url)
        provider = kyc_provider(make_plugin_manager(config), config)
        assert isinstance(provider, JumioKycProvider)
        yield Setup(state, provider)


def test_token_account_and_status_through_to_passed(setup: Setup) -> None:
    s = setup
    reference = s.start(1001)
    account_id, execution_id = reference.split(":")
    created = s.state.accounts[account_id]["request"]
    assert created["userReference"] == "1001" and created["workflowDefinition"] == {"key": 10013}
    assert created["callbackUrl"] == "https://exchange.example/hooks/jumio"
    assert created["customerInternalReference"].startswith("kyc-1001-")
    assert s.state.executions[execution_id]["account"] == account_id
    assert s.provider.status(reference) == Decision.hold(
        f"Jumio workflow execution {reference} is ACQUIRED", provider="jumio"
    )
    assert s.provider.status(reference) == Decision.allow(
        f"Jumio workflow execution {reference} passed", provider="jumio"
    )
    assert s.state.token_requests == 1  # one token, reused


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
        provider_for(jumio_config("http://127.0.0.1:9"))
