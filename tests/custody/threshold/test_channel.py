"""The authenticated encrypted channels: unknown peers, impostors, tampered and replayed frames are refused."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from exchange_threshold.channel import ChannelError, SecureChannel, public_bytes
from exchange_threshold.messages import Commit, CommitmentWire, ErrorReply, Sign, decode_reply, encode
from exchange_threshold.node import load_identity

from exchange_framework.interfaces import KeyScheme

from .conftest import Cluster

_OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _pair(pinned_initiator: bytes | None = None) -> tuple[SecureChannel, SecureChannel]:
    """A channel over a socket pair; the responder pins ``pinned_initiator`` (default: the real initiator)."""
    a, b = socket.socketpair()
    _OPEN.extend((a, b))
    initiator, responder = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    pinned = {pinned_initiator or public_bytes(initiator): "coordinator"}
    result: dict[str, SecureChannel | Exception] = {}

    def accept() -> None:
        try:
            result["r"] = SecureChannel.accept(b, responder, pinned)
        except ChannelError as exc:
            result["r"] = exc

    t = threading.Thread(target=accept)
    t.start()
    try:
        client = SecureChannel.connect_socket(a, initiator, public_bytes(responder))
    finally:
        t.join()
    server = result["r"]
    assert isinstance(server, SecureChannel)
    return client, server


def test_messages_flow_both_ways() -> None:
    client, server = _pair()
    client.send(b"hello")
    assert server.recv() == b"hello"
    server.send(b"world" * 1000)
    assert client.recv() == b"world" * 1000


@pytest.mark.parametrize("position", [4, 10, -1])
def test_a_tampered_frame_is_refused_and_the_channel_closed(position: int) -> None:
    client, server = _pair()
    frame = bytearray(client.encrypt_frame(b"sign this"))
    frame[position] ^= 0x01
    client.sock.sendall(bytes(frame))
    with pytest.raises(ChannelError, match="failed authentication"):
        server.recv()
    with pytest.raises(ChannelError):
        server.recv()  # closed: nothing more is read from it


def test_a_replayed_frame_is_refused() -> None:
    client, server = _pair()
    frame = client.encrypt_frame(b"sign this once")
    client.sock.sendall(frame + frame)
    assert server.recv() == b"sign this once"
    with pytest.raises(ChannelError, match="failed authentication"):
        server.recv()


def test_an_unknown_initiator_is_refused() -> None:
    a, b = socket.socketpair()
    _OPEN.extend((a, b))
    responder = X25519PrivateKey.generate()
    refused: list[Exception] = []

    def accept() -> None:
        try:
            SecureChannel.accept(b, responder, {public_bytes(X25519PrivateKey.generate()): "someone else"})
        except ChannelError as exc:
            refused.append(exc)

    t = threading.Thread(target=accept)
    t.start()
    with pytest.raises(ChannelError, match="closed the connection"):
        SecureChannel.connect_socket(a, X25519PrivateKey.generate(), public_bytes(responder))
    t.join()
    assert len(refused) == 1 and "unknown peer" in str(refused[0])


@pytest.mark.slow
def test_a_node_refuses_unknown_peers_and_impostors(cluster: Cluster) -> None:
    node1, node2 = cluster.nodes[1], cluster.nodes[2]
    coordinator = load_identity(cluster.coordinator_store)
    # an initiator whose key the node did not pin
    with pytest.raises(ChannelError):
        channel = SecureChannel.connect(
            (node1.host, node1.port), X25519PrivateKey.generate(), bytes.fromhex(node1.public_key)
        )
        channel.send(b"x")
        channel.recv()
    # node 1 answering where node 2's key is pinned: the coordinator refuses it
    with pytest.raises(ChannelError, match="not the pinned peer"):
        SecureChannel.connect((node1.host, node1.port), coordinator, bytes.fromhex(node2.public_key))


@pytest.mark.slow
def test_a_node_drops_a_channel_carrying_a_tampered_request(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    coordinator = load_identity(cluster.coordinator_store)
    channel = SecureChannel.connect((node.host, node.port), coordinator, bytes.fromhex(node.public_key))
    frame = bytearray(channel.encrypt_frame(encode(Commit("s1", "warm-sol-1", bytes(32)))))
    frame[-3] ^= 0x80
    channel.sock.sendall(bytes(frame))
    with pytest.raises(ChannelError, match="closed the connection"):
        channel.recv()


@pytest.mark.slow
def test_a_node_rechecks_what_it_signs(cluster: Cluster) -> None:
    signer = cluster.signer()
    public_key = signer.create_key("recheck-key", KeyScheme.ED25519)
    node = cluster.nodes[1]
    coordinator = load_identity(cluster.coordinator_store)

    def ask(request: Commit | Sign) -> object:
        channel = SecureChannel.connect((node.host, node.port), coordinator, bytes.fromhex(node.public_key))
        try:
            channel.send(encode(request))
            return decode_reply(channel.recv())
        finally:
            channel.close()

    def sign(session: str, **changes: object) -> object:
        fields: dict[str, object] = {
            "session": session,
            "request_id": "r",
            "key_id": "recheck-key",
            "scheme": "ed25519",
            "group_public_key": public_key,
            "payload": b"message",
            "commitments": [],
        }
        fields.update(changes)
        return ask(Sign(**fields))  # type: ignore[arg-type]

    reply = ask(Commit("c-unknown", "no-such-key", public_key))
    assert isinstance(reply, ErrorReply) and "no share" in reply.message
    reply = sign("never-committed")
    assert isinstance(reply, ErrorReply) and "no round-one commitment" in reply.message
    cases = [
        ({"scheme": "secp256k1"}, "refusing"),
        ({"payload": b""}, "1 to 65536"),
        ({"commitments": "fewer"}, "fewer than the threshold"),
        ({"commitments": "unsorted"}, "not sorted"),
        ({"commitments": "altered"}, "missing from the list or was altered"),
        ({"commitments": "stranger"}, "not a participant"),
    ]
    for n, (change, expected) in enumerate(cases):
        session = f"check-{n}"
        mine = ask(Commit(session, "recheck-key", public_key))
        others = [ask(Commit(f"{session}-{i}", "recheck-key", public_key)) for i in (2, 3)]
        own = mine.commitment  # type: ignore[attr-defined]
        # commitments "from" nodes 2 and 3: valid elements (node 1's own fresh ones, relabelled)
        fake = [
            CommitmentWire(i, o.commitment.hiding, o.commitment.binding) for i, o in zip((2, 3), others, strict=True)
        ]  # type: ignore[attr-defined]
        lists = {
            "fewer": [own, fake[0]],
            "unsorted": [fake[1], own, fake[0]],
            "altered": [CommitmentWire(1, own.binding, own.hiding), *fake],
            "stranger": [own, fake[0], CommitmentWire(9, fake[1].hiding, fake[1].binding)],
        }
        commitments = lists.get(change.get("commitments"), [own, *fake])  # type: ignore[arg-type]
        fields = {k: v for k, v in change.items() if k != "commitments"}
        reply = sign(session, commitments=commitments, **fields)
        assert isinstance(reply, ErrorReply) and expected in reply.message, (change, reply)
        # the nonces were used up by the refused attempt: never reused
        again = sign(session, commitments=[own, *fake])
        assert isinstance(again, ErrorReply) and "no round-one commitment" in again.message
