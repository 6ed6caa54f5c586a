"""Binance spot API payloads (REST ``/api/v3/...`` and WebSocket streams) from market data.

Field names and shapes follow Binance's published spot API documentation: prices and quantities are decimal
strings, times integer milliseconds. The REST functions return JSON-ready dicts and lists; the stream functions
return the event dict, and :func:`encode` / :func:`combined` turn payloads into the bytes a WebSocket sends.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from exchange_framework.marketdata.intervals import check_interval, close_time
from exchange_framework.marketdata.records import (
    AggTrade,
    BookTicker,
    BookUpdate,
    DepthSnapshot,
    Kline,
    Ticker24h,
    TradeRecord,
)
from exchange_framework.marketdata.state import MarketData
from exchange_framework.marketdata.units import MarketUnits, percent_change
from exchange_framework.types import MarketStatus

Json = dict[str, Any]

_json = msgspec.json.Encoder()


def encode(payload: object) -> bytes:
    """Encode a payload as compact JSON bytes."""
    return _json.encode(payload)


def combined(stream: str, data: bytes) -> bytes:
    """Wrap an encoded stream payload for a combined stream: ``{"stream":"<name>","data":<payload>}``."""
    return b'{"stream":' + _json.encode(stream) + b',"data":' + data + b"}"


# -- REST -------------------------------------------------------------------------------------------------------


def depth(data: MarketData, snapshot: DepthSnapshot) -> Json:
    """``GET /api/v3/depth``: ``{"lastUpdateId", "bids": [[price, qty], ...], "asks": [...]}``."""
    units = data.units(snapshot.market)
    return {
        "lastUpdateId": snapshot.last_update_id,
        "bids": _levels(units, snapshot.bids),
        "asks": _levels(units, snapshot.asks),
    }


def trade(data: MarketData, record: TradeRecord) -> Json:
    """One row of ``GET /api/v3/trades`` (and ``historicalTrades``)."""
    units = data.units(record.market)
    return {
        "id": record.trade_id,
        "price": units.price(record.price),
        "qty": units.qty(record.qty),
        "quoteQty": units.quote(record.quote_amount),
        "time": record.time_ms,
        "isBuyerMaker": record.buyer_is_maker,
        "isBestMatch": True,
    }


def trades(data: MarketData, records: list[TradeRecord]) -> list[Json]:
    """``GET /api/v3/trades``: oldest first."""
    return [trade(data, record) for record in records]


def agg_trade(data: MarketData, agg: AggTrade) -> Json:
    """One row of ``GET /api/v3/aggTrades``."""
    units = data.units(agg.market)
    return {
        "a": agg.agg_id,
        "p": units.price(agg.price),
        "q": units.qty(agg.qty),
        "f": agg.first_trade_id,
        "l": agg.last_trade_id,
        "T": agg.time_ms,
        "m": agg.buyer_is_maker,
        "M": True,
    }


def agg_trades(data: MarketData, aggs: list[AggTrade]) -> list[Json]:
    """``GET /api/v3/aggTrades``: oldest first."""
    return [agg_trade(data, agg) for agg in aggs]


def kline_row(units: MarketUnits, interval: str, kline: Kline) -> list[Any]:
    """One row of ``GET /api/v3/klines``: open time, OHLC, volume, close time, quote volume, count, taker-buy
    base and quote volumes, and the unused ``"0"``."""
    return [
        kline.open_time,
        units.price(kline.open),
        units.price(kline.high),
        units.price(kline.low),
        units.price(kline.close),
        units.base(kline.volume),
        close_time(interval, kline.open_time),
        units.quote(kline.quote_volume),
        kline.count,
        units.base(kline.taker_buy_volume),
        units.quote(kline.taker_buy_quote_volume),
        "0",
    ]


def klines(data: MarketData, market: str, interval: str, rows: list[Kline]) -> list[list[Any]]:
    """``GET /api/v3/klines``: array rows, oldest first."""
    units = data.units(market)
    interval = check_interval(interval)
    return [kline_row(units, interval, kline) for kline in rows]


def ticker_24h(data: MarketData, ticker: Ticker24h) -> Json:
    """``GET /api/v3/ticker/24hr`` (the ``FULL`` type)."""
    units = data.units(ticker.market)
    return {
        "symbol": data.symbols.symbol_of(ticker.market),
        "priceChange": units.price(ticker.last - ticker.open),
        "priceChangePercent": percent_change(ticker.open, ticker.last),
        "weightedAvgPrice": units.average_price(ticker.quote_volume, ticker.volume),
        "prevClosePrice": units.price(ticker.prev_close),
        "lastPrice": units.price(ticker.last),
        "lastQty": units.qty(ticker.last_qty),
        "bidPrice": units.price(ticker.bid_price),
        "bidQty": units.qty(ticker.bid_qty),
        "askPrice": units.price(ticker.ask_price),
        "askQty": units.qty(ticker.ask_qty),
        "openPrice": units.price(ticker.open),
        "highPrice": units.price(ticker.high),
        "lowPrice": units.price(ticker.low),
        "volume": units.base(ticker.volume),
        "quoteVolume": units.quote(ticker.quote_volume),
        "openTime": ticker.open_time,
        "closeTime": ticker.close_time,
        "firstId": ticker.first_trade_id,
        "lastId": ticker.last_trade_id,
        "count": ticker.count,
    }


def ticker_price(data: MarketData, market: str) -> Json:
    """``GET /api/v3/ticker/price``: the last trade's price (``"0"`` at the tick's places if none yet)."""
    price = data.last_price(market)
    return {"symbol": data.symbols.symbol_of(market), "price": data.units(market).price(price or 0)}


def book_ticker(data: MarketData, ticker: BookTicker) -> Json:
    """``GET /api/v3/ticker/bookTicker``: best bid and ask (zeros for an empty side)."""
    units = data.units(ticker.market)
    return {
        "symbol": data.symbols.symbol_of(ticker.market),
        "bidPrice": units.price(ticker.bid_price),
        "bidQty": units.qty(ticker.bid_qty),
        "askPrice": units.price(ticker.ask_price),
        "askQty": units.qty(ticker.ask_qty),
    }


def symbol_status(data: MarketData, market: str) -> str:
    """The market's status as ``/api/v3/exchangeInfo`` spells it: ``TRADING``, ``HALT`` (halted) or ``BREAK``."""
    return _STATUS[data.status(market)]


