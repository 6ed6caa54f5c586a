"""The Chainalysis plugin against a local server of the documented KYT v2 and Sanctions APIs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange_framework.compliance import CaseStore, Subject
from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.interfaces import Decision, DepositRequest, Outcome, WithdrawalRequest
from exchange_framework.plugins import make_plugin_manager, run_screening
from tests.compliance.chainalysis_server import KytState, Risk, chainalysis_server

pytest.importorskip("exchange_chainalysis")

OURS = "0x1111111111111111111111111111111111111111"
CLEAN = "0x2222222222222222222222222222222222222222"
MIXER = "0x3333333333333333333333333333333333333333"
LISTED = "0x4444444444444444444444444444444444444444"
THIEF = "0x5555555555555555555555555555555555555555"
DUST = "0x6666666666666666666666666666666666666666"


@pytest.fixture
def state() -> KytState:
    return KytState(
        chain={"aa" * 32: [CLEAN], "bb" * 32: [MIXER], "cc" * 32: [LISTED], "dd" * 32: [DUST]},
        risky={
            MIXER: Risk("mixing", "HIGH", "Some Mixer"),
            THIEF: Risk("stolen funds", "SEVERE"),
            DUST: Risk("gambling", "LOW", "A Casino"),
            LISTED: Risk("sanctioned entity", "SEVERE", "A Listed Exchange"),
        },
        sanctioned={LISTED: "SANCTIONS: OFAC SDN A Listed Exchange"},
    )


@pytest.fixture
def url(state: KytState) -> Iterator[str]:
    with chainalysis_server(state) as base:
        yield base


@pytest.fixture
def configure(
    write_config: Callable[..., Path], url: str, monkeypatch: pytest.MonkeyPatch, installed_entry_points: None
) -> Callable[..., ExchangeConfig]:
    monkeypatch.setenv("CHAINALYSIS_API_KEY", "kyt-test-token")
    monkeypatch.setenv("CHAINALYSIS_SANCTIONS_API_KEY", "sanctions-test-key")

    def make(extra: str = "", *, base: str | None = None) -> ExchangeConfig:
        root = base or url
        return load_config(
            write_config(
                f"""
                [assets.ETH]
                decimals = 18

                [plugins.settings.chainalysis]
                kyt_url = "{root}/api/kyt"
                sanctions_url = "{root}/api/v1"
                timeout_seconds = 0.5
                poll_interval_seconds = 0.01
                poll_attempts = 5
                {extra}
                """
            )
        )

    return make


def deposit(txid: str, sources: tuple[str, ...]) -> DepositRequest:
    return DepositRequest(1001, "ETH", "ethereum", 2 * 10**18, OURS, txid, sources)


def screen(config: ExchangeConfig, hook: str, request: object) -> Decision:
    return run_screening(make_plugin_manager(config), hook, config=config, request=request)


def test_a_clean_deposit_is_registered_polled_and_allowed(
    configure: Callable[..., ExchangeConfig], state: KytState
) -> None:
    config = configure()
    decision = screen(config, "screen_deposit", deposit("aa" * 32, (CLEAN,)))
    assert decision.outcome is Outcome.ALLOW and decision.provider == "chainalysis"
    (transfer,) = state.transfers.values()
    assert transfer["transferReference"] == f"{'aa' * 32}:{OURS}" and transfer["network"] == "Ethereum"
    assert transfer["_user"] == "1001" and transfer["updatedAt"] is not None
    paths = [path for _, path in state.requests]
    assert paths[0] == f"/api/v1/address/{CLEAN}"
    assert paths[1] == "/api/kyt/v2/users/1001/transfers"
    assert paths[-1] == f"/api/kyt/v2/transfers/{transfer['externalId']}/alerts"
    assert paths.count(f"/api/kyt/v2/transfers/{transfer['externalId']}") == 2  # not processed, then processed
    assert CaseStore.for_config(config).list_cases() == []


def test_a_high_risk_deposit_is_held_with_a_case(configure: Callable[..., ExchangeConfig]) -> None:
    config = configure()
    decision = screen(config, "screen_deposit", deposit("bb" * 32, (MIXER,)))
    assert decision == Decision.hold("KYT HIGH alert: mixing exposure (DIRECT) to Some Mixer", provider="chainalysis")
    (case,) = CaseStore.for_config(config).open_cases()
    assert case.subject is Subject.DEPOSIT and not case.frozen and case.decisions[0].provider == "chainalysis"


def test_a_low_alert_below_the_hold_level_is_allowed(configure: Callable[..., ExchangeConfig]) -> None:
    assert screen(configure(), "screen_deposit", deposit("dd" * 32, (DUST,))).outcome is Outcome.ALLOW
    tuned = configure('hold_level = "LOW"')
    assert screen(tuned, "screen_deposit", deposit("dd" * 32, (DUST,))).outcome is Outcome.HOLD


def test_a_sanctioned_source_freezes_the_deposit(configure: Callable[..., ExchangeConfig]) -> None:
    config = configure()
    decision = screen(config, "screen_deposit", deposit("cc" * 32, (LISTED,)))
    assert decision.outcome is Outcome.HOLD and decision.reasons[0] == FROZEN_REASON
    assert any("SANCTIONS: OFAC SDN A Listed Exchange" in r for r in decision.reasons)
    assert any("sanctioned entity" in r for r in decision.reasons)  # KYT's sanctions alert too
    (case,) = CaseStore.for_config(config).open_cases()
    assert case.frozen


def test_withdrawal_attempts_hold_or_reject_at_the_configured_levels(
    configure: Callable[..., ExchangeConfig], state: KytState
) -> None:
    request = WithdrawalRequest(77, 1001, "ETH", "ethereum", 15 * 10**17, THIEF)
    held = screen(configure(), "screen_withdrawal", request)
    assert held.outcome is Outcome.HOLD and "KYT SEVERE alert: stolen funds exposure (DIRECT)" in held.reasons
    (attempt,) = state.attempts.values()
    assert attempt["assetAmount"] == 1.5 and attempt["attemptIdentifier"] == "withdrawal-77"
    assert attempt["address"] == THIEF and attempt["network"] == "Ethereum"
    rejected = screen(configure('reject_withdrawal_level = "SEVERE"'), "screen_withdrawal", request)
    assert rejected.outcome is Outcome.REJECT
    clean = WithdrawalRequest(78, 1001, "ETH", "ethereum", 10**18, CLEAN)
    assert screen(configure('reject_withdrawal_level = "SEVERE"'), "screen_withdrawal", clean).outcome is Outcome.ALLOW


def test_a_sanctioned_withdrawal_destination_is_frozen_not_rejected(configure: Callable[..., ExchangeConfig]) -> None:
    request = WithdrawalRequest(79, 1001, "ETH", "ethereum", 10**18, LISTED)
    decision = screen(configure('reject_withdrawal_level = "HIGH"'), "screen_withdrawal", request)
    assert decision.outcome is Outcome.HOLD and decision.reasons[0] == FROZEN_REASON


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("500", "HTTP 500"),
        ("garbage", "unexpected answer"),
        ("shape", "unexpected answer"),
        ("slow", "timed out"),
    ],
)
def test_server_faults_hold_and_open_a_case(
    configure: Callable[..., ExchangeConfig], state: KytState, fault: str, message: str
) -> None:
    state.fault = fault
    config = configure()
    decision = screen(config, "screen_withdrawal", WithdrawalRequest(80, 1001, "ETH", "ethereum", 1, CLEAN))
    assert decision.outcome is Outcome.HOLD and message in decision.reasons[0]
    assert decision.reasons[0].startswith("Chainalysis gave no answer:")
    (case,) = CaseStore.for_config(config).open_cases()
    assert case.subject is Subject.WITHDRAWAL and message in case.decisions[0].reasons[0]


def test_a_wrong_token_unreachable_server_or_endless_processing_holds(
    configure: Callable[..., ExchangeConfig], state: KytState, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = deposit("aa" * 32, (CLEAN,))
    monkeypatch.setenv("CHAINALYSIS_API_KEY", "wrong")
    assert "HTTP 403" in screen(configure(), "screen_deposit", request).reasons[0]
    monkeypatch.setenv("CHAINALYSIS_API_KEY", "kyt-test-token")
    unreachable = configure(base="http://127.0.0.1:9")  # the discard port: nothing listens there
    assert "failed: ConnectError" in screen(unreachable, "screen_deposit", request).reasons[0]
    state.polls_before_processed = 100
    assert "not processed after 5 polls" in screen(configure(), "screen_deposit", request).reasons[0]
    monkeypatch.delenv("CHAINALYSIS_SANCTIONS_API_KEY")
    assert "CHAINALYSIS_SANCTIONS_API_KEY" in screen(configure(), "screen_deposit", request).reasons[0]


def test_unmapped_chains_and_bad_settings_hold(configure: Callable[..., ExchangeConfig]) -> None:
    devchain = DepositRequest(1001, "ETH", "devchain", 1, "dev1ours", "aa" * 32, (CLEAN,))
    assert "no Chainalysis network" in screen(configure(), "screen_deposit", devchain).reasons[0]
    mapped = configure('networks = { devchain = "Ethereum" }')
    assert screen(mapped, "screen_deposit", devchain).outcome is Outcome.ALLOW
    bad = configure('hold_level = "EXTREME"')
    assert "use one of LOW, MEDIUM, HIGH, SEVERE" in screen(bad, "screen_deposit", devchain).reasons[0]


def test_without_its_settings_the_plugin_has_no_opinion(
    write_config: Callable[..., Path], state: KytState, installed_entry_points: None
) -> None:
    config = load_config(write_config())
    decision = screen(config, "screen_deposit", deposit("aa" * 32, (CLEAN,)))
    assert decision.reasons == ("no screening provider gave a decision",) and state.requests == []
