"""A minimal signed-request client written from Binance's documented signing rules (independent of the server code)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from exchange_framework.identity import ApiKeyInfo


class Rest:
    def __init__(self, base_url: str, key: ApiKeyInfo | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.key = key

    def close(self) -> None:
        self.http.close()

    def public(self, method: str, path: str, **params: Any) -> httpx.Response:
        return self.http.request(method, path, params=params)

    def signed(
        self, method: str, path: str, *, timestamp: int | None = None, secret: str | None = None, **params: Any
    ) -> httpx.Response:
        assert self.key is not None
        params["timestamp"] = timestamp if timestamp is not None else time.time_ns() // 1_000_000
        query = urlencode(params)
        signature = hmac.new((secret or self.key.secret).encode(), query.encode(), hashlib.sha256).hexdigest()
        headers = {"X-MBX-APIKEY": self.key.key}
        if method in ("POST", "PUT"):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self.http.request(method, path, content=f"{query}&signature={signature}", headers=headers)
        return self.http.request(method, f"{path}?{query}&signature={signature}", headers=headers)
