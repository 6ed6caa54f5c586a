"""The Elliptic plugin: the documented request-signing example, and the plugin against a local server of the
AML API v2 that verifies every signature."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange_framework.compliance import CaseStore, Subject
from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.interfaces import Decision, DepositRequest, Outcome, WithdrawalRequest
from exchange_framework.plugins import make_plugin_manager, run_screening
from tests.compliance.elliptic_server import API_KEY, API_SECRET, EllipticState, elliptic_server, expected_signature

pytest.importorskip("exchange_elliptic")
from exchange_elliptic.client import EllipticClient, EllipticError, Settings, sign

# Elliptic's authentication guide: an example secret, request time, payload and the signatures they give.
DOC_SECRET = "894f142d667e8cdaca6822ac173937af"
DOC_TIME = 1478692862000
DOC_PAYLOAD = (
    '[{"customer_reference":"123456","subject":{"asset":"BTC","hash":'
    '"accf5c09cc027339a3beb2e28104ce9f406ecbbd29775b4a1a17ba213f1e035e","output_address":'
    '"15Hm2UEPaEuiAmgyNgd5mF3wugqLsYs3Wn","output_type":"address","type":"transaction"},"type":"source_of_funds"}]'
)
DOC_POST_SIGNATURE = "65mQHB2o95lL3I+N/bZYwDC9p2YvNwsVDnXr8u72hUk="
DOC_GET_SIGNATURE = "cN9fRUqeT7UnwwpkBZaNmnwxKAPHkhytdXelfUVvxMI="

OURS = "bc1qours0000000000000000000000000000000000"
CLEAN = "bc1qclean000000000000000000000000000000000"
MIXER = "bc1qmixer000000000000000000000000000000000"
LISTED = "bc1qlisted00000000000000000000000000000000"
CASINO = "bc1qcasino00000000000000000000000000000000"


def test_the_documented_signing_example() -> None:
    assert sign(DOC_SECRET, DOC_TIME, "POST", "/v2/analyses", DOC_PAYLOAD) == DOC_POST_SIGNATURE
    assert sign(DOC_SECRET, DOC_TIME, "GET", "/v2/customers", "{}") == DOC_GET_SIGNATURE
    assert sign(DOC_SECRET, str(DOC_TIME), "get", "/V2/Customers", "{}") == DOC_GET_SIGNATURE  # path lower-cased
    assert sign(DOC_SECRET, DOC_TIME, "POST", "/v2/analyses", DOC_PAYLOAD + " ") != DOC_POST_SIGNATURE
    # the local server's own check agrees with the documentation too
    assert expected_signature(DOC_SECRET, str(DOC_TIME), "POST", "/v2/analyses", DOC_PAYLOAD) == DOC_POST_SIGNATURE


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(EllipticError, match="not base64"):
        sign("not base64!", DOC_TIME, "GET", "/", "{}")


@pytest.fixture
def state() -> EllipticState:
    return EllipticState(
        entities={
            MIXER: ("A Mixer", "Mixer"),
            LISTED: ("A Listed Exchange", "Sanctions"),
            CASINO: ("A Casino", "Gambling"),
            CLEAN: ("A Big Exchange", "Exchange"),
        },
        transactions={"aa" * 32: [CLEAN], "bb" * 32: [MIXER], "cc" * 32: [LISTED]},
    )


@pytest.fixture
def url(state: EllipticState) -> Iterator[str]:
    with elliptic_server(state) as base:
        yield base


@pytest.fixture
def configure(
    write_config: Callable[..., Path], url: str, monkeypatch: pytest.MonkeyPatch, installed_entry_points: None
) -> Callable[..., ExchangeConfig]:
    monkeypatch.setenv("ELLIPTIC_API_KEY", API_KEY)
    monkeypatch.setenv("ELLIPTIC_API_SECRET", API_SECRET)

    def make(extra: str = "") -> ExchangeConfig:
        return load_config(
            write_config(
                f"""
                [plugins.settings.elliptic]
                base_url = "{url}"
                timeout_seconds = 0.5
                {extra}
                """
            )
        )

    return make


def screen(config: ExchangeConfig, hook: str, request: object) -> Decision:
    return run_screening(make_plugin_manager(config), hook, config=config, request=request)


def withdrawal(address: str) -> WithdrawalRequest:
    return WithdrawalRequest(31, 1001, "BTC", "bitcoin", 10**8, address)


def deposit(txid: str) -> DepositRequest:
    return DepositRequest(1001, "BTC", "bitcoin", 10**8, OURS, txid, ())


def test_withdrawal_destinations_are_screened_with_signed_wallet_requests(
    configure: Callable[..., ExchangeConfig], state: EllipticState
) -> None:
    config = configure()
    assert screen(config, "screen_withdrawal", withdrawal(CLEAN)).outcome is Outcome.ALLOW
    (request,) = state.requests
    assert request["path"] == "/v2/wallet/synchronous" and request["key"] == API_KEY
    assert '"hash":"' + CLEAN + '"' in request["body"] and '"type":"wallet_exposure"' in request["body"]
    assert '"customer_reference":"1001"' in request["body"]
    assert screen(config, "screen_withdrawal", withdrawal(CASINO)).outcome is Outcome.ALLOW  # 2.5 < 5
    held = screen(config, "screen_withdrawal", withdrawal(MIXER))
    assert held.outcome is Outcome.HOLD and held.reasons[0].startswith("Elliptic risk score 7.2 (hold at 5.0")
    assert "Elliptic rule Exposure scored 7.2: Mixer" in held.reasons
    (case,) = CaseStore.for_config(config).open_cases()
    assert case.subject is Subject.WITHDRAWAL and not case.frozen and case.decisions[0].provider == "elliptic"


def test_thresholds_are_tunable(configure: Callable[..., ExchangeConfig]) -> None:
    strict = configure("hold_score = 2.0\nreject_withdrawal_score = 7.0")
    assert screen(strict, "screen_withdrawal", withdrawal(CASINO)).outcome is Outcome.HOLD
    assert screen(strict, "screen_withdrawal", withdrawal(MIXER)).outcome is Outcome.REJECT
    unknown = "bc1qnever0000000000000000000000000000000000"
    assert screen(configure(), "screen_withdrawal", withdrawal(unknown)).outcome is Outcome.ALLOW
    assert screen(configure('unscored = "hold"'), "screen_withdrawal", withdrawal(unknown)).outcome is Outcome.HOLD


def test_a_sanctioned_destination_is_frozen_never_rejected(configure: Callable[..., ExchangeConfig]) -> None:
    config = configure("reject_withdrawal_score = 5.0")
    decision = screen(config, "screen_withdrawal", withdrawal(LISTED))
    assert decision.outcome is Outcome.HOLD and decision.reasons[0] == FROZEN_REASON
    assert "address belongs to A Listed Exchange" in decision.reasons[1]
    (case,) = CaseStore.for_config(config).open_cases()
    assert case.frozen


def test_deposits_are_screened_for_their_source_of_funds(
    configure: Callable[..., ExchangeConfig], state: EllipticState
) -> None:
    config = configure()
    assert screen(config, "screen_deposit", deposit("aa" * 32)).outcome is Outcome.ALLOW
    body = state.requests[-1]["body"]
    assert state.requests[-1]["path"] == "/v2/analyses/synchronous"
    for part in ('"type":"source_of_funds"', '"output_address":"' + OURS + '"', '"blockchain":"bitcoin"'):
        assert part in body
    assert screen(config, "screen_deposit", deposit("bb" * 32)).outcome is Outcome.HOLD
    frozen = screen(config, "screen_deposit", deposit("cc" * 32))
    assert frozen.outcome is Outcome.HOLD and frozen.reasons[0] == FROZEN_REASON
    devchain = DepositRequest(1001, "ETH", "devchain", 1, "dev1ours", "aa" * 32, ())
    assert "no Elliptic blockchain" in screen(config, "screen_deposit", devchain).reasons[0]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("500", "HTTP 500"),
        ("garbage", "unexpected answer"),
        ("shape", "unexpected answer"),
        ("slow", "timed out"),
        ("incomplete", "is incomplete"),
    ],
)
def test_server_faults_hold_and_open_a_case(
    configure: Callable[..., ExchangeConfig], state: EllipticState, fault: str, message: str
) -> None:
    state.fault = fault
    config = configure()
    decision = screen(config, "screen_withdrawal", withdrawal(CLEAN))
    assert decision.outcome is Outcome.HOLD and message in decision.reasons[0]
    assert decision.reasons[0].startswith("Elliptic gave no answer:")
    (case,) = CaseStore.for_config(config).open_cases()
    assert message in case.decisions[0].reasons[0]


def test_the_server_refuses_bad_signatures_and_stale_timestamps(
    configure: Callable[..., ExchangeConfig], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_secret = "c29tZSBvdGhlciBzZWNyZXQ="  # valid base64, not the key's secret
    monkeypatch.setenv("ELLIPTIC_API_SECRET", other_secret)
    decision = screen(configure(), "screen_withdrawal", withdrawal(CLEAN))
    assert "HTTP 401" in decision.reasons[0] and "x-access-sign does not match" in decision.reasons[0]
    stale = EllipticClient(Settings(base_url=url), api_key=API_KEY, api_secret=API_SECRET, clock_ms=lambda: DOC_TIME)
    with pytest.raises(EllipticError, match=r"HTTP 401.*timestamp"):
        stale.screen_wallet(CLEAN, "1")
    stale.close()
    monkeypatch.setenv("ELLIPTIC_API_SECRET", "not base64!")
    assert "not base64" in screen(configure(), "screen_withdrawal", withdrawal(CLEAN)).reasons[0]
    monkeypatch.delenv("ELLIPTIC_API_KEY")
    assert "ELLIPTIC_API_KEY" in screen(configure(), "screen_withdrawal", withdrawal(CLEAN)).reasons[0]


def test_bad_settings_hold(configure: Callable[..., ExchangeConfig]) -> None:
    assert "0 to 10" in screen(configure("hold_score = 11.0"), "screen_withdrawal", withdrawal(CLEAN)).reasons[0]
    assert "unscored" in screen(configure('unscored = "maybe"'), "screen_withdrawal", withdrawal(CLEAN)).reasons[0]
