"""A small local server implementing the part of Jumio's KYX platform API the plugin uses, with its own state.

One server plays the three hosts (auth, account, retrieval). Tokens come from the OAuth2 client credentials grant
(HTTP Basic client id and secret) and expire; accounts and workflow executions are created and kept here. An
execution goes ``INITIATED`` → ``ACQUIRED`` → ``PROCESSED`` as its status is read (``reads_to_process`` reads), and
its decision is the test's ``decision_type``. A missing or expired bearer token is refused 401, as Jumio does.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any


@dataclass
class JumioState:
    client_id: str
    client_secret: str
    reads_to_process: int = 2
    decision_type: str = "PASSED"
    token_lifetime: int = 3600
    fault: str | None = None  # "500" or "garbage" for every call while set
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (time.monotonic)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def process(self, execution_id: str) -> None:
        """Finish an execution (the customer completed the capture and Jumio decided)."""
        with self.lock:
            self.executions[execution_id]["status"] = "PROCESSED"

    def callback(self, url: str, execution_id: str) -> int:
        """Send the callback Jumio sends for an execution to ``url``; return the HTTP status."""
        execution = self.executions[execution_id]
        body = {
            "callbackSentAt": "2026-11-25T12:00:00.000Z",
            "userReference": self.accounts[execution["account"]]["request"].get("userReference", ""),
            "account": {"id": execution["account"], "href": f"https://retrieval/accounts/{execution['account']}"},
            "workflowExecution": {"id": execution_id, "definitionKey": str(execution["key"]), "status": "PROCESSED"},
        }
        return post(url, json.dumps(body).encode())

    def expire_tokens(self) -> None:
        """Make every issued token expired."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)


def post(url: str, body: bytes) -> int:
    """POST a JSON body to ``url``; return the HTTP status."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def handler_for(state: JumioState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _fault(self) -> bool:
            if state.fault == "500":
                self._send(500, {"message": "internal error"})
                return True
            if state.fault == "garbage":
                self._send(200, b"<html>maintenance</html>")
                return True
            return False

        def _bearer_ok(self) -> bool:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if state.tokens.get(token, 0.0) <= time.monotonic():
                self._send(401, {"message": "Unauthorized"})
                return False
            return True

        def do_POST(self) -> None:
            body = self._body()
            if self._fault():
                return
            with state.lock:
                if self.path == "/oauth2/token":
                    expected = base64.b64encode(f"{state.client_id}:{state.client_secret}".encode()).decode()
                    if self.headers.get("Authorization") != f"Basic {expected}":
                        return self._send(401, {"error": "invalid_client"})
                    form = urllib.parse.parse_qs(body.decode())
                    if form.get("grant_type") != ["client_credentials"]:
                        return self._send(400, {"error": "unsupported_grant_type"})
                    state.token_requests += 1
                    token = uuid.uuid4().hex
                    state.tokens[token] = time.monotonic() + state.token_lifetime
                    return self._send(
                        200, {"access_token": token, "expires_in": state.token_lifetime, "token_type": "Bearer"}
                    )
                if self.path == "/api/v1/accounts":
                    if not self._bearer_ok():
                        return None
                    try:
                        request = json.loads(body)
                        key = request["workflowDefinition"]["key"]
                        reference = request["customerInternalReference"]
                    except (ValueError, KeyError, TypeError):
                        return self._send(400, {"message": "workflowDefinition.key and customerInternalReference"})
                    if not isinstance(key, int) or not isinstance(reference, str) or not reference:
                        return self._send(400, {"message": "invalid workflowDefinition.key or reference"})
                    account_id, execution_id = str(uuid.uuid4()), str(uuid.uuid4())
                    state.accounts[account_id] = {"request": request, "executions": [execution_id]}
                    state.executions[execution_id] = {
                        "account": account_id,
                        "key": key,
                        "status": "INITIATED",
                        "reads": 0,
                    }
                    return self._send(
                        200,
                        {
                            "timestamp": "2026-11-25T12:00:00.000Z",
                            "account": {"id": account_id},
                            "web": {
                                "href": f"https://example.web.amer-1.jumio.ai/web/v4/app?authorizationToken={execution_id}"
                            },
                            "sdk": {"token": "sdk-token"},
                            "workflowExecution": {"id": execution_id, "credentials": []},
                        },
                    )
            self._send(404, {"message": "not found"})

        def do_GET(self) -> None:
            if self._fault():
                return
            parts = self.path.strip("/").split("/")
            with state.lock:
                if not self._bearer_ok():
                    return
                # api/v1/accounts/{a}/workflow-executions/{w}[/status]
                if (
                    len(parts) in (6, 7)
                    and parts[:3] == ["api", "v1", "accounts"]
                    and parts[4] == "workflow-executions"
                ):
                    execution = state.executions.get(parts[5])
                    if execution is None or execution["account"] != parts[3]:
                        return self._send(404, {"message": "workflow execution not found"})
                    head = {"account": {"id": parts[3]}}
                    if len(parts) == 7 and parts[6] == "status":
                        execution["reads"] += 1
                        if execution["status"] != "PROCESSED":
                            order = ["INITIATED", "ACQUIRED", "PROCESSED"]
                            step = min(execution["reads"] * 2 // max(state.reads_to_process, 1), 2)
                            execution["status"] = order[max(step, order.index(execution["status"]))]
                        wf = {"id": parts[5], "definitionKey": str(execution["key"]), "status": execution["status"]}
                        return self._send(200, {**head, "workflowExecution": wf})
                    if len(parts) == 6 and execution["status"] == "PROCESSED":
                        decision = {"type": state.decision_type, "details": {"label": state.decision_type}}
                        return self._send(200, {**head, "workflow": {"id": parts[5]}, "decision": decision})
            self._send(404, {"message": "not found"})

    return Handler
