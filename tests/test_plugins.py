from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

import exchange_framework.plugins as plugins_module
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.default_journal import FileJournalBackend
from exchange_framework.engine.events import OrderCancelled
from exchange_framework.interfaces import (
    AdminPage,
    ChainAdapter,
    CustodyBalance,
    CustodySigner,
    Decision,
    DepositRequest,
    Entry,
    EventSubscriber,
    KycProvider,
    LedgerBackend,
    LedgerStore,
    MarketDataPublisher,
    OnboardingRequest,
    Outcome,
    Posting,
    SanctionsScreener,
    SigningRequest,
    TravelRuleProvider,
    WithdrawalRequest,
)
from exchange_framework.plugins import (
    DEFAULT_PLUGINS,
    ExchangePluginManager,
    PluginError,
    collect_registered,
    make_plugin_manager,
    plugin_info,
    run_screening,
)
from exchange_framework.sequencer.journal import Journal
from exchange_framework.types import CancelReason
from tests.plugins import fake_broken

FAKE = "tests.plugins.fake_everything"
FAKE_FILE_JOURNAL = "tests.plugins.fake_file_journal"

ENTRY_POINT_PLUGIN = """
from exchange_framework import hookimpl

class Chain:
    name = "entrychain"
    required_confirmations = 6
    chain_id = "entry-1"
    native_asset = "ENT"
    def deposit_address(self, account): return None
    def validate_address(self, address): return True
    def tip_height(self): return 0
    def block_header(self, height): return None
    def scan(self, from_height, addresses, *, max_blocks=100): return []
    def build_withdrawal(self, **kwargs): raise ValueError("no")
    def decode(self, unsigned): raise ValueError("no")
    def assemble(self, unsigned, signatures): raise ValueError("no")
    def broadcast(self, signed_tx): return "txid"
    def transaction_status(self, txid): return None

@hookimpl
def register_chain_adapters():
    return [Chain()]
"""


@pytest.fixture
def config_with(write_config: Callable[..., Path]) -> Callable[[str], ExchangeConfig]:
    """Load the minimal config with a [plugins] table."""

    def make(plugins_table: str) -> ExchangeConfig:
        return load_config(write_config("[plugins]\n" + plugins_table))

    return make


@pytest.fixture
def fake_pm(config_with: Callable[[str], ExchangeConfig]) -> ExchangePluginManager:
    """A plugin manager with the defaults and the fake plugin that implements every hook."""
    return make_plugin_manager(config_with(f'modules = ["{FAKE}"]\n'))


def test_defaults_are_registered_as_builtin() -> None:
    pm = make_plugin_manager()
    infos = {info.name: info for info in plugin_info(pm)}
    assert set(DEFAULT_PLUGINS) <= set(infos)
    journal = infos["exchange_framework.default_journal"]
    assert journal.source == "builtin"
    assert journal.hooks == ("register_journal_backends",)
    assert journal.version


def test_every_manager_is_new_and_none_exists_at_import() -> None:
    assert make_plugin_manager() is not make_plugin_manager()
    assert not any(isinstance(value, ExchangePluginManager) for value in vars(plugins_module).values())


def test_config_module_plugin_loads(fake_pm: ExchangePluginManager) -> None:
    info = {i.name: i for i in plugin_info(fake_pm)}[FAKE]
    assert (info.source, info.version, info.status) == ("config", "0.0.1", "loaded")
    assert "register_chain_adapters" in info.hooks
    assert list(info.hooks) == sorted(info.hooks)


def test_entry_point_plugin_loads_with_its_distribution(fake_distribution: Callable[..., str]) -> None:
    fake_distribution("exchange-entrychain", "1.2.3", "entrychain", ENTRY_POINT_PLUGIN)
    pm = make_plugin_manager()
    info = {i.name: i for i in plugin_info(pm)}["entrychain"]
    assert info.source == "entrypoint: exchange-entrychain 1.2.3"
    assert info.version == "1.2.3"
    assert info.hooks == ("register_chain_adapters",)
    assert set(collect_registered(pm, "register_chain_adapters", config=None)) == {"entrychain"}


