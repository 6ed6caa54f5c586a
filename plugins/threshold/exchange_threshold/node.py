"""A threshold signer node: holds one share of each key, takes part in the DKG and in FROST signing sessions.

Run one per machine (or per process in tests)::

    EXCHANGE_THRESHOLD_PASSPHRASE=... python -m exchange_threshold.node init --dir var/node1
    EXCHANGE_THRESHOLD_PASSPHRASE=... python -m exchange_threshold.node serve --config node1.json

``init`` creates the node's sealed store and its static X25519 identity key and prints the public key (pin it in
the coordinator's settings and in the other nodes' configurations). ``serve`` prints ``listening HOST PORT`` once it
accepts connections. The configuration file (JSON)::

    {"identifier": 1, "dir": "var/node1", "host": "127.0.0.1", "port": 7101,
     "coordinator_keys": ["<hex X25519 public key of the coordinator>"],
     "peers": {"2": "<hex>", "3": "<hex>", "4": "<hex>", "5": "<hex>"},
     "passphrase_env": "EXCHANGE_THRESHOLD_PASSPHRASE"}

Only a pinned coordinator may connect. The DKG shares a node sends to another node are encrypted end to end under a
key both derive from their static keys (X25519 + HKDF, salted with the DKG transcript), so the coordinator relaying
them learns nothing. Before signing, a node checks what it signs again: the key id and group public key are those of
a share it holds and that it committed for, the scheme is the key's, the payload suits the scheme, and the
commitment list is well formed (sorted, no repeats, valid elements, at least the threshold, only the key's
participants, its own commitment as it made it). Nonces are used once and forgotten before the share is computed.

Shares have epochs (:mod:`exchange_threshold.shares`): a node signs only with the share of the epoch the coordinator
names and refuses an older one. Proactive refresh and share repair are answered by
:class:`~exchange_threshold.node_refresh.RefreshService`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange_framework.custody.keystore import KEY_ID_PATTERN, KdfCost
from exchange_framework.custody.signing import check_payload
from exchange_framework.interfaces import KeyScheme, SigningError
from exchange_threshold import frost
from exchange_threshold.channel import ChannelError, SecureChannel, public_bytes
from exchange_threshold.dkg import DkgError, DkgParticipant, KeyShare, Round1Package, dkg_context
from exchange_threshold.ecdsa_node import EcdsaService
from exchange_threshold.groups import GroupError, suite
from exchange_threshold.messages import (
    Commit,
    CommitmentWire,
    CommitReply,
    DkgFinish,
    DkgFinishReply,
    DkgRound1,
    DkgRound1Reply,
    DkgRound2,
    DkgRound2Reply,
    Ecdsa,
    EncryptedShare,
    ErrorReply,
    PackageWire,
    Reply,
    Request,
    Sign,
    SignReply,
    decode_request,
    encode,
)
from exchange_threshold.node_refresh import REFRESH_REQUESTS, RefreshService
from exchange_threshold.refresh import RefreshError
from exchange_threshold.repair import RepairError
from exchange_threshold.shares import ShareBook, key_share_from_json, key_share_to_json
from exchange_threshold.store import DEFAULT_PASSPHRASE_ENV, SealedStore, read_passphrase

__all__ = [
    "NodeConfig",
    "SignerNode",
    "dkg_share_key",
    "key_share_from_json",
    "key_share_to_json",
    "load_identity",
    "main",
    "serve",
]

log = logging.getLogger(__name__)

PENDING_NONCES_MAX = 1024  # round-one nonces waiting for round two; the oldest are dropped beyond this
PENDING_NONCES_TTL = 120.0  # seconds a round-one nonce pair may wait for round two
_SCHEMES = {"ed25519": KeyScheme.ED25519, "secp256k1": KeyScheme.SECP256K1}


@dataclass(frozen=True)
class NodeConfig:
    """A node's configuration: its identifier, store, listening address and the pinned keys of its peers."""

    identifier: int
    dir: Path
    host: str
    port: int
    coordinator_keys: frozenset[bytes]
    peers: Mapping[int, bytes]  # the other nodes' static X25519 public keys
    passphrase_env: str = DEFAULT_PASSPHRASE_ENV
    refresh_guard_seconds: float = 60.0  # a refresh in progress (or prepared, not committed) blocks another this long

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        """Read and check a JSON configuration file; raise ``ValueError`` naming what is wrong."""
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
            config = cls(
                identifier=int(raw["identifier"]),
                dir=(path.parent / raw["dir"]).resolve(),
                host=str(raw.get("host", "127.0.0.1")),
                port=int(raw.get("port", 0)),
                coordinator_keys=frozenset(bytes.fromhex(k) for k in raw["coordinator_keys"]),
                peers={int(i): bytes.fromhex(k) for i, k in raw["peers"].items()},
                passphrase_env=str(raw.get("passphrase_env", DEFAULT_PASSPHRASE_ENV)),
                refresh_guard_seconds=float(raw.get("refresh_guard_seconds", 60.0)),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"node configuration {path}: {exc!r}") from exc
        if not 0 < config.identifier < 2**16 or config.identifier in config.peers:
            raise ValueError(f"node configuration {path}: identifier must be 1..65535 and not one of the peers")
        if not config.coordinator_keys or any(len(k) != 32 for k in [*config.coordinator_keys, *config.peers.values()]):
            raise ValueError(f"node configuration {path}: pin at least one coordinator key; keys are 32 bytes hex")
        return config


