"""A client of Chainalysis's documented APIs, and the mapping of their answers to compliance decisions.

KYT API v2 (``Token`` header):

- deposits: ``POST /v2/users/{userId}/transfers`` with ``network``, ``asset``, ``transferReference``
  (``txid:outputAddress``) and ``direction: "received"``; the answer carries an ``externalId``. KYT processes it
  asynchronously: ``GET /v2/transfers/{externalId}`` until ``updatedAt`` is set, then
  ``GET /v2/transfers/{externalId}/alerts``.
- withdrawals: ``POST /v2/users/{userId}/withdrawal-attempts`` with ``network``, ``asset``, ``address``,
  ``attemptIdentifier``, ``assetAmount`` and ``attemptTimestamp``; then ``GET /v2/withdrawal-attempts/{externalId}``
  and ``.../alerts`` the same way.
- alerts: ``{"alerts": [{"alertLevel": "SEVERE"|"HIGH"|"MEDIUM"|"LOW", "category", "service", "externalId",
  "alertAmount", "exposureType": "DIRECT"|"INDIRECT"}]}``.

Sanctions API (free, ``X-API-Key`` header): ``GET /api/v1/address/{address}`` answers
``{"identifications": [{"category": "sanctions", "name", "description", "url"}]}``; an empty list means not listed.

Every failure (HTTP error, timeout, a body that is not the documented JSON, processing that never finishes) raises
:class:`ChainalysisError`; the plugin turns it into a hold.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import msgspec

from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.interfaces import Decision

__all__ = ["LEVELS", "Alert", "ChainalysisClient", "ChainalysisError", "Identification", "Settings"]

PROVIDER = "chainalysis"
LEVELS = ("LOW", "MEDIUM", "HIGH", "SEVERE")  # KYT alert levels, least severe first

DEFAULT_NETWORKS = {
    "bitcoin": "Bitcoin",
    "litecoin": "Litecoin",
    "ethereum": "Ethereum",
    "polygon": "Polygon",
    "arbitrum": "Arbitrum",
    "optimism": "Optimism",
    "bsc": "Binance_Smart_Chain",
    "solana": "Solana",
    "tron": "Tron",
}


class ChainalysisError(Exception):
    """Chainalysis could not be asked, or answered something other than its documented JSON."""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[plugins.settings.chainalysis]``. Keys come from the environment variables named here, never the file."""

    kyt_url: str = "https://api.chainalysis.com/api/kyt"
    sanctions_url: str = "https://public.chainalysis.com/api/v1"
    api_key_env: str = "CHAINALYSIS_API_KEY"  # the KYT API key (the ``Token`` header)
    sanctions_api_key_env: str = "CHAINALYSIS_SANCTIONS_API_KEY"  # the free Sanctions API key (``X-API-Key``)
    kyt: bool = True  # register deposits and withdrawal attempts with KYT and act on their alerts
    sanctions: bool = True  # check deposit sources and withdrawal destinations with the Sanctions API
    hold_level: str = "HIGH"  # an alert at this level or above holds the deposit or withdrawal
    reject_withdrawal_level: str | None = None  # an alert at this level or above rejects a withdrawal (funds back)
    timeout_seconds: float = 10
    poll_interval_seconds: float = 1
    poll_attempts: int = 30  # KYT usually processes a transfer within 30 seconds
    networks: dict[str, str] = {}  # exchange chain name -> Chainalysis network name (added to the defaults)

    def __post_init__(self) -> None:
        for name, level in (("hold_level", self.hold_level), ("reject_withdrawal_level", self.reject_withdrawal_level)):
            if level is not None and level not in LEVELS:
                raise ValueError(f"[plugins.settings.chainalysis] {name} = {level!r}: use one of {', '.join(LEVELS)}")


class Identification(msgspec.Struct, frozen=True):
    """One Sanctions API identification of an address."""

    category: str
    name: str
    description: str = ""
    url: str = ""


class _Identifications(msgspec.Struct, frozen=True):
    identifications: list[Identification]


class _Registered(msgspec.Struct, frozen=True, rename="camel"):
    external_id: str
    updated_at: str | None = None


class Alert(msgspec.Struct, frozen=True, rename="camel"):
    """One KYT alert on a transfer or withdrawal attempt."""

    alert_level: str
    exposure_type: str = ""
    category: str | None = None
    service: str | None = None
    external_id: str | None = None
    alert_amount: float | int | None = None  # the API's USD figure, shown to operators, never used as money


class _Alerts(msgspec.Struct, frozen=True):
    alerts: list[Alert]


_encoder = msgspec.json.Encoder(decimal_format="number")


