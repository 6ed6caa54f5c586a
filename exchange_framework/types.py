"""Value types shared by the kernel: sides, order types, reasons.

Everything here is an ``IntEnum`` so that commands, events and snapshots stay compact integers on the wire
and in the journal, and comparisons in the matching loop are integer comparisons.
"""

from __future__ import annotations

from enum import IntEnum

AccountId = int
OrderId = int
Seq = int


class Side(IntEnum):
    BUY = 0
    SELL = 1


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1
    STOP_LIMIT = 2
    STOP_MARKET = 3


class TimeInForce(IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2


class StpMode(IntEnum):
    """Self-trade prevention: what happens when an order would trade with its own account's resting order."""

    CANCEL_NEWEST = 0  # cancel the incoming (taker) order's remainder
    CANCEL_OLDEST = 1  # cancel the resting (maker) order and keep matching
    CANCEL_BOTH = 2  # cancel both
    DECREMENT = 3  # reduce both by the smaller quantity without a trade


class MarketStatus(IntEnum):
    OPEN = 0
    HALTED = 1  # no new orders; cancels allowed
    CLOSED = 2  # no orders, no cancels


class RejectReason(IntEnum):
    """Why a command was refused. A rejected command changes no state."""

    UNKNOWN_MARKET = 1
    MARKET_NOT_OPEN = 2
    INVALID_QUANTITY = 3
    QUANTITY_BELOW_MIN = 4
    QUANTITY_ABOVE_MAX = 5
    INVALID_PRICE = 6
    PRICE_ABOVE_MAX = 7
    NOTIONAL_BELOW_MIN = 8
    INSUFFICIENT_BALANCE = 9
    DUPLICATE_CLIENT_ORDER_ID = 10
    UNKNOWN_ORDER = 11
    NOT_ORDER_OWNER = 12
    POST_ONLY_WOULD_CROSS = 13
    FOK_NOT_FILLABLE = 14
    STOP_WOULD_TRIGGER_IMMEDIATELY = 15
    INVALID_ORDER_PARAMETERS = 16
    REPLACE_NO_CHANGE = 17
    REPLACE_NOT_SUPPORTED = 18
    UNKNOWN_ASSET = 19
    INVALID_AMOUNT = 20
    UNKNOWN_ACCOUNT = 21
    MARKET_BUY_NEEDS_CAP = 22
    CLIENT_ORDER_ID_TOO_LONG = 23
    INVALID_FEE_RATE = 24
    DUPLICATE_REFERENCE = 25  # a funds hold, credit or debit with this reference already exists
    UNKNOWN_REFERENCE = 26  # no funds hold has this reference
    INVALID_CUSTODY_ACCOUNT = 27  # a custody account is not omnibus:<hot|warm|cold|deposit>:<chain>


class CancelReason(IntEnum):
    """Why an accepted order left the book without being fully filled."""

    USER = 1
    IOC_REMAINDER = 2  # immediate-or-cancel (and market) remainder expired
    NO_LIQUIDITY = 3  # market order found nothing more to trade with
    QUOTE_CAP_REACHED = 4  # market buy spent its quote-amount cap
    SELF_TRADE = 5  # self-trade prevention
    MARKET_CLOSED = 6
