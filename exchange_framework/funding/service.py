"""Wiring for a running exchange: one deposit tracker per registered chain adapter, polled in the background.

``config`` and the plugin manager give the adapters (``register_chain_adapters``) and the screening
(``screen_deposit`` hooks); the caller gives ``submit`` (the shard). The store lives at
``var/deposits/deposits.db`` under the exchange's root unless a path is given.
"""

from __future__ import annotations

import threading
from os import PathLike

import pluggy

from exchange_framework.chains import chain_adapters
from exchange_framework.config import ExchangeConfig
from exchange_framework.funding.deposits import DepositTracker, PollResult, Screener, Submit, hook_screener
from exchange_framework.funding.store import DepositStore

__all__ = ["DEFAULT_STORE_PATH", "DepositPoller", "deposit_trackers", "open_deposit_store"]

DEFAULT_STORE_PATH = "var/deposits/deposits.db"


def open_deposit_store(config: ExchangeConfig, path: str | PathLike[str] | None = None) -> DepositStore:
    """Open (creating) the exchange's deposit store: ``path``, or :data:`DEFAULT_STORE_PATH` under its root."""
    return DepositStore(config.resolve_path(path if path is not None else DEFAULT_STORE_PATH))


def deposit_trackers(
    pm: pluggy.PluginManager,
    config: ExchangeConfig,
    store: DepositStore,
    *,
    submit: Submit,
    screen: Screener | None = None,
) -> dict[str, DepositTracker]:
    """Return a tracker for every registered chain adapter, screening through the ``screen_deposit`` hooks."""
    screener = screen if screen is not None else hook_screener(pm, config)
    return {
        name: DepositTracker(adapter, store, submit=submit, screen=screener)
        for name, adapter in chain_adapters(pm, config).items()
    }


class DepositPoller:
    """Polls every tracker every ``interval`` seconds on one background thread until :meth:`stop`."""

    def __init__(self, trackers: dict[str, DepositTracker], interval: float = 2.0) -> None:
        self.trackers = trackers
        self.interval = interval
        self.last: dict[str, PollResult] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> dict[str, PollResult]:
        """Poll every tracker once (a paused tracker does not stop the others) and return their results."""
        for name, tracker in self.trackers.items():
            self.last[name] = tracker.poll()
        return dict(self.last)

    def start(self) -> None:
        """Start polling on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="deposit-poller", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling and wait for the current round to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
