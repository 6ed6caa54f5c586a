"""Threshold ECDSA (DKLs23, 3-of-5) across five real node processes, each driving its own DKLs23 sidecar."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket

import cbor2
import pytest
from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from eth_keys import keys as eth_keys
from exchange_threshold.dkls import sidecar_available
from exchange_threshold.ecdsa import RoundFailedError, current_generation
from exchange_threshold.ecdsa_messages import DklsWire
from exchange_threshold.ecdsa_node import record_name
from exchange_threshold.signer import NodeAddress
from exchange_threshold.store import SealedStore

from exchange_framework.custody.conformance import CHECKS, Check, run_check
from exchange_framework.custody.signing import is_low_s
from exchange_framework.interfaces import KeyExistsError, KeyScheme, SigningError, SigningRequest, UnknownKeyError

from .conftest import EVIL, IDS, PASSPHRASE, Cluster

_MISSING = sidecar_available()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_MISSING is not None, reason=f"threshold ECDSA needs its sidecar: {_MISSING}"),
]

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _digest(text: bytes) -> bytes:
    return hashlib.sha256(text).digest()


def _request(key_id: str, digest: bytes, n: int = 0) -> SigningRequest:
    return SigningRequest(f"ecdsa-req-{n}", key_id, "ethereum", digest, KeyScheme.SECP256K1)


def _assert_valid(public_key: bytes, digest: bytes, signature: bytes) -> None:
    """Check ``r || s || v`` with two independent verifiers and by recovering the EVM address."""
    assert len(signature) == 65 and signature[64] in (0, 1) and is_low_s(signature)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    verifying = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
    verifying.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    recovered = PublicKey.from_signature_and_message(signature, digest, hasher=None)
    assert recovered.format(compressed=True) == public_key
    address = eth_keys.PublicKey(PublicKey(public_key).format(compressed=False)[1:]).to_checksum_address()
    assert eth_keys.Signature(signature).recover_public_key_from_msg_hash(digest).to_checksum_address() == address


@pytest.fixture(scope="module")
def ecdsa_key(cluster: Cluster) -> tuple[str, bytes]:
    key_id = "warm-evm-1"
    return key_id, cluster.signer().create_key(key_id, KeyScheme.SECP256K1)


def test_dkg_gives_every_node_a_sealed_share_of_one_key(cluster: Cluster, ecdsa_key: tuple[str, bytes]) -> None:
    key_id, public_key = ecdsa_key
    signer = cluster.signer()
    assert KeyScheme.SECP256K1 in signer.schemes
    assert len(public_key) == 33 and PublicKey(public_key).format() == public_key
    assert signer.public_key(key_id) == public_key and signer.key_scheme(key_id) is KeyScheme.SECP256K1
    for i in IDS:
        path = cluster.root / f"node{i}" / f"{record_name(key_id, public_key, 0)}.sealed"
        assert path.is_file()
    with pytest.raises(KeyExistsError):
        signer.create_key(key_id, KeyScheme.SECP256K1)


@pytest.mark.parametrize("subset", list(itertools.combinations(IDS, 3)), ids=lambda s: "-".join(map(str, s)))
def test_every_three_of_five_sign(cluster: Cluster, ecdsa_key: tuple[str, bytes], subset: tuple[int, ...]) -> None:
    key_id, public_key = ecdsa_key
    signer = cluster.signer(list(subset))
    digest = _digest(b"send 1 ETH, signed by " + bytes(subset))
    signature = signer.sign(_request(key_id, digest))
    _assert_valid(public_key, digest, signature)
    assert signer.last_signers == subset


def test_two_nodes_cannot_sign(cluster: Cluster, ecdsa_key: tuple[str, bytes]) -> None:
    key_id, public_key = ecdsa_key
    for pair in itertools.combinations(IDS, 2):
        with pytest.raises(SigningError, match="3 are needed"):
            cluster.signer(list(pair)).sign(_request(key_id, _digest(b"two")))
    # and the nodes themselves refuse a session of two signers, whatever a coordinator asks
    signer = cluster.signer()
    with pytest.raises(RoundFailedError, match="signers must be exactly 3"):
        signer.ecdsa._sign_once(_request(key_id, _digest(b"two")), public_key, 0, (1, 2))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_nodes_are_skipped_and_three_down_refuses(cluster: Cluster, ecdsa_key: tuple[str, bytes]) -> None:
    key_id, public_key = ecdsa_key
    signer = cluster.signer()
    for i in (1, 3):
        signer.nodes[i] = NodeAddress(identifier=i, host="127.0.0.1", port=_closed_port(), public_key="00" * 32)
    digest = _digest(b"two nodes down")
    _assert_valid(public_key, digest, signer.sign(_request(key_id, digest)))
    assert signer.last_signers == (2, 4, 5)
    signer.nodes[4] = NodeAddress(identifier=4, host="127.0.0.1", port=_closed_port(), public_key="00" * 32)
    with pytest.raises(SigningError, match="3 are needed"):
        signer.sign(_request(key_id, digest))


def test_a_tampered_message_aborts_the_session(cluster: Cluster, ecdsa_key: tuple[str, bytes]) -> None:
    key_id, public_key = ecdsa_key
    tampered: list[int] = []

    def flip_one(rnd: int, inbox: dict[int, list[DklsWire]]) -> dict[int, list[DklsWire]]:
        if rnd == 3 and not tampered:  # flip one bit of one sealed message from the first signer
            target = min(inbox)
            wire = inbox[target][0]
            sealed = wire.sealed[:-1] + bytes([wire.sealed[-1] ^ 1])
            inbox[target][0] = DklsWire(wire.sender, wire.recipient, wire.broadcast, sealed)
            tampered.append(wire.sender)
        return inbox

    trio = cluster.signer([1, 3, 4])
    trio.ecdsa.relay = flip_one  # type: ignore[method-assign]
    with pytest.raises(SigningError, match="does not authenticate") as caught:
        trio.sign(_request(key_id, _digest(b"tampered")))
    assert f"blamed: [{tampered[0]}]" in str(caught.value)  # no signature: the only set had a bad message
    # with every node available, the coordinator leaves out the node named and signs with another set
    tampered.clear()
    signer = cluster.signer()
    signer.ecdsa.relay = flip_one  # type: ignore[method-assign]
    digest = _digest(b"tampered once")
    signature = signer.sign(_request(key_id, digest))
    _assert_valid(public_key, digest, signature)
    assert tampered and tampered[0] not in signer.last_signers


def test_a_node_sending_malformed_protocol_messages_is_detected(cluster: Cluster, ecdsa_key: tuple[str, bytes]) -> None:
    key_id, public_key = ecdsa_key
    digest = b"MISBEHAVE".ljust(32, b"\x00")  # node 2 corrupts its (validly sealed) DKLs23 messages for this one
    with pytest.raises(SigningError, match="nothing was signed"):
        cluster.signer([1, EVIL, 3]).sign(_request(key_id, digest))
    signer = cluster.signer()
    signature = signer.sign(_request(key_id, digest))
    _assert_valid(public_key, digest, signature)
    assert EVIL not in signer.last_signers


def test_a_malicious_node_in_key_generation_creates_nothing(cluster: Cluster) -> None:
    signer = cluster.signer()
    with pytest.raises(SigningError, match=r"ECDSA key generation: .*Nothing changed"):
        signer.create_key("evil-ecdsa-1", KeyScheme.SECP256K1)
    with pytest.raises(UnknownKeyError):
        signer.public_key("evil-ecdsa-1")
    for i in IDS:
        assert not SealedStore(cluster.root / f"node{i}", PASSPHRASE.encode()).names("ecdsa/evil-ecdsa-1")


def _shares(cluster: Cluster, key_id: str, public_key: bytes, generation: int) -> dict[int, tuple[int, int]]:
    """Each node's DKLs23 share as the test reads it from the node's sealed store: ``(x_i, s_i)``."""
    shares = {}
    for i in IDS:
        record = json.loads(SealedStore(cluster.root / f"node{i}", PASSPHRASE.encode()).get(
            record_name(key_id, public_key, generation)) or b"null")  # fmt: skip
        keyshare = cbor2.loads(base64.b64decode(record["keyshare"]))
        party = keyshare["party_id"]
        shares[i] = (
            int.from_bytes(bytes(keyshare["x_i_list"][party]), "big"),
            int.from_bytes(bytes(keyshare["s_i"]), "big"),
        )
    return shares


def _interpolate(points: list[tuple[int, int]]) -> int:
    """Lagrange interpolation at 0 over the secp256k1 scalar field."""
    total = 0
    for x_i, y_i in points:
        num = den = 1
        for x_j, _ in points:
            if x_j != x_i:
                num, den = num * x_j % SECP256K1_ORDER, den * (x_j - x_i) % SECP256K1_ORDER
        total = (total + y_i * num * pow(den, -1, SECP256K1_ORDER)) % SECP256K1_ORDER
    return total


def test_no_process_holds_the_group_secret(cluster: Cluster, ecdsa_key: tuple[str, bytes]) -> None:
    key_id, public_key = ecdsa_key
    shares = _shares(cluster, key_id, public_key, 0)
    secrets_seen = {_interpolate([shares[i] for i in trio]) for trio in itertools.combinations(IDS, 3)}
    assert len(secrets_seen) == 1  # every three shares give one and the same key ...
    (secret,) = secrets_seen
    assert PrivateKey(secret.to_bytes(32, "big")).public_key.format() == public_key  # ... the group's key
    for pair in itertools.combinations(IDS, 2):  # two shares do not
        assert _interpolate([shares[i] for i in pair]) != secret
    assert all(s_i != secret for _, s_i in shares.values())
    forbidden = [secret.to_bytes(32, "big"), secret.to_bytes(32, "big").hex().encode()]
    for _, s_i in shares.values():  # no share in the clear either, anywhere on disk or in a log ...
        s_bytes = s_i.to_bytes(32, "big")
        forbidden += [s_bytes, s_bytes.hex().encode(), cbor2.dumps(list(s_bytes))]  # (CBOR: as the library writes it)
    for i in IDS:  # ... nor a node's serialized key share, raw or base64 (a slice of each is enough to find it)
        store = SealedStore(cluster.root / f"node{i}", PASSPHRASE.encode())
        encoded = json.loads(store.get(record_name(key_id, public_key, 0)) or b"null")["keyshare"]
        raw = base64.b64decode(encoded)
        forbidden += [raw[len(raw) // 2 : len(raw) // 2 + 64], encoded[len(encoded) // 2 :][:88].encode()]
    files = [p for p in cluster.root.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".log") for p in files) and any(p.suffix == ".sealed" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(form in data for form in forbidden), f"{path} holds secret key material in the clear"
    coordinator = cluster.coordinator_store
    for name in [f"keys/{key_id}", "identity"]:
        record = coordinator.get(name) or b""
        assert not any(form in record for form in forbidden)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_conformance_kit(cluster: Cluster, check: Check) -> None:
    # the kit creates about ten keys: a 2-of-3 signer over three of the node processes keeps that affordable
    run_check(check, cluster.signer([1, 3, 4], threshold=2), KeyScheme.SECP256K1, key_prefix="ecdsa-conf")


def test_refresh_keeps_the_key_and_replaces_every_share(cluster: Cluster, ecdsa_key: tuple[str, bytes]) -> None:
    key_id, public_key = ecdsa_key  # runs last: the shared key moves to generation 1
    signer = cluster.signer()
    before = _shares(cluster, key_id, public_key, 0)
    assert signer.refresh_ecdsa(key_id) == 1
    assert current_generation(cluster.coordinator_store, key_id) == 1
    assert signer.public_key(key_id) == public_key
    after = _shares(cluster, key_id, public_key, 1)
    for i in IDS:  # the old share is deleted; the new one is another share of the same key
        assert SealedStore(cluster.root / f"node{i}", PASSPHRASE.encode()).names(f"ecdsa/{key_id}") == [
            record_name(key_id, public_key, 1)
        ]
        assert after[i] != before[i]
    assert _interpolate([after[i] for i in (1, 2, 3)]) == _interpolate([before[i] for i in (3, 4, 5)])
    # old and new shares do not combine: a node keeping its old share gains nothing
    mixed = _interpolate([before[1], after[2], after[3]])
    assert PrivateKey(mixed.to_bytes(32, "big")).public_key.format() != public_key
    digest = _digest(b"after refresh")
    _assert_valid(public_key, digest, cluster.signer([2, 4, 5]).sign(_request(key_id, digest)))
