"""Binance-compatible trading and account endpoints: orders, open orders, history, fills and balances.

Every engine order type maps: ``LIMIT`` (GTC/IOC/FOK, ``icebergQty``), ``LIMIT_MAKER`` (post-only), ``MARKET``
(``quantity``, or ``quoteOrderQty`` for a buy), ``STOP_LOSS_LIMIT`` and ``STOP_LOSS`` (stop-limit and stop-market),
with ``selfTradePreventionMode``. A ``newClientOrderId`` is idempotent: sending the same order again returns the
order already placed instead of placing a second one.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from decimal import Decimal
from typing import Any

from exchange_framework.api.context import ApiContext
from exchange_framework.api.endpoints import Call, Endpoint, Param, Security, endpoint
from exchange_framework.api.errors import (
    CANCEL_REJECTED,
    INVALID_ORDER_TYPE,
    INVALID_PARAMETER,
    INVALID_SIDE,
    MANDATORY_PARAM,
    NEW_ORDER_REJECTED,
    NO_SUCH_ORDER,
    NO_SUCH_ORDER_MSG,
    PARAM_NOT_REQUIRED,
    UNKNOWN_ORDER_MSG,
    ApiError,
    reject_error,
)
from exchange_framework.api.params import Params
from exchange_framework.api.units import MarketUnits
from exchange_framework.compliance.onboarding import frozen_accounts, frozen_message
from exchange_framework.engine.commands import CancelAll, CancelOrder, PlaceOrder, ReplaceOrder
from exchange_framework.engine.events import OrderCancelled, OrderRejected
from exchange_framework.money import ppm_to_rate
from exchange_framework.types import OrderType, Side, StpMode, TimeInForce
from exchange_framework.views import OrderRecord, TradeRecord

__all__ = ["ENDPOINTS", "order_json", "place_order_command", "trade_json"]

ENDPOINTS: list[Endpoint] = []

ORDER_TYPES = ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
SUPPORTED_TYPES = ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "LIMIT_MAKER")
STP_MODES = {
    "EXPIRE_TAKER": StpMode.CANCEL_NEWEST,
    "EXPIRE_MAKER": StpMode.CANCEL_OLDEST,
    "EXPIRE_BOTH": StpMode.CANCEL_BOTH,
    "DECREMENT": StpMode.DECREMENT,
}
STP_NAMES = {mode: name for name, mode in STP_MODES.items()}
TIF = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
_CLIENT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")

ORDER_PARAMS = (
    Param("symbol", required=True, description="Market symbol, such as BTCUSDT."),
    Param("side", required=True, description="BUY or SELL."),
    Param("type", required=True, description="LIMIT, MARKET, STOP_LOSS, STOP_LOSS_LIMIT or LIMIT_MAKER."),
    Param("timeInForce", description="GTC, IOC or FOK (LIMIT and STOP_LOSS_LIMIT)."),
    Param("quantity", "number", description="Base quantity, a multiple of the lot size."),
    Param("quoteOrderQty", "number", description="MARKET BUY: spend this much quote instead of a quantity."),
    Param("price", "number", description="Limit price, a multiple of the tick size."),
    Param("stopPrice", "number", description="STOP_LOSS and STOP_LOSS_LIMIT: the last-trade price that triggers."),
    Param("icebergQty", "number", description="LIMIT GTC: show this much at a time (an iceberg order)."),
    Param("newClientOrderId", description="Your id for the order (1-36 of A-Z a-z 0-9 - _ .); resending is safe."),
    Param("selfTradePreventionMode", description="EXPIRE_TAKER (default), EXPIRE_MAKER, EXPIRE_BOTH or DECREMENT."),
    Param("newOrderRespType", description="ACK, RESULT or FULL (default)."),
    Param("recvWindow", "integer"),
    Param("timestamp", "integer", required=True),
    Param("signature", required=True),
)
SIGNED = (
    Param("recvWindow", "integer"),
    Param("timestamp", "integer", required=True),
    Param("signature", required=True),
)


def ms(ts_ns: int) -> int:
    """Nanoseconds to Binance's milliseconds."""
    return ts_ns // 1_000_000


