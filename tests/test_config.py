from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pydantic
import pytest

from exchange_framework.config import (
    DEMO_CONFIG,
    ConfigError,
    ExchangeConfig,
    default_config_path,
    load_config,
    parse_config,
)
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.types import MarketStatus
from tests.conftest import MINIMAL_CONFIG


def test_demo_config_loads(demo_config: ExchangeConfig) -> None:
    assert demo_config.brand.name == "Demo Exchange"
    assert demo_config.source == DEMO_CONFIG
    assert demo_config.fees.maker == Decimal("0.001")
    assert [tier.min_volume_30d for tier in demo_config.fees.tiers] == [Decimal(100_000), Decimal(1_000_000)]


def test_demo_config_converts_to_engine_integers(demo_config: ExchangeConfig) -> None:
    assert demo_config.engine_assets() == {
        "BTC": AssetSpec("BTC", 8),
        "ETH": AssetSpec("ETH", 18),
        "USDT": AssetSpec("USDT", 6),
    }
    markets = demo_config.engine_markets()
    assert markets["BTC-USDT"] == MarketSpec(
        symbol="BTC-USDT",
        base="BTC",
        quote="USDT",
        base_per_lot=1_000,  # 0.00001 BTC in satoshis
        quote_per_tick_lot=1,  # 0.1 USDT x 0.00001 BTC = 0.000001 USDT
        min_qty=1,
        max_qty=100_000_000,  # 1000 BTC in lots
        max_price=100_000_000,  # 10,000,000 USDT in ticks
        min_notional=1_000_000,  # 1 USDT
        maker_fee_ppm=1_000,
        taker_fee_ppm=2_000,
        status=MarketStatus.OPEN,
    )
    eth = markets["ETH-USDT"]
    assert (eth.base_per_lot, eth.quote_per_tick_lot) == (10**14, 1)
    assert (eth.min_qty, eth.max_qty, eth.max_price) == (1, 100_000_000, 100_000_000)


def test_engine_notional_matches_the_decimal_arithmetic(demo_config: ExchangeConfig) -> None:
    # 0.5 BTC at 65,432.1 USDT costs 32,716.05 USDT.
    spec = demo_config.engine_markets()["BTC-USDT"]
    price_ticks = 654_321  # 65,432.1 / 0.1
    qty_lots = 50_000  # 0.5 / 0.00001
    assert price_ticks * qty_lots * spec.quote_per_tick_lot == 32_716_050_000
    assert qty_lots * spec.base_per_lot == 50_000_000


def test_defaults_fill_in_what_is_left_out(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config())
    spec = config.engine_markets()["BTC-USDT"]
    assert (spec.min_qty, spec.max_qty, spec.max_price, spec.min_notional) == (1, 10**12, 10**15, 0)
    assert (spec.maker_fee_ppm, spec.taker_fee_ppm) == (0, 0)
    assert config.backends.journal == "file"
    assert config.brand.colours.primary.startswith("#")


def test_market_fees_override_the_schedule(write_config: Callable[..., Path]) -> None:
    config = load_config(
        write_config(
            """
            maker_fee = "-0.0001"
            taker_fee = "0.0005"
            status = "halted"
            [fees]
            maker = "0.001"
            taker = "0.002"
            [fees.overrides."1001"]
            maker = "0"
            taker = "0.0001"
            """
        )
    )
    spec = config.engine_markets()["BTC-USDT"]
    assert (spec.maker_fee_ppm, spec.taker_fee_ppm, spec.status) == (-100, 500, MarketStatus.HALTED)
    assert config.fees.overrides[1001].taker == Decimal("0.0001")


def test_relative_paths_resolve_against_the_config_directory(write_config: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "logo.svg").write_text("<svg/>")
    text = MINIMAL_CONFIG.replace('name = "Test Exchange"', 'name = "Test Exchange"\nlogo = "logo.svg"')
    config = load_config(write_config(text=text + '[journal]\npath = "data/j.journal"\n'))
    assert config.resolve_path(config.brand.logo or "") == tmp_path / "logo.svg"
    assert config.journal_path() == tmp_path / "data" / "j.journal"


def test_plugin_settings_are_looked_up_by_plugin_name(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config('[plugins.settings.onfido]\napi_url = "http://localhost:9000"\n'))
    assert config.plugin_settings("onfido") == {"api_url": "http://localhost:9000"}
    assert config.plugin_settings("absent") == {}


def test_config_is_immutable(demo_config: ExchangeConfig) -> None:
    with pytest.raises(pydantic.ValidationError):
        demo_config.brand.name = "Other"  # type: ignore[misc]


