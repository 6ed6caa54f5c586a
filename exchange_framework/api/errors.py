"""API errors in Binance's shape: ``{"code": -1013, "msg": "..."}`` with its codes, so existing clients map them."""

from __future__ import annotations

from starlette.responses import JSONResponse

from exchange_framework.types import RejectReason

__all__ = ["ApiError", "reject_error"]


class ApiError(Exception):
    """An error answer: Binance's numeric ``code``, a message saying what to fix, and the HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The error as an HTTP response."""
        return JSONResponse({"code": self.code, "msg": self.msg}, status_code=self.status, headers=self.headers)


# Binance's codes and, where clients match on them, its exact messages.
UNKNOWN = -1000
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
PARAM_NOT_REQUIRED = -1106
BAD_PRECISION = -1111
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
INVALID_PARAMETER = -1130
FILTER_FAILURE = -1013
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FORMAT = -2014
REJECTED_API_KEY = -2015

INSUFFICIENT_BALANCE_MSG = "Account has insufficient balance for requested action."
UNKNOWN_ORDER_MSG = "Unknown order sent."
NO_SUCH_ORDER_MSG = "Order does not exist."
REJECTED_KEY_MSG = "Invalid API-key, IP, or permissions for action."

_REJECTS: dict[RejectReason, tuple[int, str]] = {
    RejectReason.UNKNOWN_MARKET: (BAD_SYMBOL, "Invalid symbol."),
    RejectReason.MARKET_NOT_OPEN: (NEW_ORDER_REJECTED, "Market is closed: trading on this symbol is halted."),
    RejectReason.INVALID_QUANTITY: (FILTER_FAILURE, "Filter failure: LOT_SIZE"),
    RejectReason.QUANTITY_BELOW_MIN: (FILTER_FAILURE, "Filter failure: LOT_SIZE (quantity below minQty)"),
    RejectReason.QUANTITY_ABOVE_MAX: (FILTER_FAILURE, "Filter failure: LOT_SIZE (quantity above maxQty)"),
    RejectReason.INVALID_PRICE: (FILTER_FAILURE, "Filter failure: PRICE_FILTER"),
    RejectReason.PRICE_ABOVE_MAX: (FILTER_FAILURE, "Filter failure: PRICE_FILTER (price above maxPrice)"),
    RejectReason.NOTIONAL_BELOW_MIN: (FILTER_FAILURE, "Filter failure: NOTIONAL"),
    RejectReason.INSUFFICIENT_BALANCE: (NEW_ORDER_REJECTED, INSUFFICIENT_BALANCE_MSG),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (NEW_ORDER_REJECTED, "Duplicate order sent."),
    RejectReason.UNKNOWN_ORDER: (CANCEL_REJECTED, UNKNOWN_ORDER_MSG),
    RejectReason.NOT_ORDER_OWNER: (CANCEL_REJECTED, UNKNOWN_ORDER_MSG),  # another account's order does not exist
    RejectReason.POST_ONLY_WOULD_CROSS: (NEW_ORDER_REJECTED, "Order would immediately match and take."),
    RejectReason.FOK_NOT_FILLABLE: (NEW_ORDER_REJECTED, "Order would not be fully filled at once (FOK): not placed."),
    RejectReason.STOP_WOULD_TRIGGER_IMMEDIATELY: (NEW_ORDER_REJECTED, "Stop price would trigger immediately."),
    RejectReason.INVALID_ORDER_PARAMETERS: (INVALID_PARAMETER, "Invalid combination of order parameters."),
    RejectReason.REPLACE_NO_CHANGE: (INVALID_PARAMETER, "The replacement changes nothing."),
    RejectReason.REPLACE_NOT_SUPPORTED: (INVALID_PARAMETER, "Only resting limit orders can be replaced."),
    RejectReason.MARKET_BUY_NEEDS_CAP: (
        MANDATORY_PARAM,
        "A MARKET BUY needs quantity or quoteOrderQty.",
    ),
    RejectReason.CLIENT_ORDER_ID_TOO_LONG: (
        ILLEGAL_CHARS,
        "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_.]{1,36}$'.",
    ),
}


def reject_error(reason: RejectReason) -> ApiError:
    """The API error for an engine rejection."""
    code, msg = _REJECTS.get(reason, (NEW_ORDER_REJECTED, f"Order rejected: {reason.name.lower()}."))
    return ApiError(code, msg)
