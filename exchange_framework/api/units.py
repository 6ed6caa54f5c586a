"""Between the engine's integers and the API's decimal strings, per market: ticks, lots and atomic units."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from exchange_framework.api.errors import BAD_SYMBOL, FILTER_FAILURE, ApiError
from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.market import MarketSpec
from exchange_framework.money import (
    OffGridError,
    format_decimal,
    from_atomic,
    lots_to_qty,
    price_to_ticks,
    qty_to_lots,
    ticks_to_price,
    to_atomic,
)

__all__ = ["MarketUnits", "Units", "binance_symbol", "places_of"]

MIN_PLACES = 8  # Binance prints prices and quantities with 8 decimals; finer steps get as many as they need


def binance_symbol(market: str) -> str:
    """The Binance-style symbol of a market id: ``BTC-USDT`` -> ``BTCUSDT``."""
    return market.replace("-", "").replace("/", "").upper()


def places_of(step: Decimal) -> int:
    """How many decimal places a step size such as ``0.001`` has."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def fmt(value: Decimal, places: int) -> str:
    """A decimal as Binance writes it: fixed ``places`` (at least 8) decimal places."""
    return format_decimal(value, max(MIN_PLACES, places, places_of(value) if value else 0))


@dataclass(frozen=True)
class MarketUnits:
    """One market's conversions."""

    market: str
    symbol: str
    spec: MarketSpec
    tick_size: Decimal
    lot_size: Decimal
    base_decimals: int
    quote_decimals: int

    def price(self, ticks: int) -> str:
        """Ticks as a decimal price string."""
        return fmt(ticks_to_price(ticks, self.tick_size), places_of(self.tick_size))

    def qty(self, lots: int) -> str:
        """Lots as a decimal base quantity string."""
        return fmt(lots_to_qty(lots, self.lot_size), places_of(self.lot_size))

    def quote(self, atomic: int) -> str:
        """Quote atomic units as a decimal string."""
        return fmt(from_atomic(atomic, self.quote_decimals), self.quote_decimals)

    def base(self, atomic: int) -> str:
        """Base atomic units as a decimal string."""
        return fmt(from_atomic(atomic, self.base_decimals), self.base_decimals)

    def to_ticks(self, price: Decimal, name: str = "price") -> int:
        """A decimal price in ticks; off the tick grid is Binance's PRICE_FILTER failure."""
        try:
            return price_to_ticks(price, self.tick_size)
        except OffGridError as exc:
            raise ApiError(FILTER_FAILURE, f"Filter failure: PRICE_FILTER ({name}: {exc})") from None

    def to_lots(self, qty: Decimal, name: str = "quantity") -> int:
        """A decimal quantity in lots; off the lot grid is Binance's LOT_SIZE failure."""
        try:
            return qty_to_lots(qty, self.lot_size)
        except OffGridError as exc:
            raise ApiError(FILTER_FAILURE, f"Filter failure: LOT_SIZE ({name}: {exc})") from None

    def to_quote_atomic(self, amount: Decimal, name: str = "quoteOrderQty") -> int:
        """A decimal quote amount in atomic units."""
        try:
            return to_atomic(amount, self.quote_decimals)
        except ValueError as exc:
            raise ApiError(FILTER_FAILURE, f"Filter failure: NOTIONAL ({name}: {exc})") from None


class Units:
    """Every market's conversions, found by Binance symbol (any case) or by market id."""

    def __init__(self, config: ExchangeConfig) -> None:
        specs = config.engine_markets()
        assets = config.engine_assets()
        self.by_market: dict[str, MarketUnits] = {}
        self.by_symbol: dict[str, MarketUnits] = {}
        self.asset_decimals = {symbol: a.decimals for symbol, a in assets.items()}
        for market, spec in specs.items():
            settings = config.markets[market]
            units = MarketUnits(
                market=market,
                symbol=binance_symbol(market),
                spec=spec,
                tick_size=settings.tick_size,
                lot_size=settings.lot_size,
                base_decimals=assets[spec.base].decimals,
                quote_decimals=assets[spec.quote].decimals,
            )
            self.by_market[market] = units
            self.by_symbol[units.symbol] = units

    def symbol(self, symbol: str) -> MarketUnits:
        """The market of a Binance symbol; an unknown one is Binance's -1121."""
        units = self.by_symbol.get(symbol.upper()) or self.by_market.get(symbol)
        if units is None:
            raise ApiError(BAD_SYMBOL, f"Invalid symbol '{symbol}': use one of {', '.join(sorted(self.by_symbol))}.")
        return units

    def amount(self, asset: str, atomic: int) -> str:
        """Atomic units of ``asset`` as a decimal string."""
        decimals = self.asset_decimals[asset]
        return fmt(from_atomic(atomic, decimals), decimals)
