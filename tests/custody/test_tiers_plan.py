"""The sweep planner: scenarios, and hypothesis properties (bands met when funds allow, total conserved, no tier
negative, cold only through the ceremony, no flapping)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exchange_framework.custody.rules import Tier
from exchange_framework.custody.tiers import BP, DEFAULT_BANDS, Band, TierBands
from exchange_framework.custody.tiers_plan import Plan, TierHoldings, effective_bands, plan

HOT, WARM, COLD = Tier.HOT, Tier.WARM, Tier.COLD
BTC = 10**8


def holdings(hot: int, warm: int, cold: int) -> TierHoldings:
    return TierHoldings("BTC", "bitcoin", hot, warm, cold)


def moves(p: Plan) -> list[tuple[str, str, int, bool]]:
    return [(s.source.value, s.destination.value, s.amount, s.ceremony) for s in p.sweeps]


def test_nothing_is_proposed_while_every_tier_is_within_its_band() -> None:
    p = plan(holdings(4 * BTC, 12 * BTC, 84 * BTC), DEFAULT_BANDS)
    assert p.sweeps == () and all(p.in_band(t) for t in (HOT, WARM, COLD))


def test_a_hot_wallet_over_its_band_is_swept_to_mid_band_into_cold_first() -> None:
    p = plan(holdings(10 * BTC, 10 * BTC, 80 * BTC), DEFAULT_BANDS, unit=BTC // 100)
    # hot 10 % -> mid of 2-5 % (3.5 %); the 6.5 BTC go to cold (the safest), which stays within 80-88 %
    assert moves(p) == [("hot", "cold", 650_000_000, False)]
    assert p.after == {HOT: 350_000_000, WARM: 10 * BTC, COLD: 8_650_000_000}
    assert p.sweeps[0].reason == "hot above its band, cold within its band"


def test_forecast_demand_brings_funds_from_warm_to_hot() -> None:
    start = holdings(3 * BTC, 14 * BTC, 83 * BTC)
    assert plan(start, DEFAULT_BANDS).sweeps == ()  # 3 % hot is within 2-5 %
    p = plan(start, DEFAULT_BANDS, demand=4 * BTC, unit=BTC // 100)
    low, high = p.bands[HOT]
    assert (low, high) == (6 * BTC, 9 * BTC)  # the hot band raised by the demand
    # hot to mid band (7.5 BTC) would take warm below its band: warm gives down to its low, hot ends at 7 of 6-9
    assert moves(p) == [("warm", "hot", 4 * BTC, False)]
    assert p.after[HOT] - 2 * BTC >= 4 * BTC  # hot can pay the forecast and keep its low band
    assert p.after[WARM] == 10 * BTC and p.in_band(WARM, p.after[WARM])


def test_cold_above_its_band_is_a_ceremony_proposal_never_a_sweep() -> None:
    p = plan(holdings(3 * BTC, 5 * BTC, 92 * BTC), DEFAULT_BANDS, unit=BTC)
    assert [m for m in moves(p) if not m[3]] == []  # nothing executable: hot is fine, warm can only come from cold
    (ceremony,) = p.sweeps
    assert (ceremony.source, ceremony.destination, ceremony.ceremony) == (COLD, WARM, True)
    assert ceremony.amount == 8 * BTC  # warm to mid band (12.5 %), rounded up to whole BTC; cold stays >= 80 %
    assert "exchange custody ceremony" in ceremony.reason


def test_when_hot_and_warm_are_short_hot_is_served_first_and_cold_is_a_ceremony() -> None:
    p = plan(holdings(0, 5 * BTC, 95 * BTC), DEFAULT_BANDS)
    executable = [m for m in moves(p) if not m[3]]
    assert executable == [("warm", "hot", 2 * BTC, False)]  # hot to its low band out of warm, although warm is low
    assert moves(p)[-1][:2] == ("cold", "warm") and moves(p)[-1][3]


def test_an_empty_asset_needs_nothing() -> None:
    assert plan(holdings(0, 0, 0), DEFAULT_BANDS).sweeps == ()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="hot must be a non-negative integer"):
        plan(holdings(-1, 0, 0), DEFAULT_BANDS)
    with pytest.raises(ValueError, match="unit"):
        plan(holdings(1, 0, 0), DEFAULT_BANDS, unit=0)


# -- properties -------------------------------------------------------------------------------------------------


@st.composite
def bands(draw: st.DrawFn) -> TierBands:
    if draw(st.booleans()):
        return DEFAULT_BANDS
    out = []
    for _ in range(3):
        low = draw(st.integers(0, BP))
        out.append(Band(low, draw(st.integers(low, BP))))
    result = TierBands(*out)
    assume(result.problems() == [])
    return result


amounts = st.one_of(st.integers(0, 10**6), st.integers(0, 10**24))
units = st.sampled_from([1, 7, 1_000, 10**6])


def apply(start: Mapping[Tier, int], p: Plan, *, ceremony: bool) -> dict[Tier, int]:
    """Apply the plan's sweeps in order (the ceremony too if asked), checking each can be paid."""
    held = dict(start)
    for sweep in p.sweeps:
        if sweep.ceremony and not ceremony:
            continue
        assert sweep.amount > 0 and sweep.source != sweep.destination
        assert sweep.amount <= held[sweep.source], "a sweep moves more than its source holds"
        held[sweep.source] -= sweep.amount
        held[sweep.destination] += sweep.amount
    return held


