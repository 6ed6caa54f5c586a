"""A local server of Elliptic's AML API v2 as documented: signed requests, wallet and transaction screening.

It checks every request's ``x-access-key``, ``x-access-timestamp`` (within five minutes of its own clock) and
``x-access-sign`` (base64 HMAC-SHA256 of timestamp + method + lower-case path + body, keyed with the base64-decoded
secret), validates the body, and answers analyses computed from its own data: ``entities`` (who owns an address),
``transactions`` (the addresses that paid into a txid) and ``scores`` (the risk of each entity category).
``fault`` makes every request fail one way ("500", "garbage", "shape", "slow", "incomplete").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.compliance.httpserver import serve

# The documented example credentials' shape: a key and a base64 secret.
API_KEY = "test-elliptic-key"
API_SECRET = base64.b64encode(b"a local test secret, 32 bytes ok").decode()


@dataclass
class EllipticState:
    keys: dict[str, str] = field(default_factory=lambda: {API_KEY: API_SECRET})
    entities: dict[str, tuple[str, str]] = field(default_factory=dict)  # address -> (entity name, category)
    transactions: dict[str, list[str]] = field(default_factory=dict)  # txid -> paying addresses
    scores: dict[str, float] = field(
        default_factory=lambda: {"Sanctions": 10.0, "Dark Market": 9.0, "Mixer": 7.2, "Gambling": 2.5, "Exchange": 0.0}
    )
    fault: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def expected_signature(secret: str, timestamp: str, method: str, path: str, body: str) -> str:
    digest = hmac.new(base64.b64decode(secret), f"{timestamp}{method}{path.lower()}{body}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _rule(name: str, category: str, score: float) -> dict[str, Any]:
    return {
        "rule_id": str(uuid.uuid5(uuid.NAMESPACE_URL, name + category)),
        "rule_name": name,
        "risk_score": score,
        "rule_type": "exposure",
        "matched_elements": [{"category": category, "contribution_percentage": 100, "contributions": []}],
        "matched_behaviors": [],
    }


def _detail(source_rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"source": source_rules, "destination": []}


def make_handler(state: EllipticState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: object) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refuse(self, status: int, name: str, message: str) -> None:
            self._send(status, {"name": name, "message": message})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            key = self.headers.get("x-access-key", "")
            timestamp = self.headers.get("x-access-timestamp", "")
            signature = self.headers.get("x-access-sign", "")
            with state.lock:
                state.requests.append({"path": self.path, "body": raw, "timestamp": timestamp, "key": key})
            secret = state.keys.get(key)
            if secret is None:
                self._refuse(401, "UnauthorizedError", "unknown x-access-key")
                return
            if not timestamp.isdigit() or abs(int(timestamp) - time.time() * 1000) > 5 * 60 * 1000:
                self._refuse(401, "UnauthorizedError", "x-access-timestamp is missing or too far from now")
                return
            if not hmac.compare_digest(signature, expected_signature(secret, timestamp, "POST", self.path, raw)):
                self._refuse(401, "UnauthorizedError", "x-access-sign does not match the request")
                return
            if state.fault == "500":
                self._refuse(500, "InternalServerError", "internal error")
                return
            if state.fault == "garbage":
                self._send(200, b"<html>maintenance</html>")
                return
            if state.fault == "shape":
                self._send(200, {"unexpected": True})
                return
            if state.fault == "slow":
                time.sleep(2)
            try:
                body = json.loads(raw)
                subject = body["subject"]
                kind = body["type"]
                assert isinstance(subject["hash"], str) and isinstance(subject["asset"], str)
                assert isinstance(subject["blockchain"], str)
            except (ValueError, KeyError, TypeError, AssertionError):
                self._refuse(400, "BadRequestError", "body must have subject {asset, blockchain, type, hash} and type")
                return
            if self.path == "/v2/wallet/synchronous" and subject.get("type") == "address" and kind == "wallet_exposure":
                analysis = self._wallet(subject["hash"])
            elif (
                self.path == "/v2/analyses/synchronous"
                and subject.get("type") == "transaction"
                and kind in ("source_of_funds", "destination_of_funds")
                and subject.get("output_type") == "address"
                and isinstance(subject.get("output_address"), str)
            ):
                analysis = self._transaction(subject["hash"])
            else:
                self._refuse(400, "BadRequestError", f"{self.path} does not screen a {subject.get('type')} as {kind}")
                return
            analysis.update(
                id=str(uuid.uuid4()),
                type=kind,
                subject=subject,
                customer={"reference": body.get("customer_reference")},
                process_status="incomplete" if state.fault == "incomplete" else "complete",
                error={"message": "analysis could not finish"} if state.fault == "incomplete" else None,
            )
            self._send(200, analysis)

        def _wallet(self, address: str) -> dict[str, Any]:
            owner = state.entities.get(address)
            if owner is None:
                return {
                    "risk_score": None,
                    "cluster_entities": [],
                    "evaluation_detail": {"source": [], "destination": []},
                }
            name, category = owner
            score = state.scores.get(category, 0.0)
            rules = [_rule("Exposure", category, score)] if score > 0 else []
            return {
                "risk_score": score if rules else None,
                "cluster_entities": [
                    {"name": name, "category": category, "is_primary_entity": True, "is_vasp": category == "Exchange"}
                ],
                "evaluation_detail": _detail(rules),
            }

        def _transaction(self, txid: str) -> dict[str, Any]:
            rules = []
            for payer in state.transactions.get(txid, []):
                owner = state.entities.get(payer)
                if owner is not None and state.scores.get(owner[1], 0.0) > 0:
                    rules.append(_rule(f"Source: {owner[0]}", owner[1], state.scores[owner[1]]))
            score = max((rule["risk_score"] for rule in rules), default=None)
            return {
                "risk_score": score,
                "cluster_entities": [],
                "evaluation_detail": _detail(rules),
            }

    return Handler


@contextmanager
def elliptic_server(state: EllipticState) -> Iterator[str]:
    """Run the server for ``state``; yield its base URL."""
    with serve(make_handler(state)) as url:
        yield url
