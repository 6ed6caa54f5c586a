"""TRISA's peer-to-peer gRPC API over mutual TLS: the ``TRISANetwork`` client and our node's server.

Services and methods are those of trisacrypto/trisa's ``proto/trisa/api/v1beta1/api.proto``: ``TRISANetwork``
(``Transfer``, ``KeyExchange``) and ``TRISAHealth`` (``Status``). Both sides present certificates issued by the
TRISA directory's CA (or, for a private network, by the operator's CA); gRPC checks the chain and our server
refuses any client without one. The messages are encoded by :mod:`exchange_trisa.wire`; grpc's generic handlers
carry them without generated stubs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc  # type: ignore[import-untyped]  # grpcio ships no type information
import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exchange_trisa.wire import HealthCheck, SecureEnvelope, ServiceState, SigningKey

__all__ = [
    "KEY_EXCHANGE",
    "STATUS",
    "TRANSFER",
    "MtlsIdentity",
    "TransportError",
    "TrisaClient",
    "TrisaServer",
    "peer_common_name",
    "signing_key_message",
]

NETWORK, HEALTH = "trisa.api.v1beta1.TRISANetwork", "trisa.api.v1beta1.TRISAHealth"
TRANSFER, KEY_EXCHANGE, STATUS = f"/{NETWORK}/Transfer", f"/{NETWORK}/KeyExchange", f"/{HEALTH}/Status"
HEALTHY = 1  # ServiceState.Status.HEALTHY


class TransportError(RuntimeError):
    """The counterparty could not be reached or answered with a gRPC error; nothing was decided."""


class MtlsIdentity(msgspec.Struct, frozen=True):
    """Our TLS identity: the certificate chain and key issued to us (PEM), and the CA bundle we trust (PEM)."""

    certificate: bytes
    private_key: bytes
    trust_chain: bytes

    def common_name(self) -> str:
        """The common name our certificate was issued to (our TRISA name)."""
        cert = x509.load_pem_x509_certificate(self.certificate)
        return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def signing_key_message(public_key: rsa.RSAPublicKey) -> Any:
    """Our sealing key as the ``SigningKey`` message ``KeyExchange`` carries (``data``: PKIX DER)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(version=3, public_key_algorithm="RSA", data=der)


def peer_common_name(context: Any) -> str:
    """The common name of the verified client certificate of a call ("" if none, which mTLS prevents)."""
    names = context.auth_context().get("x509_common_name") or [b""]
    return bytes(names[0]).decode()


TransferHandler = Callable[[Any, str], Any]  # (SecureEnvelope, peer common name) -> SecureEnvelope
KeyHandler = Callable[[Any, str], Any]  # (SigningKey, peer common name) -> SigningKey


class TrisaServer:
    """Our node's ``TRISANetwork``/``TRISAHealth`` server on ``address`` (``host:port``, port 0 for any free one).

    ``transfer`` answers each incoming ``SecureEnvelope``; ``key_exchange`` answers ``KeyExchange``. Clients must
    present a certificate issued by ``identity.trust_chain``.
    """

    def __init__(
        self, identity: MtlsIdentity, *, transfer: TransferHandler, key_exchange: KeyHandler, address: str
    ) -> None:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="trisa"))
        unary = grpc.unary_unary_rpc_method_handler

        def on_transfer(request: Any, context: Any) -> Any:
            return transfer(request, peer_common_name(context))

        def on_key(request: Any, context: Any) -> Any:
            return key_exchange(request, peer_common_name(context))

        def on_status(request: Any, context: Any) -> Any:
            return ServiceState(status=HEALTHY)

        network = {
            "Transfer": unary(on_transfer, SecureEnvelope.FromString, SecureEnvelope.SerializeToString),
            "KeyExchange": unary(on_key, SigningKey.FromString, SigningKey.SerializeToString),
        }
        health = {"Status": unary(on_status, HealthCheck.FromString, ServiceState.SerializeToString)}
        self._server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(NETWORK, network),
                grpc.method_handlers_generic_handler(HEALTH, health),
            )
        )
        credentials = grpc.ssl_server_credentials(
            [(identity.private_key, identity.certificate)],
            root_certificates=identity.trust_chain,
            require_client_auth=True,
        )
        self.port = int(self._server.add_secure_port(address, credentials))
        if not self.port:
            raise TransportError(f"cannot listen on {address}")

    def start(self) -> None:
        """Start serving (in grpc's own threads)."""
        self._server.start()

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving; calls in progress get ``grace`` seconds."""
        self._server.stop(grace).wait()


class TrisaClient:
    """Calls counterparties' ``TRISANetwork``/``TRISAHealth`` services with our mTLS identity; thread-safe.

    Every call has a deadline of ``timeout`` seconds; a failure raises :class:`TransportError`.
    """

    def __init__(self, identity: MtlsIdentity, *, timeout: float = 10.0) -> None:
        self._credentials = grpc.ssl_channel_credentials(
            root_certificates=identity.trust_chain,
            private_key=identity.private_key,
            certificate_chain=identity.certificate,
        )
        self.identity = identity
        self.timeout = timeout
        self._channels: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _call(self, endpoint: str, name: str, method: str, request: Any, reply_type: Any) -> Any:
        with self._lock:
            channel = self._channels.get((endpoint, name))
            if channel is None:  # the server's certificate must be issued to ``name``, whatever the endpoint's host
                options = [("grpc.ssl_target_name_override", name)] if name else []
                channel = grpc.secure_channel(endpoint, self._credentials, options=options)
                self._channels[(endpoint, name)] = channel
        stub = channel.unary_unary(
            method, request_serializer=type(request).SerializeToString, response_deserializer=reply_type.FromString
        )
        try:
            return stub(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise TransportError(f"{endpoint} {method.rsplit('/', 1)[-1]}: {exc.code().name} {exc.details()}") from None

    def transfer(self, endpoint: str, envelope: Any, *, name: str = "") -> Any:
        """Send a ``SecureEnvelope`` to the counterparty ``name`` at ``endpoint``; return its reply envelope.

        With ``name`` (the counterparty's TRISA common name), its server certificate must be issued to that name.
        """
        return self._call(endpoint, name, TRANSFER, envelope, SecureEnvelope)

    def key_exchange(self, endpoint: str, ours: rsa.RSAPublicKey, *, name: str = "") -> rsa.RSAPublicKey:
        """Give the counterparty our sealing key and return theirs."""
        reply = self._call(endpoint, name, KEY_EXCHANGE, signing_key_message(ours), SigningKey)
        try:
            key = serialization.load_der_public_key(bytes(reply.data))
        except ValueError:
            raise TransportError(f"{endpoint} sent a sealing key that does not parse") from None
        if not isinstance(key, rsa.RSAPublicKey) or reply.revoked:
            raise TransportError(f"{endpoint} sent a sealing key that is not a usable RSA key")
        return key

    def status(self, endpoint: str, *, name: str = "") -> int:
        """The counterparty's health (``ServiceState.Status``: 1 is healthy)."""
        check = HealthCheck(attempts=1, last_checked_at=datetime.now(UTC).isoformat())
        return int(self._call(endpoint, name, STATUS, check, ServiceState).status)

    def close(self) -> None:
        """Close every channel."""
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
