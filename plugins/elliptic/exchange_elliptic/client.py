"""A client of Elliptic's AML API v2, and the mapping of its analyses to compliance decisions.

Requests are signed as Elliptic documents: headers ``x-access-key`` (the API key), ``x-access-timestamp`` (Unix
time in milliseconds) and ``x-access-sign``, the base64 HMAC-SHA256, keyed with the base64-decoded secret, of
``timestamp + METHOD + lower-case path (with its query string) + body`` (``{}`` when there is no body).

- wallet screening, ``POST /v2/wallet/synchronous``: ``{"subject": {"asset": "holistic", "blockchain":
  "holistic", "type": "address", "hash": <address>}, "type": "wallet_exposure", "customer_reference": ...}``;
- transaction screening, ``POST /v2/analyses/synchronous``: ``{"subject": {"asset", "blockchain", "type":
  "transaction", "hash": <txid>, "output_type": "address", "output_address": <our address>}, "type":
  "source_of_funds", "customer_reference": ...}``.

Both answer an analysis: ``risk_score`` (0 to 10, or null when no rule was triggered), ``cluster_entities`` (who
the address belongs to, with a ``category``), ``evaluation_detail`` (the rules triggered on the ``source`` and
``destination`` sides, with ``rule_name``, ``risk_score`` and ``matched_elements`` by ``category``),
``process_status`` and ``error``. Every failure raises :class:`EllipticError`; the plugin turns it into a hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import msgspec

from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.interfaces import Decision

__all__ = ["Analysis", "EllipticClient", "EllipticError", "Settings", "sign"]

PROVIDER = "elliptic"

DEFAULT_BLOCKCHAINS = {
    "bitcoin": "bitcoin",
    "litecoin": "litecoin",
    "ethereum": "ethereum",
    "polygon": "polygon",
    "arbitrum": "arbitrum",
    "bsc": "binance_smart_chain",
    "solana": "solana",
    "tron": "tron",
}


class EllipticError(Exception):
    """Elliptic could not be asked, or answered something other than its documented JSON."""


def sign(secret: str, timestamp_ms: int | str, method: str, path: str, body: str) -> str:
    """Return Elliptic's ``x-access-sign`` for one request (``body`` exactly as sent, ``"{}"`` when empty).

    Raise :class:`EllipticError` if ``secret`` is not base64.
    """
    try:
        key = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise EllipticError("the Elliptic API secret is not base64 (copy it exactly as Elliptic issued it)") from None
    text = f"{timestamp_ms}{method.upper()}{path.lower()}{body}"
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[plugins.settings.elliptic]``. The key and secret come from the environment variables named here."""

    base_url: str = "https://aml-api.elliptic.co"
    api_key_env: str = "ELLIPTIC_API_KEY"
    api_secret_env: str = "ELLIPTIC_API_SECRET"
    hold_score: float = 5.0  # an analysis scoring this or more (0 to 10) holds the deposit or withdrawal
    reject_withdrawal_score: float | None = None  # a withdrawal destination scoring this or more is rejected
    unscored: str = "allow"  # what a null risk_score (no rule triggered) means: "allow" or "hold"
    timeout_seconds: float = 30
    blockchains: dict[str, str] = {}  # exchange chain name -> Elliptic blockchain name (added to the defaults)

    def __post_init__(self) -> None:
        if self.unscored not in ("allow", "hold"):
            raise ValueError(f'[plugins.settings.elliptic] unscored = {self.unscored!r}: use "allow" or "hold"')
        for name, score in (("hold_score", self.hold_score), ("reject_withdrawal_score", self.reject_withdrawal_score)):
            if score is not None and not 0 <= score <= 10:
                raise ValueError(f"[plugins.settings.elliptic] {name} = {score}: Elliptic scores run from 0 to 10")


class _Entity(msgspec.Struct, frozen=True):
    name: str | None = None
    category: str | None = None
    is_primary_entity: bool | None = None


class _Element(msgspec.Struct, frozen=True):
    category: str | None = None


class _Rule(msgspec.Struct, frozen=True):
    rule_name: str | None = None
    risk_score: float | None = None
    matched_elements: list[_Element] = []


class _Detail(msgspec.Struct, frozen=True):
    source: list[_Rule] = []
    destination: list[_Rule] = []


class Analysis(msgspec.Struct, frozen=True):
    """The parts of an Elliptic analysis the decision uses."""

    id: str
    risk_score: float | None
    process_status: str | None = None
    error: Any = None
    cluster_entities: list[_Entity] = []
    evaluation_detail: _Detail | None = None


