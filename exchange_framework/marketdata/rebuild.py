"""Rebuild market data at start-up by replaying the command journal, read-only, through a fresh engine."""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike

from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.commands import decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.marketdata.state import MarketData
from exchange_framework.sequencer import FileJournal, Journal

Progress = Callable[[int, int], None]
"""Called as ``progress(done_seq, last_seq)`` every few thousand commands and once at the end."""

_PROGRESS_EVERY = 4_096


def rebuild(
    config: ExchangeConfig,
    journal: Journal,
    *,
    progress: Progress | None = None,
    until_seq: int | None = None,
    trade_history: int = 1_000,
    kline_history: int = 1_000,
) -> MarketData:
    """Return market data holding every journalled command up to ``until_seq`` (default: all).

    Each command's events are applied with the command's journal timestamp, exactly as a live feed would apply
    them, so books, trades, klines and book update ids equal those of the live process.
    """
    data = MarketData.from_config(config, trade_history=trade_history, kline_history=kline_history)
    last = journal.last_seq if until_seq is None else min(until_seq, journal.last_seq)
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    events = engine.events
    done = 0
    for record in journal.read():
        if record.seq > last:
            break
        engine.apply(record.seq, decode_command(record.payload))
        if events:
            data.apply(record.ts_ns, events)
            events.clear()
        done = record.seq
        if progress is not None and not done % _PROGRESS_EVERY:
            progress(done, last)
    if progress is not None:
        progress(done, last)
    return data


def rebuild_from_journal(
    config: ExchangeConfig,
    journal_path: str | PathLike[str] | None = None,
    progress: Progress | None = None,
    *,
    until_seq: int | None = None,
    trade_history: int = 1_000,
    kline_history: int = 1_000,
) -> MarketData:
    """Open the file journal (``[journal] path`` by default) read-only and :func:`rebuild` from it.

    Read-only: a running exchange may hold the journal's write lock meanwhile. The other arguments are
    :func:`rebuild`'s.
    """
    path = config.journal_path() if journal_path is None else journal_path
    journal = FileJournal(path, read_only=True)
    try:
        return rebuild(
            config,
            journal,
            progress=progress,
            until_seq=until_seq,
            trade_history=trade_history,
            kline_history=kline_history,
        )
    finally:
        journal.close()
