"""Rebuilding market data from the command journal gives the state the live consumer had."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from exchange_framework.config import ExchangeConfig, load_config, parse_config
from exchange_framework.engine.commands import Command, CreditFunds, encode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.marketdata import MarketData, rebuild_from_journal
from exchange_framework.sequencer import FileJournal, JournalError, JournalRecord
from exchange_framework.types import Side
from tests.conftest import MINIMAL_CONFIG
from tests.marketdata.helpers import T0_NS, limit

CONFIG = MINIMAL_CONFIG + textwrap.dedent(
    """
    [assets.ETH]
    decimals = 18

    [markets."ETH-USDT"]
    base = "ETH"
    quote = "USDT"
    tick_size = "0.5"
    lot_size = "0.001"
    """
)


def commands() -> list[Command]:
    funding: list[Command] = [
        CreditFunds(account, asset, 10**24) for account in (1, 2) for asset in ("BTC", "ETH", "USDT")
    ]
    flow: list[Command] = []
    for i in range(300):
        market = "BTC-USDT" if i % 3 else "ETH-USDT"
        price = 100 + (i * 7) % 11
        flow.append(limit(1 + i % 2, market, Side.BUY if i % 4 < 2 else Side.SELL, price, 1 + i % 5))
    return funding + flow


def write_journal(path: Path, config: ExchangeConfig) -> MarketData:
    """Journal the commands (one second apart) and return the market data a live consumer built meanwhile."""
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    live = MarketData(config.engine_assets(), config.engine_markets())
    journal = FileJournal(path, fsync=False)
    try:
        for seq, command in enumerate(commands(), 1):
            ts_ns = T0_NS + seq * 1_000_000_000
            journal.append([JournalRecord(seq, ts_ns, encode_command(command))])
            engine.apply(seq, command)
            live.apply(ts_ns, engine.events)
            engine.events.clear()
    finally:
        journal.close()
    return live


def test_rebuild_gives_the_live_state_and_reports_progress(tmp_path: Path) -> None:
    config = parse_config(CONFIG, root=tmp_path)
    path = tmp_path / "commands.journal"
    live = write_journal(path, config)
    seen: list[tuple[int, int]] = []
    writer = FileJournal(path, fsync=False)  # the exchange still runs and holds the journal: read-only works
    try:
        rebuilt = rebuild_from_journal(config, path, progress=lambda done, last: seen.append((done, last)))
    finally:
        writer.close()
    assert rebuilt.digest() == live.digest()
    assert rebuilt.last_seq == live.last_seq == len(commands())
    assert rebuilt.update_id("BTC-USDT") == live.update_id("BTC-USDT") > 0
    assert rebuilt.trades("ETH-USDT") and rebuilt.trades("ETH-USDT") == live.trades("ETH-USDT")
    assert seen[-1] == (len(commands()), len(commands()))


def test_rebuild_stops_at_until_seq_and_uses_the_configured_journal(tmp_path: Path) -> None:
    (tmp_path / "exchange.toml").write_text(CONFIG + '\n[journal]\npath = "var/commands.journal"\n')
    config = load_config(tmp_path / "exchange.toml")
    config.journal_path().parent.mkdir(parents=True)
    write_journal(config.journal_path(), config)
    part = rebuild_from_journal(config, until_seq=100)
    assert part.last_seq == 100
    assert rebuild_from_journal(config).last_seq == len(commands())


def test_rebuild_without_a_journal_says_so(tmp_path: Path) -> None:
    config = parse_config(CONFIG, root=tmp_path)
    with pytest.raises(JournalError, match="there is no journal at"):
        rebuild_from_journal(config, tmp_path / "missing.journal")
