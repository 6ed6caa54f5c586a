"""Orders and fills per account, kept from the sequenced commands and the events they caused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from exchange_framework.engine.commands import Command, PlaceOrder
from exchange_framework.engine.events import (
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderReduced,
    OrderReplaced,
    StopTriggered,
    Trade,
)
from exchange_framework.types import CancelReason, OrderType, Side, StpMode, TimeInForce

__all__ = ["OrderRecord", "OrderStatus", "OrderView", "TradeRecord"]


class OrderStatus(StrEnum):
    """An order's state, named as Binance's spot API names it."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"  # an IOC/FOK/market remainder, or a market that closed
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"  # cancelled by self-trade prevention


_CANCEL_STATUS = {
    CancelReason.USER: OrderStatus.CANCELED,
    CancelReason.IOC_REMAINDER: OrderStatus.EXPIRED,
    CancelReason.NO_LIQUIDITY: OrderStatus.EXPIRED,
    CancelReason.QUOTE_CAP_REACHED: OrderStatus.EXPIRED,
    CancelReason.SELF_TRADE: OrderStatus.EXPIRED_IN_MATCH,
    CancelReason.MARKET_CLOSED: OrderStatus.EXPIRED,
}

OPEN_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})


@dataclass(slots=True)
class OrderRecord:
    """One accepted order as the API reports it. Prices in ticks, quantities in lots, quote in atomic units."""

    order_id: int
    account: int
    market: str
    side: Side
    type: OrderType
    tif: TimeInForce
    price: int
    orig_qty: int
    stop_price: int
    display_qty: int
    quote_cap: int
    stp: StpMode
    post_only: bool
    client_order_id: str
    time_ns: int
    update_ns: int
    seq: int
    status: OrderStatus = OrderStatus.NEW
    executed_qty: int = 0
    cum_quote: int = 0
    triggered: bool = False

    @property
    def is_open(self) -> bool:
        """Whether the order still rests in the book (or waits for its stop price)."""
        return self.status in OPEN_STATUSES


@dataclass(slots=True, frozen=True)
class TradeRecord:
    """One side of one trade, as the account that traded sees it. ``fee`` is in ``fee_asset``; negative: a rebate."""

    trade_id: int
    market: str
    order_id: int
    account: int
    price: int
    qty: int
    quote_amount: int
    fee: int
    fee_asset: str
    is_buyer: bool
    is_maker: bool
    time_ns: int
    seq: int


