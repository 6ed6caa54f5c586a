"""The sweep planner: from what each tier holds and the forecast demand, which sweeps bring every tier into band.

For one asset on one chain, with ``T`` the total of hot, warm and cold:

* each tier's band in atomic units is its percentage band of ``T`` (:func:`~exchange_framework.custody.tiers.
  band_amounts`); the hot band is raised by the forecast demand ``D`` of the horizon, so hot can pay ``D`` and still
  hold its low band (``[low + D, high + D]``);
* a tier within its band keeps what it holds (hysteresis: nothing is proposed while every tier is within band); a
  tier outside goes to the middle of its band, and the difference is made up by the others within their bands
  (surplus to cold, then warm, then hot; a shortfall from warm's, then hot's, then cold's room above their lows;
  when money is short, hot is served first);
* when money is short, an in-band tier never pays warm or cold if they would stay below band anyway;
* the sweeps that can run now never take from cold: hot -> warm, hot -> cold, warm -> hot, warm -> cold. If the
  bands can only be met with money out of cold (cold above its band, or hot and warm short), one **ceremony**
  proposal cold -> warm says how much: it is never executed automatically, it points the operator to the cold
  vault ceremony, and the next plan after it moves warm -> hot as needed;
* amounts are rounded down to the asset's sweep unit when that keeps every tier that would be in band in band.

Pure integer arithmetic; deterministic. :func:`plan` returns a :class:`Plan`; nothing here moves money.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from exchange_framework.custody.rules import Tier
from exchange_framework.custody.tiers import TIERS, TierBands, band_amounts

__all__ = ["Plan", "Sweep", "TierHoldings", "effective_bands", "plan"]

HOT, WARM, COLD = TIERS
_SURPLUS_ORDER = (COLD, WARM, HOT)  # where money that no tier needs goes first
_SLACK_ORDER = (WARM, HOT, COLD)  # whose room above its low band pays a shortfall first
_SHORT_ORDER = (COLD, WARM, HOT)  # who goes below band first when money is short (hot is served first)
_SEND_TO = {HOT: (WARM, COLD), WARM: (HOT, COLD)}


class TierHoldings(msgspec.Struct, frozen=True):
    """What custody holds of ``asset`` on ``chain`` in each tier, in atomic units."""

    asset: str
    chain: str
    hot: int
    warm: int
    cold: int

    @property
    def total(self) -> int:
        """What the three tiers hold together."""
        return self.hot + self.warm + self.cold

    def of(self, tier: Tier) -> int:
        """What ``tier`` holds."""
        return {HOT: self.hot, WARM: self.warm, COLD: self.cold}[tier]


class Sweep(msgspec.Struct, frozen=True):
    """A proposed movement of ``amount`` atomic units from one tier's wallet to another's on the same chain.

    ``ceremony`` proposals (cold -> warm) are never executed by the exchange: they need the cold vault ceremony.
    """

    asset: str
    chain: str
    source: Tier
    destination: Tier
    amount: int
    ceremony: bool
    reason: str


class Plan(msgspec.Struct, frozen=True):
    """The planner's answer for one asset on one chain: the bands it planned against and the sweeps it proposes."""

    holdings: TierHoldings
    demand: int  # the forecast demand the hot band was raised by
    bands: Mapping[Tier, tuple[int, int]]  # effective bands in atomic units
    sweeps: tuple[Sweep, ...]  # executable sweeps first, then at most one ceremony proposal
    after: Mapping[Tier, int]  # what each tier holds once the executable sweeps are done

    def in_band(self, tier: Tier, amount: int | None = None) -> bool:
        """Whether ``tier`` holds (or would hold ``amount``) within its effective band."""
        low, high = self.bands[tier]
        held = self.holdings.of(tier) if amount is None else amount
        return low <= held <= high


def effective_bands(total: int, bands: TierBands, demand: int = 0) -> dict[Tier, tuple[int, int]]:
    """Each tier's band in atomic units of ``total``; hot's raised by the forecast ``demand``."""
    out = {tier: band_amounts(total, bands.band(tier)) for tier in TIERS}
    low, high = out[HOT]
    out[HOT] = (low + demand, high + demand)
    return out


