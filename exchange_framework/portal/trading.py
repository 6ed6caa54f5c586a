"""Trading pages: the market list and, per market, the order book, candle chart, order form, open orders and fills.

Placing and cancelling are plain form posts with a redirect and a flash message, so they work without JavaScript;
the order form reuses the REST layer's validation (:func:`~exchange_framework.api.trading.place_order_command`)
and its messages. The page's scripts only make the book and the chart live.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exchange_framework.api.context import ApiContext
from exchange_framework.api.errors import ApiError, reject_error
from exchange_framework.api.params import Params
from exchange_framework.api.trading import order_json, place_order_command, trade_json
from exchange_framework.api.units import MarketUnits
from exchange_framework.compliance.onboarding import frozen_accounts, frozen_message
from exchange_framework.engine.commands import CancelOrder
from exchange_framework.engine.events import OrderRejected
from exchange_framework.marketdata import binance
from exchange_framework.views import OrderStatus
from exchange_framework.web import Form, FormError, NotFound, Web

__all__ = ["ORDER_TYPES", "TradingPages", "order_params"]

ORDER_TYPES = (
    ("LIMIT", "Limit"),
    ("LIMIT_MAKER", "Limit maker (post-only)"),
    ("MARKET", "Market"),
    ("STOP_LOSS_LIMIT", "Stop-limit"),
    ("STOP_LOSS", "Stop-market"),
)
_FIELDS = (
    ("quantity", "quantity"),
    ("quote_amount", "quoteOrderQty"),
    ("price", "price"),
    ("stop_price", "stopPrice"),
    ("iceberg_qty", "icebergQty"),
)


def order_params(symbol: str, form: Form) -> Params:
    """The REST parameters of an order form: empty fields are left out, time in force only where it applies."""
    kind = form.choice("type", tuple(k for k, _ in ORDER_TYPES), label="order type", default="LIMIT")
    values = {
        "symbol": symbol,
        "side": form.choice("side", ("BUY", "SELL"), label="side (buy or sell)"),
        "type": kind,
    }
    if kind in ("LIMIT", "STOP_LOSS_LIMIT"):
        values["timeInForce"] = form.choice(
            "time_in_force", ("GTC", "IOC", "FOK"), label="time in force", default="GTC"
        )
    for field, param in _FIELDS:
        value = form.text(field, max_length=40)
        if value:
            values[param] = value
    return Params.of(values)


class TradingPages:
    """Handlers for the market list and trading pages."""

    def __init__(self, ctx: ApiContext, web: Web) -> None:
        self.ctx = ctx
        self.web = web

    def routes(self) -> list[BaseRoute]:
        """The trading routes."""
        e = self.web.endpoint
        return [
            Route("/", e(self.home), methods=["GET"], name="home"),
            Route("/markets", e(self.markets), methods=["GET"], name="markets"),
            Route("/trade/{symbol}", e(self.trade), methods=["GET"], name="trade"),
            Route("/trade/{symbol}/mine", e(self.mine, login=True), methods=["GET"], name="trade_mine"),
            Route("/trade/{symbol}/orders", e(self.place, login=True), methods=["POST"], name="place_order"),
            Route(
                "/trade/{symbol}/orders/{order_id:int}/cancel", e(self.cancel, login=True), methods=["POST"],
                name="cancel_order",
            ),
        ]  # fmt: skip

    def _units(self, request: Request) -> MarketUnits:
        try:
            return self.ctx.units.symbol(request.path_params["symbol"])
        except ApiError:
            raise NotFound("No such market: pick one from the market list.") from None

    def _market_rows(self) -> list[dict[str, Any]]:
        data = self.ctx.market_data
        rows = []
        for market, u in sorted(self.ctx.units.by_market.items()):
            last = data.last_price(market)
            rows.append(
                {
                    "market": market,
                    "symbol": u.symbol,
                    "base": u.spec.base,
                    "quote": u.spec.quote,
                    "last": u.price(last) if last is not None else "",
                    "status": data.status(market).name.lower(),
                }
            )
        return rows

    async def home(self, request: Request) -> Response:
        return self.web.render(request, "index.html", {"markets": self._market_rows()})

    async def markets(self, request: Request) -> Response:
        return self.web.render(request, "markets.html", {"markets": self._market_rows()})

    async def trade(self, request: Request) -> Response:
        u = self._units(request)
        data = self.ctx.market_data
        depth = binance.depth(data, data.depth(u.market, 15))
        public_trades = list(reversed(binance.trades(data, data.trades(u.market, 30))))
        user = self.web.current_user(request)
        values = {
            "u": u,
            "market": u.market,
            "symbol": u.symbol,
            "base": u.spec.base,
            "quote": u.spec.quote,
            "tick_size": u.tick_size,
            "lot_size": u.lot_size,
            "depth": depth,
            "public_trades": public_trades,
            "order_types": ORDER_TYPES,
            "markets": self._market_rows(),
            **self._mine(u, user.id if user is not None else None),
        }
        return self.web.render(request, "trade.html", values)

    def _mine(self, u: MarketUnits, account: int | None) -> dict[str, Any]:
        """The user's open orders, recent fills and balances of the market's two assets."""
        if account is None:
            return {"open_orders": [], "fills": [], "balances": {}}
        open_orders = [order_json(u, o) for o in reversed(self.ctx.node.orders.open_orders(account, u.market))]
        trades = self.ctx.node.orders.trades(account, u.market)[-50:]
        fills = [trade_json(u, self.ctx.units.amount, t) for t in reversed(trades)]
        held = self.ctx.node.balances.balances(account)
        balances: dict[str, tuple[str, str]] = {}
        for asset in (u.spec.base, u.spec.quote):
            avail, frozen = held.get(asset, (0, 0))
            balances[asset] = (self.ctx.units.amount(asset, avail), self.ctx.units.amount(asset, frozen))
        return {"open_orders": open_orders, "fills": fills, "balances": balances}

    async def mine(self, request: Request) -> Response:
        """The trading page's own-orders fragment (open orders, fills, balances), refreshed by its script."""
        user = self.web.require_user(request)
        u = self._units(request)
        values = {"symbol": u.symbol, "base": u.spec.base, "quote": u.spec.quote, **self._mine(u, user.id)}
        return self.web.render(request, "_mine.html", values)

    async def place(self, request: Request) -> Response:
        user = self.web.require_user(request)
        u = self._units(request)
        form = Form(await self.web.form(request))
        here = f"/trade/{u.symbol}"
        try:
            cmd = place_order_command(u, user.id, order_params(u.symbol, form))
        except (FormError, ApiError) as exc:
            return self.web.redirect(request, here, f"Order not placed: {_message(exc)}", "error")
        if frozen_accounts(self.ctx.node.config).is_frozen(user.id):  # a sanctions hit at onboarding
            return self.web.redirect(request, here, f"Order not placed: {frozen_message(user.id, 'trade')}", "error")
        applied = await self.ctx.node.submit(cmd)
        for ev in applied.events:
            if isinstance(ev, OrderRejected):
                message = _message(reject_error(ev.reason))
                return self.web.redirect(request, here, f"Order not placed: {message}", "error")
        order = self.ctx.node.orders.order(user.id, client_order_id=cmd.client_order_id)
        side = "Buy" if form.text("side") == "BUY" else "Sell"
        if order is None:  # not reachable: an accepted order is in the order view when submit returns
            return self.web.redirect(request, here, f"{side} order accepted.", "success")
        if order.status is OrderStatus.EXPIRED_IN_MATCH:
            message = f"{side} order {order.order_id} was not filled: it would have traded with your own order."
            return self.web.redirect(request, here, message, "error")
        if order.status is OrderStatus.EXPIRED and order.executed_qty == 0:
            message = f"{side} order {order.order_id} expired unfilled: nothing to trade against at its price."
            return self.web.redirect(request, here, message, "error")
        status = order.status.value.lower().replace("_", " ")
        return self.web.redirect(request, here, f"{side} order {order.order_id} placed: {status}.", "success")

    async def cancel(self, request: Request) -> Response:
        user = self.web.require_user(request)
        u = self._units(request)
        await self.web.form(request)
        here = f"/trade/{u.symbol}"
        order_id = int(request.path_params["order_id"])
        order = self.ctx.node.orders.order(user.id, order_id=order_id)
        if order is None or order.market != u.market:
            raise NotFound("No such order on your account in this market: reload the trading page.")
        if not order.is_open:
            return self.web.redirect(request, here, f"Order {order_id} is no longer open: nothing to cancel.", "error")
        applied = await self.ctx.node.submit(CancelOrder(account=user.id, market=u.market, order_id=order_id))
        if any(isinstance(ev, OrderRejected) for ev in applied.events):
            return self.web.redirect(request, here, f"Order {order_id} filled or closed before the cancel.", "error")
        return self.web.redirect(request, here, f"Order {order_id} cancelled.", "success")


_FORM_NAMES = {"'quoteOrderQty'": "'total to spend'", "'stopPrice'": "'stop price'", "'icebergQty'": "'iceberg'",
               "'timeInForce'": "'time in force'", "quoteOrderQty": "a total to spend", "stopPrice": "stop price",
               "icebergQty": "an iceberg amount"}  # fmt: skip


def _message(exc: Exception) -> str:
    """The REST layer's message with its parameter names as the form labels them."""
    text = exc.msg if isinstance(exc, ApiError) else str(exc)
    for name, label in _FORM_NAMES.items():
        text = text.replace(name, label)
    return text
