"""A small local server implementing the part of Onfido's API v3.6 the plugin uses, with its own state.

Applicants and checks are created and kept here; a check starts ``in_progress`` and completes either after a number
of reads (``polls_to_complete``) or when the test calls :meth:`OnfidoState.complete`, which also delivers a
``check.completed`` webhook signed the way Onfido documents (hex HMAC-SHA256 of the body, keyed with the webhook
token) to the registered webhook URL. Its reports come out as the test sets ``report_results``; the check's result is
``consider`` if any report's is. Requests without the API token are refused 401, malformed ones 422, as Onfido does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

REPORT_NAMES = {
    "document",
    "facial_similarity_photo",
    "facial_similarity_video",
    "identity_enhanced",
    "watchlist_standard",
}


@dataclass
class OnfidoState:
    api_token: str
    webhook_token: str
    webhook_url: str = ""
    polls_to_complete: int | None = None  # None: a check completes only through complete()
    report_results: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # name -> (result, sub_result)
    fault: str | None = None  # "500", "timeout" or "garbage" for every API call while set
    applicants: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def complete(self, check_id: str) -> int:
        """Finish a check's reports and deliver the signed ``check.completed`` webhook; return its HTTP status."""
        with self.lock:
            self._finish(check_id)
        body = json.dumps(
            {
                "payload": {
                    "resource_type": "check",
                    "action": "check.completed",
                    "object": {
                        "id": check_id,
                        "status": "complete",
                        "completed_at_iso8601": "2026-11-25T12:00:00Z",
                        "href": f"https://api.eu.onfido.com/v3.6/checks/{check_id}",
                    },
                }
            },
            separators=(",", ":"),
        ).encode()
        return self.deliver(body, hmac.new(self.webhook_token.encode(), body, hashlib.sha256).hexdigest())

    def deliver(self, body: bytes, signature: str) -> int:
        """POST a webhook body with the given signature to the webhook URL; return the HTTP status."""
        request = urllib.request.Request(
            self.webhook_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-SHA2-Signature": signature},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def _finish(self, check_id: str) -> None:
        check = self.checks[check_id]
        results = []
        for report_id in check["report_ids"]:
            report = self.reports[report_id]
            result, sub_result = self.report_results.get(report["name"], ("clear", None))
            report.update(status="complete", result=result, sub_result=sub_result)
            results.append(result)
        check.update(status="complete", result="consider" if "consider" in results else "clear")


def handler_for(state: OnfidoState) -> type[BaseHTTPRequestHandler]:
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

        def _error(self, status: int, kind: str, message: str, fields: dict[str, Any] | None = None) -> None:
            self._send(status, {"error": {"type": kind, "message": message, "fields": fields or {}}})

        def _begin(self) -> bool:
            state.requests.append((self.command, self.path))
            if state.fault == "timeout":
                time.sleep(2)
            if state.fault in {"500", "timeout"}:
                self._error(500, "internal_server_error", "something went wrong")
                return False
            if state.fault == "garbage":
                self._send(200, b"<html>maintenance</html>")
                return False
            if self.headers.get("Authorization") != f"Token token={state.api_token}":
                self._error(401, "authorization_error", "Authorization error: please re-check your credentials")
                return False
            return True

        def _json(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                self._error(400, "bad_request", "the body must be a JSON object")
                return None
            return body

        def do_POST(self) -> None:
            if not self._begin():
                return
            body = self._json()
            if body is None:
                return
            with state.lock:
                if self.path == "/v3.6/applicants":
                    missing = {k: ["can't be blank"] for k in ("first_name", "last_name") if not body.get(k)}
                    if missing:
                        return self._error(422, "validation_error", "There was a validation error", missing)
                    applicant_id = str(uuid.uuid4())
                    state.applicants[applicant_id] = {
                        "id": applicant_id,
                        "href": f"/v3.6/applicants/{applicant_id}",
                        **body,
                    }
                    return self._send(201, state.applicants[applicant_id])
                if self.path == "/v3.6/checks":
                    names = body.get("report_names")
                    if body.get("applicant_id") not in state.applicants:
                        return self._error(
                            422, "validation_error", "There was a validation error", {"applicant_id": ["not found"]}
                        )
                    if not isinstance(names, list) or not names or not set(names) <= REPORT_NAMES:
                        return self._error(
                            422, "validation_error", "There was a validation error", {"report_names": ["invalid"]}
                        )
                    check_id = str(uuid.uuid4())
                    report_ids = []
                    for name in names:
                        report_id = str(uuid.uuid4())
                        state.reports[report_id] = {
                            "id": report_id,
                            "name": name,
                            "status": "awaiting_data",
                            "result": None,
                            "sub_result": None,
                            "check_id": check_id,
                        }
                        report_ids.append(report_id)
                    state.checks[check_id] = {
                        "id": check_id,
                        "status": "in_progress",
                        "result": None,
                        "applicant_id": body["applicant_id"],
                        "report_ids": report_ids,
                        "href": f"/v3.6/checks/{check_id}",
                        "polls": 0,
                    }
                    return self._send(201, self._public(state.checks[check_id]))
            self._error(404, "resource_not_found", "the resource could not be found")

        def do_GET(self) -> None:
            if not self._begin():
                return
            url = urllib.parse.urlsplit(self.path)
            with state.lock:
                if url.path.startswith("/v3.6/checks/"):
                    check = state.checks.get(url.path.rsplit("/", 1)[1])
                    if check is None:
                        return self._error(404, "resource_not_found", "the check could not be found")
                    check["polls"] += 1
                    target = state.polls_to_complete
                    if check["status"] != "complete" and target is not None and check["polls"] >= target:
                        state._finish(check["id"])
                    return self._send(200, self._public(check))
                if url.path == "/v3.6/reports":
                    check_id = urllib.parse.parse_qs(url.query).get("check_id", [""])[0]
                    if check_id not in state.checks:
                        return self._error(422, "validation_error", "check_id is required", {"check_id": ["invalid"]})
                    reports = [r for r in state.reports.values() if r["check_id"] == check_id]
                    return self._send(200, {"reports": reports})
            self._error(404, "resource_not_found", "the resource could not be found")

        @staticmethod
        def _public(check: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in check.items() if k != "polls"}

    return Handler