def load_identity(store: SealedStore, *, create: bool = False) -> X25519PrivateKey:
    """Return the store's static X25519 identity key, creating it if asked; raise ``SigningError`` if absent."""
    raw = store.get("identity")
    if raw is None:
        if not create:
            raise SigningError(f"the store at {store.root} has no identity key: run `init` first")
        store.put("identity", X25519PrivateKey.generate().private_bytes_raw())
        raw = store.get("identity")
        assert raw is not None
    return X25519PrivateKey.from_private_bytes(raw)


def dkg_share_key(
    static: X25519PrivateKey, peer: bytes, transcript: bytes, key_id: str, sender: int, recipient: int
) -> bytes:
    """The key that encrypts DKG share ``f_sender(recipient)`` end to end between the two nodes."""
    secret = static.exchange(X25519PublicKey.from_public_bytes(peer))
    info = b"exchange-threshold/dkg-share/v1\x00" + key_id.encode() + b"\x00" + b"%d>%d" % (sender, recipient)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=transcript, info=info).derive(secret)


@dataclass
class _DkgSession:
    key_id: str
    group: str
    participant: DkgParticipant
    transcript: bytes | None = None


@dataclass(frozen=True)
class _Pending:
    key_id: str
    group_public_key: bytes
    nonces: frost.Nonces
    commitment: frost.Commitment
    created: float
    epoch: int = 0


