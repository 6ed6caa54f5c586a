"""Authenticated, encrypted channels between the coordinator and the signer nodes, with pinned static keys.

Every party has a static X25519 identity key; each side pins the other's public key in its configuration. The
handshake is Noise-KK-like (one round trip, both sides authenticated, forward secret through ephemeral keys):

1. initiator -> responder: ``MAGIC || s_i || e_i`` (its static and a fresh ephemeral public key). The responder
   refuses (closes) unless ``s_i`` is one of its pinned peers.
2. both compute ``ikm = DH(e_i, e_r) || DH(s_i, e_r) || DH(e_i, s_r) || DH(s_i, s_r)`` and the transcript hash
   ``h = SHA-256(MAGIC || s_i || e_i || s_r || e_r)``, and derive two ChaCha20-Poly1305 keys (one per direction)
   with HKDF-SHA256(ikm, salt=h). ``DH(s_i, e_r)`` can only be computed by the holder of ``s_i`` and ``DH(e_i, s_r)``
   only by the holder of ``s_r``, so each side's first message proves its identity.
3. responder -> initiator: ``e_r || AEAD(k_ri, 0, "ready", h)``; the initiator checks it (the responder holds
   ``s_r``). The initiator's first frame, encrypted under keys that need ``s_i``, proves its identity in turn.

Frames are ``len (4 bytes) || AEAD(k, counter, data, h)`` with a per-direction counter as nonce, so a reordered,
replayed, altered or forged frame fails authentication; the channel then raises :class:`ChannelError` and is
closed (nothing in it is trusted any more).
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import struct
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MAX_FRAME", "ChannelError", "SecureChannel", "public_bytes"]

MAGIC = b"exchange-threshold/channel/v1\x00"
MAX_FRAME = 4 * 1024 * 1024
_READY = b"ready"


class ChannelError(ConnectionError):
    """The peer is unknown, the handshake failed, or a frame did not authenticate: the channel is closed."""


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The 32-byte raw public key of an X25519 private key."""
    return key.public_key().public_bytes_raw()


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # a low-order point gives an all-zero secret, which cryptography refuses
        raise ChannelError("invalid X25519 public key from the peer") from exc


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        try:
            chunk = sock.recv(size - len(chunks))
        except OSError as exc:
            raise ChannelError(f"connection failed: {exc}") from exc
        if not chunk:
            raise ChannelError("the peer closed the connection")
        chunks += chunk
    return bytes(chunks)


class SecureChannel:
    """One authenticated, encrypted, ordered stream of messages with a peer whose static key is pinned."""

    def __init__(self, sock: socket.socket, send_key: bytes, recv_key: bytes, transcript: bytes, peer: bytes) -> None:
        self.sock = sock
        self.peer = peer  # the peer's static public key
        self._send = ChaCha20Poly1305(send_key)
        self._recv = ChaCha20Poly1305(recv_key)
        self._transcript = transcript
        self._send_counter = 1  # 0 was the responder's "ready" message
        self._recv_counter = 1

    @classmethod
    def connect(
        cls, address: tuple[str, int], static: X25519PrivateKey, peer: bytes, *, timeout: float = 5.0
    ) -> SecureChannel:
        """Open a channel to the responder at ``address`` whose static public key must be ``peer``."""
        try:
            sock = socket.create_connection(address, timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise ChannelError(f"cannot connect to {address[0]}:{address[1]}: {exc}") from exc
        return cls.connect_socket(sock, static, peer)

    @classmethod
    def connect_socket(cls, sock: socket.socket, static: X25519PrivateKey, peer: bytes) -> SecureChannel:
        """Run the initiator's handshake on a connected ``sock``; the responder's static key must be ``peer``."""
        try:
            ephemeral = X25519PrivateKey.generate()
            s_i, e_i = public_bytes(static), public_bytes(ephemeral)
            sock.sendall(MAGIC + s_i + e_i)
            reply = _recv_exact(sock, 32 + len(_READY) + 16)
            e_r = reply[:32]
            ikm = _dh(ephemeral, e_r) + _dh(static, e_r) + _dh(ephemeral, peer) + _dh(static, peer)
            transcript = hashlib.sha256(MAGIC + s_i + e_i + peer + e_r).digest()
            k_ir, k_ri = _keys(ikm, transcript)
            try:
                ready = ChaCha20Poly1305(k_ri).decrypt(_nonce(0), reply[32:], transcript)
            except InvalidTag as exc:
                raise ChannelError(f"the responder is not the pinned peer {peer.hex()}") from exc
            if ready != _READY:
                raise ChannelError("unexpected handshake reply")
            return cls(sock, k_ir, k_ri, transcript, peer)
        except BaseException:
            sock.close()
            raise

    @classmethod
    def accept(cls, sock: socket.socket, static: X25519PrivateKey, pinned: Mapping[bytes, str]) -> SecureChannel:
        """Answer a handshake on ``sock``; refuse (close, raise) unless the initiator's key is in ``pinned``."""
        try:
            hello = _recv_exact(sock, len(MAGIC) + 64)
            if hello[: len(MAGIC)] != MAGIC:
                raise ChannelError("not a threshold-signer channel handshake")
            s_i, e_i = hello[len(MAGIC) : len(MAGIC) + 32], hello[len(MAGIC) + 32 :]
            if s_i not in pinned:
                raise ChannelError(f"unknown peer {s_i.hex()}: its key is not pinned in this node's configuration")
            ephemeral = X25519PrivateKey.generate()
            e_r = public_bytes(ephemeral)
            ikm = _dh(ephemeral, e_i) + _dh(ephemeral, s_i) + _dh(static, e_i) + _dh(static, s_i)
            transcript = hashlib.sha256(MAGIC + s_i + e_i + public_bytes(static) + e_r).digest()
            k_ir, k_ri = _keys(ikm, transcript)
            sock.sendall(e_r + ChaCha20Poly1305(k_ri).encrypt(_nonce(0), _READY, transcript))
            return cls(sock, k_ri, k_ir, transcript, s_i)
        except BaseException:
            sock.close()
            raise

    def encrypt_frame(self, data: bytes) -> bytes:
        """Return the next frame for ``data`` (length prefix and ciphertext), advancing the send counter."""
        if len(data) > MAX_FRAME - 16:
            raise ChannelError(f"message of {len(data)} bytes is larger than the {MAX_FRAME}-byte frame limit")
        sealed = self._send.encrypt(_nonce(self._send_counter), data, self._transcript)
        self._send_counter += 1
        return struct.pack(">I", len(sealed)) + sealed

    def send(self, data: bytes) -> None:
        """Send one message."""
        try:
            self.sock.sendall(self.encrypt_frame(data))
        except OSError as exc:
            self.close()
            raise ChannelError(f"send failed: {exc}") from exc

    def recv(self) -> bytes:
        """Receive one message; raise :class:`ChannelError` (and close) if it does not authenticate."""
        try:
            (size,) = struct.unpack(">I", _recv_exact(self.sock, 4))
            if not 16 <= size <= MAX_FRAME:
                raise ChannelError(f"frame size {size} out of bounds")
            sealed = _recv_exact(self.sock, size)
            try:
                data = self._recv.decrypt(_nonce(self._recv_counter), sealed, self._transcript)
            except InvalidTag as exc:
                raise ChannelError("a frame failed authentication (tampered, replayed or forged): closing") from exc
        except ChannelError:
            self.close()
            raise
        self._recv_counter += 1
        return data

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self.sock.close()


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


def _keys(ikm: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=transcript, info=b"exchange-threshold/keys").derive(ikm)
    return okm[:32], okm[32:]
