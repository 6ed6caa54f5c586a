"""A client of Onfido's documented API v3.6, the mapping of its checks to decisions, and webhook signatures.

Endpoints used (``Authorization: Token token=<API token>``, JSON bodies):

- ``POST /v3.6/applicants`` with ``first_name``, ``last_name`` (and ``dob``, ``email`` when known) → ``{"id"}``;
- ``POST /v3.6/checks`` with ``applicant_id`` and ``report_names`` → a check: ``id``, ``status``, ``result``,
  ``report_ids``;
- ``GET /v3.6/checks/{id}``: ``status`` is ``in_progress``, ``awaiting_applicant``, ``complete``, ``withdrawn``,
  ``paused`` or ``reopened``; once complete, ``result`` is ``clear`` or ``consider``;
- ``GET /v3.6/reports?check_id={id}`` → ``{"reports": [{"id", "name", "status", "result", "sub_result"}]}``, read
  to explain a ``consider``.

Webhooks carry ``X-SHA2-Signature``: the hex HMAC-SHA256 of the raw request body keyed with the webhook's token.

Decisions: a complete check whose result is ``clear`` is an allow; ``consider`` is a hold for an operator's review
(Onfido's own advice: a person looks at it), with each report that needs a look named; every other status, and
every failure (HTTP error, timeout, a body that is not the documented JSON), is a hold.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx
import msgspec

from exchange_framework.interfaces import Decision

__all__ = [
    "API_VERSION",
    "PROVIDER",
    "Check",
    "OnfidoClient",
    "OnfidoError",
    "Report",
    "Settings",
    "WebhookEvent",
    "check_decision",
    "parse_webhook",
    "sign",
    "verify_signature",
]

PROVIDER = "onfido"
API_VERSION = "v3.6"
SIGNATURE_HEADER = "X-SHA2-Signature"
_T = TypeVar("_T")


class OnfidoError(Exception):
    """Onfido could not be asked, or answered something other than its documented JSON."""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[plugins.settings.onfido]``. Tokens come from the environment variables named here, never the file."""

    base_url: str = "https://api.eu.onfido.com"  # the region's API host: api.eu / api.us / api.ca.onfido.com
    api_token_env: str = "ONFIDO_API_TOKEN"
    webhook_token_env: str = "ONFIDO_WEBHOOK_TOKEN"
    report_names: tuple[str, ...] = ("document", "facial_similarity_photo")
    webhook_path: str = "/hooks/onfido"  # where Onfido's webhook is registered to call
    verified_tier: int = 1  # the KYC tier a clear check gives
    timeout_seconds: float = 10

    def __post_init__(self) -> None:
        if not self.report_names:
            raise ValueError("report_names: name at least one Onfido report, such as 'document'")
        if not self.webhook_path.startswith("/"):
            raise ValueError(f"webhook_path = {self.webhook_path!r}: a path starting with '/'")
        if self.verified_tier < 1:
            raise ValueError("verified_tier: a KYC tier of 1 or more")


class _Created(msgspec.Struct, frozen=True):
    id: str


class Check(msgspec.Struct, frozen=True):
    """An Onfido check (the fields the exchange reads)."""

    id: str
    status: str
    result: str | None = None
    applicant_id: str | None = None
    report_ids: list[str] = []


class Report(msgspec.Struct, frozen=True):
    """One report of a check."""

    id: str
    name: str
    status: str
    result: str | None = None
    sub_result: str | None = None


class _Reports(msgspec.Struct, frozen=True):
    reports: list[Report]


class _EventObject(msgspec.Struct, frozen=True):
    id: str
    status: str = ""
    href: str = ""


class _EventPayload(msgspec.Struct, frozen=True):
    resource_type: str
    action: str
    object: _EventObject


class WebhookEvent(msgspec.Struct, frozen=True):
    """A webhook body: ``{"payload": {"resource_type", "action", "object": {"id", "status", "href"}}}``."""

    payload: _EventPayload


