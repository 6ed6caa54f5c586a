"""Read an exchange's ``exchange.toml`` into typed settings, and derive the engine's integer view of it.

Parsing happens once, at the edge: every misspelt key, float amount, off-grid tick or unknown asset becomes a
:class:`ConfigError` with one line per problem, naming the file, the key path, the bad value and what is allowed.
Past this module the kernel only sees validated models and, for the engine, integer
:class:`~exchange_framework.engine.market.AssetSpec` and :class:`~exchange_framework.engine.market.MarketSpec`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Self, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from exchange_framework.custody.policy_config import CustodySettings, custody_problems
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.money import (
    MoneyError,
    format_decimal,
    from_atomic,
    parse_decimal,
    price_to_ticks,
    qty_to_lots,
    rate_to_ppm,
    to_atomic,
)
from exchange_framework.types import MarketStatus

__all__ = [
    "CONFIG_FILENAME",
    "DEMO_CONFIG",
    "Asset",
    "Backends",
    "Brand",
    "Colours",
    "ComplianceSettings",
    "ConfigError",
    "ExchangeConfig",
    "FeeRates",
    "FeeTier",
    "Fees",
    "JournalSettings",
    "KycSettings",
    "KycTier",
    "Market",
    "OfacSettings",
    "PluginSettings",
    "PortalSettings",
    "Problem",
    "default_config_path",
    "format_key_path",
    "load_config",
    "parse_config",
]

CONFIG_FILENAME = "exchange.toml"
DEMO_CONFIG = Path(__file__).resolve().parent / "demo" / CONFIG_FILENAME

MAX_ASSET_DECIMALS = 30
MIN_MAKER_FEE = Decimal("-0.01")  # a maker rebate of at most 1 %
MAX_FEE = Decimal("0.1")  # 10 %: anything above is surely a typo

_COLOUR_RE = re.compile(r"#[0-9a-fA-F]{6}")
_ASSET_RE = re.compile(r"[A-Z0-9][A-Z0-9._]{0,15}")
_MARKET_RE = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,31}")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_]+")
_TOML_POSITION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


class ConfigError(Exception):
    """``exchange.toml`` could not be read or is invalid; ``lines`` holds one self-contained line per problem."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


# -- value types -------------------------------------------------------------------------------------------------


