"""Private user data streams as Binance runs them: a listen key from ``POST /api/v3/userDataStream``, then
``/ws/<listenKey>`` delivers the account's ``executionReport`` (order updates and fills),
``outboundAccountPosition`` (balances after a change) and ``balanceUpdate`` (deposits and withdrawals) events.

Listen keys expire 60 minutes after they were made or last kept alive (``PUT``); ``DELETE`` ends one at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from exchange_framework.api.context import ApiContext
from exchange_framework.api.endpoints import Call, Endpoint, Param, Security, endpoint
from exchange_framework.api.errors import ApiError
from exchange_framework.api.trading import STP_NAMES, binance_type, ms
from exchange_framework.engine.commands import Command
from exchange_framework.engine.events import (
    Event,
    FundsCredited,
    FundsDebited,
    FundsHeld,
    FundsReleased,
    HeldFundsDebited,
    OrderAccepted,
    OrderCancelled,
    OrderReplaced,
    Trade,
)
from exchange_framework.marketdata import Hub, binance
from exchange_framework.types import CancelReason, Side
from exchange_framework.views import OrderRecord

__all__ = ["ENDPOINTS", "LISTEN_KEY_TTL_MS", "ListenKeys", "UserStreamPublisher", "user_stream"]

ENDPOINTS: list[Endpoint] = []
LISTEN_KEY_TTL_MS = 60 * 60 * 1000
INVALID_LISTEN_KEY = -1125


def user_stream(account: int) -> str:
    """The hub stream carrying ``account``'s private events."""
    return f"user:{account}"


class ListenKeys:
    """Listen keys and their accounts and expiry times (in memory: a restarted server asks clients for new ones)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[int, int]] = {}  # listen key -> (account, expires at ms)

    def create(self, account: int, now_ms: int) -> str:
        """A new key for ``account`` (Binance hands out the same one while it is valid; so do we)."""
        for key, (owner, expires) in self._keys.items():
            if owner == account and expires > now_ms:
                self._keys[key] = (owner, now_ms + LISTEN_KEY_TTL_MS)
                return key
        key = secrets.token_urlsafe(45)[:60]
        self._keys[key] = (account, now_ms + LISTEN_KEY_TTL_MS)
        return key

    def account(self, key: str, now_ms: int) -> int | None:
        """The account of a valid key, else ``None``."""
        entry = self._keys.get(key)
        if entry is None or entry[1] <= now_ms:
            return None
        return entry[0]

    def keep_alive(self, key: str, account: int, now_ms: int) -> bool:
        """Extend ``account``'s key by another hour; whether it was valid."""
        if self.account(key, now_ms) != account:
            return False
        self._keys[key] = (account, now_ms + LISTEN_KEY_TTL_MS)
        return True

    def close(self, key: str, account: int) -> bool:
        """End ``account``'s key; whether it existed."""
        entry = self._keys.get(key)
        if entry is None or entry[0] != account:
            return False
        del self._keys[key]
        return True


def _keys(ctx: ApiContext) -> ListenKeys:
    keys: ListenKeys = ctx.extras["listen_keys"]
    return keys


@endpoint(
    "POST", "/api/v3/userDataStream", "Start a user data stream: returns a listen key valid for 60 minutes.",
    security=Security.USER_STREAM, weight=2, tag="stream", registry=ENDPOINTS,
)  # fmt: skip
async def start_stream(ctx: ApiContext, call: Call) -> dict[str, Any]:
    return {"listenKey": _keys(ctx).create(call.account, call.now_ms)}


_LISTEN_KEY_PARAM = (Param("listenKey", required=True),)


@endpoint(
    "PUT", "/api/v3/userDataStream", "Keep a user data stream alive for another 60 minutes.",
    security=Security.USER_STREAM, weight=2, params=_LISTEN_KEY_PARAM, tag="stream", registry=ENDPOINTS,
)  # fmt: skip
async def keep_alive(ctx: ApiContext, call: Call) -> dict[str, Any]:
    if not _keys(ctx).keep_alive(call.params.text("listenKey", required=True), call.account, call.now_ms):
        raise ApiError(INVALID_LISTEN_KEY, "This listenKey does not exist: start a new user data stream.")
    return {}


@endpoint(
    "DELETE", "/api/v3/userDataStream", "Close a user data stream.",
    security=Security.USER_STREAM, weight=2, params=_LISTEN_KEY_PARAM, tag="stream", registry=ENDPOINTS,
)  # fmt: skip
async def close_stream(ctx: ApiContext, call: Call) -> dict[str, Any]:
    if not _keys(ctx).close(call.params.text("listenKey", required=True), call.account):
        raise ApiError(INVALID_LISTEN_KEY, "This listenKey does not exist.")
    return {}


_EXECUTION_TYPE = {
    CancelReason.USER: "CANCELED",
    CancelReason.SELF_TRADE: "TRADE_PREVENTION",
}