class EllipticClient:
    """Screens addresses and transactions with Elliptic and answers with a :class:`Decision`."""

    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str,
        api_secret: str,
        transport: httpx.BaseTransport | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        sign(api_secret, 0, "GET", "/", "{}")  # a bad secret fails here, before any request
        self.settings = settings
        self.blockchains = {**DEFAULT_BLOCKCHAINS, **settings.blockchains}
        self.api_key = api_key
        self.api_secret = api_secret
        self.clock_ms = clock_ms
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/"), timeout=httpx.Timeout(settings.timeout_seconds), transport=transport
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def _post(self, path: str, body: Mapping[str, Any]) -> Analysis:
        content = msgspec.json.encode(body).decode()
        timestamp = str(self.clock_ms())
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "x-access-key": self.api_key,
            "x-access-timestamp": timestamp,
            "x-access-sign": sign(self.api_secret, timestamp, "POST", path, content),
        }
        try:
            response = self._http.post(path, content=content.encode(), headers=headers)
        except httpx.TimeoutException as exc:
            raise EllipticError(f"POST {path} timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise EllipticError(f"POST {path} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            raise EllipticError(f"POST {path} answered HTTP {response.status_code}: {response.text[:200].strip()}")
        try:
            analysis = msgspec.json.decode(response.content, type=Analysis)
        except msgspec.DecodeError as exc:
            raise EllipticError(f"POST {path}: unexpected answer ({exc}): {response.content[:120]!r}") from None
        if analysis.error or (analysis.process_status not in (None, "complete")):
            raise EllipticError(f"analysis {analysis.id} is {analysis.process_status}: {analysis.error}")
        return analysis

    def screen_wallet(self, address: str, customer_reference: str) -> Analysis:
        """Screen an address's whole history (wallet exposure, across every blockchain Elliptic knows)."""
        body = {
            "subject": {"asset": "holistic", "blockchain": "holistic", "type": "address", "hash": address},
            "type": "wallet_exposure",
            "customer_reference": customer_reference,
        }
        return self._post("/v2/wallet/synchronous", body)

    def screen_deposit(self, *, chain: str, asset: str, txid: str, address: str, customer_reference: str) -> Analysis:
        """Screen where a received transaction's funds came from (source of funds of the output to ``address``)."""
        blockchain = self.blockchains.get(chain)
        if blockchain is None:
            raise EllipticError(f"chain {chain!r} has no Elliptic blockchain: add it to [plugins.settings.elliptic]")
        body = {
            "subject": {
                "asset": asset,
                "blockchain": blockchain,
                "type": "transaction",
                "hash": txid,
                "output_type": "address",
                "output_address": address,
            },
            "type": "source_of_funds",
            "customer_reference": customer_reference,
        }
        return self._post("/v2/analyses/synchronous", body)

    def decide(self, analysis: Analysis, *, withdrawal: bool) -> Decision:
        """Map an analysis to a decision: a sanctioned owner or a rule matching Sanctions freezes (hold); otherwise the
        risk score holds or rejects at the configured levels."""
        rules = (
            analysis.evaluation_detail.source + analysis.evaluation_detail.destination
            if analysis.evaluation_detail
            else []
        )
        described = [
            f"Elliptic rule {rule.rule_name or '?'} scored {rule.risk_score}: "
            + ", ".join(sorted({e.category or "?" for e in rule.matched_elements}))
            for rule in rules
        ]
        owners = [e for e in analysis.cluster_entities if (e.category or "").lower() == "sanctions"]
        exposed = any((e.category or "").lower() == "sanctions" for rule in rules for e in rule.matched_elements)
        if owners or exposed:
            listed = [
                f"address belongs to {e.name or 'an entity'} (category Sanctions, analysis {analysis.id})"
                for e in owners
            ]
            return Decision.hold(FROZEN_REASON, *listed, *described, provider=PROVIDER)
        score = analysis.risk_score
        if score is None:
            reason = f"Elliptic triggered no risk rule (analysis {analysis.id})"
            if self.settings.unscored == "hold":
                return Decision.hold(reason, provider=PROVIDER)
            return Decision.allow(reason, provider=PROVIDER)
        summary = f"Elliptic risk score {score} (hold at {self.settings.hold_score}, analysis {analysis.id})"
        reject_at = self.settings.reject_withdrawal_score
        if withdrawal and reject_at is not None and score >= reject_at:
            return Decision.reject(summary, *described, provider=PROVIDER)
        if score >= self.settings.hold_score:
            return Decision.hold(summary, *described, provider=PROVIDER)
        return Decision.allow(summary, provider=PROVIDER)
