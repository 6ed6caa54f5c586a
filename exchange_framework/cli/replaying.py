"""Rebuilding an engine from a journal, with a progress bar: shared by the commands that need engine state."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import click

from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.commands import decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event
from exchange_framework.sequencer import Journal, JournalRecord


def replay_into_engine(
    config: ExchangeConfig,
    journal: Journal,
    *,
    until_seq: int | None = None,
    on_events: Callable[[JournalRecord, Sequence[Event]], None] | None = None,
    label: str = "replaying",
) -> MatchingEngine:
    """A fresh engine with every journalled command up to ``until_seq`` (default: all) applied.

    ``on_events(record, events)`` sees each command's events before they are dropped.
    """
    last = journal.last_seq if until_seq is None else min(until_seq, journal.last_seq)
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    events = engine.events
    with click.progressbar(length=max(last, 1), label=label, file=sys.stderr) as bar:
        for record in journal.read():
            if record.seq > last:
                break
            engine.apply(record.seq, decode_command(record.payload))
            if on_events is not None:
                on_events(record, events)
            events.clear()
            if not record.seq % 4096:
                bar.update(4096)
    return engine
