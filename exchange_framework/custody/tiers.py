"""Custody tier bands: how much of each asset's custody each tier (hot, warm, cold) should hold.

A band is a range of basis points (1/100 of a percent) of what custody holds of one asset on one chain. The
defaults are hot 2-5 %, warm 10-15 %, cold 80-88 %. ``[custody.tiers]`` in ``exchange.toml`` overrides them per
asset and sets the forecaster and planner (``docs/custody-tiers.md``); :func:`tier_problems` reports every mistake
with its key path, :func:`tier_config` converts the table into integers (basis points, atomic units). Everything
here is pure integer arithmetic: no float ever touches an amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal, NamedTuple

import msgspec
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from exchange_framework.custody.rules import Tier
from exchange_framework.money import MoneyError, parse_decimal, to_atomic

if TYPE_CHECKING:
    from exchange_framework.config import ExchangeConfig

__all__ = [
    "BP",
    "DEFAULT_BANDS",
    "TIERS",
    "AssetBandSettings",
    "Band",
    "BandSettings",
    "TierBands",
    "TierConfig",
    "TierSettings",
    "band_amounts",
    "default_unit",
    "in_band",
    "tier_config",
    "tier_problems",
]

BP = 10_000  # basis points in a whole
TIERS = (Tier.HOT, Tier.WARM, Tier.COLD)

Loc = tuple[str | int, ...]


class Band(NamedTuple):
    """A tier's target range, in basis points of the asset's custody on one chain (inclusive)."""

    low_bp: int
    high_bp: int

    def __str__(self) -> str:
        return f"{_pct(self.low_bp)}-{_pct(self.high_bp)} %"


class TierBands(msgspec.Struct, frozen=True):
    """The bands of the three tiers for one asset."""

    hot: Band
    warm: Band
    cold: Band

    def band(self, tier: Tier) -> Band:
        """Return ``tier``'s band."""
        return {Tier.HOT: self.hot, Tier.WARM: self.warm, Tier.COLD: self.cold}[tier]

    def problems(self) -> list[tuple[Loc, object, str]]:
        """Return (key, value, message) for every mistake: a band outside 0-100 %, low above high, or lows and highs
        that leave no way to hold 100 % (the lows must sum to at most 100 %, the highs to at least 100 %)."""
        problems: list[tuple[Loc, object, str]] = []
        for tier in TIERS:
            low, high = self.band(tier)
            shown = [_pct(low), _pct(high)]
            if not (0 <= low <= BP and 0 <= high <= BP):
                problems.append(((tier.value,), shown, "a band is two percentages from 0 to 100"))
            elif low > high:
                problems.append(((tier.value,), shown, f"the low end ({_pct(low)} %) is above the high end"))
        lows = sum(self.band(t).low_bp for t in TIERS)
        highs = sum(self.band(t).high_bp for t in TIERS)
        if lows > BP:
            problems.append(((), _pct(lows), "the low ends sum to more than 100 %: no holding can meet them all"))
        if highs < BP:
            problems.append(((), _pct(highs), "the high ends sum to less than 100 %: no holding can fit them all"))
        return problems


DEFAULT_BANDS = TierBands(hot=Band(200, 500), warm=Band(1_000, 1_500), cold=Band(8_000, 8_800))


