"""A small JSON-RPC client for Bitcoin Core and its forks (litecoind): HTTP basic auth, batches, exact amounts.

Our own (under two hundred lines over ``http.client``) rather than a library: the node's API is plain JSON-RPC 1.0,
and what we need from a client is specific — amounts parsed as :class:`~decimal.Decimal` (never float), batched
calls for block scans, one kept-alive connection per client, and every transport failure turned into
:class:`NodeUnavailable` so that callers can tell a node fault (retry later) from a refusal (:class:`RpcError`).
The maintained Python packages for this either wrap a whole wallet library (python-bitcoinlib) or are unmaintained
copies of ``AuthServiceProxy``.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import socket
import threading
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["NodeUnavailable", "RpcClient", "RpcError"]

# Codes the node answers while it cannot serve yet (warming up, loading a wallet): a fault, not a refusal.
_NOT_READY = {-28}


class NodeUnavailable(ConnectionError):
    """The node could not be reached or cannot serve (down, timed out, warming up, credentials refused).

    A node fault, never a verdict on the request: callers hold what they were doing and retry.
    """


class RpcError(Exception):
    """The node answered a call with an error (``code`` and ``message`` as the node gives them)."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message


class RpcClient:
    """JSON-RPC over HTTP to one node, thread-safe; ``wallet`` calls go to ``/wallet/<name>``.

    Credentials are ``user`` and ``password``, or ``cookie_file`` (the node's ``.cookie``, read on each connect so a
    node restart's new cookie is picked up).
    """

    def __init__(
        self,
        url: str,
        *,
        user: str = "",
        password: str = "",
        cookie_file: str | Path | None = None,
        timeout: float = 30.0,
        label: str = "node",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"RPC url must look like http://host:port, got {url!r}")
        self.url = url
        self.label = label
        self._host = parts.hostname
        self._port = parts.port or 80
        self._user = user or (parts.username or "")
        self._password = password or (parts.password or "")
        self._cookie_file = Path(cookie_file) if cookie_file is not None else None
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._ids = itertools.count(1)

    # -- public -----------------------------------------------------------------------------------------------------

    def call(self, method: str, *params: Any, wallet: str | None = None) -> Any:
        """Call ``method`` and return its result; raise :class:`RpcError` or :class:`NodeUnavailable`."""
        request_id = next(self._ids)
        body = {"jsonrpc": "1.0", "id": request_id, "method": method, "params": list(params)}
        reply = self._post(body, wallet)
        if not isinstance(reply, dict):
            raise NodeUnavailable(f"{self.label} at {self.url} answered {method} with something that is not JSON-RPC")
        return self._result(method, reply)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, wallet: str | None = None) -> list[Any]:
        """Send several calls in one request; return each result, or the :class:`RpcError` it raised, in order."""
        if not calls:
            return []
        first = next(self._ids)
        body = [
            {"jsonrpc": "1.0", "id": first + n, "method": method, "params": list(params)}
            for n, (method, params) in enumerate(calls)
        ]
        for _ in calls[1:]:
            next(self._ids)
        replies = self._post(body, wallet)
        if not isinstance(replies, list) or len(replies) != len(calls):
            raise NodeUnavailable(f"{self.label} at {self.url} answered a batch of {len(calls)} calls incompletely")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        results: list[Any] = []
        for n, (method, _params) in enumerate(calls):
            reply = by_id.get(first + n)
            if reply is None:
                raise NodeUnavailable(f"{self.label} at {self.url} left call {method} of a batch unanswered")
            try:
                results.append(self._result(method, reply))
            except RpcError as exc:
                results.append(exc)
        return results

    def close(self) -> None:
        """Close the kept-alive connection (the next call opens another)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- internals --------------------------------------------------------------------------------------------------

    def _result(self, method: str, reply: dict[str, Any]) -> Any:
        error = reply.get("error")
        if error:
            code = int(error.get("code", 0)) if isinstance(error, dict) else 0
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            if code in _NOT_READY:
                raise NodeUnavailable(f"{self.label} at {self.url} is not ready: {message}")
            raise RpcError(method, code, message)
        return reply.get("result")

    def _auth(self) -> str:
        user, password = self._user, self._password
        if self._cookie_file is not None:
            try:
                user, _, password = self._cookie_file.read_text(encoding="utf-8").strip().partition(":")
            except OSError as exc:
                raise NodeUnavailable(
                    f"cannot read the RPC cookie {self._cookie_file} of {self.label} ({exc}): is the node running?"
                ) from None
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _post(self, body: Any, wallet: str | None) -> Any:
        path = f"/wallet/{quote(wallet, safe='')}" if wallet is not None else "/"
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": self._auth()}
        with self._lock:
            for attempt in (1, 2):  # a kept-alive connection the node closed in between is retried once, fresh
                try:
                    if self._conn is None:
                        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
                    self._conn.request("POST", path, data, headers)
                    response = self._conn.getresponse()
                    raw = response.read()
                    status = response.status
                    break
                except (OSError, http.client.HTTPException) as exc:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    stale = isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError)
                    if attempt == 1 and stale:
                        continue
                    kind = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else "is unreachable"
                    raise NodeUnavailable(
                        f"{self.label} at {self.url} {kind} ({type(exc).__name__}: {exc}); check that the node runs "
                        "and that the RPC url and port in the settings are right"
                    ) from None
        if status in (401, 403):
            raise NodeUnavailable(
                f"{self.label} at {self.url} refused the RPC credentials (HTTP {status}): check rpc_user and the "
                "password variable or cookie file in the settings"
            )
        try:
            return json.loads(raw, parse_float=Decimal)
        except ValueError:
            raise NodeUnavailable(
                f"{self.label} at {self.url} answered HTTP {status} with a body that is not JSON: {raw[:200]!r}"
            ) from None