def _allocate(
    total: int,
    current: Mapping[Tier, int],
    bands: Mapping[Tier, tuple[int, int]],
    floor: Mapping[Tier, int],
) -> dict[Tier, int]:
    """Target holdings summing to ``total``: in-band tiers kept, others at mid-band, never below ``floor``."""
    x: dict[Tier, int] = {}
    for tier in TIERS:
        low, high = bands[tier]
        held = current[tier]
        x[tier] = max(floor[tier], held if low <= held <= high else (low + high) // 2)
    delta = total - sum(x.values())
    if delta > 0:
        for tier in _SURPLUS_ORDER:
            add = min(delta, max(0, bands[tier][1] - x[tier]))
            x[tier] += add
            delta -= add
        x[COLD] += delta  # more than every band holds: the rest is safest in cold
    elif delta < 0:
        need = -delta
        for order, lowest in ((_SLACK_ORDER, True), (_SHORT_ORDER, False)):
            for tier in order:
                keep = max(bands[tier][0], floor[tier]) if lowest else floor[tier]
                give = min(need, max(0, x[tier] - keep))
                x[tier] -= give
                need -= give
        assert need == 0, "floors never exceed the total"
    return x


def _flows(current: Mapping[Tier, int], target: Mapping[Tier, int]) -> list[tuple[Tier, Tier, int]]:
    """Movements from hot and warm (cold never gives here) that turn ``current`` into ``target``."""
    receive = {t: max(0, target[t] - current[t]) for t in TIERS}
    flows = []
    for source in (HOT, WARM):
        give = max(0, current[source] - target[source])
        for destination in _SEND_TO[source]:
            amount = min(give, receive[destination])
            if amount > 0:
                flows.append((source, destination, amount))
                give -= amount
                receive[destination] -= amount
        assert give == 0, "a plan without cold giving balances between hot and warm"
    return flows


def _apply(current: Mapping[Tier, int], flows: list[tuple[Tier, Tier, int]]) -> dict[Tier, int]:
    out = dict(current)
    for source, destination, amount in flows:
        out[source] -= amount
        out[destination] += amount
    return out


def _in_band(holding: Mapping[Tier, int], bands: Mapping[Tier, tuple[int, int]]) -> set[Tier]:
    return {t for t in TIERS if bands[t][0] <= holding[t] <= bands[t][1]}


def _rounded(
    current: Mapping[Tier, int], flows: list[tuple[Tier, Tier, int]], bands: Mapping[Tier, tuple[int, int]], unit: int
) -> list[tuple[Tier, Tier, int]]:
    """Round each amount down to ``unit`` where that leaves every tier in band that the exact amounts would."""
    wanted = _in_band(_apply(current, flows), bands)
    out = list(flows)
    for i, (source, destination, amount) in enumerate(flows):
        trial = [*out[:i], (source, destination, amount - amount % unit), *out[i + 1 :]]
        if wanted <= _in_band(_apply(current, trial), bands):
            out = trial
    return [f for f in out if f[2] > 0]


def _reason(source: Tier, destination: Tier, before: Mapping[Tier, int], bands: Mapping[Tier, tuple[int, int]]) -> str:
    def state(tier: Tier) -> str:
        low, high = bands[tier]
        held = before[tier]
        return f"{tier.value} {'below' if held < low else 'above' if held > high else 'within'} its band"

    return f"{state(source)}, {state(destination)}"


def plan(holdings: TierHoldings, bands: TierBands, *, demand: int = 0, unit: int = 1) -> Plan:
    """Propose the sweeps that bring ``holdings`` within ``bands`` (hot raised by ``demand``); see the module."""
    for name, value in (("hot", holdings.hot), ("warm", holdings.warm), ("cold", holdings.cold), ("demand", demand)):
        if type(value) is not int or value < 0:
            raise ValueError(f"{name} must be a non-negative integer of atomic units, not {value!r}")
    if type(unit) is not int or unit < 1:
        raise ValueError(f"the sweep unit must be a positive integer of atomic units, not {unit!r}")
    total = holdings.total
    effective = effective_bands(total, bands, demand)
    current = {t: holdings.of(t) for t in TIERS}
    # Now: cold may only receive.
    now_floor = {HOT: 0, WARM: 0, COLD: current[COLD]}
    target = _allocate(total, current, effective, now_floor)
    exact = _flows(current, target)
    reached = _apply(current, exact)
    # Money short: an in-band tier never pays warm or cold if they stay below band anyway (the ceremony's job).
    exact = [
        (s, d, a)
        for s, d, a in exact
        if d is HOT or reached[d] >= effective[d][0] or not effective[s][0] <= current[s] <= effective[s][1]
    ]
    flows = _rounded(current, exact, effective, unit)
    after = _apply(current, flows)
    sweeps = [
        Sweep(holdings.asset, holdings.chain, s, d, amount, False, _reason(s, d, current, effective))
        for s, d, amount in flows
    ]
    # Then: what only money out of cold can fix (cold down to its low band at most).
    if _in_band(after, effective) != set(TIERS):
        floor = {HOT: 0, WARM: 0, COLD: min(after[COLD], effective[COLD][0])}
        final = _allocate(total, after, effective, floor)
        amount = after[COLD] - final[COLD]
        if amount > 0:
            up = amount + (-amount % unit)
            if after[COLD] - up >= effective[COLD][0]:
                amount = up
            why = "cold above its band" if after[COLD] > effective[COLD][1] else "hot and warm need funds from cold"
            sweeps.append(
                Sweep(
                    holdings.asset,
                    holdings.chain,
                    COLD,
                    WARM,
                    amount,
                    True,
                    f"{why}: run the cold-vault ceremony (exchange custody ceremony recover) to move it to warm",
                )
            )
    return Plan(holdings=holdings, demand=demand, bands=effective, sweeps=tuple(sweeps), after=after)
