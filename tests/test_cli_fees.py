"""``exchange fees plan``: tier changes from the journal's 30-day volume, dry run and --apply."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework.cli import main
from exchange_framework.config import load_config
from exchange_framework.engine.commands import CreditFunds, PlaceOrder
from exchange_framework.sequencer import FileJournal
from exchange_framework.shard import Shard
from exchange_framework.types import OrderType, Side

FEES = """
[fees]
maker = "0.001"
taker = "0.002"
volume_asset = "USDT"

[[fees.tiers]]
min_volume_30d = "10"
maker = "0.0005"
taker = "0.001"

[fees.overrides."7"]
maker = "0"
taker = "0"

[journal]
path = "journal/commands.journal"
"""


@pytest.fixture
def config_path(write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_config(FEES)
    monkeypatch.delenv("EXCHANGE_CONFIG", raising=False)
    config = load_config(path)
    market = next(iter(config.markets))
    with Shard(config) as shard:  # accounts 1 and 2 trade 20 USDT: both reach the tier
        shard.execute(
            [
                CreditFunds(1, "USDT", 10**12),
                CreditFunds(2, "BTC", 10**12),
                CreditFunds(3, "USDT", 10),
                PlaceOrder(
                    2, market, Side.SELL, OrderType.LIMIT, qty=2, price=10_000_000
                ),  # 0.0002 BTC at 100,000 USDT
                PlaceOrder(1, market, Side.BUY, OrderType.LIMIT, qty=2, price=10_000_000),
            ]
        )
    return path


def run(config_path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config_path), "fees", "plan", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_plan_shows_tier_and_override_changes_and_apply_journals_them(config_path: Path) -> None:
    dry = run(config_path)
    lines = [line.split() for line in dry.splitlines() if line and line[0].isdigit()]
    assert lines == [
        ["1", "20", "maker", "0.0005,", "taker", "0.001"],
        ["2", "20", "maker", "0.0005,", "taker", "0.001"],
        ["7", "0", "maker", "0,", "taker", "0"],
    ]
    assert "dry run" in dry
    journal = config_path.parent / "journal" / "commands.journal"
    with FileJournal(journal, read_only=True) as before:
        assert before.last_seq == 5  # a dry run writes nothing
    applied = run(config_path, "--apply")
    assert "journalled 3 SetAccountFees commands (seq 6..8)" in applied
    assert "already has the rates" in run(config_path)
    config = load_config(config_path)
    with Shard(config) as shard:  # the rates are part of the state every replay rebuilds
        accounts = shard.engine.accounts
        assert (accounts[1].maker_ppm, accounts[1].taker_ppm) == (500, 1_000)
        assert (accounts[7].maker_ppm, accounts[7].taker_ppm) == (0, 0)
        assert accounts[3].maker_ppm is None
