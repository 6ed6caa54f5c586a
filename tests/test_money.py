from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_framework.money import (
    MAX_DECIMAL_LENGTH,
    MoneyError,
    OffGridError,
    format_atomic,
    format_decimal,
    from_atomic,
    lots_to_qty,
    parse_decimal,
    ppm_to_rate,
    price_to_ticks,
    qty_to_lots,
    rate_to_ppm,
    ticks_to_price,
    to_atomic,
)

D = Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", D(0)),
        ("12", D(12)),
        ("-0.001", D("-0.001")),
        ("+3.50", D("3.50")),
        ("00012.5", D("12.5")),
        ("0.000000000000000001", D("1E-18")),
        (7, D(7)),
        (D("1.25"), D("1.25")),
    ],
)
def test_parse_decimal_accepts_plain_decimals(text: object, expected: Decimal) -> None:
    assert parse_decimal(text) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " 1",
        "1 ",
        "1.",
        ".5",
        "1e5",
        "1E-3",
        "NaN",
        "nan",
        "inf",
        "-Infinity",
        "1_000",
        "1,5",
        "0x10",
        "+",
        "١٢",  # Arabic-Indic digits: Decimal() would accept them
        "1" * (MAX_DECIMAL_LENGTH + 1),
        D("NaN"),
        D("Infinity"),
        True,
        None,
        [1],
    ],
)
def test_parse_decimal_refuses_everything_else(bad: object) -> None:
    with pytest.raises(MoneyError):
        parse_decimal(bad)


def test_parse_decimal_refuses_floats_and_says_how_to_quote_them() -> None:
    with pytest.raises(MoneyError, match=r'not a float .*quote it: "0.00001"'):
        parse_decimal(1e-05, what="lot_size")
    with pytest.raises(MoneyError, match=r"^lot_size must"):
        parse_decimal(0.5, what="lot_size")


def test_to_atomic_is_exact_and_refuses_extra_places() -> None:
    assert to_atomic(D("1.5"), 8) == 150_000_000
    assert to_atomic(D("0.00000001"), 8) == 1
    assert to_atomic(D("-2"), 0) == -2
    assert to_atomic(D("1E+3"), 2) == 100_000
    assert to_atomic(D("123456789012345678901234567890.123456789012345678"), 18) == int(
        "123456789012345678901234567890123456789012345678"
    )
    with pytest.raises(MoneyError, match="more than 8 decimal places"):
        to_atomic(D("0.000000001"), 8)
    with pytest.raises(MoneyError):
        to_atomic(D(1), -1)


def test_from_atomic_is_exact_beyond_the_default_decimal_precision() -> None:
    units = 10**40 + 1
    assert from_atomic(units, 18) == D("10000000000000000000000.000000000000000001")
    assert from_atomic(1, 30) == D("1E-30")
    assert from_atomic(0, 6) == 0


def test_price_to_ticks_names_the_nearest_valid_prices() -> None:
    assert price_to_ticks(D("100.25"), D("0.05")) == 2005
    with pytest.raises(OffGridError) as info:
        price_to_ticks(D("100.27"), D("0.05"))
    assert info.value.lower == D("100.25")
    assert info.value.upper == D("100.30")
    assert "100.27 is not a multiple of the tick size 0.05" in str(info.value)
    assert "100.25 and 100.3" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_qty_to_lots_names_the_nearest_valid_quantities() -> None:
    assert qty_to_lots(D("0.0003"), D("0.0001")) == 3
    with pytest.raises(OffGridError, match=r"quantity 0.00035 .* lot size 0.0001; nearest valid values are 0.0003 and"):
        qty_to_lots(D("0.00035"), D("0.0001"))
    with pytest.raises(MoneyError, match="must be positive"):
        qty_to_lots(D("1"), D("0"))


def test_rates_convert_to_ppm_exactly() -> None:
    assert rate_to_ppm(D("0.001")) == 1_000
    assert rate_to_ppm(D("-0.0002")) == -200
    assert ppm_to_rate(2_500) == D("0.0025")
    with pytest.raises(MoneyError, match="finer than 1 ppm"):
        rate_to_ppm(D("0.0000005"))


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (D("1E+3"), None, "1000"),
        (D("1E-10"), None, "0.0000000001"),
        (D("1.500"), None, "1.5"),
        (D("0.000"), None, "0"),
        (D("-2.50"), None, "-2.5"),
        (D("1.5"), 4, "1.5000"),
        (D("12"), 0, "12"),
    ],
)
def test_format_decimal_never_uses_an_exponent(value: Decimal, places: int | None, text: str) -> None:
    assert format_decimal(value, places) == text


def test_format_decimal_with_places_never_rounds() -> None:
    with pytest.raises(MoneyError):
        format_decimal(D("1.25"), 1)


def test_format_atomic_for_display() -> None:
    assert format_atomic(10_000_000, 8) == "0.10000000"
    assert format_atomic(10_000_000, 8, trim=True) == "0.1"
    assert format_atomic(-1, 6) == "-0.000001"


# -- properties ---------------------------------------------------------------------------------------------------

decimals_st = st.integers(min_value=0, max_value=30)
units_st = st.integers(min_value=-(10**40), max_value=10**40)
# Step sizes as a person writes them: 1, 5, 25 or 1 times a power of ten.
steps_st = st.builds(
    lambda mantissa, exponent: D(mantissa).scaleb(exponent),
    st.sampled_from([1, 2, 5, 25]),
    st.integers(min_value=-18, max_value=3),
)


@given(units=units_st, decimals=decimals_st)
def test_atomic_round_trip(units: int, decimals: int) -> None:
    assert to_atomic(from_atomic(units, decimals), decimals) == units


@given(amount=st.decimals(allow_nan=False, allow_infinity=False, places=8), decimals=st.integers(8, 30))
def test_decimal_round_trip_through_atomic_units(amount: Decimal, decimals: int) -> None:
    assert from_atomic(to_atomic(amount, decimals), decimals) == amount


@given(units=units_st, decimals=decimals_st)
def test_formatted_amounts_parse_back(units: int, decimals: int) -> None:
    amount = from_atomic(units, decimals)
    assert parse_decimal(format_decimal(amount)) == amount
    assert parse_decimal(format_atomic(units, decimals)) == amount


@given(count=st.integers(min_value=-(10**15), max_value=10**15), step=steps_st)
def test_ticks_and_lots_round_trip(count: int, step: Decimal) -> None:
    assert price_to_ticks(ticks_to_price(count, step), step) == count
    assert qty_to_lots(lots_to_qty(count, step), step) == count


@given(
    count=st.integers(min_value=-(10**12), max_value=10**12),
    step=steps_st,
    thousandths=st.integers(min_value=1, max_value=999),
)
def test_off_grid_values_name_their_neighbours_on_the_grid(count: int, step: Decimal, thousandths: int) -> None:
    value = ticks_to_price(count, step) + step * D(thousandths).scaleb(-3)
    with pytest.raises(OffGridError) as info:
        price_to_ticks(value, step)
    assert info.value.lower < value < info.value.upper
    assert price_to_ticks(info.value.lower, step) == count
    assert price_to_ticks(info.value.upper, step) == count + 1