def test_enabled_is_an_allow_list_for_entry_points(
    fake_distribution: Callable[..., str], config_with: Callable[[str], ExchangeConfig]
) -> None:
    fake_distribution("exchange-entrychain", "1.2.3", "entrychain", ENTRY_POINT_PLUGIN)
    fake_distribution("exchange-other", "0.1", "other", "")
    pm = make_plugin_manager(config_with('enabled = ["entrychain"]\n'))
    assert pm.has_plugin("entrychain")
    assert not pm.has_plugin("other")
    skipped = {i.name: i.status for i in plugin_info(pm, include_skipped=True) if i.status != "loaded"}
    assert skipped == {"other": "not enabled"}
    assert pm.has_plugin("exchange_framework.default_journal")  # defaults are not subject to the allow-list


def test_disabled_removes_a_default(config_with: Callable[[str], ExchangeConfig]) -> None:
    pm = make_plugin_manager(config_with('disabled = ["exchange_framework.default_journal"]\n'))
    assert not pm.has_plugin("exchange_framework.default_journal")
    assert collect_registered(pm, "register_journal_backends", config=pm.config) == {}
    (info,) = [i for i in plugin_info(pm, include_skipped=True) if i.name == "exchange_framework.default_journal"]
    assert (info.source, info.status) == ("builtin", "disabled")


def test_disabled_blocks_an_entry_point(
    fake_distribution: Callable[..., str], config_with: Callable[[str], ExchangeConfig]
) -> None:
    fake_distribution("exchange-entrychain", "1.2.3", "entrychain", ENTRY_POINT_PLUGIN)
    pm = make_plugin_manager(config_with('disabled = ["entrychain"]\n'))
    assert not pm.has_plugin("entrychain")


def test_a_default_is_replaced_by_disabling_it(config_with: Callable[[str], ExchangeConfig]) -> None:
    config = config_with(f'modules = ["{FAKE_FILE_JOURNAL}"]\ndisabled = ["exchange_framework.default_journal"]\n')
    pm = make_plugin_manager(config)
    backend = collect_registered(pm, "register_journal_backends", config=config)["file"]
    assert backend.open(config) == "replacement journal"


def test_duplicate_names_are_a_start_up_error_naming_both_plugins(
    config_with: Callable[[str], ExchangeConfig],
) -> None:
    config = config_with(f'modules = ["{FAKE_FILE_JOURNAL}"]\n')
    pm = make_plugin_manager(config)
    with pytest.raises(PluginError) as info:
        collect_registered(pm, "register_journal_backends", config=config)
    message = str(info.value)
    assert "'file' is registered by both plugin" in message
    assert "'exchange_framework.default_journal'" in message
    assert f"'{FAKE_FILE_JOURNAL}'" in message
    assert "disabled = [" in message


def test_duplicate_entry_point_names_are_an_error(fake_distribution: Callable[..., str]) -> None:
    fake_distribution("exchange-one", "1.0", "same", "")
    fake_distribution("exchange-two", "1.0", "same", "")
    with pytest.raises(PluginError, match="two installed distributions provide a plugin named 'same'"):
        make_plugin_manager()


