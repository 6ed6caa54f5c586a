"""A client of Jumio's documented KYX platform API, and the mapping of workflow executions to decisions.

- Token: ``POST {auth_url}/oauth2/token`` with HTTP Basic client id and secret and the form body
  ``grant_type=client_credentials`` → ``{"access_token", "expires_in", "token_type": "Bearer"}``. The token is
  reused until a minute before it expires.
- Account and workflow execution: ``POST {account_url}/api/v1/accounts`` (``Authorization: Bearer``) with
  ``customerInternalReference``, ``userReference``, ``workflowDefinition: {"key"}`` and, when set, ``callbackUrl``
  → ``{"account": {"id"}, "workflowExecution": {"id"}, "web": {"href"}}``: the customer finishes the capture at
  ``web.href``.
- Status: ``GET {retrieval_url}/api/v1/accounts/{accountId}/workflow-executions/{id}/status`` →
  ``{"workflowExecution": {"status"}}``: ``INITIATED``, ``ACQUIRED``, ``PROCESSED``, ``SESSION_EXPIRED`` or
  ``TOKEN_EXPIRED``.
- Details, once processed: ``GET .../workflow-executions/{id}`` → ``{"decision": {"type"}}``: ``PASSED``,
  ``REJECTED``, ``WARNING`` or ``NOT_EXECUTED``.

Decisions: ``PASSED`` is an allow, ``REJECTED`` a rejection (Jumio's own final answer, e.g. a forged document),
``WARNING`` and ``NOT_EXECUTED`` a hold for review; an execution still in progress or expired is a hold. Every
failure (HTTP error, timeout, a body that is not the documented JSON) raises :class:`JumioError` (a hold).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
import msgspec

from exchange_framework.interfaces import Decision

__all__ = ["PROVIDER", "Execution", "JumioClient", "JumioError", "Settings", "execution_decision"]

PROVIDER = "jumio"
_T = TypeVar("_T")


class JumioError(Exception):
    """Jumio could not be asked, or answered something other than its documented JSON."""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[plugins.settings.jumio]``. Credentials come from the environment variables named here, never the file."""

    auth_url: str = "https://auth.amer-1.jumio.io"  # the data centre's hosts: amer-1, emea-1 or apac-1
    account_url: str = "https://account.amer-1.jumio.ai"
    retrieval_url: str = "https://retrieval.amer-1.jumio.ai"
    client_id_env: str = "JUMIO_CLIENT_ID"
    client_secret_env: str = "JUMIO_CLIENT_SECRET"
    workflow_key: int = 10013  # the workflow definition to run (ID + identity verification by default)
    callback_url: str | None = None  # where Jumio calls back: https://<your exchange><callback_path>
    callback_path: str = "/hooks/jumio"
    verified_tier: int = 1  # the KYC tier a PASSED execution gives

    def __post_init__(self) -> None:
        if not self.callback_path.startswith("/"):
            raise ValueError(f"callback_path = {self.callback_path!r}: a path starting with '/'")
        if self.verified_tier < 1:
            raise ValueError("verified_tier: a KYC tier of 1 or more")

    timeout_seconds: float = 10


class _Token(msgspec.Struct, frozen=True):
    access_token: str
    expires_in: int
    token_type: str = "Bearer"


class _Id(msgspec.Struct, frozen=True):
    id: str


class _Web(msgspec.Struct, frozen=True):
    href: str = ""


class _Created(msgspec.Struct, frozen=True, rename="camel"):
    account: _Id
    workflow_execution: _Id
    web: _Web = _Web()


class _Status(msgspec.Struct, frozen=True):
    status: str


class _StatusBody(msgspec.Struct, frozen=True, rename="camel"):
    workflow_execution: _Status


class _DecisionBody(msgspec.Struct, frozen=True):
    type: str


class _Details(msgspec.Struct, frozen=True):
    decision: _DecisionBody