def sign(body: bytes, token: str) -> str:
    """The ``X-SHA2-Signature`` of ``body``: hex HMAC-SHA256 keyed with the webhook token."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str, token: str) -> bool:
    """Whether ``signature`` (hex) is the webhook token's HMAC-SHA256 of the raw ``body`` (constant-time compare)."""
    if not token:
        return False
    return hmac.compare_digest(sign(body, token), signature.strip().lower())


def parse_webhook(body: bytes) -> WebhookEvent:
    """Decode a (verified) webhook body; raise :class:`OnfidoError` if it is not the documented shape."""
    try:
        return msgspec.json.decode(body, type=WebhookEvent)
    except msgspec.DecodeError as exc:
        raise OnfidoError(f"the webhook body is not an Onfido event: {exc}") from None


def check_decision(check: Check, reports: Sequence[Report] | None = None) -> Decision:
    """Map a check (and, for ``consider``, its reports) to a decision; anything not clearly clear holds."""
    if check.status == "complete":
        if check.result == "clear":
            return Decision.allow(f"Onfido check {check.id} is clear", provider=PROVIDER)
        if check.result == "consider":
            flagged = [
                f"{r.name}: {r.result}" + (f" ({r.sub_result})" if r.sub_result else "")
                for r in reports or ()
                if r.result != "clear"
            ]
            detail = "; ".join(flagged) if flagged else "see the reports in Onfido's dashboard"
            return Decision.hold(f"Onfido check {check.id} needs review (consider): {detail}", provider=PROVIDER)
        return Decision.hold(f"Onfido check {check.id} completed with result {check.result!r}", provider=PROVIDER)
    return Decision.hold(f"Onfido check {check.id} is {check.status}", provider=PROVIDER)


class OnfidoClient:
    """Creates applicants and checks and reads them back from Onfido."""

    def __init__(self, settings: Settings, *, api_token: str, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._http = httpx.Client(
            base_url=f"{settings.base_url.rstrip('/')}/{API_VERSION}",
            headers={"Authorization": f"Token token={api_token}", "Accept": "application/json"},
            timeout=httpx.Timeout(settings.timeout_seconds),
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None, **params: str) -> bytes:
        try:
            response = self._http.request(method, path, json=body, params=params or None)
        except httpx.TimeoutException as exc:
            raise OnfidoError(f"Onfido did not answer {method} {path} in time ({exc})") from None
        except httpx.HTTPError as exc:
            raise OnfidoError(f"Onfido could not be reached for {method} {path}: {exc}") from None
        if response.status_code >= 400:
            raise OnfidoError(
                f"Onfido answered {method} {path} with HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.content

    def create_applicant(self, fields: Mapping[str, str]) -> str:
        """Create an applicant from ``first_name``, ``last_name`` and optional ``dob``/``email``; return its id."""
        body = {k: v for k, v in fields.items() if k in {"first_name", "last_name", "dob", "email"} and v}
        return _decode(self._call("POST", "/applicants", body), _Created).id

    def create_check(self, applicant_id: str) -> Check:
        """Start a check of the configured reports on an applicant."""
        body = {"applicant_id": applicant_id, "report_names": list(self.settings.report_names)}
        return _decode(self._call("POST", "/checks", body), Check)

    def check(self, check_id: str) -> Check:
        """Read a check."""
        return _decode(self._call("GET", f"/checks/{check_id}"), Check)

    def reports(self, check_id: str) -> list[Report]:
        """Read a check's reports."""
        return _decode(self._call("GET", "/reports", check_id=check_id), _Reports).reports

    def decide(self, check_id: str) -> tuple[Check, Decision]:
        """Read a check and decide on it (reading its reports to explain a ``consider``)."""
        check = self.check(check_id)
        reports: list[Report] | None = None
        if check.status == "complete" and check.result == "consider":
            try:
                reports = self.reports(check_id)
            except OnfidoError:
                reports = None  # still a hold; the reasons just say less
        return check, check_decision(check, reports)


def _decode(body: bytes, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise OnfidoError(f"Onfido answered something that is not its documented JSON: {exc}") from None
