"""Request parameters the Binance way: query string and form body together, read once into typed values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from urllib.parse import parse_qsl

from exchange_framework.api.errors import ILLEGAL_CHARS, INVALID_PARAMETER, MANDATORY_PARAM, ApiError
from exchange_framework.money import MoneyError, parse_decimal

__all__ = ["Params"]

_INT = re.compile(r"^-?[0-9]{1,19}$")


class Params:
    """The parameters of one request (query string first, then the body), with typed getters.

    Every getter raises :class:`ApiError` with Binance's code and a message naming the parameter.
    """

    def __init__(self, query: str, body: str = "") -> None:
        self.query = query
        self.body = body
        self.values: dict[str, str] = {}
        for text in (query, body):
            if not text:
                continue
            if "%" in text or "+" in text:  # encoded characters: the full decoder
                pairs = parse_qsl(text, keep_blank_values=True)
            else:  # plain "a=1&b=2" (what signed clients send): split, no decoding needed
                pairs = [(name, value) for name, _, value in (part.partition("=") for part in text.split("&") if part)]
            for name, value in pairs:
                self.values.setdefault(name, value)

    @classmethod
    def of(cls, values: Mapping[str, str]) -> Params:
        """Parameters from a mapping (for internal callers and tests)."""
        params = cls("")
        params.values = dict(values)
        return params

    def __contains__(self, name: str) -> bool:
        return bool(self.values.get(name))

    def text(self, name: str, *, required: bool = False, default: str = "") -> str:
        """A string parameter; empty counts as missing."""
        value = self.values.get(name, "")
        if not value:
            if required:
                raise ApiError(
                    MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
            return default
        return value

    def integer(
        self, name: str, *, required: bool = False, default: int = 0, low: int | None = None, high: int | None = None
    ) -> int:
        """An integer parameter within ``[low, high]``."""
        value = self.values.get(name, "")
        if not value:
            if required:
                raise ApiError(
                    MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
            return default
        if not _INT.match(value):
            raise ApiError(ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'; legal range is an integer.")
        number = int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            raise ApiError(INVALID_PARAMETER, f"Invalid value for parameter '{name}': {number} is outside {bounds}.")
        return number

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        """A positive decimal parameter (never parsed through a float)."""
        value = self.values.get(name, "")
        if not value:
            if required:
                raise ApiError(
                    MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
            return None
        if value.startswith("-"):
            raise ApiError(
                ILLEGAL_CHARS,
                f"Illegal characters found in parameter '{name}'; "
                "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
            )
        try:
            number = parse_decimal(value, what=f"parameter '{name}'")
        except MoneyError as exc:
            raise ApiError(ILLEGAL_CHARS, f"Illegal characters found in {exc}") from None
        if number <= 0:
            raise ApiError(INVALID_PARAMETER, f"Invalid value for parameter '{name}': it must be greater than zero.")
        return number

    def choice(
        self,
        name: str,
        allowed: tuple[str, ...],
        *,
        required: bool = False,
        default: str = "",
        code: int = INVALID_PARAMETER,
    ) -> str:
        """One of ``allowed`` (Binance's upper-case enum values)."""
        value = self.text(name, required=required, default=default)
        if value and value not in allowed:
            raise ApiError(code, f"Invalid {name} '{value}': use one of {', '.join(allowed)}.")
        return value
