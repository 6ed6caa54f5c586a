"""The screener, exercised through the kernel's hook calls: registration, party and address screening."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.interfaces import DepositRequest, Outcome, SanctionsScreener, WithdrawalRequest
from exchange_framework.plugins import ExchangePluginManager, collect_registered, make_plugin_manager, run_screening
from exchange_framework.types import AccountId

from {{ cookiecutter.__package }}.plugin import PLUGIN_NAME

LISTED_ADDRESS = "0x000000000000000000000000000000000000dEaD"
CLEAN_ADDRESS = "0x1111111111111111111111111111111111111111"


def registered(pm: ExchangePluginManager, config: ExchangeConfig) -> SanctionsScreener:
    screeners = collect_registered(pm, "register_sanctions_screeners", config=config)
    screener = screeners[PLUGIN_NAME]
    assert isinstance(screener, SanctionsScreener)
    return screener


def withdrawal(address: str) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=1, account=AccountId(7), asset="ETH", chain="ethereum", amount=10**18, address=address
    )


def deposit(*sources: str) -> DepositRequest:
    return DepositRequest(
        account=AccountId(7),
        asset="ETH",
        chain="ethereum",
        amount=10**18,
        address=CLEAN_ADDRESS,
        txid="0xabc",
        source_addresses=sources,
    )


def test_registers_a_screener_under_the_plugin_name(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    assert registered(pm, config).name == PLUGIN_NAME


@pytest.mark.parametrize("name", ["Bad Actor Trading Ltd", "bad actor trading, ltd.", "  BAD ACTOR TRADING LTD "])
def test_listed_party_is_rejected_however_written(pm: ExchangePluginManager, config: ExchangeConfig, name: str) -> None:
    decision = registered(pm, config).screen_party(name, "GB")
    assert decision.outcome is Outcome.REJECT
    assert decision.provider == PLUGIN_NAME


def test_accented_listed_name_matches(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(settings='names = ["Zoë Sanctioned"]'))
    screener = registered(make_plugin_manager(config), config)
    assert screener.screen_party("ZOE SANCTIONED", "FR").outcome is Outcome.REJECT


def test_party_from_listed_country_is_rejected(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    assert registered(pm, config).screen_party("Anyone", "kp").outcome is Outcome.REJECT


def test_unlisted_party_is_allowed(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    assert registered(pm, config).screen_party("Alice Example", "GB").outcome is Outcome.ALLOW


def test_listed_address_is_rejected_in_any_letter_case(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    screener = registered(pm, config)
    assert screener.screen_address("ethereum", LISTED_ADDRESS.lower()).outcome is Outcome.REJECT
    assert screener.screen_address("ethereum", CLEAN_ADDRESS).outcome is Outcome.ALLOW
    assert screener.screen_address("bitcoin", LISTED_ADDRESS).outcome is Outcome.ALLOW  # listed for ethereum only


def test_withdrawal_to_listed_address_is_rejected(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    decision = run_screening(pm, "screen_withdrawal", config=config, request=withdrawal(LISTED_ADDRESS))
    assert decision.outcome is Outcome.REJECT
    assert PLUGIN_NAME in decision.provider


def test_withdrawal_to_clean_address_is_allowed(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    decision = run_screening(pm, "screen_withdrawal", config=config, request=withdrawal(CLEAN_ADDRESS))
    assert decision.outcome is Outcome.ALLOW


def test_deposit_from_listed_address_is_rejected(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    decision = run_screening(pm, "screen_deposit", config=config, request=deposit(CLEAN_ADDRESS, LISTED_ADDRESS))
    assert decision.outcome is Outcome.REJECT
    clean = run_screening(pm, "screen_deposit", config=config, request=deposit(CLEAN_ADDRESS))
    assert clean.outcome is Outcome.ALLOW


def test_deposit_without_a_payer_address_is_held(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    # The plugin has no opinion, so the kernel fails closed.
    assert run_screening(pm, "screen_deposit", config=config, request=deposit()).outcome is Outcome.HOLD


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ('addresses = ["no-chain-prefix"]', "is not written '<chain>:<address>'"),
        ('countries = ["North Korea"]', "is not a two-letter ISO 3166-1 code"),
        ('names = "Bad Actor"', "names must be a list of strings"),
        ('name = ["Bad Actor"]', "unknown key 'name'"),
    ],
)
def test_bad_settings_stop_the_start(write_config: Callable[..., Path], settings: str, message: str) -> None:
    config = load_config(write_config(settings=settings))
    pm = make_plugin_manager(config)
    with pytest.raises(ValueError, match=message):
        pm.hook.startup.call_historic(kwargs={"config": config})
