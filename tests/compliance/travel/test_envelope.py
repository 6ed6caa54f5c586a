"""TRISA SecureEnvelopes: the public sealed-envelope fixture from trisacrypto/trisa opens to its published payload;
our own envelopes round-trip; tampering and the wrong key are refused; thresholds per jurisdiction."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from exchange_trisa import envelope
from exchange_trisa.thresholds import ThresholdError, parse_thresholds, requires_travel_rule
from exchange_trisa.wire import (
    IDENTITY_TYPE,
    PENDING_TYPE,
    TRANSACTION_TYPE,
    Payload,
    Pending,
    SecureEnvelope,
    Transaction,
)

DATA = Path(__file__).parent / "data"


def fixture_envelope() -> Any:
    doc = json.loads((DATA / "sealed_envelope.json").read_text())
    binary = {"payload", "encryption_key", "hmac", "hmac_secret"}
    fields = {k: base64.b64decode(v) if k in binary else v for k, v in doc.items() if v is not None}
    return SecureEnvelope(**fields)


def test_the_published_sealed_envelope_opens_to_its_payload() -> None:
    key = envelope.load_private_key((DATA / "sealing_key.pem").read_bytes())
    sealed = fixture_envelope()
    assert envelope.key_signature(key.public_key()) == sealed.public_key_signature
    payload = envelope.open(sealed, key)
    expected = json.loads((DATA / "pending_payload.json").read_text())
    # the sender leaves received_at out: the recipient stamps it after opening
    assert (payload.sent_at, payload.received_at) == (expected["sent_at"], expected.get("received_at", ""))
    assert payload.identity.type_url == IDENTITY_TYPE == expected["identity"]["@type"]
    assert b"Howard" in payload.identity.value  # IVMS101 stays opaque here: see docs/travel-rule.md
    assert payload.transaction.type_url == PENDING_TYPE == expected["transaction"]["@type"]
    pending = Pending.FromString(payload.transaction.value)
    want = expected["transaction"]
    for name in ("envelope_id", "received_by", "received_at", "message", "reply_not_after", "reply_not_before"):
        assert getattr(pending, name) == want[name]
    for name in ("txid", "originator", "beneficiary", "network", "timestamp", "extra_json", "asset_type", "tag"):
        assert getattr(pending.transaction, name) == want["transaction"][name]
    assert repr(pending.transaction.amount) == repr(want["transaction"]["amount"])  # TRISA's double, exactly


def test_tampering_and_the_wrong_key_are_refused() -> None:
    key = envelope.load_private_key((DATA / "sealing_key.pem").read_bytes())
    sealed = fixture_envelope()
    altered = SecureEnvelope.FromString(sealed.SerializeToString())
    altered.payload = bytes([altered.payload[0] ^ 1]) + altered.payload[1:]
    with pytest.raises(envelope.EnvelopeError, match="HMAC"):
        envelope.open(altered, key)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(envelope.EnvelopeError, match="not sealed for this key"):
        envelope.open(sealed, other)
    unsealed = SecureEnvelope.FromString(sealed.SerializeToString())
    unsealed.sealed = False
    with pytest.raises(envelope.EnvelopeError, match="not sealed"):
        envelope.open(unsealed, key)


def test_our_envelopes_round_trip_and_are_fresh_each_time() -> None:
    recipient = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    transaction = Transaction(txid="ab" * 32, originator="bc1qsender", beneficiary="bc1qreceiver", network="btc")
    payload = Payload(
        identity={"type_url": IDENTITY_TYPE, "value": b"\n\x02hi"},
        transaction={"type_url": TRANSACTION_TYPE, "value": transaction.SerializeToString()},
        sent_at="2026-11-25T12:00:00Z",
    )
    first = envelope.seal(payload, recipient.public_key(), envelope_id="e-1")
    second = envelope.seal(payload, recipient.public_key(), envelope_id="e-1")
    assert first.payload != second.payload and first.encryption_key != second.encryption_key
    wire = SecureEnvelope.FromString(first.SerializeToString())  # through the wire format
    assert envelope.open(wire, recipient) == payload
    assert wire.public_key_signature == envelope.key_signature(recipient.public_key())


def test_thresholds_per_jurisdiction() -> None:
    thresholds = parse_thresholds({"EU": {"amount": "0", "currency": "EUR"}})
    assert not requires_travel_rule(thresholds, "US", 299_999, "USD")
    assert requires_travel_rule(thresholds, "US", 300_000, "USD")
    assert not requires_travel_rule(thresholds, "FATF", 99_999, "USD")
    assert requires_travel_rule(thresholds, "FATF", 100_000, "USD")
    assert requires_travel_rule(thresholds, "FATF-EUR", 100_000, "EUR")
    assert requires_travel_rule(thresholds, "EU", 1, "EUR")
    assert requires_travel_rule(thresholds, "US", 1, "EUR")  # another currency: fail closed
    assert requires_travel_rule(thresholds, "XX", 1, "USD")  # unknown jurisdiction: fail closed
    for bad in ({"amount": "10.001", "currency": "USD"}, {"amount": "-1", "currency": "USD"}, {"amount": "1"}):
        with pytest.raises(ThresholdError):
            parse_thresholds({"SG": bad})
