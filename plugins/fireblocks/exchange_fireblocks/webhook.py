"""Checking that a webhook really comes from Fireblocks, and reading what it is about.

Fireblocks documents two signatures, and sends both during the migration from one to the other:

- ``Fireblocks-Signature`` (legacy): base64 of an RSA PKCS#1 v1.5 signature with SHA-512 over the raw body, checked
  with Fireblocks' published public key for the workspace's environment.
- ``Fireblocks-Webhook-Signature`` (Webhooks v2): a compact JWS with the payload left out (``header..signature``),
  algorithm RS512, whose ``kid`` names a key in Fireblocks' JWKS for the region. The payload is the raw body,
  base64url-encoded back into the middle segment.

A webhook is accepted only when every configured scheme whose header is present verifies and at least one did. The
body is never trusted beyond naming a transaction: the plugin reads the transaction back from the API, so a
replayed webhook only causes a fresh read. Neither scheme signs a timestamp, so replays cannot be refused by age;
bodies already handled are recognised by their SHA-512 digest and answered without doing anything again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping

import jwt
import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

__all__ = [
    "LEGACY_HEADER",
    "V2_HEADER",
    "WebhookEvent",
    "WebhookSignatureError",
    "WebhookVerifier",
    "parse_event",
]

LEGACY_HEADER = "fireblocks-signature"
V2_HEADER = "fireblocks-webhook-signature"

# Event types that concern a transaction: Webhooks v1 names, then v2 names.
TRANSACTION_EVENTS = frozenset(
    {"TRANSACTION_CREATED", "TRANSACTION_STATUS_UPDATED", "transaction.created", "transaction.status.updated"}
)


class WebhookSignatureError(Exception):
    """The webhook's signature is missing, malformed or does not verify: refuse it."""


class WebhookVerifier:
    """Verifies Fireblocks webhook signatures with a PEM public key (legacy) and/or a JWKS URL (v2)."""

    def __init__(self, *, public_key_pem: bytes | None, jwks_url: str = "", timeout_seconds: float = 10) -> None:
        self._public_key: rsa.RSAPublicKey | None = None
        if public_key_pem is not None:
            key = load_pem_public_key(public_key_pem)
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError("the Fireblocks webhook public key must be an RSA key")
            self._public_key = key
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, timeout=timeout_seconds) if jwks_url else None
        if self._public_key is None and self._jwks is None:
            raise ValueError("configure a webhook public key or a JWKS URL: unsigned webhooks are never accepted")

    def verify(self, body: bytes, headers: Mapping[str, str]) -> tuple[str, ...]:
        """Check a webhook's signatures; return the schemes that verified or raise :class:`WebhookSignatureError`."""
        lowered = {name.lower(): value for name, value in headers.items()}
        verified: list[str] = []
        legacy = lowered.get(LEGACY_HEADER)
        if self._public_key is not None and legacy is not None:
            self._verify_legacy(body, legacy)
            verified.append("legacy")
        detached = lowered.get(V2_HEADER)
        if self._jwks is not None and detached is not None:
            self._verify_jws(body, detached)
            verified.append("jwks")
        if not verified:
            raise WebhookSignatureError("no signature header this exchange is configured to check")
        return tuple(verified)

    def _verify_legacy(self, body: bytes, header: str) -> None:
        assert self._public_key is not None
        try:
            signature = base64.b64decode(header.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSignatureError("Fireblocks-Signature is not base64") from None
        try:
            self._public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA512())
        except InvalidSignature:
            raise WebhookSignatureError("Fireblocks-Signature does not verify") from None

    def _verify_jws(self, body: bytes, header: str) -> None:
        assert self._jwks is not None
        parts = header.strip().split(".")
        if len(parts) != 3 or parts[1] != "" or not parts[0] or not parts[2]:
            raise WebhookSignatureError("Fireblocks-Webhook-Signature is not a detached JWS (header..signature)")
        payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")
        token = f"{parts[0]}.{payload}.{parts[2]}"
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if not isinstance(kid, str) or not kid:
                raise WebhookSignatureError("Fireblocks-Webhook-Signature names no key (kid)")
            key = self._jwks.get_signing_key(kid)
            jwt.api_jws.decode_complete(token, key=key.key, algorithms=["RS512"])
        except jwt.PyJWKClientConnectionError as exc:
            raise WebhookSignatureError(f"the JWKS could not be read: {type(exc).__name__}") from None
        except jwt.PyJWTError as exc:
            raise WebhookSignatureError(f"Fireblocks-Webhook-Signature does not verify: {exc}") from None


class WebhookEvent(msgspec.Struct, frozen=True):
    """What a verified webhook is about: its type and, for transaction events, the transaction id."""

    type: str
    tx_id: str = ""

    @property
    def about_transaction(self) -> bool:
        """Whether the event concerns a transaction (created or status updated)."""
        return self.type in TRANSACTION_EVENTS and bool(self.tx_id)


class _Data(msgspec.Struct, frozen=True):
    id: str = ""


class _Envelope(msgspec.Struct, frozen=True, rename="camel"):
    type: str = ""  # Webhooks v1
    event_type: str = ""  # Webhooks v2
    resource_id: str = ""
    data: _Data | None = None


def parse_event(body: bytes) -> WebhookEvent:
    """Read a webhook body (v1 ``type`` or v2 ``eventType``); raise ``ValueError`` if it is not one."""
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a Fireblocks webhook body: {exc}") from None
    kind = envelope.type or envelope.event_type
    if not kind:
        raise ValueError("the webhook names no event type (type or eventType)")
    tx_id = envelope.data.id if envelope.data is not None and envelope.data.id else envelope.resource_id
    return WebhookEvent(type=kind, tx_id=tx_id)


class SeenBodies:
    """The digests of the last ``size`` webhook bodies handled, to answer repeats without acting again."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(body: bytes) -> bytes:
        """Return the key a body is remembered by."""
        return hashlib.sha512(body).digest()

    def seen(self, body: bytes) -> bool:
        """Whether this body was handled already."""
        with self._lock:
            return self.digest(body) in self._seen

    def remember(self, body: bytes) -> None:
        """Record a body as handled (the oldest is forgotten past ``size``)."""
        with self._lock:
            self._seen[self.digest(body)] = None
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