def binance_type(order: OrderRecord) -> str:
    """The Binance order type of an order."""
    if order.type is OrderType.LIMIT:
        return "LIMIT_MAKER" if order.post_only else "LIMIT"
    if order.type is OrderType.MARKET:
        return "MARKET"
    if order.type is OrderType.STOP_LIMIT:
        return "STOP_LOSS_LIMIT"
    return "STOP_LOSS"


def order_json(u: MarketUnits, order: OrderRecord) -> dict[str, Any]:
    """An order as ``GET /api/v3/order`` reports it."""
    working = order.type in (OrderType.LIMIT, OrderType.MARKET) or order.triggered
    out: dict[str, Any] = {
        "symbol": u.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": u.price(order.price),
        "origQty": u.qty(order.orig_qty),
        "executedQty": u.qty(order.executed_qty),
        "cummulativeQuoteQty": u.quote(order.cum_quote),
        "status": order.status.value,
        "timeInForce": order.tif.name,
        "type": binance_type(order),
        "side": order.side.name,
        "stopPrice": u.price(order.stop_price),
        "icebergQty": u.qty(order.display_qty),
        "time": ms(order.time_ns),
        "updateTime": ms(order.update_ns),
        "isWorking": working,
        "workingTime": ms(order.time_ns) if working else -1,
        "origQuoteOrderQty": u.quote(order.quote_cap),
        "selfTradePreventionMode": STP_NAMES[order.stp],
    }
    return out


def trade_json(u: MarketUnits, units_amount: Any, trade: TradeRecord) -> dict[str, Any]:
    """A fill as ``GET /api/v3/myTrades`` reports it."""
    return {
        "symbol": u.symbol,
        "id": trade.trade_id,
        "orderId": trade.order_id,
        "orderListId": -1,
        "price": u.price(trade.price),
        "qty": u.qty(trade.qty),
        "quoteQty": u.quote(trade.quote_amount),
        "commission": units_amount(trade.fee_asset, trade.fee),
        "commissionAsset": trade.fee_asset,
        "time": ms(trade.time_ns),
        "isBuyer": trade.is_buyer,
        "isMaker": trade.is_maker,
        "isBestMatch": True,
    }


