"""Custody tier bands: integer band arithmetic and ``[custody.tiers]`` parsed, converted and checked key by key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_framework.config import ConfigError, parse_config
from exchange_framework.custody.rules import Tier
from exchange_framework.custody.tiers import (
    BP,
    DEFAULT_BANDS,
    Band,
    TierBands,
    band_amounts,
    default_unit,
    in_band,
    tier_config,
)
from tests.conftest import MINIMAL_CONFIG
from tests.custody.test_whitelist import NAMES, private_key, public_bytes

KEYS = "\n".join(f'{name} = "{public_bytes(private_key(name)).hex()}"' for name in NAMES)

CUSTODY = f"""
[custody]
[custody.whitelist_approvers]
{KEYS}

[custody.networks.bitcoin]
chain_id = "bitcoin"

[[custody.rules]]
name = "hot"
action = "allow"
tier = "hot"
"""


def config_with(tiers: str) -> str:
    return MINIMAL_CONFIG + CUSTODY + tiers


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.lines


def test_defaults_are_hot_2_5_warm_10_15_cold_80_88() -> None:
    assert DEFAULT_BANDS.band(Tier.HOT) == Band(200, 500)
    assert DEFAULT_BANDS.band(Tier.WARM) == Band(1_000, 1_500)
    assert DEFAULT_BANDS.band(Tier.COLD) == Band(8_000, 8_800)
    assert DEFAULT_BANDS.problems() == []
    assert str(DEFAULT_BANDS.hot) == "2-5 %"


def test_a_config_without_custody_gets_the_default_bands_and_units() -> None:
    tiers = tier_config(parse_config(MINIMAL_CONFIG))
    assert tiers.bands_of("BTC") == DEFAULT_BANDS
    assert tiers.unit_of("BTC") == 10_000  # 0.0001 BTC
    assert tiers.unit_of("USDT") == 100
    assert (tiers.horizon_hours, tiers.quantile_bp, tiers.margin_bp, tiers.plan_minutes) == (24, 9_500, 2_000, 15)


def test_per_asset_bands_override_the_default_tier_by_tier() -> None:
    text = config_with(
        """
[custody.tiers]
horizon_hours = 12
margin = "12.5"
[custody.tiers.default]
hot = ["1", "4.25"]
[custody.tiers.assets.BTC]
warm = [8, 12]
unit = "0.001"
"""
    )
    tiers = tier_config(parse_config(text))
    assert tiers.default == TierBands(hot=Band(100, 425), warm=DEFAULT_BANDS.warm, cold=DEFAULT_BANDS.cold)
    assert tiers.bands_of("BTC") == TierBands(hot=Band(100, 425), warm=Band(800, 1_200), cold=DEFAULT_BANDS.cold)
    assert tiers.bands_of("USDT") == tiers.default
    assert tiers.unit_of("BTC") == 100_000
    assert (tiers.horizon_hours, tiers.margin_bp) == (12, 1_250)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[custody.tiers.default]\nhot = ["6", "5"]',
            'custody.tiers.default.hot = ["6", "5"]: the low end (6 %) is above',
        ),
        ('[custody.tiers.default]\ncold = ["80", "101"]', 'custody.tiers.default.cold = "101": must be a percentage'),
        ('[custody.tiers.default]\nhot = ["2.125", "5"]', 'custody.tiers.default.hot = "2.125": must be a percentage'),
        ('[custody.tiers.default]\ncold = ["90", "95"]', 'custody.tiers.default = "102": the low ends sum to more'),
        ('[custody.tiers.default]\ncold = ["50", "60"]', 'custody.tiers.default = "80": the high ends sum to less'),
        ('[custody.tiers.assets.BTC]\nwarm = ["20", "15"]', "custody.tiers.assets.BTC.warm = "),
        ('[custody.tiers.assets.DOGE]\nhot = ["1", "2"]', 'custody.tiers.assets.DOGE = "DOGE": unknown asset'),
        ('[custody.tiers.assets.BTC]\nunit = "0.000000001"', "custody.tiers.assets.BTC.unit = "),
        ("[custody.tiers.default]\nhot = [2.0, 5]", "a percentage must be a decimal string, not a float"),
        ('[custody.tiers.default]\nhot = ["2"]', "custody.tiers.default.hot"),
        ("[custody.tiers]\nhorizon_hours = 0", "custody.tiers.horizon_hours = 0: must be greater than or equal to 1"),
        ('[custody.tiers]\nquantile = "101"', 'custody.tiers.quantile = "101": must be a percentage'),
        ("[custody.tiers]\nhorizon = 3", "custody.tiers.horizon = 3: unknown key (allowed here: plan_minutes"),
    ],
)
def test_every_mistake_names_its_key_and_value(table: str, expected: str) -> None:
    lines = errors(config_with(table))
    assert any(expected in line for line in lines), lines


def test_asset_bands_that_leave_no_allocation_are_refused() -> None:
    lines = errors(config_with('[custody.tiers.assets.BTC]\nhot = ["15", "20"]'))
    assert lines == [
        '<string>: custody.tiers.assets.BTC = "105": the low ends sum to more than 100 %: no holding can meet them all'
    ]
    assert parse_config(config_with('[custody.tiers.assets.BTC]\nhot = ["10", "20"]'))  # lows sum to exactly 100 %


def test_band_amounts_round_inwards_and_never_cross() -> None:
    assert band_amounts(1_000, Band(200, 500)) == (20, 50)
    assert band_amounts(1_001, Band(200, 500)) == (21, 50)  # ceil(20.02), floor(50.05)
    assert band_amounts(1, Band(200, 500)) == (0, 0)  # no whole unit fits: floor both
    assert band_amounts(0, Band(200, 500)) == (0, 0)
    assert in_band(50, 1_000, Band(200, 500)) and not in_band(51, 1_000, Band(200, 500))


@given(
    total=st.integers(min_value=0, max_value=10**40),
    low=st.integers(min_value=0, max_value=BP),
    width=st.integers(min_value=0, max_value=BP),
)
def test_band_amounts_are_exact_integer_bounds(total: int, low: int, width: int) -> None:
    band = Band(low, min(BP, low + width))
    lo, hi = band_amounts(total, band)
    assert 0 <= lo <= hi <= total
    assert hi * BP <= band.high_bp * total < (hi + 1) * BP  # floor, exactly
    if lo * BP >= band.low_bp * total:  # the usual case: ceil(low), exactly
        assert (lo - 1) * BP < band.low_bp * total
    else:  # only when no whole unit fits between the ends
        assert lo == hi


def test_default_unit_is_a_ten_thousandth() -> None:
    assert default_unit(8) == 10_000
    assert default_unit(18) == 10**14
    assert default_unit(2) == 1


def test_the_documented_example_configuration_parses_as_described() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "custody-tiers.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Configuration") :]
    example = section[section.index("```toml") + len("```toml") : section.index("```", section.index("```toml") + 7)]
    tiers = tier_config(parse_config(config_with(example)))
    assert tiers.default == DEFAULT_BANDS
    assert tiers.bands_of("BTC") == TierBands(hot=Band(100, 300), warm=DEFAULT_BANDS.warm, cold=DEFAULT_BANDS.cold)
    assert tiers.unit_of("BTC") == 100_000
    assert (tiers.plan_minutes, tiers.horizon_hours, tiers.quantile_bp, tiers.margin_bp) == (15, 24, 9_500, 2_000)
    assert (tiers.balances, tiers.warm_signer) == ("ledger", "threshold")
