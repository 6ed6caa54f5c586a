"""The threshold-ECDSA parts on their own: message sealing between nodes, and the DKLs23 sidecar's error handling."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from exchange_threshold.channel import public_bytes
from exchange_threshold.dkls import DklsError, DklsSidecar, sidecar_available
from exchange_threshold.ecdsa_messages import DklsWire
from exchange_threshold.ecdsa_node import EcdsaError, open_wire, pair_key, seal_wire

_MISSING = sidecar_available()
needs_sidecar = pytest.mark.skipif(_MISSING is not None, reason=f"threshold ECDSA needs its sidecar: {_MISSING}")


def _keys() -> tuple[bytes, bytes]:
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    return pair_key(a, public_bytes(b), "s1", "k", 1, 2), pair_key(b, public_bytes(a), "s1", "k", 2, 1)


def test_both_nodes_derive_the_pair_key_and_it_is_bound_to_session_and_key() -> None:
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    key = pair_key(a, public_bytes(b), "s1", "k", 1, 2)
    assert key == pair_key(b, public_bytes(a), "s1", "k", 2, 1)
    assert key != pair_key(a, public_bytes(b), "s2", "k", 1, 2)
    assert key != pair_key(a, public_bytes(b), "s1", "other", 1, 2)


def test_a_sealed_message_opens_only_as_sent() -> None:
    sender_key, recipient_key = _keys()
    wire = seal_wire(sender_key, "s1", "sign", 3, 1, 2, False, b"dkls payload")
    assert open_wire(recipient_key, "s1", "sign", 3, wire) == b"dkls payload"
    altered = [
        DklsWire(1, 2, False, wire.sealed[:-1] + bytes([wire.sealed[-1] ^ 1])),  # flipped bit
        DklsWire(1, 2, True, wire.sealed),  # passed off as a broadcast
        DklsWire(1, 3, False, wire.sealed),  # misrouted
        DklsWire(3, 2, False, wire.sealed),  # claimed by another sender
    ]
    for bad in altered:
        with pytest.raises(EcdsaError, match="does not authenticate") as caught:
            open_wire(recipient_key, "s1", "sign", 3, bad)
        assert caught.value.culprit == bad.sender
    for session, kind, rnd in [("s2", "sign", 3), ("s1", "keygen", 3), ("s1", "sign", 4)]:  # replayed elsewhere
        with pytest.raises(EcdsaError):
            open_wire(recipient_key, session, kind, rnd, wire)


@needs_sidecar
def test_the_sidecar_refuses_bad_input_without_echoing_it() -> None:
    sidecar = DklsSidecar()
    try:
        secret_looking = secrets.token_bytes(64)
        with pytest.raises(DklsError) as caught:
            sidecar.call("sign_start", session="x", keyshare=secret_looking, chain_path="m")
        text = str(caught.value)
        assert len(text) < 300
        assert secret_looking.hex() not in text and base64.b64encode(secret_looking).decode() not in text
        with pytest.raises(DklsError, match="no sign session"):
            sidecar.call("sign_round2", session="never-started", msgs=[])
        with pytest.raises(DklsError, match="unknown operation"):
            sidecar.call("export_key", session="x")
        # still serving after the errors: a key generation session starts
        first = sidecar.call("keygen_start", session="k", participants=3, threshold=2, party=0)
        assert len(first["msgs"]) == 1 and first["msgs"][0]["to"] is None
        sidecar.call("abort", session="k")
    finally:
        sidecar.close()