def place_order_command(u: MarketUnits, account: int, p: Params) -> PlaceOrder:
    """Validate Binance order parameters into an engine command; raise :class:`ApiError` naming what is wrong."""
    side_text = p.choice("side", ("BUY", "SELL"), required=True, code=INVALID_SIDE)
    side = Side.BUY if side_text == "BUY" else Side.SELL
    kind = p.choice("type", ORDER_TYPES, required=True, code=INVALID_ORDER_TYPE)
    if kind not in SUPPORTED_TYPES:
        raise ApiError(
            INVALID_ORDER_TYPE,
            f"Unsupported order combination: {kind} is not offered here; use STOP_LOSS or STOP_LOSS_LIMIT "
            "(a BUY stop triggers when the price rises to stopPrice, a SELL stop when it falls to it).",
        )
    stp_name = p.choice("selfTradePreventionMode", (*STP_MODES, "NONE"), default="EXPIRE_TAKER")
    if stp_name == "NONE":
        raise ApiError(
            INVALID_PARAMETER,
            "selfTradePreventionMode NONE is not allowed: self-trades are always prevented; use EXPIRE_TAKER, "
            "EXPIRE_MAKER, EXPIRE_BOTH or DECREMENT.",
        )
    client_id = p.text("newClientOrderId") or _new_client_order_id()
    if not 1 <= len(client_id) <= 36 or not set(client_id) <= _CLIENT_ID_CHARS:
        raise reject_error_client_id()
    qty_dec = p.decimal("quantity")
    quote_dec = p.decimal("quoteOrderQty")
    price_dec = p.decimal("price")
    stop_dec = p.decimal("stopPrice")
    iceberg_dec = p.decimal("icebergQty")
    tif_text = p.choice("timeInForce", tuple(TIF))
    needs_price = kind in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT")
    needs_stop = kind in ("STOP_LOSS", "STOP_LOSS_LIMIT")
    needs_tif = kind in ("LIMIT", "STOP_LOSS_LIMIT")
    for name, present, needed in (
        ("price", price_dec is not None, needs_price),
        ("stopPrice", stop_dec is not None, needs_stop),
    ):
        if needed and not present:
            raise ApiError(MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        if present and not needed:
            raise ApiError(PARAM_NOT_REQUIRED, f"Parameter '{name}' sent when not required by a {kind} order.")
    if needs_tif and not tif_text:
        raise ApiError(MANDATORY_PARAM, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
    if tif_text and not needs_tif:
        raise ApiError(PARAM_NOT_REQUIRED, f"Parameter 'timeInForce' sent when not required by a {kind} order.")
    if quote_dec is not None:
        if kind != "MARKET" or side is not Side.BUY:
            raise ApiError(
                INVALID_PARAMETER, "quoteOrderQty is supported for MARKET BUY orders only; send quantity instead."
            )
        if qty_dec is not None:
            raise ApiError(INVALID_PARAMETER, "Send either quantity or quoteOrderQty, not both.")
    elif qty_dec is None:
        raise ApiError(MANDATORY_PARAM, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
    if iceberg_dec is not None and (kind != "LIMIT" or tif_text != "GTC"):
        raise ApiError(INVALID_PARAMETER, "icebergQty needs a LIMIT order with timeInForce GTC.")
    order_type = {
        "LIMIT": OrderType.LIMIT,
        "LIMIT_MAKER": OrderType.LIMIT,
        "MARKET": OrderType.MARKET,
        "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
        "STOP_LOSS": OrderType.STOP_MARKET,
    }[kind]
    qty = u.to_lots(qty_dec) if qty_dec is not None else 0
    display = u.to_lots(iceberg_dec, "icebergQty") if iceberg_dec is not None else 0
    if display and display >= qty:
        raise ApiError(INVALID_PARAMETER, "icebergQty must be less than quantity.")
    return PlaceOrder(
        account=account,
        market=u.market,
        side=side,
        type=order_type,
        qty=qty,
        price=u.to_ticks(price_dec) if price_dec is not None else 0,
        stop_price=u.to_ticks(stop_dec, "stopPrice") if stop_dec is not None else 0,
        tif=TIF[tif_text] if tif_text else TimeInForce.GTC,
        post_only=kind == "LIMIT_MAKER",
        display_qty=display,
        quote_cap=u.to_quote_atomic(quote_dec) if quote_dec is not None else 0,
        stp=STP_MODES[stp_name],
        client_order_id=client_id,
    )


_ID_PREFIX = "x" + secrets.token_hex(6)  # random per process: ids made here never repeat across restarts
_id_counter = itertools.count(1)


def _new_client_order_id() -> str:
    """A client order id for an order sent without one: unique, and cheap (no system call per order)."""
    return f"{_ID_PREFIX}-{next(_id_counter)}"


def reject_error_client_id() -> ApiError:
    return ApiError(
        -1100,
        "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_.]{1,36}$'.",
    )


def _same_order(order: OrderRecord, cmd: PlaceOrder) -> bool:
    return (
        order.market == cmd.market
        and order.side is cmd.side
        and order.type is cmd.type
        and order.price == cmd.price
        and order.stop_price == cmd.stop_price
        and order.quote_cap == cmd.quote_cap
        and order.orig_qty == cmd.qty
        and order.post_only == cmd.post_only
    )


def _placed_json(ctx: ApiContext, u: MarketUnits, order: OrderRecord, resp_type: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "symbol": u.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": ms(order.time_ns),
    }
    if resp_type == "ACK":
        return base
    full = order_json(u, order)
    for drop in ("time", "updateTime", "isWorking"):
        full.pop(drop)
    base.update(full)
    if resp_type == "FULL":
        base["fills"] = [
            {
                "price": u.price(t.price),
                "qty": u.qty(t.qty),
                "commission": ctx.units.amount(t.fee_asset, t.fee),
                "commissionAsset": t.fee_asset,
                "tradeId": t.trade_id,
            }
            for t in ctx.node.orders.trades(order.account, u.market, order_id=order.order_id)
            if t.seq == order.seq
        ]
    return base


@endpoint(
    "POST", "/api/v3/order", "Place a new order.", security=Security.TRADE, params=ORDER_PARAMS, tag="trade",
    order=True, registry=ENDPOINTS,
)  # fmt: skip
async def new_order(ctx: ApiContext, call: Call) -> dict[str, Any]:
    p = call.params
    u = ctx.units.symbol(p.text("symbol", required=True))
    cmd = place_order_command(u, call.account, p)
    if frozen_accounts(ctx.node.config).is_frozen(call.account):  # a sanctions hit at onboarding: no trading
        raise ApiError(NEW_ORDER_REJECTED, frozen_message(call.account, "trade"))
    resp_type = p.choice("newOrderRespType", ("ACK", "RESULT", "FULL"), default="FULL")
    key = (call.account, cmd.client_order_id)
    # The same client order id in flight: wait for the first request and answer as it did.
    pending = ctx.in_flight.get(key)
    if pending is not None:
        await asyncio.shield(pending)
    existing = ctx.node.orders.order(call.account, client_order_id=cmd.client_order_id)
    if existing is not None:
        if not _same_order(existing, cmd):
            raise ApiError(NEW_ORDER_REJECTED, "Duplicate order sent.")
        return _placed_json(ctx, u, existing, resp_type)
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    ctx.in_flight[key] = future
    try:
        applied = await ctx.node.submit(cmd)
    finally:
        del ctx.in_flight[key]
        future.set_result(None)
    for ev in applied.events:
        if isinstance(ev, OrderRejected):
            raise reject_error(ev.reason)
    order = ctx.node.orders.order(call.account, client_order_id=cmd.client_order_id)
    assert order is not None, "an accepted order is in the order view"
    return _placed_json(ctx, u, order, resp_type)


@endpoint(
    "POST", "/api/v3/order/test", "Validate an order without placing it.", security=Security.TRADE,
    params=ORDER_PARAMS, tag="trade", registry=ENDPOINTS,
)  # fmt: skip
async def test_order(ctx: ApiContext, call: Call) -> dict[str, Any]:
    u = ctx.units.symbol(call.params.text("symbol", required=True))
    place_order_command(u, call.account, call.params)
    return {}


ORDER_ID_PARAMS = (
    Param("symbol", required=True),
    Param("orderId", "integer", description="The exchange's order id."),
    Param("origClientOrderId", description="Or your client order id."),
    *SIGNED,
)


def _find_order(ctx: ApiContext, call: Call) -> tuple[MarketUnits, OrderRecord | None, int, str]:
    p = call.params
    u = ctx.units.symbol(p.text("symbol", required=True))
    order_id = p.integer("orderId", low=1)
    client_id = p.text("origClientOrderId")
    if not order_id and not client_id:
        raise ApiError(
            MANDATORY_PARAM, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )
    order = ctx.node.orders.order(call.account, order_id=order_id, client_order_id=client_id)
    if order is not None and order.market != u.market:
        order = None
    return u, order, order_id, client_id


@endpoint(
    "GET", "/api/v3/order", "Query one of your orders.", security=Security.USER_DATA, weight=4,
    params=ORDER_ID_PARAMS, tag="trade", registry=ENDPOINTS,
)  # fmt: skip
async def get_order(ctx: ApiContext, call: Call) -> dict[str, Any]:
    u, order, _, _ = _find_order(ctx, call)
    if order is None:
        raise ApiError(NO_SUCH_ORDER, NO_SUCH_ORDER_MSG)
    return order_json(u, order)


@endpoint(
    "DELETE", "/api/v3/order", "Cancel one of your open orders.", security=Security.TRADE,
    params=ORDER_ID_PARAMS, tag="trade", registry=ENDPOINTS,
)  # fmt: skip
async def cancel_order(ctx: ApiContext, call: Call) -> dict[str, Any]:
    u, order, _, _ = _find_order(ctx, call)
    if order is None or not order.is_open:
        raise ApiError(CANCEL_REJECTED, UNKNOWN_ORDER_MSG)
    applied = await ctx.node.submit(CancelOrder(account=call.account, market=u.market, order_id=order.order_id))
    for ev in applied.events:
        if isinstance(ev, OrderRejected):
            raise ApiError(CANCEL_REJECTED, UNKNOWN_ORDER_MSG)  # filled or cancelled meanwhile
    out = order_json(u, order)
    out["origClientOrderId"] = order.client_order_id
    return out


@endpoint(
    "DELETE", "/api/v3/openOrders", "Cancel all your open orders in a market.", security=Security.TRADE,
    params=(Param("symbol", required=True), *SIGNED), tag="trade", registry=ENDPOINTS,
)  # fmt: skip
async def cancel_open_orders(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    u = ctx.units.symbol(call.params.text("symbol", required=True))
    applied = await ctx.node.submit(CancelAll(account=call.account, market=u.market))
    out = []
    for ev in applied.events:
        if isinstance(ev, OrderCancelled):
            order = ctx.node.orders.orders[ev.order_id]
            item = order_json(u, order)
            item["origClientOrderId"] = order.client_order_id
            out.append(item)
    return out


@endpoint(
    "GET", "/api/v3/openOrders", "Your open orders, in one market or all.", security=Security.USER_DATA, weight=6,
    params=(Param("symbol"), *SIGNED), tag="trade", registry=ENDPOINTS,
)  # fmt: skip
async def open_orders(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    symbol = call.params.text("symbol")
    market = ctx.units.symbol(symbol).market if symbol else None
    return [order_json(ctx.units.by_market[o.market], o) for o in ctx.node.orders.open_orders(call.account, market)]


def _time_filter(p: Params) -> tuple[int, int]:
    start = p.integer("startTime", low=0)
    end = p.integer("endTime", low=0)
    if start and end and end < start:
        raise ApiError(INVALID_PARAMETER, "endTime must not be before startTime.")
    return start, end or 2**62


@endpoint(
    "GET", "/api/v3/allOrders", "Your orders in a market: open, filled and cancelled.", security=Security.USER_DATA,
    weight=20, tag="trade", registry=ENDPOINTS,
    params=(Param("symbol", required=True), Param("orderId", "integer"), Param("startTime", "integer"),
            Param("endTime", "integer"), Param("limit", "integer", description="Default 500, at most 1000."), *SIGNED),
)  # fmt: skip
async def all_orders(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    p = call.params
    u = ctx.units.symbol(p.text("symbol", required=True))
    from_id = p.integer("orderId", low=1)
    limit = p.integer("limit", default=500, low=1, high=1000)
    start, end = _time_filter(p)
    orders = [
        o
        for o in ctx.node.orders.all_orders(call.account, u.market, from_order_id=from_id, limit=10**9)
        if start <= ms(o.time_ns) <= end
    ]
    orders = orders[:limit] if from_id else orders[-limit:]
    return [order_json(u, o) for o in orders]


@endpoint(
    "GET", "/api/v3/myTrades", "Your fills in a market.", security=Security.USER_DATA, weight=20, tag="trade",
    registry=ENDPOINTS,
    params=(Param("symbol", required=True), Param("orderId", "integer"), Param("startTime", "integer"),
            Param("endTime", "integer"), Param("fromId", "integer"), Param("limit", "integer"), *SIGNED),
)  # fmt: skip
async def my_trades(ctx: ApiContext, call: Call) -> list[dict[str, Any]]:
    p = call.params
    u = ctx.units.symbol(p.text("symbol", required=True))
    order_id = p.integer("orderId", low=1)
    from_id = p.integer("fromId", low=0)
    limit = p.integer("limit", default=500, low=1, high=1000)
    start, end = _time_filter(p)
    trades = [
        t
        for t in ctx.node.orders.trades(call.account, u.market, order_id=order_id)
        if start <= ms(t.time_ns) <= end and t.trade_id >= from_id
    ]
    trades = trades[:limit] if from_id else trades[-limit:]
    return [trade_json(u, ctx.units.amount, t) for t in trades]


def _fee_rates(ctx: ApiContext, account: int) -> tuple[int, int]:
    """The account's maker and taker rates in ppm: its own, else the first market's."""
    acct = ctx.node.engine.accounts.get(account)
    spec = next(iter(ctx.node.markets.values()))
    maker = acct.maker_ppm if acct is not None and acct.maker_ppm is not None else spec.maker_fee_ppm
    taker = acct.taker_ppm if acct is not None and acct.taker_ppm is not None else spec.taker_fee_ppm
    return maker, taker


@endpoint(
    "GET", "/api/v3/account", "Your balances and trading permissions.", security=Security.USER_DATA, weight=20,
    params=(Param("omitZeroBalances", "boolean"), *SIGNED), tag="trade", registry=ENDPOINTS,
)  # fmt: skip
async def account(ctx: ApiContext, call: Call) -> dict[str, Any]:
    omit_zero = call.params.text("omitZeroBalances") == "true"
    balances = ctx.node.balances.balances(call.account)
    rows = []
    for asset in ctx.units.asset_decimals:
        free, locked = balances.get(asset, (0, 0))
        if omit_zero and not free and not locked:
            continue
        rows.append({"asset": asset, "free": ctx.units.amount(asset, free), "locked": ctx.units.amount(asset, locked)})
    maker, taker = _fee_rates(ctx, call.account)
    user = ctx.identity.user(call.account)
    return {
        "makerCommission": maker // 100,  # Binance's basis points
        "takerCommission": taker // 100,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": f"{ppm_to_rate(maker):f}",
            "taker": f"{ppm_to_rate(taker):f}",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": True,
        "canWithdraw": bool(user and user.kyc_tier > 0),
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": True,
        "preventSor": False,
        "updateTime": call.now_ms,
        "accountType": "SPOT",
        "balances": rows,
        "permissions": ["SPOT"],
        "uid": call.account,
    }


def _amend_json(ctx: ApiContext, u: MarketUnits, order: OrderRecord, call: Call, seq: int) -> dict[str, Any]:
    amended = order_json(u, order)
    amended["origClientOrderId"] = order.client_order_id
    return {"transactTime": call.now_ms, "executionId": seq, "amendedOrder": amended}


async def _replace(ctx: ApiContext, call: Call, order: OrderRecord, u: MarketUnits, price: int, open_qty: int) -> Any:
    applied = await ctx.node.submit(
        ReplaceOrder(account=call.account, market=u.market, order_id=order.order_id, price=price, qty=open_qty)
    )
    for ev in applied.events:
        if isinstance(ev, OrderRejected):
            raise reject_error(ev.reason)
    return applied


@endpoint(
    "PUT", "/api/v3/order/amend/keepPriority", "Reduce an open order's quantity, keeping its place in the queue.",
    security=Security.TRADE, tag="trade", registry=ENDPOINTS, order=True,
    params=(*ORDER_ID_PARAMS[:3], Param("newQty", "number", required=True,
            description="The order's new quantity: above what is filled, below the current quantity."), *SIGNED),
)  # fmt: skip
async def amend_keep_priority(ctx: ApiContext, call: Call) -> dict[str, Any]:
    u, order, _, _ = _find_order(ctx, call)
    if order is None or not order.is_open:
        raise ApiError(NO_SUCH_ORDER, NO_SUCH_ORDER_MSG)
    new_qty = u.to_lots(call.params.decimal("newQty", required=True) or Decimal(0), "newQty")
    if not order.executed_qty < new_qty < order.orig_qty:
        raise ApiError(
            INVALID_PARAMETER,
            f"newQty must be less than the order's quantity {u.qty(order.orig_qty)} and more than what is filled "
            f"({u.qty(order.executed_qty)}).",
        )
    applied = await _replace(ctx, call, order, u, order.price, new_qty - order.executed_qty)
    return _amend_json(ctx, u, order, call, applied.seq)


@endpoint(
    "PUT", "/api/v3/order", "Change an open limit order's price and quantity in place (an extension; same order id).",
    security=Security.TRADE, tag="trade", registry=ENDPOINTS, order=True,
    params=(*ORDER_ID_PARAMS[:3], Param("price", "number", required=True), Param("quantity", "number", required=True,
            description="The new total quantity (filled part included)."), *SIGNED),
)  # fmt: skip
async def replace_order(ctx: ApiContext, call: Call) -> dict[str, Any]:
    """Priority is kept only when the price is unchanged and the quantity shrinks; otherwise the order goes to the
    back of the queue at its new price and may trade at once."""
    u, order, _, _ = _find_order(ctx, call)
    if order is None or not order.is_open:
        raise ApiError(NO_SUCH_ORDER, NO_SUCH_ORDER_MSG)
    price = u.to_ticks(call.params.decimal("price", required=True) or Decimal(0))
    qty = u.to_lots(call.params.decimal("quantity", required=True) or Decimal(0))
    if qty <= order.executed_qty:
        raise ApiError(
            INVALID_PARAMETER, f"quantity must be more than what is already filled ({u.qty(order.executed_qty)})."
        )
    applied = await _replace(ctx, call, order, u, price, qty - order.executed_qty)
    return _amend_json(ctx, u, order, call, applied.seq)
