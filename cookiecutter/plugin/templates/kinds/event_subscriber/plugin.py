"""{{ cookiecutter.plugin_name.strip() }}: an event subscriber that counts the engine's events by kind.

The kernel delivers every engine event in sequence order. Several events can share one ``seq`` (a command that
trades emits the trade, the fills and the book changes), so the counter buffers the events of the newest ``seq``
and commits them when a later ``seq`` arrives or when it is closed; :meth:`EventCounter.last_seq` reports the last
committed one. Anything at or below it is a replay and changes nothing.

The counts live in memory: after a restart ``last_seq`` is 0 and the kernel replays the journal, which rebuilds them
exactly. A subscriber that writes somewhere durable stores its high-water mark in the same transaction as its data.
Settings, in ``exchange.toml``::

    [plugins.settings.{{ cookiecutter.__slug }}]
    kinds = ["Trade", "OrderAccepted"]   # or [] for every kind
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.events import Event

PLUGIN_NAME = "{{ cookiecutter.__slug }}"
SETTINGS = f"[plugins.settings.{PLUGIN_NAME}]"


class EventCounter:
    """Counts engine events by kind (the event's class name), exactly once per event."""

    def __init__(self, kinds: Iterable[str] = (), *, name: str = PLUGIN_NAME) -> None:
        self.name = name
        self.kinds = frozenset(kinds)
        self.closed = False
        self._counts: Counter[str] = Counter()
        self._committed = 0  # every event up to this seq is counted in _counts
        self._pending_seq = 0  # the newest seq seen, whose events are buffered in _pending
        self._pending: Counter[str] = Counter()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> EventCounter:
        """Build the counter from the plugin's settings table; raise ``ValueError`` naming a bad key."""
        unknown = sorted(set(settings) - {"kinds"})
        if unknown:
            raise ValueError(f"{SETTINGS}: unknown key {unknown[0]!r}; known keys: kinds")
        kinds = settings.get("kinds", [])
        if not isinstance(kinds, list) or not all(isinstance(kind, str) and kind for kind in kinds):
            raise ValueError(f'{SETTINGS} kinds must be a list of event class names, such as ["Trade"], not {kinds!r}')
        return cls(kinds)

    def last_seq(self) -> int:
        """Return the highest sequence number whose events are all counted; delivery resumes after it."""
        return self._committed

    def handle(self, event: Event) -> None:
        """Count one event; an event at or below :meth:`last_seq` was counted already and changes nothing."""
        if self.closed:
            raise RuntimeError(f"{self.name} is closed")
        if event.seq <= self._committed:
            return
        if event.seq != self._pending_seq:
            self._commit()
            self._pending_seq = event.seq
        kind = type(event).__name__
        if not self.kinds or kind in self.kinds:
            self._pending[kind] += 1

    def counts(self) -> dict[str, int]:
        """Return how many events of each kind were counted, up to :meth:`last_seq`."""
        return dict(self._counts)

    def close(self) -> None:
        """Commit the events of the newest sequence number and stop accepting events."""
        self._commit()
        self.closed = True

    def _commit(self) -> None:
        if self._pending_seq > self._committed:
            self._counts.update(self._pending)
            self._committed = self._pending_seq
        self._pending.clear()


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the plugin's settings as the exchange starts: a mistake stops the start with a clear error."""
    EventCounter.from_settings(config.plugin_settings(PLUGIN_NAME))


@hookimpl
def register_event_subscribers(config: ExchangeConfig) -> list[EventCounter]:
    """Register the counter, under the plugin's name."""
    return [EventCounter.from_settings(config.plugin_settings(PLUGIN_NAME))]