class OrderView:
    """Every order and fill, by account; fed :meth:`apply` with each sequenced command and its events.

    ``assets_of`` maps a market to its (base, quote) assets, for the fee asset of each fill.
    """

    def __init__(self, assets_of: dict[str, tuple[str, str]]) -> None:
        self._assets_of = assets_of
        self.orders: dict[int, OrderRecord] = {}
        self._by_account: dict[int, list[int]] = {}
        self._open: dict[int, dict[int, OrderRecord]] = {}
        self._client_ids: dict[tuple[int, str], int] = {}
        self._trades: dict[int, list[TradeRecord]] = {}
        self.last_seq = 0

    # -- feeding
    def apply(self, seq: int, ts_ns: int, command: Command, events: Sequence[Event]) -> None:
        """Apply one sequenced command's events; a ``seq`` already applied changes nothing."""
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        for ev in events:
            if isinstance(ev, Trade):
                self._trade(ev, ts_ns)
            elif isinstance(ev, OrderAccepted):
                assert isinstance(command, PlaceOrder), "only PlaceOrder creates orders"
                self._accept(ev, command, ts_ns)
            elif isinstance(ev, OrderFilled):
                self._close(ev.order_id, OrderStatus.FILLED, ts_ns)
            elif isinstance(ev, OrderCancelled):
                self._close(ev.order_id, _CANCEL_STATUS[ev.reason], ts_ns)
            elif isinstance(ev, OrderReduced):
                order = self.orders[ev.order_id]
                order.orig_qty = order.executed_qty + ev.remaining_qty
                order.update_ns = ts_ns
            elif isinstance(ev, OrderReplaced):
                order = self.orders[ev.order_id]
                order.price = ev.price
                order.orig_qty = order.executed_qty + ev.qty
                order.update_ns = ts_ns
            elif isinstance(ev, StopTriggered):
                order = self.orders[ev.order_id]
                order.triggered = True
                order.update_ns = ts_ns

    def _accept(self, ev: OrderAccepted, cmd: PlaceOrder, ts_ns: int) -> None:
        order = OrderRecord(
            order_id=ev.order_id,
            account=ev.account,
            market=ev.market,
            side=ev.side,
            type=ev.type,
            tif=cmd.tif,
            price=ev.price,
            orig_qty=ev.qty,
            stop_price=ev.stop_price,
            display_qty=cmd.display_qty,
            quote_cap=cmd.quote_cap,
            stp=cmd.stp,
            post_only=cmd.post_only,
            client_order_id=ev.client_order_id,
            time_ns=ts_ns,
            update_ns=ts_ns,
            seq=ev.seq,
        )
        self.orders[ev.order_id] = order
        self._by_account.setdefault(ev.account, []).append(ev.order_id)
        self._open.setdefault(ev.account, {})[ev.order_id] = order
        if ev.client_order_id:
            self._client_ids[(ev.account, ev.client_order_id)] = ev.order_id

    def _trade(self, ev: Trade, ts_ns: int) -> None:
        base, quote = self._assets_of[ev.market]
        taker_buys = ev.taker_side is Side.BUY
        for order_id, account, fee, is_maker in (
            (ev.maker_order_id, ev.maker_account, ev.maker_fee, True),
            (ev.taker_order_id, ev.taker_account, ev.taker_fee, False),
        ):
            order = self.orders[order_id]
            order.executed_qty += ev.qty
            order.cum_quote += ev.quote_amount
            order.update_ns = ts_ns
            if order.status is OrderStatus.NEW:
                order.status = OrderStatus.PARTIALLY_FILLED
            is_buyer = taker_buys != is_maker
            self._trades.setdefault(account, []).append(
                TradeRecord(
                    trade_id=ev.trade_id,
                    market=ev.market,
                    order_id=order_id,
                    account=account,
                    price=ev.price,
                    qty=ev.qty,
                    quote_amount=ev.quote_amount,
                    fee=fee,
                    fee_asset=base if is_buyer else quote,
                    is_buyer=is_buyer,
                    is_maker=is_maker,
                    time_ns=ts_ns,
                    seq=ev.seq,
                )
            )

    def _close(self, order_id: int, status: OrderStatus, ts_ns: int) -> None:
        order = self.orders[order_id]
        order.status = status
        order.update_ns = ts_ns
        self._open.get(order.account, {}).pop(order_id, None)

    # -- queries
    def order(self, account: int, *, order_id: int = 0, client_order_id: str = "") -> OrderRecord | None:
        """Return ``account``'s order by id or by client order id; ``None`` if it has no such order.

        Another account's order is never returned: to the caller it does not exist.
        """
        if not order_id and client_order_id:
            order_id = self._client_ids.get((account, client_order_id), 0)
        order = self.orders.get(order_id)
        if order is None or order.account != account:
            return None
        return order

    def open_orders(self, account: int, market: str | None = None) -> list[OrderRecord]:
        """Return ``account``'s open orders, oldest first, in ``market`` or in every market."""
        orders = self._open.get(account, {}).values()
        return [o for o in orders if market is None or o.market == market]

    def all_orders(self, account: int, market: str, *, from_order_id: int = 0, limit: int = 500) -> list[OrderRecord]:
        """Return ``account``'s orders in ``market``, oldest first, from ``from_order_id`` on, at most ``limit``."""
        out: list[OrderRecord] = []
        for order_id in self._by_account.get(account, []):
            if order_id < from_order_id:
                continue
            order = self.orders[order_id]
            if order.market == market:
                out.append(order)
                if len(out) >= limit:
                    break
        return out

    def trades(self, account: int, market: str | None = None, *, order_id: int = 0) -> list[TradeRecord]:
        """Return ``account``'s fills, oldest first, optionally only in ``market`` or of one order."""
        return [
            t
            for t in self._trades.get(account, [])
            if (market is None or t.market == market) and (not order_id or t.order_id == order_id)
        ]