class SignerNode:
    """The node's protocol logic, independent of the network: :meth:`handle` answers one request."""

    def __init__(self, config: NodeConfig, store: SealedStore) -> None:
        self.config = config
        self.store = store
        self.identity = load_identity(store)
        self.shares = ShareBook(store)
        self._refresh = RefreshService(
            config.identifier, config.peers, self.identity, self.shares, guard_seconds=config.refresh_guard_seconds
        )
        self.ecdsa = EcdsaService(config.identifier, self.identity, config.peers, store)  # DKLs23, own sidecar
        self._lock = threading.Lock()
        self._dkg: dict[str, _DkgSession] = {}
        self._pending: dict[str, _Pending] = {}

    def handle(self, request: Request) -> Reply:
        """Answer ``request``; every refusal is an :class:`ErrorReply` saying why."""
        try:
            if isinstance(request, DkgRound1):
                return self._dkg_round1(request)
            if isinstance(request, DkgRound2):
                return self._dkg_round2(request)
            if isinstance(request, DkgFinish):
                return self._dkg_finish(request)
            if isinstance(request, Commit):
                return self._commit(request)
            if isinstance(request, REFRESH_REQUESTS):
                return self._refresh.handle(request)
            if isinstance(request, Ecdsa):
                return self.ecdsa.handle(request)
            return self._sign(request)
        except (DkgError, RefreshError) as exc:
            return ErrorReply(f"node {self.config.identifier}: {exc}", exc.culprit)
        except RepairError as exc:
            return ErrorReply(f"node {self.config.identifier}: {exc}")
        except (SigningError, frost.FrostError, GroupError, ValueError) as exc:
            return ErrorReply(f"node {self.config.identifier}: {exc}")

    # -- DKG ------------------------------------------------------------------------------------------------------

    def _dkg_round1(self, r: DkgRound1) -> Reply:
        if not KEY_ID_PATTERN.fullmatch(r.key_id):
            raise ValueError(f"invalid key id {r.key_id!r}")
        others = [i for i in r.participants if i != self.config.identifier]
        if self.config.identifier not in r.participants or any(i not in self.config.peers for i in others):
            raise ValueError("the participants must include this node and only peers pinned in its configuration")
        participant = DkgParticipant(
            suite(r.group), self.config.identifier, r.threshold, r.participants, dkg_context(r.key_id, r.session)
        )
        package = participant.round1()
        with self._lock:
            if r.session in self._dkg:
                raise ValueError(f"DKG session {r.session} exists")
            self._dkg[r.session] = _DkgSession(r.key_id, r.group, participant)
        s = participant.suite
        wire = PackageWire(
            package.identifier, list(package.commitments), package.proof_r, s.serialize_scalar(package.proof_mu)
        )
        return DkgRound1Reply(wire)

    def _dkg_round2(self, r: DkgRound2) -> Reply:
        session = self._session(r.session)
        s = session.participant.suite
        try:
            packages = {
                p.identifier: Round1Package(
                    p.identifier, tuple(p.commitments), p.proof_r, s.deserialize_scalar(p.proof_mu)
                )
                for p in r.packages
            }
        except GroupError as exc:
            raise DkgError(f"a round-1 package is malformed: {exc}") from exc
        if len(packages) != len(r.packages):
            raise DkgError("repeated round-1 packages")
        outgoing, transcript = session.participant.round2(packages)
        session.transcript = transcript
        me = self.config.identifier
        shares = []
        for j, value in sorted(outgoing.items()):
            key = dkg_share_key(self.identity, self.config.peers[j], transcript, session.key_id, me, j)
            shares.append(
                EncryptedShare(me, j, ChaCha20Poly1305(key).encrypt(bytes(12), s.serialize_scalar(value), None))
            )
        return DkgRound2Reply(shares, transcript)

    def _dkg_finish(self, r: DkgFinish) -> Reply:
        session = self._session(r.session, pop=True)
        if session.transcript is None:
            raise DkgError("finish before round 2")
        s = session.participant.suite
        me = self.config.identifier
        received: dict[int, int] = {}
        for item in r.shares:
            if item.recipient != me or item.sender not in self.config.peers or item.sender in received:
                raise DkgError("a share is not addressed to this node, or from an unknown or repeated sender")
            key = dkg_share_key(
                self.identity, self.config.peers[item.sender], session.transcript, session.key_id, item.sender, me
            )
            try:
                plain = ChaCha20Poly1305(key).decrypt(bytes(12), item.ciphertext, None)
                received[item.sender] = s.deserialize_scalar(plain)
            except (InvalidTag, GroupError) as exc:
                # a different transcript (inconsistent broadcast) or an altered share
                raise DkgError(f"the share from node {item.sender} does not decrypt", culprit=item.sender) from exc
        share = session.participant.finish(received)
        if not self.shares.add_initial(session.key_id, share):
            raise DkgError(f"a share of key {session.key_id} with this public key exists already")
        return DkgFinishReply(share.group_public_key, share.verifying_shares[me], share.transcript)

    def _session(self, session: str, *, pop: bool = False) -> _DkgSession:
        with self._lock:
            found = self._dkg.pop(session, None) if pop else self._dkg.get(session)
        if found is None:
            raise DkgError(f"no DKG session {session}")
        return found

    # -- signing --------------------------------------------------------------------------------------------------

    def _load_share(self, key_id: str, group_public_key: bytes, epoch: int, transcript: bytes) -> KeyShare:
        """The current share of the key, which must be of ``epoch``: a share of an old epoch never signs."""
        if not KEY_ID_PATTERN.fullmatch(key_id) or len(group_public_key) not in (32, 33):
            raise ValueError("invalid key id or group public key")
        try:
            return self.shares.current(key_id, group_public_key, epoch, transcript)
        except SigningError as exc:
            raise SigningError(f"node {self.config.identifier}: {exc}") from None

    def _commit(self, r: Commit) -> Reply:
        share = self._load_share(r.key_id, r.group_public_key, r.epoch, r.transcript)
        nonces, commitment = frost.commit(suite(share.group), share.identifier, share.secret_share)
        now = time.monotonic()
        with self._lock:
            if r.session in self._pending:
                raise ValueError(f"signing session {r.session} exists")
            for old in [k for k, p in self._pending.items() if now - p.created > PENDING_NONCES_TTL]:
                del self._pending[old]
            while len(self._pending) >= PENDING_NONCES_MAX:
                del self._pending[next(iter(self._pending))]
            self._pending[r.session] = _Pending(r.key_id, r.group_public_key, nonces, commitment, now, share.epoch)
        return CommitReply(CommitmentWire(commitment.identifier, commitment.hiding, commitment.binding))

    def _sign(self, r: Sign) -> Reply:
        with self._lock:
            pending = self._pending.pop(r.session, None)  # single use, whatever happens next
        if pending is None or time.monotonic() - pending.created > PENDING_NONCES_TTL:
            raise ValueError(f"no round-one commitment for session {r.session} (expired or used)")
        if (r.key_id, r.group_public_key, r.epoch) != (pending.key_id, pending.group_public_key, pending.epoch):
            raise ValueError("the request names another key or epoch than the one committed for")
        share = self._load_share(r.key_id, r.group_public_key, r.epoch, r.transcript)
        scheme = _SCHEMES[share.group]
        if r.scheme != scheme.value:
            raise ValueError(f"key {r.key_id!r} is {scheme}, the request says {r.scheme}: refusing")
        check_payload(scheme, r.payload)
        s = suite(share.group)
        commitments = [frost.Commitment(c.identifier, c.hiding, c.binding) for c in r.commitments]
        frost.check_commitment_list(s, commitments)
        if len(commitments) < share.threshold:
            raise ValueError(f"{len(commitments)} signers, fewer than the threshold {share.threshold}")
        if any(c.identifier not in share.verifying_shares for c in commitments):
            raise ValueError("the commitment list names a signer that is not a participant of this key")
        if pending.commitment not in commitments:
            raise ValueError("this node's commitment is missing from the list or was altered")
        z = frost.sign_share(
            s, share.identifier, share.secret_share, share.group_public_key, pending.nonces, r.payload, commitments
        )
        log.info("node %d signed request %s with key %s", share.identifier, r.request_id, r.key_id)
        return SignReply(share.identifier, s.serialize_scalar(z))


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        node = self.server.node
        sock: socket.socket = self.request
        sock.settimeout(60)
        try:
            channel = SecureChannel.accept(
                sock, node.identity, {k: "coordinator" for k in node.config.coordinator_keys}
            )
        except ChannelError as exc:
            log.warning("node %d refused a connection: %s", node.config.identifier, exc)
            return
        try:
            while True:
                data = channel.recv()
                try:
                    reply: Reply = node.handle(decode_request(data))
                except msgspec.MsgspecError as exc:
                    reply = ErrorReply(f"node {node.config.identifier}: malformed request: {exc}")
                channel.send(encode(reply))
        except ChannelError as exc:
            if "closed the connection" not in str(exc):
                log.warning("node %d dropped a channel: %s", node.config.identifier, exc)
        finally:
            channel.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, node: SignerNode) -> None:
        self.node = node
        super().__init__((node.config.host, node.config.port), _Handler)


