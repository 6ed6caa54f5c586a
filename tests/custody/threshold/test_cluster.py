"""DKG and 3-of-5 FROST signing across five real node processes over the authenticated encrypted channels."""

from __future__ import annotations

import itertools
import socket

import nacl.signing
import pytest
from exchange_threshold.signer import NodeAddress

from exchange_framework.custody.conformance import CHECKS, run_check
from exchange_framework.interfaces import (
    KeyExistsError,
    KeyScheme,
    SigningError,
    SigningRequest,
    UnknownKeyError,
)

from .conftest import EVIL, IDS, Cluster

pytestmark = pytest.mark.slow


def _request(key_id: str, payload: bytes, n: int = 0) -> SigningRequest:
    return SigningRequest(f"req-{n}", key_id, "solana", payload, KeyScheme.ED25519)


@pytest.fixture(scope="module")
def shared_key(cluster: Cluster) -> tuple[str, bytes]:
    key_id = "warm-sol-1"
    return key_id, cluster.signer().create_key(key_id, KeyScheme.ED25519)


def test_dkg_creates_a_key_every_node_holds_a_share_of(cluster: Cluster, shared_key: tuple[str, bytes]) -> None:
    key_id, public_key = shared_key
    signer = cluster.signer()
    assert len(public_key) == 32 and signer.public_key(key_id) == public_key
    assert signer.key_scheme(key_id) is KeyScheme.ED25519
    for i in IDS:  # each node stored its own sealed share under the key id and group public key
        assert (cluster.root / f"node{i}" / "keys" / key_id / f"{public_key.hex()}.sealed").is_file()
    with pytest.raises(KeyExistsError):
        signer.create_key(key_id, KeyScheme.ED25519)


@pytest.mark.parametrize("subset", [(1, 2, 3), (3, 4, 5), (1, 3, 5), (2, 4, 5), (1, 2, 3, 4, 5)])
def test_any_three_nodes_sign(cluster: Cluster, shared_key: tuple[str, bytes], subset: tuple[int, ...]) -> None:
    key_id, public_key = shared_key
    signer = cluster.signer(list(subset))
    message = b"transfer 5 SOL to ..." + bytes(subset)
    signature = signer.sign(_request(key_id, message))
    nacl.signing.VerifyKey(public_key).verify(message, signature)  # a standard Ed25519 signature
    assert len(signer.last_signers) == 3 and set(signer.last_signers) <= set(subset)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_nodes_cannot_sign(cluster: Cluster, shared_key: tuple[str, bytes]) -> None:
    key_id, _ = shared_key
    for pair in itertools.combinations(IDS, 2):
        with pytest.raises(SigningError, match="3 are needed"):
            cluster.signer(list(pair)).sign(_request(key_id, b"payload"))
    # all five configured, three of them down (connection refused): refused, nothing signed
    signer = cluster.signer()
    for i in (1, 3, 4):
        signer.nodes[i] = NodeAddress(identifier=i, host="127.0.0.1", port=_closed_port(), public_key="00" * 32)
    with pytest.raises(SigningError, match=r"only 2 .* 3 are needed"):
        signer.sign(_request(key_id, b"payload"))


def test_key_generation_needs_every_node(cluster: Cluster) -> None:
    signer = cluster.signer()
    signer.nodes[5] = NodeAddress(identifier=5, host="127.0.0.1", port=_closed_port(), public_key="00" * 32)
    with pytest.raises(SigningError, match="unreachable: \\[5\\]"):
        signer.create_key("not-created", KeyScheme.ED25519)
    with pytest.raises(UnknownKeyError):
        cluster.signer().public_key("not-created")


def test_a_bad_share_is_identified_and_another_node_signs(cluster: Cluster, shared_key: tuple[str, bytes]) -> None:
    key_id, public_key = shared_key
    signer = cluster.signer()
    message = b"MISBEHAVE: node 2 returns a wrong share for this one"
    signature = signer.sign(_request(key_id, message))
    nacl.signing.VerifyKey(public_key).verify(message, signature)
    assert signer.excluded == {EVIL}
    assert EVIL not in signer.last_signers and len(signer.last_signers) == 3
    # with node 2 and two others only, the only honest pair left cannot sign: refused, node 2 named
    trio = cluster.signer([1, EVIL, 3])
    with pytest.raises(SigningError, match="excluded as misbehaving: \\[2\\]"):
        trio.sign(_request(key_id, message))


def test_a_bad_dkg_package_is_blamed_on_its_node_and_nothing_is_created(cluster: Cluster) -> None:
    signer = cluster.signer()
    with pytest.raises(SigningError, match=f"node {EVIL} misbehaved: .*proof of knowledge"):
        signer.create_key("evil-dkg-1", KeyScheme.ED25519)
    with pytest.raises(UnknownKeyError):
        signer.public_key("evil-dkg-1")
    for i in IDS:  # no node stored a share: the coordinator stopped before round 2
        assert not (cluster.root / f"node{i}" / "keys" / "evil-dkg-1").exists()


def test_secp256k1_is_threshold_ecdsa_not_frost(cluster: Cluster) -> None:
    # secp256k1 keys are DKLs23 threshold-ECDSA keys (test_ecdsa.py), never FROST(secp256k1) Schnorr keys
    assert cluster.signer().schemes == {KeyScheme.ED25519, KeyScheme.SECP256K1}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_conformance_kit(cluster: Cluster, check: object) -> None:
    signer = cluster.signer([1, 3, 4, 5, 2])
    run_check(check, signer, KeyScheme.ED25519, key_prefix="conf")  # type: ignore[arg-type]  # ECDSA: test_ecdsa.py
