"""Signed requests as Binance's spot API signs them: an API key header and an HMAC-SHA256 over the parameters.

The signature is the hex HMAC-SHA256, keyed with the API secret, of the query string followed directly by the
request body, both as sent and with the ``signature`` parameter taken out. ``timestamp`` (ms) must be within
``recvWindow`` (default 5000 ms, at most 60000) before the server's time and at most 1000 ms after it.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from exchange_framework.api.errors import (
    BAD_API_KEY_FORMAT,
    INVALID_PARAMETER,
    INVALID_SIGNATURE,
    INVALID_TIMESTAMP,
    REJECTED_API_KEY,
    REJECTED_KEY_MSG,
    ApiError,
)
from exchange_framework.api.params import Params
from exchange_framework.identity import ApiKeyInfo, IdentityStore, Scope

__all__ = ["API_KEY_HEADER", "authenticate", "sign", "strip_signature"]

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60_000
MAX_AHEAD_MS = 1000
_SIGNATURE = re.compile(r"(^|&)signature=[^&]*")
_KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{16,64}$")


def sign(secret: str, total_params: str) -> str:
    """The signature of ``total_params`` under ``secret`` (hex HMAC-SHA256), as a client computes it."""
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def strip_signature(text: str) -> str:
    """``text`` (a query string or body) without its ``signature`` parameter."""
    stripped = _SIGNATURE.sub("", text)
    return stripped[1:] if stripped.startswith("&") and not text.startswith("&") else stripped


def authenticate(
    store: IdentityStore,
    *,
    api_key: str | None,
    params: Params,
    client_ip: str,
    now_ms: int,
    scope: Scope,
    signed: bool = True,
) -> ApiKeyInfo:
    """Check a request's key, address, scope, timestamp and signature; return the key or raise :class:`ApiError`."""
    if not api_key:
        raise ApiError(
            BAD_API_KEY_FORMAT, f"API-key format invalid: send your API key in the {API_KEY_HEADER} header.", 401
        )
    if not _KEY_FORMAT.match(api_key):
        raise ApiError(BAD_API_KEY_FORMAT, "API-key format invalid.", 401)
    key = store.api_key(api_key)
    if key is None or not key.allows_ip(client_ip) or scope not in key.scopes:
        detail = ""
        if key is not None and scope not in key.scopes:
            detail = f" This key lacks the '{scope}' permission: create a key with it."
        elif key is not None:
            detail = f" Requests from {client_ip} are not on this key's IP allow-list."
        raise ApiError(REJECTED_API_KEY, REJECTED_KEY_MSG + detail, 401)
    if not signed:
        return key
    timestamp = params.integer("timestamp", required=True)
    recv_window = params.integer("recvWindow", default=DEFAULT_RECV_WINDOW)
    if not 0 < recv_window <= MAX_RECV_WINDOW:
        raise ApiError(INVALID_PARAMETER, f"recvWindow must be between 1 and {MAX_RECV_WINDOW} ms.")
    if timestamp > now_ms + MAX_AHEAD_MS:
        raise ApiError(INVALID_TIMESTAMP, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - timestamp > recv_window:
        raise ApiError(INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow.")
    signature = params.values.get("signature", "")
    expected = sign(key.secret, strip_signature(params.query) + strip_signature(params.body))
    if not signature or not hmac.compare_digest(signature.lower(), expected):
        raise ApiError(INVALID_SIGNATURE, "Signature for this request is not valid.", 400)
    return key
