"""A real exchange node's events, through ``add_listener``, raise a rapid-movement alert; a restart replays it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from exchange_framework.compliance import CaseStore
from exchange_framework.compliance.monitoring import Monitor, MovementKind, Rule
from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.commands import CreditFunds, DebitHeldFunds, HoldFunds, PlaceOrder
from exchange_framework.node import ExchangeNode, with_data_dir
from exchange_framework.types import OrderType, Side

pytestmark = pytest.mark.anyio

BUYER, SELLER = 7, 8


async def test_a_live_node_feeds_the_monitor_and_a_restart_replays_the_same_alerts(
    demo_config: ExchangeConfig, tmp_path: Path
) -> None:
    config = with_data_dir(demo_config, tmp_path / "data")
    cases = CaseStore.for_config(config)
    monitor = Monitor.for_config(config, cases=cases)
    node = ExchangeNode(config, settle_every=0)
    node.add_listener(monitor.on_batch)
    await node.start()
    try:
        deposit = await node.submit(CreditFunds(BUYER, "USDT", 50_000_000_000, "dep:devchain-1:ab12:0"))
        await node.submit(CreditFunds(SELLER, "BTC", 10_000_000, "dep:devchain-1:cd34:0"))
        await node.submit(PlaceOrder(SELLER, "BTC-USDT", Side.SELL, OrderType.LIMIT, qty=100, price=300_000))
        trade = await node.submit(PlaceOrder(BUYER, "BTC-USDT", Side.BUY, OrderType.LIMIT, qty=100, price=300_000))
        await node.submit(HoldFunds(BUYER, "BTC", 90_000, "wd:1"))
        withdrawal = await node.submit(DebitHeldFunds("wd:1"))
    finally:
        await node.close()
    alerts = [a for a in monitor.alerts if a.rule is Rule.RAPID_MOVEMENT]
    assert len(alerts) == 1 and alerts[0].account == BUYER
    evidence = alerts[0].evidence
    assert [m.seq for m in evidence] == [deposit.seq, trade.seq, withdrawal.seq]
    assert [m.kind for m in evidence] == [MovementKind.DEPOSIT, MovementKind.TRADE, MovementKind.WITHDRAWAL]
    assert [m.ts_ns for m in evidence] == [deposit.ts_ns, trade.ts_ns, withdrawal.ts_ns]  # the journal's times
    assert evidence[1].received_asset == "BTC" and evidence[1].counterparty == SELLER
    assert evidence[2].amount == 90_000 and evidence[2].reference == "wd:1"
    (case,) = cases.list_cases()
    assert case.reference == f"monitoring:{BUYER}" and case.details["alert"] == alerts[0].id

    replayed = Monitor.for_config(config)
    again = ExchangeNode(config, settle_every=0)
    again.add_listener(replayed.on_batch)  # before start: it sees the journal's history
    await again.start()
    await again.close()
    assert msgspec.json.encode(replayed.alerts) == msgspec.json.encode(monitor.alerts)