def _decimal_input(value: object) -> Decimal:
    try:
        return parse_decimal(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None


def _exact_ppm(rate: Decimal) -> Decimal:
    try:
        rate_to_ppm(rate)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None
    return rate


def _pattern_check(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {allowed}")
        return value

    return AfterValidator(check)


def _account_key(value: object) -> int:
    # TOML table keys are always strings; accounts are integers.
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    raise ValueError('must be an account number such as "1001"')


Amount = Annotated[Decimal, BeforeValidator(_decimal_input)]
PositiveAmount = Annotated[Amount, Field(gt=0)]
NonNegativeAmount = Annotated[Amount, Field(ge=0)]
MakerRate = Annotated[Amount, Field(ge=MIN_MAKER_FEE, le=MAX_FEE), AfterValidator(_exact_ppm)]
TakerRate = Annotated[Amount, Field(ge=0, le=MAX_FEE), AfterValidator(_exact_ppm)]
Colour = Annotated[str, _pattern_check(_COLOUR_RE, 'a colour written as #rrggbb, such as "#1a2b3c"')]
AssetSymbol = Annotated[str, _pattern_check(_ASSET_RE, "an asset symbol: 1-16 upper-case letters, digits, '.' or '_'")]
MarketSymbol = Annotated[
    str, _pattern_check(_MARKET_RE, "a market symbol: 1-32 upper-case letters, digits, '.', '_' or '-'")
]
PluginItemName = Annotated[
    str, _pattern_check(_NAME_RE, "a name of lower-case letters, digits, '_', '.' or '-' (as a plugin registers it)")
]
ModuleName = Annotated[str, _pattern_check(_MODULE_RE, 'a dotted module name such as "my_pkg.my_plugin"')]
AccountKey = Annotated[int, BeforeValidator(_account_key)]


class _Table(BaseModel):
    # Strict: TOML already has real integers, booleans and strings, so nothing is coerced ("8" is not 8).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# -- [brand] ------------------------------------------------------------------------------------------------------


class Colours(_Table):
    """``[brand.colours]``: the portal's palette."""

    primary: Colour = "#1f6feb"
    accent: Colour = "#f0b90b"
    background: Colour = "#0d1117"


class Brand(_Table):
    """``[brand]``: how the exchange presents itself."""

    name: str = Field(min_length=1, max_length=80)
    logo: str | None = None  # a path relative to the config file's directory
    tagline: str | None = Field(default=None, max_length=200)
    colours: Colours = Colours()

    @field_validator("logo")
    @classmethod
    def _logo_exists(cls, logo: str | None, info: ValidationInfo) -> str | None:
        root = (info.context or {}).get("root")
        if logo is not None and isinstance(root, Path) and not (root / logo).is_file():
            raise ValueError(f"file not found: {root / logo}")
        return logo


# -- [assets] and [markets] -------------------------------------------------------------------------------------


class Asset(_Table):
    """``[assets.SYMBOL]``: one asset and the size of its atomic unit."""

    decimals: int = Field(ge=0, le=MAX_ASSET_DECIMALS)
    name: str | None = None


class Market(_Table):
    """``[markets."BASE-QUOTE"]``: a market's trading rules, in decimal units as a person writes them."""

    base: str
    quote: str
    tick_size: PositiveAmount
    lot_size: PositiveAmount
    min_qty: PositiveAmount | None = None  # default: one lot
    max_qty: PositiveAmount | None = None  # default: the engine's limit
    min_notional: NonNegativeAmount = Decimal(0)
    max_price: PositiveAmount | None = None  # default: the engine's limit
    status: Literal["open", "halted", "closed"] = "open"
    maker_fee: MakerRate | None = None  # default: [fees] maker
    taker_fee: TakerRate | None = None  # default: [fees] taker


# -- [fees] -------------------------------------------------------------------------------------------------------


class FeeRates(_Table):
    """A maker and a taker rate, as in ``[fees.overrides."1001"]``."""

    maker: MakerRate
    taker: TakerRate


class FeeTier(_Table):
    """``[[fees.tiers]]``: rates for accounts whose 30-day volume (in quote units) reaches ``min_volume_30d``."""

    min_volume_30d: NonNegativeAmount
    maker: MakerRate
    taker: TakerRate


class Fees(_Table):
    """``[fees]``: the default schedule, volume tiers and per-account overrides."""

    maker: MakerRate = Decimal(0)
    taker: TakerRate = Decimal(0)
    volume_asset: str | None = None  # the quote asset tiers count volume in (required with tiers)
    tiers: list[FeeTier] = []
    overrides: dict[AccountKey, FeeRates] = {}
    review_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)  # a running exchange re-tiers accounts (0: never)


# -- [backends], [journal], [plugins] ---------------------------------------------------------------------------


class Backends(_Table):
    """``[backends]``: which registered implementation serves each concern, by name."""

    journal: PluginItemName = "file"
    ledger: PluginItemName = "sqlite"
    keystore: PluginItemName = "software"


class LedgerSettings(_Table):
    """``[ledger]``: the ledger database. SQLite paths are relative to the config file; PostgreSQL URLs are used as
    they are (``postgresql://user@host:port/db``); ``DATABASE_URL`` overrides both."""

    url: str = Field(default="sqlite:///var/ledger/ledger.db", min_length=1, pattern=r"^(sqlite|postgresql|postgres):")


class JournalSettings(_Table):
    """``[journal]``: where the command journal lives (relative paths are relative to the config file)."""

    path: str = Field(default="var/journal/commands.journal", min_length=1)
    fsync: bool = True


class AuditSettings(_Table):
    """``[audit]``: the operator audit log (a relative path is relative to the config file)."""

    path: str = Field(default="var/audit/audit.log", min_length=1)
    fsync: bool = True


class WalletSettings(_Table):
    """``[wallet]``: deposits and withdrawals of customer funds."""

    hot_key_id: str = Field(default="hot-1", min_length=1, max_length=80)  # the custody signer's hot wallet key
    whitelist_cooling_off_hours: int = Field(default=24, ge=0, le=24 * 90)  # before a new address can be used
    fallback_approvals: int = Field(default=1, ge=1, le=10)  # operator approvals when no [custody] policy is set
    poll_seconds: PositiveAmount = Decimal(2)  # how often chains and withdrawals are checked (a decimal string)


class PluginSettings(_Table):
    """``[plugins]``: which plugins load, and each plugin's own settings."""

    modules: list[ModuleName] = []
    enabled: list[str] | None = None
    disabled: list[str] = []
    settings: dict[str, dict[str, Any]] = {}


class PortalSettings(_Table):
    """``[portal]``: the customer portal. ``templates`` is a folder of operator templates (relative to the config
    file) searched before plugins' and the default theme's; default: ``templates/`` beside the config, if present."""

    templates: str | None = Field(default=None, min_length=1)


class OfacSettings(_Table):
    """``[compliance.ofac]``: the built-in OFAC SDN screening. ``source`` is where the list is fetched from: an
    ``https://`` base URL ending in ``/`` (or the ``sdn.csv`` or ``sdn.xml`` URL), a path (relative to the config
    file) to a directory of the CSV files or to ``sdn.xml``, or ``"builtin"`` (a small real snapshot, for demos
    only). Unset: the built-in screening has no opinion. ``name_threshold`` is the Jaro-Winkler similarity (a
    decimal string, 0.5 to 1) at which an applicant's name is held for review."""

    source: str | None = Field(default=None, min_length=1)
    refresh_hours: int = Field(default=24, ge=1, le=24 * 30)
    timeout_seconds: int = Field(default=30, ge=1, le=600)
    name_threshold: Annotated[Amount, Field(ge=Decimal("0.5"), le=1)] = Decimal("0.92")


def _tier_key(value: object) -> int:
    # TOML table keys are always strings; KYC tiers are small integers.
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) <= 99:
        return int(value)
    raise ValueError('must be a KYC tier number from "0" to "99"')