class UserStreamPublisher:
    """Turns each live command's events into private stream events for the accounts involved."""

    def __init__(self, ctx: ApiContext, hub: Hub) -> None:
        self.ctx = ctx
        self.hub = hub

    def on_command(self, seq: int, ts_ns: int, command: Command, events: Sequence[Event]) -> None:
        """Publish the command's order updates, fills and balance changes to the accounts' streams."""
        hub = self.hub
        if not any(hub.has_subscribers(s) for s in hub.streams() if s.startswith("user:")):
            return
        orders = self.ctx.node.orders
        # Fills are reported with running totals: start from each order's totals before this command.
        before: dict[int, list[int]] = {}
        for ev in events:
            if isinstance(ev, Trade):
                for order_id in (ev.maker_order_id, ev.taker_order_id):
                    totals = before.setdefault(order_id, [0, 0])
                    totals[0] += ev.qty
                    totals[1] += ev.quote_amount
        running = {
            oid: [orders.orders[oid].executed_qty - q, orders.orders[oid].cum_quote - c]
            for oid, (q, c) in before.items()
        }
        touched: dict[int, set[str]] = {}
        when = ms(ts_ns)
        for ev in events:
            if isinstance(ev, OrderAccepted):
                order = orders.orders[ev.order_id]
                spec = self.ctx.node.markets[ev.market]
                touched.setdefault(ev.account, set()).add(spec.quote if ev.side is Side.BUY else spec.base)
                self._report(order, "NEW", "NEW", when, 0, 0, 0, 0)
            elif isinstance(ev, Trade):
                spec = self.ctx.node.markets[ev.market]
                for order_id, fee, is_maker in (
                    (ev.maker_order_id, ev.maker_fee, True),
                    (ev.taker_order_id, ev.taker_fee, False),
                ):
                    order = orders.orders[order_id]
                    totals = running[order_id]
                    totals[0] += ev.qty
                    totals[1] += ev.quote_amount
                    done = totals[0] == order.executed_qty and not order.is_open and order.status.value == "FILLED"
                    status = "FILLED" if done else "PARTIALLY_FILLED"
                    touched.setdefault(order.account, set()).update((spec.base, spec.quote))
                    self._report(
                        order, "TRADE", status, when, ev.qty, ev.price, ev.quote_amount, fee,
                        trade_id=ev.trade_id, is_maker=is_maker, cum=totals,
                    )  # fmt: skip
            elif isinstance(ev, OrderCancelled):
                order = orders.orders[ev.order_id]
                spec = self.ctx.node.markets[ev.market]
                touched.setdefault(ev.account, set()).add(spec.quote if order.side is Side.BUY else spec.base)
                execution = _EXECUTION_TYPE.get(ev.reason, "EXPIRED")
                self._report(order, execution, order.status.value, when, 0, 0, 0, 0)
            elif isinstance(ev, OrderReplaced):
                self._report(orders.orders[ev.order_id], "REPLACED", "NEW", when, 0, 0, 0, 0)
            elif isinstance(ev, FundsCredited | FundsDebited):
                delta = ev.amount if isinstance(ev, FundsCredited) else -ev.amount
                touched.setdefault(ev.account, set()).add(ev.asset)
                self._publish(
                    ev.account,
                    {
                        "e": "balanceUpdate",
                        "E": when,
                        "a": ev.asset,
                        "d": self.ctx.units.amount(ev.asset, delta),
                        "T": when,
                    },
                )
            elif isinstance(ev, FundsHeld | FundsReleased | HeldFundsDebited):
                touched.setdefault(ev.account, set()).add(ev.asset)
        for account, assets in touched.items():
            balances = self.ctx.node.balances.balances(account)
            rows = []
            for asset in sorted(assets):
                free, locked = balances.get(asset, (0, 0))
                amount = self.ctx.units.amount
                rows.append({"a": asset, "f": amount(asset, free), "l": amount(asset, locked)})
            self._publish(account, {"e": "outboundAccountPosition", "E": when, "u": when, "B": rows})

    def _report(
        self,
        order: OrderRecord,
        execution: str,
        status: str,
        when: int,
        last_qty: int,
        last_price: int,
        last_quote: int,
        fee: int,
        *,
        trade_id: int = -1,
        is_maker: bool = False,
        cum: list[int] | None = None,
    ) -> None:
        u = self.ctx.units.by_market[order.market]
        spec = u.spec
        fee_asset = spec.base if order.side is Side.BUY else spec.quote
        executed, quote = (cum[0], cum[1]) if cum is not None else (order.executed_qty, order.cum_quote)
        self._publish(
            order.account,
            {
                "e": "executionReport",
                "E": when,
                "s": u.symbol,
                "c": order.client_order_id,
                "S": order.side.name,
                "o": binance_type(order),
                "f": order.tif.name,
                "q": u.qty(order.orig_qty),
                "p": u.price(order.price),
                "P": u.price(order.stop_price),
                "F": u.qty(order.display_qty),
                "g": -1,
                "C": order.client_order_id if execution == "CANCELED" else "",
                "x": execution,
                "X": status,
                "r": "NONE",
                "i": order.order_id,
                "l": u.qty(last_qty),
                "z": u.qty(executed),
                "L": u.price(last_price),
                "n": self.ctx.units.amount(fee_asset, fee) if trade_id >= 0 else "0",
                "N": fee_asset if trade_id >= 0 else None,
                "T": when,
                "t": trade_id,
                "I": 0,
                "w": order.is_open,
                "m": is_maker,
                "M": False,
                "O": ms(order.time_ns),
                "Z": u.quote(quote),
                "Y": u.quote(last_quote),
                "Q": u.quote(order.quote_cap),
                "W": ms(order.time_ns),
                "V": STP_NAMES[order.stp],
            },
        )

    def _publish(self, account: int, payload: dict[str, Any]) -> None:
        stream = user_stream(account)
        if self.hub.has_subscribers(stream):
            self.hub.publish(stream, binance.encode(payload))