def test_an_entry_point_that_fails_to_import_is_an_error(fake_distribution: Callable[..., str]) -> None:
    fake_distribution("exchange-broken", "0.9", "broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"cannot load plugin 'broken'.*exchange-broken 0.9.*RuntimeError: boom"):
        make_plugin_manager()


@pytest.mark.parametrize("key", ["disabled", "enabled"])
def test_unknown_names_in_allow_and_block_lists_are_errors(
    config_with: Callable[[str], ExchangeConfig], key: str
) -> None:
    with pytest.raises(PluginError, match=rf"\[plugins\] {key} names 'default_jornal', which is not a known plugin"):
        make_plugin_manager(config_with(f'{key} = ["default_jornal"]\n'))


def test_a_config_module_that_does_not_import_is_an_error(config_with: Callable[[str], ExchangeConfig]) -> None:
    with pytest.raises(PluginError, match=r"cannot import plugin module 'tests.plugins.nope'.*ModuleNotFoundError"):
        make_plugin_manager(config_with('modules = ["tests.plugins.nope"]\n'))


def test_an_implementation_of_an_unknown_hook_is_an_error(config_with: Callable[[str], ExchangeConfig]) -> None:
    with pytest.raises(PluginError, match=r"tests.plugins.fake_unknown_hook.*register_spaceships"):
        make_plugin_manager(config_with('modules = ["tests.plugins.fake_unknown_hook"]\n'))


def test_an_implementation_with_an_unknown_argument_is_an_error() -> None:
    pm = make_plugin_manager()
    with pytest.raises(Exception, match="cofnig"):
        pm.register(fake_broken.WrongArgument(), name="wrong")


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (fake_broken.ReturnsNameless(), "which has no name"),
        (fake_broken.ReturnsWrongKind(), "'half', which does not implement JournalBackend (missing: open)"),
        (fake_broken.ReturnsNotAList(), "must return a list"),
    ],
)
def test_registered_items_are_validated(plugin: object, message: str) -> None:
    pm = make_plugin_manager()
    pm.register(plugin, name="broken")
    with pytest.raises(PluginError, match=r"plugin 'broken': register_journal_backends") as info:
        collect_registered(pm, "register_journal_backends", config=None)
    assert message in str(info.value)


def test_trace_env_var_prints_hook_calls(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EXCHANGE_TRACE_HOOKS", "1")
    pm = make_plugin_manager()
    pm.hook.register_journal_backends(config=None)
    err = capsys.readouterr().err
    assert "[exchange hook] register_journal_backends(config=None) -> exchange_framework.default_journal" in err
    assert "[exchange hook] register_journal_backends returned [[<exchange_framework.default_journal" in err


def test_no_tracing_without_the_env_var(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("EXCHANGE_TRACE_HOOKS", raising=False)
    make_plugin_manager().hook.register_journal_backends(config=None)
    assert capsys.readouterr().err == ""


def test_plugin_info_is_json_ready(fake_pm: ExchangePluginManager) -> None:
    data = json.loads(json.dumps([info.to_dict() for info in plugin_info(fake_pm)]))
    assert {entry["source"] for entry in data} == {"builtin", "config"}


# -- compliance decisions -----------------------------------------------------------------------------------------


def test_decisions_combine_to_the_strictest() -> None:
    combined = Decision.combine(
        [Decision.allow(provider="a"), Decision.hold("pep", provider="b"), None, Decision.hold("x", provider="c")]
    )
    assert combined == Decision(Outcome.HOLD, ("pep", "x"), "b,c")
    assert Decision.combine([Decision.hold("h"), Decision.reject("r")]).outcome is Outcome.REJECT
    assert Decision.combine([], required=True).outcome is Outcome.HOLD
    assert Decision.combine([None], required=False).outcome is Outcome.ALLOW


WITHDRAWAL = WithdrawalRequest(withdrawal_id=7, account=1001, asset="BTC", chain="bitcoin", amount=10, address="bc1")


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (fake_broken.FailingScreener(), "screen_withdrawal failed: TimeoutError: provider timed out"),
        (fake_broken.ScreenerReturningText(), "screen_withdrawal returned 'allow', which is not a Decision"),
    ],
)
def test_screening_fails_closed(fake_pm: ExchangePluginManager, plugin: object, reason: str) -> None:
    fake_pm.register(plugin, name="broken")
    decision = run_screening(fake_pm, "screen_withdrawal", config=fake_pm.config, request=WITHDRAWAL)
    assert decision == Decision.hold(reason)


def test_screening_without_any_opinion_holds() -> None:
    pm = make_plugin_manager()
    assert run_screening(pm, "screen_withdrawal", config=None, request=WITHDRAWAL).outcome is Outcome.HOLD
    decision = run_screening(pm, "screen_withdrawal", required=False, config=None, request=WITHDRAWAL)
    assert decision.outcome is Outcome.ALLOW


# -- every hook, exercised (tests/test_hookspecs.py checks that each hook has a test_hook_<name>) ------------------