class KycTier(_Table):
    """``[compliance.kyc.tiers.<n>]``: what a customer verified to KYC tier n may withdraw. ``daily_withdrawal``
    maps an asset to the most that may leave the account in any 24 hours (a decimal string); an asset not listed
    cannot be withdrawn at this tier."""

    daily_withdrawal: dict[AssetSymbol, NonNegativeAmount] = {}


class KycSettings(_Table):
    """``[compliance.kyc]``: identity verification. ``provider`` is the registered KYC provider new applicants go
    to (``manual``: the built-in operator review). ``tiers``: withdrawal limits per KYC tier (a customer gets the
    highest listed tier at or below their own; below every listed tier, no withdrawals). Unset: tier 1 and above
    may withdraw without a daily limit, tier 0 may not."""

    provider: PluginItemName = "manual"
    tiers: dict[Annotated[int, BeforeValidator(_tier_key)], KycTier] | None = None


class MonitoringSettings(_Table):
    """``[compliance.monitoring]``: transaction monitoring thresholds (docs/transaction-monitoring.md), integers
    only: ``reporting_threshold`` maps an asset to its reporting threshold in atomic units; windows are seconds;
    ``exempt_accounts`` are the exchange's own market makers (never a layering hop). ``model``: the scoring model's
    directory (relative to the config file), ``"builtin"`` for the packaged one, or unset for no scores."""

    reporting_threshold: dict[AssetSymbol, Annotated[int, Field(gt=0)]] = {}
    structuring_band_ppm: int = Field(default=150_000, ge=1, le=999_999)
    structuring_min_count: int = Field(default=3, ge=2)
    structuring_window_s: int = Field(default=7 * 86_400, ge=1)
    rapid_window_s: int = Field(default=30 * 60, ge=1)
    layering_min_accounts: int = Field(default=3, ge=2)
    layering_hop_s: int = Field(default=6 * 3600, ge=1)
    layering_window_s: int = Field(default=48 * 3600, ge=1)
    fan_in_min_sources: int = Field(default=8, ge=2)
    fan_in_window_s: int = Field(default=3 * 86_400, ge=1)
    fan_out_min_destinations: int = Field(default=8, ge=2)
    fan_out_window_s: int = Field(default=3 * 86_400, ge=1)
    exempt_accounts: list[Annotated[int, Field(ge=0)]] = []
    model: str | None = Field(default=None, min_length=1)