def test_default_config_path_prefers_a_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_config_path() == DEMO_CONFIG
    (tmp_path / "exchange.toml").write_text(MINIMAL_CONFIG)
    assert default_config_path() == tmp_path / "exchange.toml"


# -- mistakes -----------------------------------------------------------------------------------------------------

MARKET = 'markets."BTC-USDT"'

# (id, change to the minimal config, text every error line must contain)
# A change is either TOML appended to the end (inside the BTC-USDT market table unless it opens a table), or a
# (old, new) replacement.
BAD_CONFIGS: list[tuple[str, str | tuple[str, str], list[str]]] = [
    (
        "unknown key",
        'min_qyt = "1"\n',
        [f'{MARKET}.min_qyt = "1"', "unknown key", 'did you mean "min_qty"'],
    ),
    ("unknown table", "[brnd]\nname = 1\n", ['brnd = {"name": 1}', "unknown key", 'did you mean "brand"']),
    (
        "float value",
        ('tick_size = "0.01"', "tick_size = 0.01"),
        [f"{MARKET}.tick_size = 0.01", "not a float", 'quote it: "0.01"'],
    ),
    (
        "float fee rate",
        "[fees]\nmaker = 0.001\n",
        ["fees.maker = 0.001", "not a float", 'quote it: "0.001"'],
    ),
    (
        "tick x lot below one quote atomic unit",  # the classic 0.01 x 0.00001 with a 6-decimal quote
        ('lot_size = "0.0001"', 'lot_size = "0.00001"'),
        [
            f'{MARKET}.tick_size = "0.01"',
            "whole number of USDT atomic units",
            "0.01 * 0.00001 = 0.0000001",
            "tick_size must be a multiple of 0.1",
        ],
    ),
    (
        "lot finer than the base atomic unit",
        ('lot_size = "0.0001"', 'lot_size = "0.000000001"'),
        [f'{MARKET}.lot_size = "0.000000001"', "BTC has 8 decimals", "multiple of 0.00000001"],
    ),
    (
        "unknown base asset",
        ('base = "BTC"', 'base = "XBT"'),
        [f'{MARKET}.base = "XBT"', "unknown asset", "[assets.XBT]", "BTC, USDT"],
    ),
    ("base equals quote", ('base = "BTC"', 'base = "USDT"'), [f'{MARKET}.quote = "USDT"', "must differ from base"]),
    (
        "bad colour",
        '[brand.colours]\nprimary = "blue"\n',
        ['brand.colours.primary = "blue"', "#rrggbb"],
    ),
    (
        "negative decimals",
        ("decimals = 8", "decimals = -1"),
        ["assets.BTC.decimals = -1", "greater than or equal to 0"],
    ),
    ("too many decimals", ("decimals = 8", "decimals = 31"), ["assets.BTC.decimals = 31", "less than or equal to 30"]),
    ("quoted integer", ("decimals = 8", 'decimals = "8"'), ['assets.BTC.decimals = "8"', "without quotes"]),
    (
        "bad status",
        'status = "paused"\n',
        [f'{MARKET}.status = "paused"', "'open', 'halted' or 'closed'"],
    ),
    (
        "fee finer than 1 ppm",
        'taker_fee = "0.0000001"\n',
        [f'{MARKET}.taker_fee = "0.0000001"', "finer than 1 ppm"],
    ),
    ("fee too high", '[fees]\ntaker = "0.5"\n', ['fees.taker = "0.5"', "less than or equal to 0.1"]),
    ("rebate too large", '[fees]\nmaker = "-0.02"\n', ['fees.maker = "-0.02"', "greater than or equal to -0.01"]),
    (
        "rebate above the taker fee",
        '[fees]\nmaker = "-0.002"\ntaker = "0.001"\n',
        ['fees.maker = "-0.002"', "rebate may not exceed the taker fee (0.001)"],
    ),
    (
        "tiers out of order",
        '[fees]\nvolume_asset = "USDT"\n[[fees.tiers]]\nmin_volume_30d = "500"\nmaker = "0"\ntaker = "0.001"\n'
        '[[fees.tiers]]\nmin_volume_30d = "100"\nmaker = "0"\ntaker = "0.001"\n',
        ['fees.tiers[1].min_volume_30d = "100"', "increasing min_volume_30d", "starts at 500"],
    ),
    (
        "tiers without the asset their volume is counted in",
        '[[fees.tiers]]\nmin_volume_30d = "500"\nmaker = "0"\ntaker = "0.001"\n',
        ["fees.volume_asset = null", "volume tiers need the asset", "BTC, USDT"],
    ),
    (
        "override for a non-numeric account",
        '[fees.overrides.alice]\nmaker = "0"\ntaker = "0"\n',
        ["fees.overrides.alice", 'invalid key "alice"', "account number"],
    ),
    (
        "min_qty off the lot grid",
        'min_qty = "0.00015"\n',
        [f'{MARKET}.min_qty = "0.00015"', "not a multiple of the lot size 0.0001", "0.0001 and 0.0002"],
    ),
    (
        "max_price off the tick grid",
        'max_price = "100.005"\n',
        [f'{MARKET}.max_price = "100.005"', "tick size 0.01", "100 and 100.01"],
    ),
    (
        "max_qty below min_qty",
        'min_qty = "2"\nmax_qty = "1"\n',
        [f'{MARKET}.max_qty = "1"', "must not be below min_qty (2)"],
    ),
    (
        "min_notional finer than the quote unit",
        'min_notional = "0.0000001"\n',
        [f'{MARKET}.min_notional = "0.0000001"', "USDT has 6 decimals"],
    ),
    ("zero tick", ('tick_size = "0.01"', 'tick_size = "0"'), [f'{MARKET}.tick_size = "0"', "greater than 0"]),
    ("exponent", ('tick_size = "0.01"', 'tick_size = "1e-2"'), [f'{MARKET}.tick_size = "1e-2"', "no exponent"]),
    ("NaN", ('tick_size = "0.01"', 'tick_size = "NaN"'), [f'{MARKET}.tick_size = "NaN"', "decimal number"]),
    ("lower-case asset", "[assets.eth]\ndecimals = 18\n", ['assets.eth: invalid key "eth"', "upper-case"]),
    ("missing key", ('tick_size = "0.01"\n', ""), [f"{MARKET}.tick_size: required key is missing"]),
    ("missing brand", ('[brand]\nname = "Test Exchange"\n', ""), ["brand: required key is missing"]),
    (
        "table expected",
        ('[brand]\nname = "Test Exchange"\n', 'brand = "Test"\n'),
        ['brand = "Test"', "must be a table"],
    ),
    (
        "logo not found",
        ('name = "Test Exchange"', 'name = "T"\nlogo = "nope.png"'),
        ['brand.logo = "nope.png"', "not found"],
    ),
    (
        "bad plugin module name",
        '[plugins]\nmodules = ["my-plugin"]\n',
        ['plugins.modules[0] = "my-plugin"', "dotted module name"],
    ),
    ("bad backend name", '[backends]\nledger = "Postgres SQL"\n', ['backends.ledger = "Postgres SQL"', "lower-case"]),
    ("boolean as text", '[journal]\nfsync = "yes"\n', ['journal.fsync = "yes"', "true or false"]),
]