def symbol_filters(data: MarketData, market: str) -> list[Json]:
    """The ``filters`` of the market's ``/api/v3/exchangeInfo`` entry, from its engine spec.

    ``PRICE_FILTER`` (one tick to ``max_price``), ``LOT_SIZE`` (``min_qty``..``max_qty`` in steps of one lot) and
    ``NOTIONAL`` (``min_notional``, checked on priced orders only, as the engine does; the maximum is the largest
    notional the price and quantity limits allow).
    """
    spec = data.spec(market)
    units = data.units(market)
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": units.price(1),
            "maxPrice": units.price(spec.max_price),
            "tickSize": units.tick_size,
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": units.qty(spec.min_qty),
            "maxQty": units.qty(spec.max_qty),
            "stepSize": units.lot_size,
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": units.quote(spec.min_notional),
            "applyMinToMarket": False,
            "maxNotional": units.quote(spec.max_price * spec.max_qty * spec.quote_per_tick_lot),
            "applyMaxToMarket": False,
            "avgPriceMins": 0,
        },
    ]


_STATUS = {MarketStatus.OPEN: "TRADING", MarketStatus.HALTED: "HALT", MarketStatus.CLOSED: "BREAK"}


# -- streams ----------------------------------------------------------------------------------------------------


def depth_update(data: MarketData, update: BookUpdate, event_ms: int) -> Json:
    """``<symbol>@depth`` event: ``U``/``u`` are the first and last book update ids the message covers."""
    units = data.units(update.market)
    return {
        "e": "depthUpdate",
        "E": event_ms,
        "s": data.symbols.symbol_of(update.market),
        "U": update.first_update_id,
        "u": update.last_update_id,
        "b": _levels(units, sorted(update.bids.items(), reverse=True)),
        "a": _levels(units, sorted(update.asks.items())),
    }


def partial_depth(data: MarketData, snapshot: DepthSnapshot) -> Json:
    """``<symbol>@depth<levels>`` payload: the same shape as the REST depth snapshot."""
    return depth(data, snapshot)