def band_amounts(total: int, band: Band) -> tuple[int, int]:
    """Return ``band`` in atomic units of ``total``: ``[ceil(low * total), floor(high * total)]``, or, when no whole
    unit fits in between (tiny totals), ``[floor(low * total), floor(high * total)]``."""
    high = total * band.high_bp // BP
    low = -(-total * band.low_bp // BP)
    return (min(low, high), high)


def in_band(amount: int, total: int, band: Band) -> bool:
    """Whether ``amount`` of ``total`` lies within ``band`` (as :func:`band_amounts` rounds it)."""
    low, high = band_amounts(total, band)
    return low <= amount <= high


def default_unit(decimals: int) -> int:
    """The default rounding unit of sweep amounts: 1/10,000 of a whole unit (one atomic unit if finer)."""
    unit: int = 10 ** max(0, decimals - 4)
    return unit


def _pct(bp: int) -> str:
    text = f"{bp // 100}.{bp % 100:02d}" if bp >= 0 else f"-{_pct(-bp)}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- [custody.tiers] ------------------------------------------------------------------------------------------------


def _decimal_input(value: object) -> Decimal:
    try:
        return parse_decimal(value, what="a percentage")
    except MoneyError as exc:
        raise ValueError(str(exc)) from None


_Percent = Annotated[Decimal, BeforeValidator(_decimal_input)]
_PercentPair = Annotated[list[_Percent], Field(min_length=2, max_length=2)]
_Amount = Annotated[Decimal, BeforeValidator(_decimal_input), Field(gt=0)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BandSettings(_Table):
    """``[custody.tiers.default]``: the bands used for assets without their own, as ``[low, high]`` percentages."""

    hot: _PercentPair = [Decimal(2), Decimal(5)]
    warm: _PercentPair = [Decimal(10), Decimal(15)]
    cold: _PercentPair = [Decimal(80), Decimal(88)]


class AssetBandSettings(_Table):
    """``[custody.tiers.assets.<ASSET>]``: one asset's bands (a tier left out keeps the default) and the unit its
    sweep amounts are rounded to (a decimal in the asset's units)."""

    hot: _PercentPair | None = None
    warm: _PercentPair | None = None
    cold: _PercentPair | None = None
    unit: _Amount | None = None


class TierSettings(_Table):
    """``[custody.tiers]``: tier bands, the withdrawal-demand forecaster and the sweep planner."""

    plan_minutes: int = Field(default=15, ge=0, le=7 * 24 * 60)  # the running exchange re-plans (0: never)
    horizon_hours: int = Field(default=24, ge=1, le=7 * 24)  # how far ahead demand is forecast
    lookback_weeks: int = Field(default=4, ge=1, le=52)  # history the forecaster reads
    min_history_days: int = Field(default=7, ge=1, le=365)  # less history: no forecast, the bands alone
    quantile: _Percent = Decimal(95)  # of recent daily withdrawal totals
    margin: _Percent = Decimal(20)  # safety margin added to the forecast, percent
    state_path: str = Field(default="var/custody/tiers.db", min_length=1)  # the sweep proposals
    balances: Literal["ledger", "reports"] = "ledger"  # tier holdings from the ledger or custody_balances reports
    warm_signer: str | None = Field(default=None, min_length=1)  # registered custody signer of warm-source sweeps
    default: BandSettings = BandSettings()
    assets: dict[str, AssetBandSettings] = {}


class TierConfig(msgspec.Struct, frozen=True):
    """``[custody.tiers]`` in integers: bands in basis points, units in atomic units, durations in hours."""

    default: TierBands = DEFAULT_BANDS
    bands: Mapping[str, TierBands] = {}
    units: Mapping[str, int] = {}
    plan_minutes: int = 15
    horizon_hours: int = 24
    lookback_weeks: int = 4
    min_history_days: int = 7
    quantile_bp: int = 9_500
    margin_bp: int = 2_000
    state_path: str = "var/custody/tiers.db"
    balances: str = "ledger"
    warm_signer: str | None = None

    def bands_of(self, asset: str) -> TierBands:
        """Return ``asset``'s bands (its own, or the default)."""
        return self.bands.get(asset, self.default)

    def unit_of(self, asset: str) -> int:
        """Return the atomic units ``asset``'s sweep amounts are rounded to (at least 1)."""
        return self.units.get(asset, 1)


def _bp(value: Decimal) -> int:
    scaled = value * 100
    return int(scaled) if scaled == scaled.to_integral_value() else -1  # -1: reported by tier_problems


def _bands(settings: BandSettings | AssetBandSettings, fallback: TierBands) -> TierBands:
    def band(pair: list[Decimal] | None, default: Band) -> Band:
        return default if pair is None else Band(_bp(pair[0]), _bp(pair[1]))

    return TierBands(
        hot=band(settings.hot, fallback.hot),
        warm=band(settings.warm, fallback.warm),
        cold=band(settings.cold, fallback.cold),
    )


def _convert(settings: TierSettings, decimals: Mapping[str, int]) -> tuple[TierConfig, list[tuple[Loc, object, str]]]:
    problems: list[tuple[Loc, object, str]] = []
    base: Loc = ("custody", "tiers")

    def percent(value: Decimal, loc: Loc) -> int:
        bp = _bp(value)
        if bp < 0 or bp > BP:
            problems.append(((*base, *loc), value, "must be a percentage from 0 to 100 with at most two decimals"))
        return bp

    before = len(problems)
    for tier in TIERS:
        for value in getattr(settings.default, tier.value):
            percent(value, ("default", tier.value))
    default = _bands(settings.default, DEFAULT_BANDS)
    if len(problems) == before:  # sums of percentages that are themselves wrong say nothing more
        problems.extend(((*base, "default", *loc), value, message) for loc, value, message in default.problems())
    bands: dict[str, TierBands] = {}
    units: dict[str, int] = {}
    known = ", ".join(sorted(decimals)) or "none defined"
    for asset, own in settings.assets.items():
        loc: Loc = (*base, "assets", asset)
        if asset not in decimals:
            problems.append((loc, asset, f"unknown asset; define [assets.{asset}] or use one of: {known}"))
            continue
        before = len(problems)
        for tier in TIERS:
            for value in getattr(own, tier.value) or ():
                percent(value, ("assets", asset, tier.value))
        bands[asset] = _bands(own, default)
        if len(problems) == before:
            problems.extend(((*loc, *where), value, message) for where, value, message in bands[asset].problems())
        if own.unit is not None:
            try:
                units[asset] = to_atomic(own.unit, decimals[asset])
            except MoneyError:
                problems.append(((*loc, "unit"), own.unit, f"{asset} has {decimals[asset]} decimals: this has more"))
    for asset, places in decimals.items():
        units.setdefault(asset, default_unit(places))
    quantile = percent(settings.quantile, ("quantile",))
    margin = _bp(settings.margin)
    if margin < 0 or margin > 10 * BP:
        problems.append(((*base, "margin"), settings.margin, "must be a percentage from 0 to 1000 with two decimals"))
    config = TierConfig(
        default=default,
        bands=bands,
        units=units,
        plan_minutes=settings.plan_minutes,
        horizon_hours=settings.horizon_hours,
        lookback_weeks=settings.lookback_weeks,
        min_history_days=settings.min_history_days,
        quantile_bp=quantile,
        margin_bp=margin,
        state_path=settings.state_path,
        balances=settings.balances,
        warm_signer=settings.warm_signer,
    )
    return config, problems


def tier_problems(settings: TierSettings, decimals: Mapping[str, int]) -> list[tuple[Loc, object, str]]:
    """Return (key path, value, message) for every mistake in ``[custody.tiers]``, given each asset's decimals."""
    return _convert(settings, decimals)[1]


def tier_config(config: ExchangeConfig) -> TierConfig:
    """Return the tier configuration of a validated config (the defaults when it has no ``[custody.tiers]``)."""
    decimals = {symbol: asset.decimals for symbol, asset in config.assets.items()}
    settings = config.custody.tiers if config.custody is not None else TierSettings()
    return _convert(settings, decimals)[0]
