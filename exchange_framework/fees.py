"""Fee tiers and per-account overrides: which accounts should trade at rates other than their markets'.

The engine charges each market's maker/taker rates unless an account has its own (``SetAccountFees``, a sequenced
command, so fees stay part of the deterministic state). This module decides what those own rates should be:

* an override from ``[fees.overrides]`` always wins;
* otherwise the highest ``[[fees.tiers]]`` entry whose ``min_volume_30d`` the account's trading volume over the
  last 30 days reaches (counted in ``[fees] volume_asset``: the quote amount of trades in markets quoted in it);
* otherwise none: the market's rates apply.

:class:`VolumeTracker` keeps the rolling 30-day volume from trade events and the journal's timestamps;
:func:`fee_commands` compares the wanted rates with the engine's and returns the commands to sequence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.commands import SetAccountFees
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import AccountFeesChanged, Event, Trade
from exchange_framework.money import rate_to_ppm, to_atomic

WINDOW_NS = 30 * 24 * 3600 * 10**9

Rates = tuple[int, int]  # (maker ppm, taker ppm)


@dataclass(frozen=True)
class FeeSchedule:
    """The tiers (ascending minimum volume in atomic units of ``volume_asset``) and overrides, in engine integers."""

    volume_asset: str | None
    tiers: tuple[tuple[int, Rates], ...]
    overrides: dict[int, Rates]

    @classmethod
    def from_config(cls, config: ExchangeConfig) -> FeeSchedule:
        fees = config.fees
        decimals = config.assets[fees.volume_asset].decimals if fees.volume_asset else 0
        tiers = tuple(
            (to_atomic(t.min_volume_30d, decimals), (rate_to_ppm(t.maker), rate_to_ppm(t.taker))) for t in fees.tiers
        )
        overrides = {int(a): (rate_to_ppm(r.maker), rate_to_ppm(r.taker)) for a, r in fees.overrides.items()}
        return cls(fees.volume_asset, tiers, overrides)

    def rates_for(self, account: int, volume_30d: int) -> Rates | None:
        """The account's own rates, or None when its markets' rates apply."""
        override = self.overrides.get(account)
        if override is not None:
            return override
        chosen: Rates | None = None
        for minimum, rates in self.tiers:
            if volume_30d >= minimum:
                chosen = rates
        return chosen


@dataclass
class VolumeTracker:
    """Each account's traded volume (both sides of every trade) in the schedule's volume asset, over 30 days."""

    counted_markets: frozenset[str]
    window_ns: int = WINDOW_NS
    _trades: deque[tuple[int, int, int, int]] = field(default_factory=deque)  # (ts, maker, taker, quote amount)
    _volume: dict[int, int] = field(default_factory=dict)

    @classmethod
    def for_config(cls, config: ExchangeConfig) -> VolumeTracker:
        asset = config.fees.volume_asset
        return cls(frozenset(symbol for symbol, m in config.markets.items() if asset is not None and m.quote == asset))

    def observe(self, ts_ns: int, events: Iterable[Event]) -> None:
        """Count the trades among ``events`` (one sequenced command's, stamped ``ts_ns`` by the journal)."""
        for event in events:
            if isinstance(event, Trade) and event.market in self.counted_markets:
                self._trades.append((ts_ns, event.maker_account, event.taker_account, event.quote_amount))
                for account in (event.maker_account, event.taker_account):
                    self._volume[account] = self._volume.get(account, 0) + event.quote_amount

    def expire(self, now_ns: int) -> None:
        """Forget trades older than the window."""
        trades = self._trades
        while trades and trades[0][0] <= now_ns - self.window_ns:
            _, maker, taker, amount = trades.popleft()
            for account in (maker, taker):
                left = self._volume[account] - amount
                if left:
                    self._volume[account] = left
                else:
                    del self._volume[account]

    def volume(self, account: int) -> int:
        return self._volume.get(account, 0)

    def accounts(self) -> Sequence[int]:
        return sorted(self._volume)


def fee_commands(
    engine: MatchingEngine, schedule: FeeSchedule, tracker: VolumeTracker, now_ns: int
) -> list[SetAccountFees]:
    """The ``SetAccountFees`` commands that bring every account's own rates to what the schedule wants now."""
    tracker.expire(now_ns)
    candidates = set(engine.accounts) | set(schedule.overrides) | set(tracker.accounts())
    commands = []
    for account in sorted(candidates):
        wanted = schedule.rates_for(account, tracker.volume(account))
        acct = engine.accounts.get(account)
        current = None if acct is None or acct.maker_ppm is None else (acct.maker_ppm, acct.taker_ppm)
        if wanted != current:
            commands.append(
                SetAccountFees(account) if wanted is None else SetAccountFees(account, wanted[0], wanted[1])
            )
    return commands


class FeeReviewer:
    """Keeps a running exchange's per-account fee rates in step with its schedule, from its own event stream.

    Feed :meth:`observe` every applied batch (history included); :meth:`due` returns the ``SetAccountFees``
    commands to sequence now. Rates an operator set by hand (neither a tier's nor a configured override) are left
    alone. It learns each account's current own rates from ``AccountFeesChanged`` events, so it
    never reads the engine from another thread; the wall clock is read only by the caller, at the edge.
    """

    def __init__(self, schedule: FeeSchedule, tracker: VolumeTracker) -> None:
        self.schedule = schedule
        self.tracker = tracker
        self.current: dict[int, Rates | None] = {}

    @classmethod
    def for_config(cls, config: ExchangeConfig) -> FeeReviewer:
        return cls(FeeSchedule.from_config(config), VolumeTracker.for_config(config))

    def observe(self, ts_ns: int, events: Iterable[Event]) -> None:
        """Count trades and note rate changes."""
        self.tracker.observe(ts_ns, events)
        for event in events:
            if isinstance(event, AccountFeesChanged):
                own = None if event.maker_ppm is None else (event.maker_ppm, event.taker_ppm or 0)
                self.current[event.account] = own

    def due(self, now_ns: int) -> list[SetAccountFees]:
        """The commands that bring every known account's own rates to what the schedule wants at ``now_ns``."""
        self.tracker.expire(now_ns)
        candidates = set(self.current) | set(self.schedule.overrides) | set(self.tracker.accounts())
        tier_rates = {rates for _, rates in self.schedule.tiers}
        commands = []
        for account in sorted(candidates):
            current = self.current.get(account)
            if current is not None and current not in tier_rates and account not in self.schedule.overrides:
                continue  # rates an operator set by hand (the admin console): not the schedule's to change
            wanted = self.schedule.rates_for(account, self.tracker.volume(account))
            if wanted != current:
                commands.append(
                    SetAccountFees(account) if wanted is None else SetAccountFees(account, wanted[0], wanted[1])
                )
        return commands
