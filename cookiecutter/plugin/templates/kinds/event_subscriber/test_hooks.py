"""The event counter, registered through the kernel's hook and fed real events from the matching engine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.engine.commands import Command, CreditFunds, PlaceOrder
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event
from exchange_framework.interfaces import EventSubscriber
from exchange_framework.plugins import ExchangePluginManager, collect_registered, make_plugin_manager
from exchange_framework.types import OrderType, Side

from {{ cookiecutter.__package }}.plugin import PLUGIN_NAME, EventCounter


def engine_events(config: ExchangeConfig) -> list[Event]:
    """Run a few commands through the real matching engine: two deposits and two orders that trade."""
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    commands: list[Command] = [
        CreditFunds(account=1, asset="BTC", amount=10**8),
        CreditFunds(account=2, asset="USDT", amount=100_000 * 10**6),
        PlaceOrder(account=1, market="BTC-USDT", side=Side.SELL, type=OrderType.LIMIT, qty=10, price=5_000_000),
        PlaceOrder(account=2, market="BTC-USDT", side=Side.BUY, type=OrderType.LIMIT, qty=10, price=5_000_000),
    ]
    for seq, command in enumerate(commands, start=1):
        engine.apply(seq, command)
    assert engine.events, "the commands produced no events"
    return list(engine.events)


def registered(pm: ExchangePluginManager, config: ExchangeConfig) -> EventCounter:
    counter = collect_registered(pm, "register_event_subscribers", config=config)[PLUGIN_NAME]
    assert isinstance(counter, EventSubscriber)
    assert isinstance(counter, EventCounter)
    return counter


def test_counts_every_event_once(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    events = engine_events(config)
    counter = registered(pm, config)
    for event in events:
        counter.handle(event)
    counter.close()
    assert counter.counts() == Counter(type(event).__name__ for event in events)
    assert counter.counts()["Trade"] == 1
    assert counter.last_seq() == events[-1].seq


def test_a_command_with_several_events_is_committed_when_the_next_one_arrives(config: ExchangeConfig) -> None:
    events = engine_events(config)
    last = events[-1].seq
    assert sum(event.seq == last for event in events) > 1  # the trading order emits several events
    counter = EventCounter()
    for event in events:
        counter.handle(event)
    assert counter.last_seq() == last - 1
    assert "Trade" not in counter.counts()
    counter.close()
    assert counter.last_seq() == last
    assert counter.counts()["Trade"] == 1


def test_replayed_events_change_nothing(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    events = engine_events(config)
    counter = registered(pm, config)
    for event in events:
        counter.handle(event)
    counter.close()
    before = counter.counts()
    counter.closed = False  # the kernel delivers the journal again, from the start
    for event in events:
        counter.handle(event)
    assert counter.counts() == before


def test_a_new_counter_rebuilds_the_counts_from_a_replay(pm: ExchangePluginManager, config: ExchangeConfig) -> None:
    events = engine_events(config)
    first, second = registered(pm, config), registered(pm, config)
    for counter in (first, second):
        assert counter.last_seq() == 0
        for event in events:
            counter.handle(event)
        counter.close()
    assert first.counts() == second.counts()


def test_counts_only_the_configured_kinds(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config(settings='kinds = ["Trade", "FundsCredited"]'))
    counter = registered(make_plugin_manager(config), config)
    for event in engine_events(config):
        counter.handle(event)
    counter.close()
    assert counter.counts() == {"Trade": 1, "FundsCredited": 2}


def test_a_closed_counter_refuses_events(config: ExchangeConfig) -> None:
    counter = EventCounter()
    counter.close()
    with pytest.raises(RuntimeError, match="is closed"):
        counter.handle(engine_events(config)[0])


@pytest.mark.parametrize(
    ("settings", "message"),
    [('kinds = "Trade"', "kinds must be a list of event class names"), ("kind = []", "unknown key 'kind'")],
)
def test_bad_settings_stop_the_start(write_config: Callable[..., Path], settings: str, message: str) -> None:
    config = load_config(write_config(settings=settings))
    pm = make_plugin_manager(config)
    with pytest.raises(ValueError, match=message):
        pm.hook.startup.call_historic(kwargs={"config": config})