def test_hook_startup(fake_pm: ExchangePluginManager) -> None:
    seen: list[str] = []

    class Late:
        @hookimpl
        def startup(self, config: ExchangeConfig) -> None:
            seen.append(config.brand.name)

    fake_pm.hook.startup.call_historic(kwargs={"config": fake_pm.config})
    fake_pm.register(Late())  # registered after start-up, still called: the hook is historic
    assert seen == ["Test Exchange"]


def test_hook_shutdown(fake_pm: ExchangePluginManager) -> None:
    assert fake_pm.hook.shutdown(config=fake_pm.config) == []


def test_hook_register_journal_backends(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    config = load_config(write_config('[journal]\npath = "var/commands.journal"\nfsync = false\n'))
    backends = collect_registered(make_plugin_manager(config), "register_journal_backends", config=config)
    backend = backends["file"]
    assert isinstance(backend, FileJournalBackend)
    journal = backend.open(config)
    try:
        assert isinstance(journal, Journal)
        assert journal.last_seq == 0
    finally:
        journal.close()
    assert (tmp_path / "var" / "commands.journal").exists()


def test_hook_register_ledger_stores(fake_pm: ExchangePluginManager) -> None:
    backend = collect_registered(fake_pm, "register_ledger_stores", config=fake_pm.config)["fake-ledger"]
    assert isinstance(backend, LedgerBackend)
    store = backend.open(fake_pm.config)
    assert isinstance(store, LedgerStore)
    entry = Entry(1, [Posting("customer:1:available", "BTC", 5), Posting("external", "BTC", -5)])

    async def scenario() -> tuple[int, int, int, dict[tuple[str, str], int]]:
        first = await store.apply([entry])
        again = await store.apply([entry])  # idempotent by sequence number
        return first, again, await store.last_seq(), await store.balances()

    first, again, mark, balances = asyncio.run(scenario())
    assert (first, again, mark) == (1, 1, 1)
    assert balances[("customer:1:available", "BTC")] == 5


def test_hook_register_event_subscribers(fake_pm: ExchangePluginManager) -> None:
    subscriber = collect_registered(fake_pm, "register_event_subscribers", config=fake_pm.config)["fake-subscriber"]
    assert isinstance(subscriber, EventSubscriber)
    event = OrderCancelled(
        seq=3, order_id=1, account=1, market="BTC-USDT", reason=CancelReason.USER, remaining_qty=1, released=10
    )
    subscriber.handle(event)
    subscriber.handle(event)
    assert subscriber.last_seq() == 3


def test_hook_register_market_data_publishers(fake_pm: ExchangePluginManager) -> None:
    items = collect_registered(fake_pm, "register_market_data_publishers", config=fake_pm.config)
    assert isinstance(items["fake-publisher"], MarketDataPublisher)


def test_hook_register_chain_adapters(fake_pm: ExchangePluginManager) -> None:
    chain = collect_registered(fake_pm, "register_chain_adapters", config=fake_pm.config)["fakechain"]
    assert isinstance(chain, ChainAdapter)
    assert chain.validate_address(chain.deposit_address(1001).address)


def test_hook_register_custody_signers(fake_pm: ExchangePluginManager) -> None:
    signer = collect_registered(fake_pm, "register_custody_signers", config=fake_pm.config)["fake-signer"]
    assert isinstance(signer, CustodySigner)
    assert signer.sign(SigningRequest("r1", "hot-1", "bitcoin", b"tx")) == b"signed:tx"


def test_hook_custody_balances(fake_pm: ExchangePluginManager) -> None:
    reports = fake_pm.hook.custody_balances(config=fake_pm.config, assets=["BTC", "USDT"])
    balances = [balance for report in reports for balance in report]
    assert balances == [CustodyBalance("fake", "BTC", "hot", 100), CustodyBalance("fake", "USDT", "hot", 100)]


def test_hook_register_kyc_providers(fake_pm: ExchangePluginManager) -> None:
    kyc = collect_registered(fake_pm, "register_kyc_providers", config=fake_pm.config)["fake-kyc"]
    assert isinstance(kyc, KycProvider)
    assert kyc.status(kyc.start(OnboardingRequest(account=5, country="DE"))).outcome is Outcome.ALLOW


def test_hook_register_sanctions_screeners(fake_pm: ExchangePluginManager) -> None:
    screener = collect_registered(fake_pm, "register_sanctions_screeners", config=fake_pm.config)["fake-sanctions"]
    assert isinstance(screener, SanctionsScreener)
    assert screener.screen_party("Bad Actor", "XX").outcome is Outcome.REJECT


def test_hook_register_travel_rule_providers(fake_pm: ExchangePluginManager) -> None:
    items = collect_registered(fake_pm, "register_travel_rule_providers", config=fake_pm.config)
    provider = items["fake-travel-rule"]
    assert isinstance(provider, TravelRuleProvider)
    assert provider.status(provider.send(WITHDRAWAL, {"name": "A"})).outcome is Outcome.HOLD


def test_hook_screen_onboarding(fake_pm: ExchangePluginManager) -> None:
    def decide(country: str) -> Outcome:
        request = OnboardingRequest(account=1, country=country)
        return run_screening(fake_pm, "screen_onboarding", config=fake_pm.config, request=request).outcome

    assert decide("DE") is Outcome.ALLOW
    assert decide("KP") is Outcome.REJECT


def test_hook_screen_deposit(fake_pm: ExchangePluginManager) -> None:
    def decide(amount: int) -> Decision:
        request = DepositRequest(1, "BTC", "bitcoin", amount, "bc1", "ab" * 32)
        return run_screening(fake_pm, "screen_deposit", config=fake_pm.config, request=request)

    assert decide(2_000_000) == Decision.hold("large deposit", provider="fake")
    # the fake has no opinion on small deposits, and nobody else screens: fail closed
    assert decide(10).outcome is Outcome.HOLD


def test_hook_screen_withdrawal(fake_pm: ExchangePluginManager) -> None:
    decision = run_screening(fake_pm, "screen_withdrawal", config=fake_pm.config, request=WITHDRAWAL)
    assert decision == Decision.allow(provider="fake")


def test_hook_register_routes(fake_pm: ExchangePluginManager) -> None:
    assert fake_pm.hook.register_routes(config=fake_pm.config) == [[("/fake", "fake-endpoint")]]


def test_hook_register_admin_pages(fake_pm: ExchangePluginManager) -> None:
    pages = collect_registered(fake_pm, "register_admin_pages", config=fake_pm.config)
    assert pages == {"fake-page": AdminPage("fake-page", "Fake page", "/admin/fake")}


def test_hook_register_template_dirs(fake_pm: ExchangePluginManager) -> None:
    (dirs,) = fake_pm.hook.register_template_dirs(config=fake_pm.config)
    assert dirs == [Path(__file__).parent / "plugins" / "templates"]


def test_hook_prepare_jinja2_environment(fake_pm: ExchangePluginManager) -> None:
    class Environment:  # stands in for jinja2.Environment, which the kernel does not require
        filters: dict[str, Callable[[str], str]] = {}

    env = Environment()
    fake_pm.hook.prepare_jinja2_environment(env=env, config=fake_pm.config)
    assert env.filters["shout"]("hi") == "HI"


def test_hook_extra_template_vars(fake_pm: ExchangePluginManager) -> None:
    results = fake_pm.hook.extra_template_vars(template="index.html", request=None, config=fake_pm.config)
    assert results == [{"fake_template": "index.html"}]


def test_hook_asgi_wrapper(fake_pm: ExchangePluginManager) -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)

    for wrap in fake_pm.hook.asgi_wrapper(config=fake_pm.config):
        app = wrap(app)
    asyncio.run(app({"type": "http"}, None, None))
    assert scopes == [{"type": "http", "fake": True}]


def test_hook_register_commands_collects_click_commands(fake_pm: ExchangePluginManager) -> None:
    group = click.Group()
    fake_pm.hook.register_commands(cli=group)
    assert {"hello", "plugins"} <= set(group.commands)
