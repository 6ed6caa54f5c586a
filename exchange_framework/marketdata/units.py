"""Display of one market's integers as Binance-style decimal strings: prices, quantities and amounts.

Prices are shown with as many decimal places as the tick size has, quantities and base amounts with the lot
size's places, quote amounts with the quote asset's decimals. Every conversion is exact (integers scaled by a
power of ten, formatted by :mod:`exchange_framework.money`); nothing here uses a float.
"""

from __future__ import annotations

from fractions import Fraction

from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.money import format_atomic


def _places(value: Fraction) -> int:
    """Return the decimal places of a terminating fraction; raise ``ValueError`` if it does not terminate."""
    places = 0
    while value.denominator != 1:
        value *= 10
        places += 1
        if places > 60:
            raise ValueError(f"{value} has no finite decimal expansion")
    return places


class MarketUnits:
    """Formatters for one market, built from its engine spec and its two assets' specs."""

    def __init__(self, spec: MarketSpec, base: AssetSpec, quote: AssetSpec) -> None:
        self.market = spec.symbol
        self.base_decimals = base.decimals
        self.quote_decimals = quote.decimals
        lot_size = Fraction(spec.base_per_lot, 10**base.decimals)
        tick_size = Fraction(spec.quote_per_tick_lot, 10**quote.decimals) / lot_size
        try:
            self.price_places = _places(tick_size)
            self.qty_places = _places(lot_size)
        except ValueError as exc:
            raise ValueError(f"market {spec.symbol}: tick or lot size is not a finite decimal ({exc})") from None
        self._tick_units = int(tick_size * 10**self.price_places)
        self._lot_units = int(lot_size * 10**self.qty_places)
        self._base_scale = 10 ** (base.decimals - self.qty_places)
        self.tick_size = format_atomic(self._tick_units, self.price_places)
        self.lot_size = format_atomic(self._lot_units, self.qty_places)

    def price(self, ticks: int) -> str:
        """Return a price in ticks as a decimal string (``"50000.01"``)."""
        return format_atomic(ticks * self._tick_units, self.price_places)

    def qty(self, lots: int) -> str:
        """Return a quantity in lots as a decimal string in base units."""
        return format_atomic(lots * self._lot_units, self.qty_places)

    def base(self, atomic: int) -> str:
        """Return a base amount in atomic units, with the lot size's places when it lands on them."""
        if atomic % self._base_scale:
            return format_atomic(atomic, self.base_decimals)
        return format_atomic(atomic // self._base_scale, self.qty_places)

    def quote(self, atomic: int) -> str:
        """Return a quote amount in atomic units with the quote asset's decimals."""
        return format_atomic(atomic, self.quote_decimals)

    def average_price(self, quote_atomic: int, base_atomic: int) -> str:
        """Return ``quote / base`` as a price with the quote asset's decimals, rounded half away from zero.

        This is a display value (a weighted average is not on the tick grid); ``"0"`` at the quote's places when
        ``base_atomic`` is 0.
        """
        if base_atomic == 0:
            return format_atomic(0, self.quote_decimals)
        units = _div_round_half_away(quote_atomic * 10**self.base_decimals, base_atomic)
        return format_atomic(units, self.quote_decimals)


def _div_round_half_away(numerator: int, denominator: int) -> int:
    """Integer ``numerator / denominator`` rounded to nearest, halves away from zero."""
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def percent_change(old: int, new: int) -> str:
    """Return ``(new - old) / old`` in percent with 3 decimals as Binance shows it (``"-95.960"``); ``"0.000"`` if
    ``old`` is 0. Rounded half away from zero, integers only."""
    if old == 0:
        return "0.000"
    return format_atomic(_div_round_half_away((new - old) * 100_000, old), 3)
