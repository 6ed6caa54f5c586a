"""Binance-compatible public endpoints: connectivity, server time and exchange information (markets and filters)."""

from __future__ import annotations

from typing import Any

from exchange_framework.api.context import ApiContext
from exchange_framework.api.endpoints import Call, Endpoint, Param, endpoint
from exchange_framework.api.trading import STP_MODES, SUPPORTED_TYPES
from exchange_framework.api.units import MarketUnits
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