class FilingSettings(_Table):
    """``[compliance.filing]``: the filing institution's facts a SAR-style export needs (docs/compliance.md). Every
    field is optional: what is unset is listed as missing in the export, never invented. ``ein`` is the nine-digit
    EIN (or another TIN with ``tin_type``); ``country`` an ISO 3166-1 alpha-2 code."""

    institution_name: str | None = Field(default=None, min_length=1, max_length=150)
    alternate_name: str | None = Field(default=None, min_length=1, max_length=150)
    ein: str | None = Field(default=None, pattern=r"^[0-9]{9}$")
    tin_type: str = Field(default="EIN", pattern=r"^(EIN|SSN-ITIN|Foreign)$")
    institution_type: str | None = Field(default=None, min_length=1, max_length=80)  # e.g. "Money services business"
    primary_regulator: str | None = Field(default=None, min_length=1, max_length=80)  # e.g. "IRS"
    address: str | None = Field(default=None, min_length=1, max_length=100)
    city: str | None = Field(default=None, min_length=1, max_length=50)
    state: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    zip: str | None = Field(default=None, pattern=r"^[0-9A-Za-z -]{3,10}$")
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    registration_number: str | None = Field(default=None, min_length=1, max_length=25)  # e.g. the MSB registration
    contact_office: str | None = Field(default=None, min_length=1, max_length=50)
    contact_phone: str | None = Field(default=None, pattern=r"^[0-9+() -]{7,20}$")


class RetentionSettings(_Table):
    """``[compliance.retention]``: how long closed cases, alerts and screening decisions are kept (whole years,
    counted from when each was closed, filed or made; the BSA's record retention is five years). Open cases and the
    audit log are never purged."""

    years: int = Field(default=5, ge=5, le=100)


class ComplianceSettings(_Table):
    """``[compliance]``: screening of sign-ups, deposits and withdrawals (cases live beside the journal)."""

    ofac: OfacSettings = OfacSettings()
    kyc: KycSettings = KycSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    filing: FilingSettings = FilingSettings()
    retention: RetentionSettings = RetentionSettings()


# -- the whole file -----------------------------------------------------------------------------------------------


class Problem(NamedTuple):
    """One mistake found across keys: where (a key path), the offending value and what is allowed."""

    loc: tuple[str | int, ...]
    value: object
    message: str