def trade_event(data: MarketData, record: TradeRecord, event_ms: int | None = None) -> Json:
    """``<symbol>@trade`` event (``E`` defaults to the trade time)."""
    units = data.units(record.market)
    return {
        "e": "trade",
        "E": record.time_ms if event_ms is None else event_ms,
        "s": data.symbols.symbol_of(record.market),
        "t": record.trade_id,
        "p": units.price(record.price),
        "q": units.qty(record.qty),
        "T": record.time_ms,
        "m": record.buyer_is_maker,
        "M": True,
    }


def agg_trade_event(data: MarketData, agg: AggTrade, event_ms: int | None = None) -> Json:
    """``<symbol>@aggTrade`` event (``E`` defaults to the trade time)."""
    return {
        "e": "aggTrade",
        "E": agg.time_ms if event_ms is None else event_ms,
        "s": data.symbols.symbol_of(agg.market),
        **agg_trade(data, agg),
    }


def kline_event(data: MarketData, market: str, interval: str, kline: Kline, event_ms: int) -> Json:
    """``<symbol>@kline_<interval>`` event; ``x`` (closed) is true once ``event_ms`` is past the close time."""
    units = data.units(market)
    symbol = data.symbols.symbol_of(market)
    end = close_time(check_interval(interval), kline.open_time)
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": kline.open_time,
            "T": end,
            "s": symbol,
            "i": interval,
            "f": kline.first_trade_id,
            "L": kline.last_trade_id,
            "o": units.price(kline.open),
            "c": units.price(kline.close),
            "h": units.price(kline.high),
            "l": units.price(kline.low),
            "v": units.base(kline.volume),
            "n": kline.count,
            "x": event_ms > end,
            "q": units.quote(kline.quote_volume),
            "V": units.base(kline.taker_buy_volume),
            "Q": units.quote(kline.taker_buy_quote_volume),
            "B": "0",
        },
    }


def ticker_event(data: MarketData, ticker: Ticker24h, event_ms: int) -> Json:
    """``<symbol>@ticker`` event (``24hrTicker``)."""
    units = data.units(ticker.market)
    return {
        "e": "24hrTicker",
        "E": event_ms,
        "s": data.symbols.symbol_of(ticker.market),
        "p": units.price(ticker.last - ticker.open),
        "P": percent_change(ticker.open, ticker.last),
        "w": units.average_price(ticker.quote_volume, ticker.volume),
        "x": units.price(ticker.prev_close),
        "c": units.price(ticker.last),
        "Q": units.qty(ticker.last_qty),
        "b": units.price(ticker.bid_price),
        "B": units.qty(ticker.bid_qty),
        "a": units.price(ticker.ask_price),
        "A": units.qty(ticker.ask_qty),
        "o": units.price(ticker.open),
        "h": units.price(ticker.high),
        "l": units.price(ticker.low),
        "v": units.base(ticker.volume),
        "q": units.quote(ticker.quote_volume),
        "O": ticker.open_time,
        "C": ticker.close_time,
        "F": ticker.first_trade_id,
        "L": ticker.last_trade_id,
        "n": ticker.count,
    }


def mini_ticker_event(data: MarketData, ticker: Ticker24h, event_ms: int) -> Json:
    """``<symbol>@miniTicker`` event (``24hrMiniTicker``); ``!miniTicker@arr`` sends a list of them."""
    units = data.units(ticker.market)
    return {
        "e": "24hrMiniTicker",
        "E": event_ms,
        "s": data.symbols.symbol_of(ticker.market),
        "c": units.price(ticker.last),
        "o": units.price(ticker.open),
        "h": units.price(ticker.high),
        "l": units.price(ticker.low),
        "v": units.base(ticker.volume),
        "q": units.quote(ticker.quote_volume),
    }


def book_ticker_event(data: MarketData, ticker: BookTicker) -> Json:
    """``<symbol>@bookTicker`` event: ``u`` is the book update id."""
    units = data.units(ticker.market)
    return {
        "u": ticker.update_id,
        "s": data.symbols.symbol_of(ticker.market),
        "b": units.price(ticker.bid_price),
        "B": units.qty(ticker.bid_qty),
        "a": units.price(ticker.ask_price),
        "A": units.qty(ticker.ask_qty),
    }


