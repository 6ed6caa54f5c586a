"""Decimal at the edge: parse, convert to integer units, and format back for display.

Inside the kernel an amount is an ``int`` in its asset's atomic unit, a price an ``int`` in ticks and a quantity an
``int`` in lots. This module is the only place where text or :class:`~decimal.Decimal` values become those integers
and back again. Every conversion is exact: a value that does not land on the grid raises an error that says what
the nearest valid values are; nothing is rounded silently.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal
from fractions import Fraction

__all__ = [
    "MAX_DECIMAL_LENGTH",
    "PPM",
    "MoneyError",
    "OffGridError",
    "format_atomic",
    "format_decimal",
    "from_atomic",
    "lots_to_qty",
    "parse_decimal",
    "ppm_to_rate",
    "price_to_ticks",
    "qty_to_lots",
    "rate_to_ppm",
    "ticks_to_price",
    "to_atomic",
]

PPM = 1_000_000  # rates are integers in millionths: 0.1 % == 1_000 ppm
MAX_DECIMAL_LENGTH = 100  # characters; longer input is refused before Decimal ever sees it

# Plain positional notation only: an optional sign, digits, and optionally a point followed by digits.
# No exponent ("1e5"), no NaN or infinity, no underscores, no surrounding blanks, no bare ".5" or "5.".
_DECIMAL_RE = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?", re.ASCII)


class MoneyError(ValueError):
    """A money value could not be parsed or converted exactly."""


class OffGridError(MoneyError):
    """A price or quantity is not a whole multiple of its tick or lot size.

    ``lower`` and ``upper`` are the nearest valid values below and above, as decimals.
    """

    def __init__(self, message: str, *, lower: Decimal, upper: Decimal) -> None:
        super().__init__(message)
        self.lower = lower
        self.upper = upper


def parse_decimal(value: object, *, what: str = "value") -> Decimal:
    """Parse a money value strictly into a finite :class:`~decimal.Decimal`.

    Accept a string in plain positional notation (``"12"``, ``"-0.001"``), an ``int`` or a finite ``Decimal``.
    Refuse floats (binary floats cannot hold most decimal fractions), booleans, exponents, NaN and infinities,
    naming ``what`` in the error.
    """
    if isinstance(value, bool):
        raise MoneyError(f"{what} must be a decimal number, not a boolean")
    if isinstance(value, float):
        raise MoneyError(
            f"{what} must be a decimal string, not a float (floats are inexact); "
            f'quote it: "{_float_as_plain_text(value)}"'
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise MoneyError(f"{what} must be a finite decimal number, not {value}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_DECIMAL_LENGTH:
            raise MoneyError(f"{what} is too long ({len(value)} characters, at most {MAX_DECIMAL_LENGTH})")
        if not _DECIMAL_RE.fullmatch(value):
            raise MoneyError(
                f"{what} must be a decimal number written out in digits such as "
                f'"12.5" or "-0.001" (no exponent, blanks or separators), not "{value}"'
            )
        return Decimal(value)
    raise MoneyError(f"{what} must be a decimal string, not {type(value).__name__}")


def to_atomic(amount: Decimal, decimals: int) -> int:
    """Convert an amount in whole units to an integer count of atomic units (``10 ** -decimals``).

    Raise :class:`MoneyError` if ``amount`` has more decimal places than the asset allows.
    """
    _check_decimals(decimals)
    scale: int = 10**decimals
    units = Fraction(_finite(amount)) * scale
    if units.denominator != 1:
        raise MoneyError(f"{format_decimal(amount)} has more than {decimals} decimal places")
    return units.numerator


def from_atomic(units: int, decimals: int) -> Decimal:
    """Convert an integer count of atomic units to an exact decimal amount in whole units."""
    _check_decimals(decimals)
    sign, digits, exponent = Decimal(units).as_tuple()
    assert isinstance(exponent, int)  # Decimal(int) is always finite
    return Decimal((sign, digits, exponent - decimals))


def price_to_ticks(price: Decimal, tick_size: Decimal) -> int:
    """Convert a price to an integer number of ticks.

    Raise :class:`OffGridError` naming the nearest valid prices if ``price`` is not a multiple of ``tick_size``.
    """
    return _to_steps(price, tick_size, noun="price", step_name="tick size")


def qty_to_lots(qty: Decimal, lot_size: Decimal) -> int:
    """Convert a quantity to an integer number of lots.

    Raise :class:`OffGridError` naming the nearest valid quantities if ``qty`` is not a multiple of ``lot_size``.
    """
    return _to_steps(qty, lot_size, noun="quantity", step_name="lot size")


def ticks_to_price(ticks: int, tick_size: Decimal) -> Decimal:
    """Convert an integer number of ticks back to a decimal price."""
    return _exact_multiply(_finite(tick_size), ticks)


def lots_to_qty(lots: int, lot_size: Decimal) -> Decimal:
    """Convert an integer number of lots back to a decimal quantity."""
    return _exact_multiply(_finite(lot_size), lots)


def rate_to_ppm(rate: Decimal) -> int:
    """Convert a rate such as ``Decimal("0.001")`` to integer millionths (``1_000``).

    Raise :class:`MoneyError` if the rate is finer than one millionth.
    """
    ppm = Fraction(_finite(rate)) * PPM
    if ppm.denominator != 1:
        raise MoneyError(f"{format_decimal(rate)} is finer than 1 ppm (0.000001); use at most 6 decimal places")
    return ppm.numerator


def ppm_to_rate(ppm: int) -> Decimal:
    """Convert integer millionths back to a decimal rate."""
    return from_atomic(ppm, 6)


def format_decimal(value: Decimal, places: int | None = None) -> str:
    """Format a decimal for display in plain notation, never with an exponent.

    With ``places``, show exactly that many decimal places (the value must already fit: this never rounds);
    without, drop trailing zeros (``"1.50"`` becomes ``"1.5"``, ``"100"`` stays ``"100"``).
    """
    value = _finite(value)
    if places is None:
        if value == 0:
            return "0"
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    if places < 0:
        raise MoneyError(f"places must not be negative, not {places}")
    return format(from_atomic(to_atomic(value, places), places), "f")


def format_atomic(units: int, decimals: int, *, trim: bool = False) -> str:
    """Format an integer of atomic units as a decimal string in whole units.

    Show all ``decimals`` places (``"0.10000000"``) unless ``trim`` asks for trailing zeros to be dropped.
    """
    amount = from_atomic(units, decimals)
    return format_decimal(amount) if trim else format(amount, "f")


def _to_steps(value: Decimal, step: Decimal, *, noun: str, step_name: str) -> int:
    value = _finite(value)
    step = _finite(step)
    if step <= 0:
        raise MoneyError(f"{step_name} must be positive, not {format_decimal(step)}")
    # Exact integer arithmetic on the decimal digits (much cheaper than Fraction on the API's hot path):
    # value / step = (v * 10**ve) / (s * 10**se); scale both to the smaller exponent and divide.
    v_sign, v_digits, v_exp = value.as_tuple()
    _, s_digits, s_exp = step.as_tuple()
    assert isinstance(v_exp, int) and isinstance(s_exp, int)  # both finite
    low = min(v_exp, s_exp)
    v_int = int("".join(map(str, v_digits)) or "0") * 10 ** (v_exp - low)
    s_int = int("".join(map(str, s_digits))) * 10 ** (s_exp - low)
    steps, remainder = divmod(-v_int if v_sign else v_int, s_int)
    if not remainder:
        return int(steps)
    ratio = Fraction(value) / Fraction(step)
    below = ratio.numerator // ratio.denominator
    lower = _exact_multiply(step, below)
    upper = _exact_multiply(step, below + 1)
    raise OffGridError(
        f"{noun} {format_decimal(value)} is not a multiple of the {step_name} {format_decimal(step)}; "
        f"nearest valid values are {format_decimal(lower)} and {format_decimal(upper)}",
        lower=lower,
        upper=upper,
    )


def _exact_multiply(step: Decimal, count: int) -> Decimal:
    # Multiplication has a finite exact result; allow as many digits as it needs and trap anything inexact.
    with decimal.localcontext() as ctx:
        ctx.prec = decimal.MAX_PREC
        ctx.Emax = decimal.MAX_EMAX
        ctx.Emin = decimal.MIN_EMIN
        ctx.traps[decimal.Inexact] = True
        return step * count


def _finite(value: Decimal) -> Decimal:
    if not isinstance(value, Decimal):
        raise MoneyError(f"expected a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise MoneyError(f"expected a finite decimal, not {value}")
    return value


def _check_decimals(decimals: int) -> None:
    if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0:
        raise MoneyError(f"decimals must be a non-negative integer, not {decimals!r}")


def _float_as_plain_text(value: float) -> str:
    # repr() gives the shortest text that round-trips ("1e-05"); show it positionally ("0.00001").
    try:
        return format_decimal(Decimal(repr(value)))
    except (MoneyError, decimal.InvalidOperation):
        return repr(value)