class ExchangeConfig(_Table):
    """One exchange's ``exchange.toml``, validated."""

    brand: Brand
    assets: dict[AssetSymbol, Asset] = {}
    markets: dict[MarketSymbol, Market] = {}
    fees: Fees = Fees()
    backends: Backends = Backends()
    journal: JournalSettings = JournalSettings()
    ledger: LedgerSettings = LedgerSettings()
    plugins: PluginSettings = PluginSettings()
    audit: AuditSettings = AuditSettings()
    custody: CustodySettings | None = None
    wallet: WalletSettings = WalletSettings()
    portal: PortalSettings = PortalSettings()
    compliance: ComplianceSettings = ComplianceSettings()

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_across_keys(self) -> Self:
        problems = list(_fee_schedule_problems(self.fees))
        if self.fees.tiers and self.fees.volume_asset not in self.assets:
            problems.append(
                Problem(
                    ("fees", "volume_asset"),
                    self.fees.volume_asset,
                    "volume tiers need the asset their 30-day volume is counted in: one of "
                    + ", ".join(sorted(self.assets)),
                )
            )
        for symbol, market in self.markets.items():
            problems.extend(_convert_market(symbol, market, self.assets, self.fees)[1])
        if self.custody is not None:
            decimals = {symbol: asset.decimals for symbol, asset in self.assets.items()}
            problems.extend(Problem(*p) for p in custody_problems(self.custody, decimals))
        problems.extend(_kyc_problems(self.compliance.kyc, self.assets))
        if problems:
            raise PydanticCustomError(
                "exchange_config",
                "{summary}",
                {"problems": problems, "summary": "; ".join(_describe(p) for p in problems)},
            )
        return self

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from, if any."""
        return self._source

    @property
    def root(self) -> Path:
        """The directory relative paths are resolved against: the config file's, or the current one.

        The packaged demo config is the exception: its data goes under the current directory, never into the
        installed package.
        """
        if self._source is None or self._source.resolve() == DEMO_CONFIG:
            return Path.cwd()
        return self._source.parent

    def resolve_path(self, path: str | PathLike[str]) -> Path:
        """Resolve a path from the config against :attr:`root`."""
        return self.root / Path(path)

    def journal_path(self) -> Path:
        """Return the command journal's file path."""
        return self.resolve_path(self.journal.path)

    def audit_path(self) -> Path:
        """Return the audit log's file path."""
        return self.resolve_path(self.audit.path)

    def ledger_url(self) -> str:
        """Return the ledger database URL: ``DATABASE_URL`` if set, else ``[ledger] url`` with SQLite paths resolved."""
        url = os.environ.get("DATABASE_URL") or self.ledger.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            return prefix + str(self.resolve_path(url[len(prefix) :]))
        return url

    def plugin_settings(self, name: str) -> Mapping[str, Any]:
        """Return ``[plugins.settings.<name>]``, the settings table for the plugin called ``name`` (or ``{}``)."""
        return self.plugins.settings.get(name, {})

    def engine_assets(self) -> dict[str, AssetSpec]:
        """Return every asset as the engine sees it."""
        return {symbol: AssetSpec(symbol=symbol, decimals=asset.decimals) for symbol, asset in self.assets.items()}

    def engine_markets(self) -> dict[str, MarketSpec]:
        """Return every market in engine integers: ticks, lots, atomic units and fee rates in ppm."""
        specs: dict[str, MarketSpec] = {}
        for symbol, market in self.markets.items():
            spec, problems = _convert_market(symbol, market, self.assets, self.fees)
            if spec is None:  # only reachable for a model built without validation
                raise ConfigError([_describe(p) for p in problems])
            specs[symbol] = spec
        return specs


# -- loading ------------------------------------------------------------------------------------------------------


def default_config_path() -> Path:
    """Return ``./exchange.toml`` if it exists, else the packaged demo configuration."""
    local = Path.cwd() / CONFIG_FILENAME
    return local if local.is_file() else DEMO_CONFIG


def load_config(path: str | PathLike[str]) -> ExchangeConfig:
    """Read and validate an ``exchange.toml``; raise :class:`ConfigError` describing every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    config = parse_config(text, source=str(path), root=path.resolve().parent)
    config._source = path.resolve()
    return config


def parse_config(text: str, *, source: str = "<string>", root: Path | None = None) -> ExchangeConfig:
    """Validate TOML text as an exchange configuration; ``source`` names it in errors.

    ``root`` is the directory that relative paths (such as the brand logo) are checked against.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_syntax_error(source, exc)]) from None
    try:
        return ExchangeConfig.model_validate(data, context={"root": root})
    except ValidationError as exc:
        raise ConfigError([f"{source}: {line}" for line in _validation_lines(exc)]) from None