def _levels(units: MarketUnits, levels: list[tuple[int, int]]) -> list[list[str]]:
    price = units.price
    qty = units.qty
    return [[price(p), qty(q)] for p, q in levels]


# -- stream names -----------------------------------------------------------------------------------------------


class StreamName(msgspec.Struct, frozen=True, gc=False):
    """A parsed stream name.

    ``kind`` is one of ``depth`` (diffs; ``speed_ms`` 1000 or 100), ``partialDepth`` (top ``levels``),
    ``trade``, ``aggTrade``, ``kline`` (``interval``), ``ticker``, ``miniTicker``, ``bookTicker``, or
    ``allMiniTickers`` (``!miniTicker@arr``, with ``market`` empty). ``name`` is the canonical spelling
    (lower-case symbol) that the hub keys subscriptions by.
    """

    name: str
    kind: str
    market: str
    interval: str = ""
    speed_ms: int = 0
    levels: int = 0


_STREAM_RE = re.compile(
    r"(?P<symbol>[A-Za-z0-9]+)@(?:"
    r"(?P<depth>depth)(?P<levels>5|10|20)?(?:@(?P<speed>100ms|1000ms))?"
    r"|(?P<trade>trade)"
    r"|(?P<agg>aggTrade)"
    r"|kline_(?P<interval>[0-9]+[smhdwM])"
    r"|(?P<ticker>ticker)"
    r"|(?P<mini>miniTicker)"
    r"|(?P<book>bookTicker))",
)


ALL_MINI_TICKERS = "!miniTicker@arr"
"""The all-market mini ticker stream: every second, the mini tickers of the markets that traded in it."""


class StreamNameError(ValueError):
    """A stream name is malformed, names an unknown symbol or an unsupported stream."""


def parse_stream(data: MarketData, name: str) -> StreamName:
    """Parse a stream name such as ``btcusdt@depth@100ms`` or ``btcusdt@kline_1m``.

    The symbol part is case-insensitive; the rest is case-sensitive as on Binance (``kline_1M`` is a month).
    Raise :class:`StreamNameError` saying what is wrong.
    """
    if name == ALL_MINI_TICKERS:
        return StreamName(name, "allMiniTickers", "")
    match = _STREAM_RE.fullmatch(name)
    if match is None:
        raise StreamNameError(
            f"unsupported stream {name!r}: use <symbol>@depth, <symbol>@depth@100ms, <symbol>@depth<5|10|20>"
            "[@100ms], <symbol>@trade, <symbol>@aggTrade, <symbol>@kline_<interval>, <symbol>@ticker, "
            f"<symbol>@miniTicker, <symbol>@bookTicker or {ALL_MINI_TICKERS}"
        )
    try:
        market = data.symbols.market_of(match["symbol"])
    except KeyError as exc:
        raise StreamNameError(str(exc)) from None
    symbol = match["symbol"].lower()
    rest = name[len(match["symbol"]) :]
    canonical = symbol + rest
    if match["depth"]:
        speed = 100 if match["speed"] == "100ms" else 1000
        if match["speed"] == "1000ms":  # Binance's default spelled out: one canonical name
            canonical = canonical[: -len("@1000ms")]
        if match["levels"]:
            return StreamName(canonical, "partialDepth", market, speed_ms=speed, levels=int(match["levels"]))
        return StreamName(canonical, "depth", market, speed_ms=speed)
    if match["trade"]:
        return StreamName(canonical, "trade", market)
    if match["agg"]:
        return StreamName(canonical, "aggTrade", market)
    if match["interval"]:
        try:
            interval = check_interval(match["interval"])
        except ValueError as exc:
            raise StreamNameError(str(exc)) from None
        return StreamName(canonical, "kline", market, interval=interval)
    if match["ticker"]:
        return StreamName(canonical, "ticker", market)
    if match["mini"]:
        return StreamName(canonical, "miniTicker", market)
    return StreamName(canonical, "bookTicker", market)


def stream_name(data: MarketData, market: str, suffix: str) -> str:
    """Return the canonical stream name of ``market`` with ``suffix`` (``"depth@100ms"``, ``"kline_1m"``, ...)."""
    return f"{data.symbols.symbol_of(market).lower()}@{suffix}"
