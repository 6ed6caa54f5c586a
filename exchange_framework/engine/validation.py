"""Stateless checks of an order against its market's rules. Each returns 0 (valid) or a ``RejectReason``."""

from __future__ import annotations

from exchange_framework.engine.commands import PlaceOrder, ReplaceOrder
from exchange_framework.engine.market import MarketSpec
from exchange_framework.types import OrderType, RejectReason, Side, StpMode, TimeInForce

MAX_CLIENT_ORDER_ID = 36

_LIMIT = OrderType.LIMIT
_GTC = TimeInForce.GTC
_LIMIT_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_STOP_TYPES = (OrderType.STOP_LIMIT, OrderType.STOP_MARKET)
_BUY = Side.BUY
_FOK = TimeInForce.FOK
_SELL = Side.SELL
_STOP_MARKET = OrderType.STOP_MARKET


def check_quantity(qty: int, spec: MarketSpec) -> int:
    """Lots must be a positive int within the market's min and max."""
    if type(qty) is not int or qty <= 0:
        return RejectReason.INVALID_QUANTITY
    if qty < spec.min_qty:
        return RejectReason.QUANTITY_BELOW_MIN
    if qty > spec.max_qty:
        return RejectReason.QUANTITY_ABOVE_MAX
    return 0


def check_price(price: int, spec: MarketSpec) -> int:
    """Ticks must be a positive int no higher than the market's maximum."""
    if type(price) is not int or price <= 0:
        return RejectReason.INVALID_PRICE
    if price > spec.max_price:
        return RejectReason.PRICE_ABOVE_MAX
    return 0


def check_limit(price: int, qty: int, spec: MarketSpec) -> int:
    """Price, quantity and minimum notional of a priced order."""
    reason = check_price(price, spec) or check_quantity(qty, spec)
    if reason:
        return reason
    if price * qty * spec.quote_per_tick_lot < spec.min_notional:
        return RejectReason.NOTIONAL_BELOW_MIN
    return 0


def check_place(cmd: PlaceOrder, spec: MarketSpec, last_price: int) -> int:
    """Everything about a new order that does not depend on balances or the book."""
    otype = cmd.type
    qty = cmd.qty
    price = cmd.price
    if (
        otype is _LIMIT
        and type(qty) is int
        and type(price) is int
        and not cmd.display_qty
        and not cmd.stop_price
        and not cmd.quote_cap
        and type(cmd.side) is Side
        and type(cmd.tif) is TimeInForce
        and type(cmd.stp) is StpMode
        and type(cmd.account) is int
        and cmd.account > 0
        and type(cmd.client_order_id) is str
        and len(cmd.client_order_id) <= MAX_CLIENT_ORDER_ID
    ):
        # The common plain limit order, checked in the same order as the general path below.
        if price <= 0:
            return RejectReason.INVALID_PRICE
        if price > spec.max_price:
            return RejectReason.PRICE_ABOVE_MAX
        if qty <= 0:
            return RejectReason.INVALID_QUANTITY
        if qty < spec.min_qty:
            return RejectReason.QUANTITY_BELOW_MIN
        if qty > spec.max_qty:
            return RejectReason.QUANTITY_ABOVE_MAX
        if price * qty * spec.quote_per_tick_lot < spec.min_notional:
            return RejectReason.NOTIONAL_BELOW_MIN
        if cmd.post_only and cmd.tif is not _GTC:
            return RejectReason.INVALID_ORDER_PARAMETERS
        return 0
    if (
        type(otype) is not OrderType
        or type(cmd.side) is not Side
        or type(cmd.tif) is not TimeInForce
        or type(cmd.stp) is not StpMode
        or type(cmd.account) is not int
        or cmd.account <= 0
        or type(cmd.qty) is not int
        or type(cmd.client_order_id) is not str
    ):
        return RejectReason.INVALID_ORDER_PARAMETERS
    if len(cmd.client_order_id) > MAX_CLIENT_ORDER_ID:
        return RejectReason.CLIENT_ORDER_ID_TOO_LONG
    if otype in _LIMIT_TYPES:
        reason = check_limit(cmd.price, cmd.qty, spec)
        if reason:
            return reason
        if cmd.quote_cap:
            return RejectReason.INVALID_ORDER_PARAMETERS
    else:
        if cmd.price or cmd.post_only or cmd.display_qty or cmd.tif is _FOK:
            return RejectReason.INVALID_ORDER_PARAMETERS
        if type(cmd.quote_cap) is not int or cmd.quote_cap < 0:
            return RejectReason.INVALID_ORDER_PARAMETERS
        if cmd.side is _SELL:
            if cmd.quote_cap:
                return RejectReason.INVALID_ORDER_PARAMETERS
            reason = check_quantity(cmd.qty, spec)
            if reason:
                return reason
        else:
            if cmd.qty == 0 and cmd.quote_cap == 0:
                return RejectReason.MARKET_BUY_NEEDS_CAP
            if cmd.qty != 0:
                reason = check_quantity(cmd.qty, spec)
                if reason:
                    return reason
            if otype is _STOP_MARKET and cmd.quote_cap == 0:
                return RejectReason.MARKET_BUY_NEEDS_CAP
    if otype in _STOP_TYPES:
        reason = check_price(cmd.stop_price, spec)
        if reason:
            return RejectReason.INVALID_PRICE
        if cmd.post_only or cmd.display_qty or cmd.tif is _FOK:
            return RejectReason.INVALID_ORDER_PARAMETERS
        if last_price and (
            (cmd.side is _BUY and last_price >= cmd.stop_price) or (cmd.side is _SELL and last_price <= cmd.stop_price)
        ):
            return RejectReason.STOP_WOULD_TRIGGER_IMMEDIATELY
    elif cmd.stop_price:
        return RejectReason.INVALID_ORDER_PARAMETERS
    if cmd.display_qty and (
        type(cmd.display_qty) is not int
        or cmd.display_qty < 0
        or cmd.display_qty >= cmd.qty
        or cmd.tif is not _GTC
        or otype is not _LIMIT
    ):
        return RejectReason.INVALID_ORDER_PARAMETERS
    if cmd.post_only and cmd.tif is not _GTC:
        return RejectReason.INVALID_ORDER_PARAMETERS
    return 0


def check_replace(cmd: ReplaceOrder, spec: MarketSpec) -> int:
    """The new price and quantity of a cancel-replace."""
    return check_limit(cmd.price, cmd.qty, spec)
