"""Binance-compatible public endpoints: time, exchange information, order book, trades, candles and tickers."""

from __future__ import annotations

from typing import Any

from exchange_framework.api.context import ApiContext
from exchange_framework.api.endpoints import Call, Endpoint, Param, endpoint
from exchange_framework.api.errors import BAD_INTERVAL, INVALID_PARAMETER, ApiError
from exchange_framework.api.trading import STP_MODES, SUPPORTED_TYPES
from exchange_framework.api.units import MarketUnits
from exchange_framework.marketdata import INTERVALS, MarketData, binance
from exchange_framework.types import MarketStatus

__all__ = ["ENDPOINTS", "symbol_info"]

ENDPOINTS: list[Endpoint] = []

_STATUS = {MarketStatus.OPEN: "TRADING", MarketStatus.HALTED: "HALT", MarketStatus.CLOSED: "BREAK"}


@endpoint("GET", "/api/v3/ping", "Test connectivity.", registry=ENDPOINTS)
async def ping(ctx: ApiContext, call: Call) -> dict[str, Any]:
    return {}


@endpoint("GET", "/api/v3/time", "The server's time in milliseconds.", registry=ENDPOINTS)
async def server_time(ctx: ApiContext, call: Call) -> dict[str, Any]:
    return {"serverTime": call.now_ms}


def symbol_info(u: MarketUnits, status: MarketStatus) -> dict[str, Any]:
    """One market as ``exchangeInfo`` describes it, with Binance's filters."""
    spec = u.spec
    return {
        "symbol": u.symbol,
        "status": _STATUS[status],
        "baseAsset": spec.base,
        "baseAssetPrecision": u.base_decimals,
        "quoteAsset": spec.quote,
        "quotePrecision": u.quote_decimals,
        "quoteAssetPrecision": u.quote_decimals,
        "baseCommissionPrecision": u.base_decimals,
        "quoteCommissionPrecision": u.quote_decimals,
        "orderTypes": list(SUPPORTED_TYPES),
        "icebergAllowed": True,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": u.price(1),
                "maxPrice": u.price(spec.max_price),
                "tickSize": u.price(1),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": u.qty(spec.min_qty),
                "maxQty": u.qty(spec.max_qty),
                "stepSize": u.qty(1),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": u.qty(spec.min_qty),
                "maxQty": u.qty(spec.max_qty),
                "stepSize": u.qty(1),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 1_000_000},
            {
                "filterType": "NOTIONAL",
                "minNotional": u.quote(spec.min_notional),
                "applyMinToMarket": True,
                "maxNotional": u.quote(spec.max_price * spec.max_qty * spec.quote_per_tick_lot),
                "applyMaxToMarket": False,
                "avgPriceMins": 0,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_TAKER",
        "allowedSelfTradePreventionModes": list(STP_MODES),
    }


@endpoint(
    "GET", "/api/v3/exchangeInfo", "Markets, their trading rules (filters) and the rate limits.", weight=20,
    params=(Param("symbol"), Param("symbols", description='A JSON list such as ["BTCUSDT","ETHUSDT"].')),
    registry=ENDPOINTS,
)  # fmt: skip
async def exchange_info(ctx: ApiContext, call: Call) -> dict[str, Any]:
    wanted = list(ctx.units.by_symbol.values())
    one = call.params.text("symbol")
    many = call.params.text("symbols")
    if one:
        wanted = [ctx.units.symbol(one)]
    elif many:
        names = [n.strip().strip('"') for n in many.strip("[]").split(",") if n.strip()]
        wanted = [ctx.units.symbol(n) for n in names]
    books = ctx.node.engine.books
    limits = ctx.limiter.limits
    return {
        "timezone": "UTC",
        "serverTime": call.now_ms,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": limits.weight_per_minute,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": limits.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": limits.orders_per_day},
        ],
        "exchangeFilters": [],
        "symbols": [symbol_info(u, books[u.market].status) for u in wanted],
    }


# -- market data (exchange_framework.marketdata) --------------------------------------------------------------------


def _md(ctx: ApiContext) -> MarketData:
    return ctx.market_data


def _markets_of(ctx: ApiContext, call: Call) -> tuple[list[str], bool]:
    """The markets named by ``symbol`` or ``symbols`` (all when neither); and whether one was asked for."""
    one = call.params.text("symbol")
    many = call.params.text("symbols")
    if one and many:
        raise ApiError(INVALID_PARAMETER, "Send either symbol or symbols, not both.")
    if one:
        return [ctx.units.symbol(one).market], True
    if many:
        names = [n.strip().strip('"') for n in many.strip("[]").split(",") if n.strip()]
        return [ctx.units.symbol(n).market for n in names], False
    return list(ctx.units.by_market), False


_DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))


@endpoint(
    "GET", "/api/v3/depth", "The order book: price levels with their total quantity, and its update id.", weight=5,
    params=(Param("symbol", required=True), Param("limit", "integer", description="Default 100, at most 5000.")),
    registry=ENDPOINTS,
)  # fmt: skip
async def depth(ctx: ApiContext, call: Call) -> dict[str, Any]:
    u = ctx.units.symbol(call.params.text("symbol", required=True))
    limit = call.params.integer("limit", default=100, low=1, high=5000)
    extra = next(w for top, w in _DEPTH_WEIGHTS if limit <= top) - 5
    if extra:
        ip = call.request.client.host if call.request.client else ""
        call.headers.update(ctx.limiter.spend_weight(ip, extra, call.now_ms))
    data = _md(ctx)
    return binance.depth(data, data.depth(u.market, limit))


