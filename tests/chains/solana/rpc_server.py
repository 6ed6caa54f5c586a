"""A local HTTP server speaking Solana's documented JSON-RPC methods over a LiteSVM node.

It lets the adapter's :class:`~exchange_solana.rpc.JsonRpcNode` be tested over real HTTP: the answers have the
shapes of the RPC documentation (``context``/``value`` wrappers, base64 transactions in ``getBlock``, error codes
-32004 for a block not available, -32002 for a failed preflight, -32602 for a token account that does not exist).
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exchange_solana import LiteSvmNode


class _Error(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class SolanaRpcServer:
    """Serves ``node`` on 127.0.0.1 at a free port until :meth:`stop`."""

    def __init__(self, node: LiteSvmNode) -> None:
        self.node = node
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    with server.lock:
                        answer: dict[str, Any] = {"result": server.handle(body["method"], body.get("params", []))}
                except _Error as exc:
                    answer = {"error": {"code": exc.code, "message": exc.message, "data": exc.data}}
                data = json.dumps({"jsonrpc": "2.0", "id": body.get("id"), **answer}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Shut the server down."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def _context(self, value: Any) -> dict[str, Any]:
        return {"context": {"slot": self.node.slot()}, "value": value}

    def handle(self, method: str, params: list[Any]) -> Any:
        """Answer one documented method."""
        node = self.node
        if method == "getSlot":
            return node.slot()
        if method == "getBlock":
            block = node.block(params[0])
            if block is None and params[0] <= node.slot():
                raise _Error(-32007, f"Slot {params[0]} was skipped, or missing due to ledger jump to recent snapshot")
            if block is None:
                raise _Error(-32004, f"Block not available for slot {params[0]}")
            txs = []
            for tx in block.transactions:
                raw = node.raw_transaction(tx.signature)
                assert raw is not None
                meta = {"err": None if tx.ok else {"InstructionError": [0, "Custom"]}, "fee": 5000}
                meta["loadedAddresses"] = {"writable": [], "readonly": []}
                txs.append({"transaction": [base64.b64encode(raw).decode(), "base64"], "meta": meta, "version": 0})
            return {
                "blockhash": block.blockhash,
                "previousBlockhash": block.previous_blockhash,
                "parentSlot": max(block.slot - 1, 0),
                "blockHeight": block.slot,
                "transactions": txs,
            }
        if method == "getLatestBlockhash":
            return self._context({"blockhash": node.latest_blockhash(), "lastValidBlockHeight": node.slot() + 150})
        if method == "isBlockhashValid":
            return self._context(node.is_blockhash_valid(params[0]))
        if method == "sendTransaction":
            raw = base64.b64decode(params[0])
            try:
                return node.send_transaction(raw)
            except ValueError as exc:
                raise _Error(-32002, f"Transaction simulation failed: {exc}", {"err": str(exc)}) from None
        if method == "getSignatureStatuses":
            statuses: list[Any] = []
            for signature in params[0]:
                status = node.signature_status(signature)
                if status is None:
                    statuses.append(None)
                    continue
                err = None if status.ok else {"InstructionError": [0, "Custom"]}
                if status.slot is None:
                    entry = {"slot": node.slot() + 1, "confirmations": 0, "err": err, "confirmationStatus": "processed"}
                else:
                    depth = node.slot() - status.slot
                    entry = {"slot": status.slot, "confirmations": depth, "err": err, "confirmationStatus": "confirmed"}
                statuses.append(entry)
            return self._context(statuses)
        if method == "getBalance":
            return self._context(node.balance(params[0]))
        if method == "getTokenAccountBalance":
            from solders.pubkey import Pubkey

            if node.svm.get_account(Pubkey.from_string(params[0])) is None:
                raise _Error(-32602, "Invalid param: could not find account")
            amount = node.token_balance(params[0])
            return self._context({"amount": str(amount), "decimals": 6, "uiAmountString": str(amount)})
        if method == "getMinimumBalanceForRentExemption":
            return node.rent_exempt_minimum(params[0])
        raise _Error(-32601, "Method not found")
