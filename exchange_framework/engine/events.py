"""Events: the engine's only output.

Every event carries ``seq``, the sequence number of the command that caused it, so every consumer (ledger, market
data, audit) can apply events idempotently. Amounts that move money are explicit (``held``, ``released``, fees), so
the ledger settles exactly what the engine did without recomputing it.
"""

from __future__ import annotations

import msgspec

from exchange_framework.types import CancelReason, MarketStatus, OrderType, RejectReason, Side


class Event(msgspec.Struct, tag=True, tag_field="kind", array_like=True, gc=False):
    """Base of every engine event."""

    seq: int


class OrderAccepted(Event, tag="accepted"):
    """An order passed validation and risk; ``held`` atomic units of its hold asset were moved to held."""

    order_id: int
    account: int
    market: str
    side: Side
    type: OrderType
    price: int
    qty: int
    stop_price: int
    held: int
    client_order_id: str


class OrderRejected(Event, tag="rejected"):
    """A command was refused; nothing changed. ``order_id`` is set when the command named an existing order."""

    account: int
    market: str
    reason: RejectReason
    client_order_id: str = ""
    order_id: int = 0


class Trade(Event, tag="trade"):
    """A fill at the maker's price.

    The buyer receives ``base_amount`` less its fee (in base); the seller receives ``quote_amount`` less its fee (in
    quote). A negative fee is a rebate. ``taker_released`` is quote returned from a buying taker's hold because
    the trade happened below its limit price.
    """

    market: str
    trade_id: int
    price: int
    qty: int
    taker_side: Side
    maker_order_id: int
    maker_account: int
    taker_order_id: int
    taker_account: int
    base_amount: int
    quote_amount: int
    maker_fee: int
    taker_fee: int
    taker_released: int


class OrderCancelled(Event, tag="cancelled"):
    """An order left the engine unfilled or partly filled; ``released`` hold went back to available."""

    order_id: int
    account: int
    market: str
    reason: CancelReason
    remaining_qty: int
    released: int


class OrderFilled(Event, tag="filled"):
    """An order was completely filled; ``released`` is any hold it did not need (market buys with a cap)."""

    order_id: int
    account: int
    market: str
    released: int


class OrderReduced(Event, tag="reduced"):
    """Self-trade prevention (DECREMENT) took ``qty`` lots off an order without a trade; ``released`` hold freed."""

    order_id: int
    account: int
    market: str
    qty: int
    remaining_qty: int
    released: int


class OrderReplaced(Event, tag="replaced"):
    """A resting order got a new price and quantity; its hold changed by ``hold_delta`` (negative = released)."""

    order_id: int
    account: int
    market: str
    price: int
    qty: int
    kept_priority: bool
    hold_delta: int


class StopTriggered(Event, tag="triggered"):
    """A stop order's trigger price was reached; it now works as a limit or market order."""

    order_id: int
    account: int
    market: str
    last_price: int


class BookDelta(Event, tag="book"):
    """The visible quantity (lots) at one price level after the command; 0 means the level is gone."""

    market: str
    side: Side
    price: int
    qty: int


class FundsCredited(Event, tag="credited"):
    """``amount`` of ``asset`` entered the account's available balance; ``custody`` is the command's custody
    account (empty: balanced against ``external``)."""

    account: int
    asset: str
    amount: int
    reference: str
    custody: str = ""


class FundsDebited(Event, tag="debited"):
    account: int
    asset: str
    amount: int
    reference: str


class FundsHeld(Event, tag="funds_held"):
    """``amount`` of ``asset`` moved from available to held under ``reference``."""

    account: int
    asset: str
    amount: int
    reference: str


class FundsReleased(Event, tag="funds_released"):
    """The hold ``reference`` ended: its funds are available again."""

    account: int
    asset: str
    amount: int
    reference: str


class HeldFundsDebited(Event, tag="held_debited"):
    """The hold ``reference`` ended: its funds left the exchange, paid from ``custody`` (empty: ``external``)."""

    account: int
    asset: str
    amount: int
    reference: str
    custody: str = ""


class CustodyMoved(Event, tag="custody_moved"):
    """``from_account`` gave ``amount + fee`` of ``asset``, ``to_account`` received ``amount`` (empty when it is 0)
    and ``fee`` went to the network (a :class:`~exchange_framework.engine.commands.MoveCustody` was accepted)."""

    asset: str
    from_account: str
    to_account: str
    amount: int
    fee: int
    reference: str


class FundsRejected(Event, tag="funds_rejected"):
    """A credit, debit, hold, release, held debit or custody move was refused; nothing changed."""

    account: int
    asset: str
    reason: RejectReason
    reference: str


class AccountFeesChanged(Event, tag="account_fees"):
    """An account's own fee rates (ppm) were set, or cleared (``None``: the market's rates apply)."""

    account: int
    maker_ppm: int | None
    taker_ppm: int | None


class MarketStatusChanged(Event, tag="market_status"):
    market: str
    status: MarketStatus


AnyEvent = (
    OrderAccepted
    | OrderRejected
    | Trade
    | OrderCancelled
    | OrderFilled
    | OrderReduced
    | OrderReplaced
    | StopTriggered
    | BookDelta
    | FundsCredited
    | FundsDebited
    | FundsHeld
    | FundsReleased
    | HeldFundsDebited
    | FundsRejected
    | AccountFeesChanged
    | MarketStatusChanged
    | CustodyMoved
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[AnyEvent] = msgspec.msgpack.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    return _decoder.decode(data)