def all_in_band(held: Mapping[Tier, int], p: Plan) -> bool:
    return all(p.in_band(t, held[t]) for t in (HOT, WARM, COLD))


def feasible_without_cold(h: TierHoldings, eff: Mapping[Tier, tuple[int, int]]) -> bool:
    """Whether some holding within every band keeps cold at least where it is (independent of the planner)."""
    total = h.total
    low = max(eff[COLD][0], h.cold, total - eff[HOT][1] - eff[WARM][1])
    high = min(eff[COLD][1], total - eff[HOT][0] - eff[WARM][0])
    return low <= high


@settings(max_examples=400, deadline=None)
@given(hot=amounts, warm=amounts, cold=amounts, b=bands(), demand=amounts, unit=units)
def test_plans_are_safe_conserve_the_total_and_meet_the_bands_when_funds_allow(
    hot: int, warm: int, cold: int, b: TierBands, demand: int, unit: int
) -> None:
    h = holdings(hot, warm, cold)
    p = plan(h, b, demand=demand, unit=unit)
    start = {HOT: hot, WARM: warm, COLD: cold}
    # safety: each sweep payable in order, cold only gives through one final ceremony, to warm
    ceremonies = [s for s in p.sweeps if s.ceremony]
    assert len(ceremonies) <= 1 and (not ceremonies or p.sweeps[-1].ceremony)
    assert all(s.source is not COLD for s in p.sweeps if not s.ceremony)
    assert all((s.source, s.destination) == (COLD, WARM) for s in ceremonies)
    now = apply(start, p, ceremony=False)
    assert now == p.after
    assert sum(now.values()) == h.total and min(now.values()) >= 0
    done = apply(start, p, ceremony=True)
    assert sum(done.values()) == h.total and min(done.values()) >= 0
    # hysteresis: within band, nothing is proposed
    if all_in_band(start, p):
        assert p.sweeps == ()
    # without a ceremony whenever the funds outside cold allow it
    if feasible_without_cold(h, p.bands):
        assert ceremonies == [] and all_in_band(now, p)
    # with the ceremony whenever the total allows it: the next plan finishes the job and the one after is quiet
    eff = p.bands
    if sum(eff[t][0] for t in eff) <= h.total <= sum(eff[t][1] for t in eff):
        again = plan(holdings(done[HOT], done[WARM], done[COLD]), b, demand=demand, unit=unit)
        assert not any(s.ceremony for s in again.sweeps)
        assert all_in_band(again.after, again)
        quiet = plan(holdings(again.after[HOT], again.after[WARM], again.after[COLD]), b, demand=demand, unit=unit)
        assert quiet.sweeps == ()


@settings(max_examples=200, deadline=None)
@given(hot=amounts, warm=amounts, cold=amounts, b=bands(), demand=amounts)
def test_effective_bands_are_integer_ranges_with_hot_raised_by_demand(
    hot: int, warm: int, cold: int, b: TierBands, demand: int
) -> None:
    total = hot + warm + cold
    eff = effective_bands(total, b, demand)
    plain = effective_bands(total, b)
    assert eff[HOT] == (plain[HOT][0] + demand, plain[HOT][1] + demand)
    assert all(0 <= eff[t][0] <= eff[t][1] for t in eff)