class Execution(msgspec.Struct, frozen=True):
    """A started workflow execution: the reference is ``"<account id>:<execution id>"``."""

    account_id: str
    execution_id: str
    web_href: str = ""

    @property
    def reference(self) -> str:
        """The KYC reference the kernel keeps."""
        return f"{self.account_id}:{self.execution_id}"


def execution_decision(reference: str, status: str, decision_type: str | None) -> Decision:
    """Map an execution's status (and, once processed, its decision type) to a decision."""
    if status != "PROCESSED":
        return Decision.hold(f"Jumio workflow execution {reference} is {status}", provider=PROVIDER)
    if decision_type == "PASSED":
        return Decision.allow(f"Jumio workflow execution {reference} passed", provider=PROVIDER)
    if decision_type == "REJECTED":
        return Decision.reject(f"Jumio workflow execution {reference} was rejected", provider=PROVIDER)
    return Decision.hold(f"Jumio workflow execution {reference} needs review ({decision_type})", provider=PROVIDER)


class JumioClient:
    """Gets OAuth2 tokens, starts workflow executions and reads their status."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        client_secret: str,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._credentials = (client_id, client_secret)
        self._http = httpx.Client(timeout=httpx.Timeout(settings.timeout_seconds), transport=transport)
        self._clock = clock
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> bytes:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise JumioError(f"Jumio did not answer {method} {url} in time ({exc})") from None
        except httpx.HTTPError as exc:
            raise JumioError(f"Jumio could not be reached for {method} {url}: {exc}") from None
        if response.status_code >= 400:
            raise JumioError(f"Jumio answered {method} {url} with HTTP {response.status_code}: {response.text[:300]}")
        return response.content

    def token(self) -> str:
        """A bearer token, fetched with the client credentials grant and reused until shortly before it expires."""
        with self._lock:
            if self._token and self._clock() < self._expires:
                return self._token
            body = self._send(
                "POST",
                f"{self.settings.auth_url.rstrip('/')}/oauth2/token",
                auth=self._credentials,
                data={"grant_type": "client_credentials"},
                headers={"Accept": "application/json"},
            )
            token = _decode(body, _Token)
            if token.token_type.lower() != "bearer" or not token.access_token:
                raise JumioError(f"Jumio issued a {token.token_type!r} token, not a bearer token")
            self._token = token.access_token
            self._expires = self._clock() + max(token.expires_in - 60, 0)
            return self._token

    def _api(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> bytes:
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        return self._send(method, url, json=body, headers=headers)

    def create_account(self, account: int, reference: str) -> Execution:
        """Create a Jumio account with a workflow execution for exchange ``account``."""
        body: dict[str, Any] = {
            "customerInternalReference": reference,
            "userReference": str(account),
            "workflowDefinition": {"key": self.settings.workflow_key},
        }
        if self.settings.callback_url:
            body["callbackUrl"] = self.settings.callback_url
        created = _decode(self._api("POST", f"{self.settings.account_url.rstrip('/')}/api/v1/accounts", body), _Created)
        return Execution(created.account.id, created.workflow_execution.id, created.web.href)

    def decide(self, reference: str) -> tuple[str, Decision]:
        """Read an execution's status (and its decision once processed); return the status and the decision."""
        account_id, sep, execution_id = reference.partition(":")
        if not (sep and account_id and execution_id):
            raise JumioError(f"{reference!r} is not a Jumio reference (<account id>:<workflow execution id>)")
        base = (
            f"{self.settings.retrieval_url.rstrip('/')}/api/v1/accounts/{account_id}/workflow-executions/{execution_id}"
        )
        status = _decode(self._api("GET", f"{base}/status"), _StatusBody).workflow_execution.status
        decision_type = _decode(self._api("GET", base), _Details).decision.type if status == "PROCESSED" else None
        return status, execution_decision(reference, status, decision_type)


def _decode(body: bytes, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise JumioError(f"Jumio answered something that is not its documented JSON: {exc}") from None
