"""A Solana node over its documented JSON-RPC API (getSlot, getBlock, getLatestBlockhash, isBlockhashValid,
sendTransaction, getSignatureStatuses, getBalance, getTokenAccountBalance, getMinimumBalanceForRentExemption).

Written to the API documentation and not exercised against a live validator in this project's tests (none can run
here); the adapter's logic is tested through :class:`~exchange_solana.litesvm_node.LiteSvmNode`.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import httpx

from exchange_solana.node import NodeBlock, NodeFault, NodeTransaction, SignatureStatus

__all__ = ["JsonRpcNode", "RpcError"]

# JSON-RPC error codes for a slot without a block: skipped, or missing in long-term storage / not yet available
_NO_BLOCK_CODES = frozenset({-32004, -32007, -32009})


class RpcError(NodeFault):
    """The node answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"Solana RPC error {code}: {message}")
        self.code = code
        self.data = data


class JsonRpcNode:
    """A :class:`~exchange_solana.node.SolanaNode` over HTTP JSON-RPC at ``url``, at ``commitment``."""

    def __init__(self, url: str, *, commitment: str = "confirmed", timeout: float = 10.0) -> None:
        self.url = url
        self.commitment = commitment
        self._client: httpx.Client | None = None
        self._timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method``; raise :class:`RpcError` for an error answer and :class:`NodeFault` on failure."""
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            response = self._client.post(self.url, json=body)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise NodeFault(f"Solana RPC {method} failed: {exc}") from exc
        if not isinstance(answer, dict):
            raise NodeFault(f"Solana RPC {method}: the answer is not a JSON object")
        if answer.get("error"):
            error = answer["error"]
            raise RpcError(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
        return answer.get("result")

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def slot(self) -> int:
        """``getSlot`` at the node's commitment."""
        return int(self.call("getSlot", {"commitment": self.commitment}))

    def block(self, slot: int) -> NodeBlock | None:
        """``getBlock`` with base64 transactions; ``None`` for a skipped or unavailable slot."""
        try:
            result = self.call(
                "getBlock",
                slot,
                {
                    "commitment": self.commitment,
                    "encoding": "base64",
                    "transactionDetails": "full",
                    "maxSupportedTransactionVersion": 0,
                    "rewards": False,
                },
            )
        except RpcError as exc:
            if exc.code in _NO_BLOCK_CODES:
                return None
            raise
        if result is None:
            return None
        try:
            return NodeBlock(
                slot,
                str(result["blockhash"]),
                str(result["previousBlockhash"]),
                tuple(_transaction(entry) for entry in result.get("transactions", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NodeFault(f"getBlock({slot}) answer does not parse: {exc}") from exc

    def latest_blockhash(self) -> str:
        """``getLatestBlockhash``."""
        return str(self.call("getLatestBlockhash", {"commitment": self.commitment})["value"]["blockhash"])

    def is_blockhash_valid(self, blockhash: str) -> bool:
        """``isBlockhashValid``."""
        return bool(self.call("isBlockhashValid", blockhash, {"commitment": self.commitment})["value"])

    def send_transaction(self, raw: bytes) -> str:
        """``sendTransaction`` (base64, with preflight); "already processed" returns the signature again."""
        from solders.transaction import VersionedTransaction

        signature = str(VersionedTransaction.from_bytes(raw).signatures[0])
        encoded = base64.b64encode(raw).decode()
        try:
            return str(
                self.call(
                    "sendTransaction",
                    encoded,
                    {"encoding": "base64", "preflightCommitment": self.commitment, "maxRetries": 0},
                )
            )
        except RpcError as exc:
            if "AlreadyProcessed" in str(exc.data) or "already been processed" in str(exc):
                return signature
            raise ValueError(f"the node refused the transaction: {exc}") from None

    def signature_status(self, signature: str) -> SignatureStatus | None:
        """``getSignatureStatuses`` searching history; ``processed`` only is reported with slot ``None``."""
        value = self.call("getSignatureStatuses", [signature], {"searchTransactionHistory": True})["value"][0]
        if value is None:
            return None
        ok = value.get("err") is None
        if value.get("confirmationStatus") == "processed":
            return SignatureStatus(None, ok)
        return SignatureStatus(int(value["slot"]), ok)

    def balance(self, address: str) -> int:
        """``getBalance``."""
        return int(self.call("getBalance", address, {"commitment": self.commitment})["value"])

    def token_balance(self, token_account: str) -> int:
        """``getTokenAccountBalance`` (0 when the account does not exist)."""
        try:
            result = self.call("getTokenAccountBalance", token_account, {"commitment": self.commitment})
        except RpcError as exc:
            if exc.code == -32602:  # "could not find account"
                return 0
            raise
        return int(result["value"]["amount"])

    def rent_exempt_minimum(self, size: int) -> int:
        """``getMinimumBalanceForRentExemption``."""
        return int(self.call("getMinimumBalanceForRentExemption", size))


def _transaction(entry: dict[str, Any]) -> NodeTransaction:
    from solders.message import to_bytes_versioned
    from solders.transaction import VersionedTransaction

    raw = base64.b64decode(entry["transaction"][0])
    tx = VersionedTransaction.from_bytes(raw)
    meta = entry.get("meta") or {}
    loaded = meta.get("loadedAddresses") or {}
    keys = tuple(str(k) for k in tx.message.account_keys)
    keys += tuple(loaded.get("writable", ())) + tuple(loaded.get("readonly", ()))
    return NodeTransaction(str(tx.signatures[0]), to_bytes_versioned(tx.message), keys, meta.get("err") is None)
