"""A local server of the Chainalysis APIs the plugin uses, written from their documentation.

KYT v2 (``Token`` header): ``POST /v2/users/{userId}/transfers``, ``POST /v2/users/{userId}/withdrawal-attempts``,
``GET /v2/transfers/{externalId}`` (``updatedAt`` stays null until processed), ``GET /v2/transfers/{id}/alerts``,
and the same two GETs under ``/v2/withdrawal-attempts/``. Sanctions API (``X-API-Key``): ``GET
/api/v1/address/{address}``. Errors use the documented ``{"status", "error", "message"}`` body.

The server decides from its own data, as KYT does from the blockchain: ``chain`` maps txids to the addresses that
paid them, ``risky`` maps addresses to what KYT knows about them, ``sanctioned`` is the Sanctions API's list.
``fault`` makes every request fail in one way ("500", "garbage", "shape", "slow"), for fail-closed tests.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.compliance.httpserver import serve

LEVELS = ("LOW", "MEDIUM", "HIGH", "SEVERE")


@dataclass
class Risk:
    category: str
    level: str
    service: str = ""


@dataclass
class KytState:
    api_key: str = "kyt-test-token"
    sanctions_key: str = "sanctions-test-key"
    chain: dict[str, list[str]] = field(default_factory=dict)  # txid -> paying addresses
    risky: dict[str, Risk] = field(default_factory=dict)  # address -> what KYT knows
    sanctioned: dict[str, str] = field(default_factory=dict)  # address -> the listing's name
    polls_before_processed: int = 1
    fault: str | None = None
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _alerts_for(state: KytState, addresses: list[str], amount: float | None) -> list[dict[str, Any]]:
    alerts = []
    for address in addresses:
        risk = state.risky.get(address)
        if risk is not None:
            alerts.append(
                {
                    "alertLevel": risk.level,
                    "category": risk.category,
                    "service": risk.service or None,
                    "externalId": str(uuid.uuid4()),
                    "alertAmount": amount if amount is not None else 0,
                    "exposureType": "DIRECT",
                }
            )
    return alerts


def make_handler(state: KytState) -> type[BaseHTTPRequestHandler]:
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

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"status": status, "error": self.responses[status][0], "message": message})

        def _fault(self) -> bool:
            if state.fault == "500":
                self._error(500, "internal server error")
            elif state.fault == "garbage":
                self._send(200, b"<html>maintenance</html>")
            elif state.fault == "shape":
                self._send(200, {"unexpected": True})
            elif state.fault == "slow":
                time.sleep(2)
                self._send(200, {"identifications": []})
            else:
                return False
            return True

        def _body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                return None
            return body if isinstance(body, dict) else None

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            if self._fault():
                return
            if match := re.fullmatch(r"/api/v1/address/([^/]+)", self.path):
                if self.headers.get("X-API-Key") != state.sanctions_key:
                    self._error(403, "invalid API key")
                    return
                name = state.sanctioned.get(match[1])
                found = [] if name is None else [{"category": "sanctions", "name": name, "description": "", "url": ""}]
                self._send(200, {"identifications": found})
                return
            if self.headers.get("Token") != state.api_key:
                self._error(403, "invalid token")
                return
            match = re.fullmatch(r"/api/kyt/v2/(transfers|withdrawal-attempts)/([^/]+)(/alerts)?", self.path)
            if match is None:
                self._error(404, f"no route {self.path}")
                return
            kind, external_id, alerts = match[1], match[2], match[3]
            with state.lock:
                table = state.transfers if kind == "transfers" else state.attempts
                record = table.get(external_id)
                if record is None:
                    self._error(404, f"no {kind} {external_id}")
                    return
                if alerts:
                    self._send(200, {"alerts": record["_alerts"] if record["updatedAt"] else []})
                    return
                state.polls[external_id] = state.polls.get(external_id, 0) + 1
                if record["updatedAt"] is None and state.polls[external_id] > state.polls_before_processed:
                    record["updatedAt"] = "2026-11-25T12:00:00.000+00:00"
                    if kind == "transfers":
                        txid = record["transferReference"].partition(":")[0]
                        record["_alerts"] = _alerts_for(state, state.chain.get(txid, []), record["usdAmount"])
                    else:
                        record["_alerts"] = _alerts_for(state, [record["address"]], record["usdAmount"])
                self._send(200, {k: v for k, v in record.items() if not k.startswith("_")})

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            if self._fault():
                return
            if self.headers.get("Token") != state.api_key:
                self._error(403, "invalid token")
                return
            match = re.fullmatch(r"/api/kyt/v2/users/([^/]+)/(transfers|withdrawal-attempts)", self.path)
            if match is None:
                self._error(404, f"no route {self.path}")
                return
            body = self._body()
            if body is None:
                self._error(400, "the body must be a JSON object")
                return
            user, kind = match[1], match[2]
            external_id = str(uuid.uuid4())
            if kind == "transfers":
                required = ("network", "asset", "transferReference", "direction")
                missing = [k for k in required if not isinstance(body.get(k), str)]
                if missing or body["direction"] not in ("received", "sent") or ":" not in body["transferReference"]:
                    self._error(400, f"invalid transfer: missing or bad {missing or ['direction/transferReference']}")
                    return
                record = {
                    "updatedAt": None,
                    "asset": body["asset"],
                    "network": body["network"],
                    "transferReference": body["transferReference"],
                    "tx": None,
                    "idx": None,
                    "usdAmount": None,
                    "assetAmount": None,
                    "timestamp": None,
                    "outputAddress": None,
                    "externalId": external_id,
                    "_user": user,
                }
                with state.lock:
                    state.transfers[external_id] = record
            else:
                required = ("network", "asset", "address", "attemptIdentifier", "attemptTimestamp")
                missing = [k for k in required if not isinstance(body.get(k), str)]
                if missing or not isinstance(body.get("assetAmount"), int | float):
                    self._error(400, f"invalid withdrawal attempt: missing or bad {missing or ['assetAmount']}")
                    return
                record = {
                    "asset": body["asset"],
                    "network": body["network"],
                    "address": body["address"],
                    "attemptIdentifier": body["attemptIdentifier"],
                    "assetAmount": body["assetAmount"],
                    "usdAmount": None,
                    "updatedAt": None,
                    "externalId": external_id,
                    "_user": user,
                }
                with state.lock:
                    state.attempts[external_id] = record
            self._send(202, {k: v for k, v in record.items() if not k.startswith("_")})

    return Handler


@contextmanager
def chainalysis_server(state: KytState) -> Iterator[str]:
    """Run the server for ``state``; yield its base URL (KYT at ``/api/kyt``, Sanctions at ``/api/v1``)."""
    with serve(make_handler(state)) as url:
        yield url
