"""Binance-style symbols for market ids: ``"BTC-USDT"`` is ``"BTCUSDT"`` (``"btcusdt"`` in stream names)."""

from __future__ import annotations

from collections.abc import Iterable


class UnknownSymbolError(KeyError):
    """A symbol names no market of this exchange."""

    def __init__(self, symbol: str, known: Iterable[str]) -> None:
        self.symbol = symbol
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown symbol {symbol!r}: use one of {names}")

    def __str__(self) -> str:
        return str(self.args[0])


def symbol_of(market: str) -> str:
    """Return the Binance symbol of a market id: ``"BTC-USDT"`` -> ``"BTCUSDT"``."""
    return market.replace("-", "").upper()


class SymbolMap:
    """Both directions between market ids and symbols, for one exchange's markets.

    Symbols are matched case-insensitively (stream names use lower case). Two markets that would share a symbol
    (``"AB-C"`` and ``"A-BC"``) are refused, since a client could not tell them apart.
    """

    def __init__(self, markets: Iterable[str]) -> None:
        self._symbol: dict[str, str] = {}
        self._market: dict[str, str] = {}
        for market in markets:
            symbol = symbol_of(market)
            other = self._market.get(symbol)
            if other is not None:
                raise ValueError(f"markets {other!r} and {market!r} both have the symbol {symbol!r}; rename one")
            self._symbol[market] = symbol
            self._market[symbol] = market

    def symbol_of(self, market: str) -> str:
        """Return the symbol of a known market id; raise ``KeyError`` for an unknown one."""
        return self._symbol[market]

    def market_of(self, symbol: str) -> str:
        """Return the market id of ``symbol`` (any case); raise :class:`UnknownSymbolError` naming the known ones."""
        market = self._market.get(symbol.upper())
        if market is None:
            raise UnknownSymbolError(symbol, self._market)
        return market

    def symbols(self) -> list[str]:
        """Return every symbol, sorted."""
        return sorted(self._market)