def _apply(change: str | tuple[str, str]) -> str:
    if isinstance(change, str):
        return MINIMAL_CONFIG + change
    old, new = change
    assert old in MINIMAL_CONFIG
    return MINIMAL_CONFIG.replace(old, new, 1)


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_every_mistake_names_the_file_key_and_value(
    write_config: Callable[..., Path], change: str | tuple[str, str], expected: list[str]
) -> None:
    path = write_config(text=_apply(change))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = info.value.lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: ")
    for text in expected:
        assert text in lines[0]


def test_toml_syntax_errors_give_line_and_column(write_config: Callable[..., Path]) -> None:
    path = write_config("tick_size = \n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:15:13: TOML syntax error: ")


def test_each_problem_gets_its_own_line(write_config: Callable[..., Path]) -> None:
    path = write_config('status = "paused"\n[assets.ETH]\ndecimals = -1\n[brand.colours]\naccent = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert {line.split(" = ")[0].split(": ", 1)[1] for line in lines} == {
        'markets."BTC-USDT".status',
        "assets.ETH.decimals",
        "brand.colours.accent",
    }


def test_several_market_problems_are_all_reported(write_config: Callable[..., Path]) -> None:
    path = write_config('min_qty = "0.00015"\nmax_price = "1.001"\nmin_notional = "0.0000001"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.lines) == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_config(tmp_path / "nope.toml")


def test_parse_config_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^inline: brand: required key is missing$"):
        parse_config("", source="inline")


def test_validating_a_model_directly_runs_the_same_checks() -> None:
    data = {
        "brand": {"name": "X"},
        "assets": {"BTC": {"decimals": 8}, "USDT": {"decimals": 6}},
        "markets": {
            "BTC-USDT": {"base": "BTC", "quote": "USDT", "tick_size": "0.01", "lot_size": "0.00001"},
        },
    }
    with pytest.raises(pydantic.ValidationError, match="whole number of USDT atomic units"):
        ExchangeConfig.model_validate(data)