def serve(config: NodeConfig, store: SealedStore) -> None:
    """Serve the node until SIGTERM/SIGINT; print ``listening HOST PORT`` when ready."""
    server = _Server(SignerNode(config, store))
    host, port = server.socket.getsockname()[:2]
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening {host} {port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    """Command line: ``init --dir DIR`` or ``serve --config FILE``."""
    parser = argparse.ArgumentParser(prog="python -m exchange_threshold.node", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create the node's sealed store and identity key; print its public key")
    init.add_argument("--dir", type=Path, required=True)
    init.add_argument("--passphrase-env", default=DEFAULT_PASSPHRASE_ENV)
    init.add_argument("--kdf-memory-kib", type=int, default=65_536)
    init.add_argument("--kdf-iterations", type=int, default=3)
    run = sub.add_parser("serve", help="serve signing requests from the pinned coordinator")
    run.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "init":
            kdf = KdfCost(memory_kib=args.kdf_memory_kib, iterations=args.kdf_iterations, lanes=4)
            store = SealedStore(args.dir, read_passphrase(args.passphrase_env), kdf=kdf)
            print(public_bytes(load_identity(store, create=True)).hex())
            return 0
        config = NodeConfig.load(args.config)
        serve(config, SealedStore(config.dir, read_passphrase(config.passphrase_env)))
    except (ValueError, SigningError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