class ChainalysisClient:
    """Asks Chainalysis about deposits and withdrawals and answers with a :class:`Decision`."""

    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str,
        sanctions_api_key: str,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.networks = {**DEFAULT_NETWORKS, **settings.networks}
        self.sleep = sleep
        timeout = httpx.Timeout(settings.timeout_seconds)
        self._kyt = httpx.Client(
            base_url=settings.kyt_url.rstrip("/") + "/",
            headers={"Token": api_key, "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._sanctions = httpx.Client(
            base_url=settings.sanctions_url.rstrip("/") + "/",
            headers={"X-API-Key": sanctions_api_key, "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._kyt.close()
        self._sanctions.close()

    # -- HTTP -------------------------------------------------------------------------------------------------------

    def _call(self, client: httpx.Client, method: str, path: str, body: Mapping[str, Any] | None = None) -> bytes:
        try:
            if body is None:
                response = client.request(method, path)
            else:
                content = _encoder.encode(body)
                response = client.request(method, path, content=content, headers={"Content-Type": "application/json"})
        except httpx.TimeoutException as exc:
            raise ChainalysisError(f"{method} {path} timed out: {exc}") from None
        except httpx.HTTPError as exc:
            raise ChainalysisError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            detail = response.text[:200].strip()
            raise ChainalysisError(f"{method} {path} answered HTTP {response.status_code}: {detail}")
        return response.content

    @staticmethod
    def _decode(data: bytes, kind: type[Any], what: str) -> Any:
        try:
            return msgspec.json.decode(data, type=kind)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            raise ChainalysisError(f"{what}: unexpected answer ({exc}): {data[:120]!r}") from None

    # -- the Sanctions API ------------------------------------------------------------------------------------------

    def identifications(self, address: str) -> list[Identification]:
        """Return the Sanctions API's identifications of ``address`` (empty: not listed)."""
        path = "address/" + urllib.parse.quote(address, safe="")
        found: _Identifications = self._decode(self._call(self._sanctions, "GET", path), _Identifications, path)
        return found.identifications

    def screen_addresses(self, addresses: tuple[str, ...], role: str) -> Decision:
        """Hold (frozen) if any address is identified by the Sanctions API; allow otherwise."""
        hits = [(address, i) for address in addresses for i in self.identifications(address)]
        if hits:
            reasons = [f"{role} {a} identified by Chainalysis: {i.category}: {i.name}" for a, i in hits]
            return Decision.hold(FROZEN_REASON, *reasons, provider=PROVIDER)
        return Decision.allow(f"{role} not identified by the Chainalysis Sanctions API", provider=PROVIDER)

    # -- KYT ----------------------------------------------------------------------------------------------------------

    def network(self, chain: str) -> str:
        """Return Chainalysis's network name for an exchange chain; raise if it is not configured."""
        try:
            return self.networks[chain]
        except KeyError:
            raise ChainalysisError(
                f"chain {chain!r} has no Chainalysis network: add it to [plugins.settings.chainalysis.networks]"
            ) from None

    def _alerts_when_processed(self, kind: str, external_id: str) -> list[Alert]:
        path = f"v2/{kind}/{urllib.parse.quote(external_id, safe='')}"
        for attempt in range(self.settings.poll_attempts):
            summary: _Registered = self._decode(self._call(self._kyt, "GET", path), _Registered, path)
            if summary.updated_at is not None:
                alerts: _Alerts = self._decode(self._call(self._kyt, "GET", path + "/alerts"), _Alerts, path)
                for alert in alerts.alerts:
                    if alert.alert_level not in LEVELS:
                        raise ChainalysisError(f"{path}/alerts: unknown alertLevel {alert.alert_level!r}")
                return alerts.alerts
            if attempt + 1 < self.settings.poll_attempts:
                self.sleep(self.settings.poll_interval_seconds)
        raise ChainalysisError(f"{path} was not processed after {self.settings.poll_attempts} polls")

    def register_transfer(self, user_id: str, *, chain: str, asset: str, txid: str, output_address: str) -> str:
        """Register a received transfer with KYT and return its ``externalId``."""
        body = {
            "network": self.network(chain),
            "asset": asset,
            "transferReference": f"{txid}:{output_address}",
            "direction": "received",
        }
        path = f"v2/users/{urllib.parse.quote(user_id, safe='')}/transfers"
        registered: _Registered = self._decode(self._call(self._kyt, "POST", path, body), _Registered, path)
        return registered.external_id

    def register_withdrawal_attempt(
        self, user_id: str, *, chain: str, asset: str, address: str, amount: Decimal, attempt_id: str
    ) -> str:
        """Register a withdrawal attempt with KYT and return its ``externalId``."""
        body = {
            "network": self.network(chain),
            "asset": asset,
            "address": address,
            "attemptIdentifier": attempt_id,
            "assetAmount": amount,
            "attemptTimestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        path = f"v2/users/{urllib.parse.quote(user_id, safe='')}/withdrawal-attempts"
        registered: _Registered = self._decode(self._call(self._kyt, "POST", path, body), _Registered, path)
        return registered.external_id

    def transfer_alerts(self, external_id: str) -> list[Alert]:
        """Wait for KYT to process a transfer and return its alerts."""
        return self._alerts_when_processed("transfers", external_id)

    def withdrawal_alerts(self, external_id: str) -> list[Alert]:
        """Wait for KYT to process a withdrawal attempt and return its alerts."""
        return self._alerts_when_processed("withdrawal-attempts", external_id)

    def decide(self, alerts: list[Alert], *, withdrawal: bool) -> Decision:
        """Map alerts to a decision: sanctions alerts freeze, others hold or reject at the configured levels."""
        rank = {level: number for number, level in enumerate(LEVELS)}
        hold_at = rank[self.settings.hold_level]
        reject_at = rank[self.settings.reject_withdrawal_level] if self.settings.reject_withdrawal_level else None
        described = [
            f"KYT {a.alert_level} alert: {a.category or 'uncategorised'} exposure ({a.exposure_type or '?'})"
            + (f" to {a.service}" if a.service else "")
            for a in alerts
        ]
        sanctioned = [d for a, d in zip(alerts, described, strict=True) if "sanction" in (a.category or "").lower()]
        if sanctioned:
            return Decision.hold(FROZEN_REASON, *sanctioned, provider=PROVIDER)
        worst = max((rank[a.alert_level] for a in alerts), default=-1)
        if withdrawal and reject_at is not None and worst >= reject_at:
            return Decision.reject(*described, provider=PROVIDER)
        if worst >= hold_at:
            return Decision.hold(*described, provider=PROVIDER)
        return Decision.allow(*(described or ["no KYT alerts"]), provider=PROVIDER)
