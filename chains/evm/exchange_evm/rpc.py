"""A small JSON-RPC 2.0 client over HTTP for an EVM node, with batch requests and clear node-fault errors.

Two kinds of failure, kept apart because callers treat them differently:

- :class:`NodeFault`: the node could not be reached, timed out, or answered something that is not JSON-RPC. The
  deposit tracker pauses and retries; nothing was decided.
- :class:`RpcError`: the node answered with a JSON-RPC error object (it refused the request, with a reason).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any

import httpx

__all__ = ["JsonRpcClient", "NodeFault", "RpcError", "hex_data", "quantity"]


class NodeFault(ConnectionError):
    """The EVM node is down, timed out or answered nonsense. Retry later; nothing was decided by the node."""


class RpcError(Exception):
    """The node answered a request with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: node error {code}: {message}")
        self.method = method
        self.code = code
        self.message = message


def quantity(value: object, what: str) -> int:
    """Return a JSON-RPC hex quantity (``"0x1a"``) as an int; :class:`NodeFault` naming ``what`` if it is not one."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise NodeFault(f"{what}: expected a hex quantity, got {str(value)[:80]!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise NodeFault(f"{what}: expected a hex quantity, got {str(value)[:80]!r}") from None


def hex_data(value: object, what: str) -> bytes:
    """Return JSON-RPC hex data (``"0x..."``) as bytes; :class:`NodeFault` naming ``what`` if it is not that."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise NodeFault(f"{what}: expected hex data, got {str(value)[:80]!r}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise NodeFault(f"{what}: expected hex data, got {str(value)[:80]!r}") from None


class JsonRpcClient:
    """Calls one node's JSON-RPC endpoint; thread-safe, one keep-alive connection pool per client."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"rpc_url must be an http:// or https:// URL, got {url!r}")
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout)
            return self._client

    def _post(self, body: object) -> Any:
        try:
            response = self._http().post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise NodeFault(f"EVM node at {self.url} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise NodeFault(f"EVM node at {self.url} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise NodeFault(f"EVM node at {self.url} answered something that is not JSON") from None

    @staticmethod
    def _result(method: str, answer: object) -> Any:
        if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
            raise NodeFault(f"{method}: not a JSON-RPC 2.0 answer: {str(answer)[:200]}")
        error = answer.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise NodeFault(f"{method}: malformed error object {error!r}")
            raise RpcError(method, int(error.get("code", 0)), str(error.get("message", "")))
        if "result" not in answer:
            raise NodeFault(f"{method}: answer has neither result nor error")
        return answer["result"]

    def call(self, method: str, *params: object) -> Any:
        """Call ``method`` and return its result; raise :class:`RpcError` or :class:`NodeFault`."""
        return self._result(
            method, self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        )

    def batch(self, calls: Sequence[tuple[str, Sequence[object]]]) -> list[Any]:
        """Send several calls in one HTTP request and return their results in order.

        Raise :class:`RpcError` for the first call the node refused, :class:`NodeFault` for a malformed batch.
        """
        results = self.batch_or_errors(calls)
        for result in results:
            if isinstance(result, RpcError):
                raise result
        return results

    def batch_or_errors(self, calls: Sequence[tuple[str, Sequence[object]]]) -> list[Any]:
        """Like :meth:`batch`, but a call the node refused gives its :class:`RpcError` in its place."""
        if not calls:
            return []
        first = next(self._ids)
        for _ in range(len(calls) - 1):
            next(self._ids)
        body = [
            {"jsonrpc": "2.0", "id": first + i, "method": method, "params": list(params)}
            for i, (method, params) in enumerate(calls)
        ]
        answers = self._post(body)
        if not isinstance(answers, list) or len(answers) != len(calls):
            raise NodeFault(f"batch of {len(calls)} calls answered with {str(answers)[:200]}")
        by_id: dict[object, object] = {a.get("id") if isinstance(a, dict) else None: a for a in answers}
        results: list[Any] = []
        for i, (method, _) in enumerate(calls):
            try:
                results.append(self._result(method, by_id.get(first + i)))
            except RpcError as exc:
                results.append(exc)
        return results

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