def _toml_syntax_error(source: str, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = _TOML_POSITION_RE.search(message)
    if match is None:
        return f"{source}: TOML syntax error: {message}"
    line, column = match.groups()
    return f"{source}:{line}:{column}: TOML syntax error: {message[: match.start()]}"


# -- cross-key checks and the engine conversion ---------------------------------------------------------------------


def _fee_schedule_problems(fees: Fees) -> Iterator[Problem]:
    yield from _rebate_problems(("fees",), fees.maker, fees.taker)
    previous: Decimal | None = None
    for index, tier in enumerate(fees.tiers):
        loc: tuple[str | int, ...] = ("fees", "tiers", index)
        if previous is not None and tier.min_volume_30d <= previous:
            yield Problem(
                (*loc, "min_volume_30d"),
                tier.min_volume_30d,
                f"tiers must be listed by increasing min_volume_30d; the tier before starts at "
                f"{format_decimal(previous)}",
            )
        previous = tier.min_volume_30d
        yield from _rebate_problems(loc, tier.maker, tier.taker)
    for account, rates in fees.overrides.items():
        yield from _rebate_problems(("fees", "overrides", str(account)), rates.maker, rates.taker)


def _kyc_problems(kyc: KycSettings, assets: Mapping[str, Asset]) -> Iterator[Problem]:
    for tier, settings in (kyc.tiers or {}).items():
        for asset, limit in settings.daily_withdrawal.items():
            loc: tuple[str | int, ...] = ("compliance", "kyc", "tiers", str(tier), "daily_withdrawal", asset)
            if asset not in assets:
                listed = ", ".join(sorted(assets)) or "none"
                yield Problem(loc, asset, f"a limit for an asset the exchange does not list: one of {listed}")
                continue
            try:
                to_atomic(limit, assets[asset].decimals)
            except MoneyError as exc:
                yield Problem(loc, limit, str(exc))


def _rebate_problems(
    loc: tuple[str | int, ...], maker: Decimal, taker: Decimal, maker_key: str = "maker"
) -> Iterator[Problem]:
    if maker + taker < 0:
        yield Problem(
            (*loc, maker_key),
            maker,
            f"a maker rebate may not exceed the taker fee ({format_decimal(taker)}), "
            "or the exchange pays out on every trade",
        )


def _convert_market(
    symbol: str, market: Market, assets: Mapping[str, Asset], fees: Fees
) -> tuple[MarketSpec | None, list[Problem]]:
    problems: list[Problem] = []
    loc = ("markets", symbol)

    def problem(key: str, value: object, message: str) -> None:
        problems.append(Problem((*loc, key), value, message))

    for key, asset in (("base", market.base), ("quote", market.quote)):
        if asset not in assets:
            known = ", ".join(sorted(assets)) or "none defined"
            problem(key, asset, f"unknown asset; define [assets.{asset}] or use one of: {known}")
    if market.base == market.quote:
        problem("quote", market.quote, "must differ from base")
    if problems:
        return None, problems
    base_decimals = assets[market.base].decimals
    quote_decimals = assets[market.quote].decimals

    base_per_lot = Fraction(market.lot_size) * 10**base_decimals
    if base_per_lot.denominator != 1:
        problem(
            "lot_size",
            market.lot_size,
            f"one lot must be a whole number of {market.base} atomic units: {market.base} has "
            f"{base_decimals} decimals, so lot_size must be a multiple of {_atomic_unit(base_decimals)}",
        )
    quote_per_tick_lot = Fraction(market.tick_size) * Fraction(market.lot_size) * 10**quote_decimals
    if quote_per_tick_lot.denominator != 1 and base_per_lot.denominator == 1:  # a bad lot_size is reported already
        smallest_tick = _as_decimal(Fraction(1, 10**quote_decimals) / Fraction(market.lot_size))
        hint = (
            f"; with this lot_size the tick_size must be a multiple of {format_decimal(smallest_tick)}"
            if smallest_tick is not None
            else "; change tick_size or lot_size"
        )
        problem(
            "tick_size",
            market.tick_size,
            f"tick_size * lot_size must be a whole number of {market.quote} atomic units "
            f"({market.quote} has {quote_decimals} decimals), but {format_decimal(market.tick_size)} * "
            f"{format_decimal(market.lot_size)} = {format_decimal(market.tick_size * market.lot_size)}{hint}",
        )

    limits: dict[str, int] = {}  # limits left out keep the engine's defaults
    for key, qty in (("min_qty", market.min_qty), ("max_qty", market.max_qty)):
        if qty is not None:
            try:
                limits[key] = qty_to_lots(qty, market.lot_size)
            except MoneyError as exc:
                problem(key, qty, str(exc))
    if market.max_qty is not None and market.min_qty is not None and market.max_qty < market.min_qty:
        problem("max_qty", market.max_qty, f"must not be below min_qty ({format_decimal(market.min_qty)})")
    if market.max_price is not None:
        try:
            limits["max_price"] = price_to_ticks(market.max_price, market.tick_size)
        except MoneyError as exc:
            problem("max_price", market.max_price, str(exc))

    min_notional = 0
    try:
        min_notional = to_atomic(market.min_notional, quote_decimals)
    except MoneyError:
        problem(
            "min_notional",
            market.min_notional,
            f"{market.quote} has {quote_decimals} decimals, so min_notional must be a multiple of "
            f"{_atomic_unit(quote_decimals)}",
        )

    maker = market.maker_fee if market.maker_fee is not None else fees.maker
    taker = market.taker_fee if market.taker_fee is not None else fees.taker
    if market.maker_fee is not None or market.taker_fee is not None:
        problems.extend(_rebate_problems(loc, maker, taker, maker_key="maker_fee"))

    if problems:
        return None, problems
    spec = MarketSpec(
        symbol=symbol,
        base=market.base,
        quote=market.quote,
        base_per_lot=int(base_per_lot),
        quote_per_tick_lot=int(quote_per_tick_lot),
        min_notional=min_notional,
        maker_fee_ppm=rate_to_ppm(maker),
        taker_fee_ppm=rate_to_ppm(taker),
        status=MarketStatus[market.status.upper()],
        **limits,
    )
    return spec, []


def _atomic_unit(decimals: int) -> str:
    return format_decimal(from_atomic(1, decimals))


def _as_decimal(value: Fraction) -> Decimal | None:
    """Return ``value`` as an exact decimal, or None if its decimal expansion does not terminate."""
    denominator = value.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        return None
    places = max(twos, fives)
    return from_atomic(value.numerator * 10**places // value.denominator, places)


# -- error messages -----------------------------------------------------------------------------------------------


def format_key_path(loc: Sequence[str | int]) -> str:
    """Write a location as a TOML key path: ``markets."BTC-USDT".tick_size``, ``fees.tiers[1].maker``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = part if _BARE_KEY_RE.fullmatch(part) else json.dumps(part)
        text += f".{key}" if text else key
    return text or "(top level)"


def _describe(problem: Problem) -> str:
    return f"{format_key_path(problem.loc)} = {_toml_value(problem.value)}: {problem.message}"


def _validation_lines(exc: ValidationError) -> Iterator[str]:
    for error in exc.errors():
        if error["type"] == "exchange_config":
            for problem in error["ctx"]["problems"]:
                yield _describe(problem)
            continue
        loc = tuple(error["loc"])
        is_key = bool(loc) and loc[-1] == "[key]"
        if is_key:
            loc = loc[:-1]
        path = format_key_path(loc)
        if error["type"] == "missing":
            yield f"{path}: required key is missing"
        elif error["type"] == "extra_forbidden":
            yield f"{path} = {_toml_value(error['input'])}: {_unknown_key_message(loc)}"
        else:
            message = _message(error["type"], error["msg"], error.get("ctx"), error["input"])
            if is_key:
                yield f'{path}: invalid key "{loc[-1]}": {message}'
            else:
                yield f"{path} = {_toml_value(error['input'])}: {message}"


def _message(kind: str, message: str, ctx: Mapping[str, Any] | None, value: object) -> str:
    if kind == "value_error" and ctx is not None:
        return str(ctx["error"])
    if kind == "int_type" and isinstance(value, str):
        return "must be an integer, written without quotes"
    if kind == "bool_type" and isinstance(value, str):
        return "must be true or false, written without quotes"
    if kind in {"model_type", "dict_type"}:
        return "must be a table"
    if kind == "list_type":
        return "must be an array"
    message = re.sub(r"Decimal\('([^']*)'\)", r"\1", message)  # bounds come as "Decimal('0.1')"
    return re.sub(r"^Input should be ", "must be ", message)


def _unknown_key_message(loc: tuple[str | int, ...]) -> str:
    allowed = _allowed_keys(loc[:-1])
    if not allowed:
        return "unknown key"
    guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f'; did you mean "{guess[0]}"?' if guess else ""
    return f"unknown key (allowed here: {', '.join(allowed)}){hint}"


def _allowed_keys(loc: Sequence[str | int]) -> list[str]:
    annotation: Any = ExchangeConfig
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Decimal):
        text = json.dumps(format_decimal(value)) if value.is_finite() else str(value)
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