@endpoint(
    "GET", "/api/v3/trades", "Recent public trades, oldest first.", weight=25,
    params=(Param("symbol", required=True), Param("limit", "integer", description="Default 500, at most 1000.")),
    registry=ENDPOINTS,
)  # fmt: skip
async def recent_trades(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    u = ctx.units.symbol(call.params.text("symbol", required=True))
    limit = call.params.integer("limit", default=500, low=1, high=1000)
    data = _md(ctx)
    return binance.trades(data, data.trades(u.market, limit))


@endpoint(
    "GET", "/api/v3/historicalTrades", "Older public trades, from a trade id on.", weight=25,
    params=(Param("symbol", required=True), Param("limit", "integer"), Param("fromId", "integer")),
    registry=ENDPOINTS,
)  # fmt: skip
async def historical_trades(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    u = ctx.units.symbol(call.params.text("symbol", required=True))
    limit = call.params.integer("limit", default=500, low=1, high=1000)
    from_id = call.params.integer("fromId", low=0) if "fromId" in call.params else None
    data = _md(ctx)
    return binance.trades(data, data.trades(u.market, limit, from_id))


KLINE_PARAMS = (
    Param("symbol", required=True),
    Param("interval", required=True, description="1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M"),
    Param("startTime", "integer"),
    Param("endTime", "integer"),
    Param("timeZone", description="Only 0 (UTC) is offered."),
    Param("limit", "integer", description="Default 500, at most 1000."),
)


async def _klines(ctx: ApiContext, call: Call) -> list[list[Any]]:
    p = call.params
    u = ctx.units.symbol(p.text("symbol", required=True))
    interval = p.text("interval", required=True)
    if interval not in INTERVALS:
        raise ApiError(BAD_INTERVAL, f"Invalid interval '{interval}': use one of {', '.join(INTERVALS)}.")
    if p.text("timeZone", default="0") not in ("0", "+0", "0:00", "+00:00"):
        raise ApiError(INVALID_PARAMETER, "Only timeZone 0 (UTC) is offered.")
    start = p.integer("startTime", low=0) if "startTime" in p else None
    end = p.integer("endTime", low=0) if "endTime" in p else None
    limit = p.integer("limit", default=500, low=1, high=1000)
    data = _md(ctx)
    rows = data.klines(u.market, interval, start, end, limit, now_ms=call.now_ms)
    return binance.klines(data, u.market, interval, rows)


@endpoint("GET", "/api/v3/klines", "Candlesticks, oldest first.", weight=2, params=KLINE_PARAMS, registry=ENDPOINTS)
async def klines(ctx: ApiContext, call: Call) -> list[list[Any]]:
    return await _klines(ctx, call)


@endpoint("GET", "/api/v3/uiKlines", "Candlesticks for charts.", weight=2, params=KLINE_PARAMS, registry=ENDPOINTS)
async def ui_klines(ctx: ApiContext, call: Call) -> list[list[Any]]:
    return await _klines(ctx, call)


TICKER_PARAMS = (Param("symbol"), Param("symbols", description='A JSON list such as ["BTCUSDT","ETHUSDT"].'))


@endpoint(
    "GET", "/api/v3/ticker/24hr", "Rolling 24-hour statistics.", weight=2, params=TICKER_PARAMS, registry=ENDPOINTS
)
async def ticker_24hr(ctx: ApiContext, call: Call) -> Any:
    markets, single = _markets_of(ctx, call)
    data = _md(ctx)
    rows = [binance.ticker_24h(data, data.ticker_24h(m, call.now_ms)) for m in markets]
    return rows[0] if single else rows


@endpoint("GET", "/api/v3/ticker/price", "Last price.", weight=2, params=TICKER_PARAMS, registry=ENDPOINTS)
async def ticker_price(ctx: ApiContext, call: Call) -> Any:
    markets, single = _markets_of(ctx, call)
    rows = [binance.ticker_price(_md(ctx), m) for m in markets]
    return rows[0] if single else rows


@endpoint("GET", "/api/v3/ticker/bookTicker", "Best bid and ask.", weight=2, params=TICKER_PARAMS, registry=ENDPOINTS)
async def book_ticker(ctx: ApiContext, call: Call) -> Any:
    markets, single = _markets_of(ctx, call)
    data = _md(ctx)
    rows = [binance.book_ticker(data, data.book_ticker(m)) for m in markets]
    return rows[0] if single else rows


@endpoint(
    "GET", "/api/v3/aggTrades", "Recent trades, those of one taker order at one price added up.", weight=2,
    params=(Param("symbol", required=True), Param("fromId", "integer"), Param("startTime", "integer"),
            Param("endTime", "integer"), Param("limit", "integer", description="Default 500, at most 1000.")),
    registry=ENDPOINTS,
)  # fmt: skip
async def agg_trades(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    """Trades of one taker order at one price form one aggregate (market data keeps them with their own ids)."""
    p = call.params
    u = ctx.units.symbol(p.text("symbol", required=True))
    limit = p.integer("limit", default=500, low=1, high=1000)
    from_id = p.integer("fromId", low=0) if "fromId" in p else None
    start = p.integer("startTime", low=0) if "startTime" in p else None
    end = p.integer("endTime", low=0) if "endTime" in p else None
    if from_id is not None and (start is not None or end is not None):
        raise ApiError(INVALID_PARAMETER, "Send fromId or startTime/endTime, not both.")
    data = _md(ctx)
    return binance.agg_trades(data, data.agg_trades(u.market, limit, from_id, start, end))
