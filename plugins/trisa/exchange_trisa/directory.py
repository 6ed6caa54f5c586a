"""Finding the counterparty VASP: the TRISA Global Directory Service (GDS), or a static directory from config.

:class:`GdsDirectory` calls the ``TRISADirectory`` service of trisacrypto/trisa's
``proto/trisa/gds/api/v1beta1/api.proto`` (``Lookup`` by common name or id, ``Search`` by name and country) over
TLS. :class:`StaticDirectory` serves operators without GDS access from ``[plugins.settings.trisa.counterparties]``.
Either gives a :class:`Counterparty`: its TRISA endpoint, name, and (from GDS) the public key of its signing
certificate, which is the key to seal envelopes to.

Blockchain addresses are not in the directory: which VASP holds a destination address comes from
``[plugins.settings.trisa.addresses]`` (see :mod:`exchange_trisa.provider`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import grpc  # type: ignore[import-untyped]  # grpcio ships no type information
import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exchange_trisa.transport import MtlsIdentity
from exchange_trisa.wire import LookupReply, LookupRequest, SearchReply, SearchRequest

__all__ = [
    "LOOKUP",
    "SEARCH",
    "Counterparty",
    "CounterpartyDirectory",
    "DirectoryError",
    "GdsDirectory",
    "StaticDirectory",
]

SERVICE = "trisa.gds.api.v1beta1.TRISADirectory"
LOOKUP, SEARCH = f"/{SERVICE}/Lookup", f"/{SERVICE}/Search"


class DirectoryError(RuntimeError):
    """The directory could not answer (unreachable, an error reply, a malformed record); nothing was decided."""


class Counterparty(msgspec.Struct, frozen=True):
    """A VASP on the TRISA network. ``sealing_key`` is its signing key (DER SubjectPublicKeyInfo), or empty when
    the directory has none and the key must come from ``KeyExchange``."""

    common_name: str
    endpoint: str
    name: str = ""
    country: str = ""
    vasp_id: str = ""
    sealing_key: bytes = b""


@runtime_checkable
class CounterpartyDirectory(Protocol):
    """Where counterparty VASPs are looked up."""

    def lookup(self, common_name: str) -> Counterparty | None:
        """The VASP registered under ``common_name``; ``None`` if there is none. Raises :class:`DirectoryError`."""
        ...

    def search(self, name: str, *, country: str = "") -> list[Counterparty]:
        """VASPs whose name matches ``name`` (optionally in ``country``). Raises :class:`DirectoryError`."""
        ...


class StaticDirectory:
    """Counterparties listed in config: ``{common_name: {"endpoint": "host:port", "name": "...", "country": "..."}}``.

    A ``sealing_key`` entry (a PEM public key) saves the key exchange.
    """

    def __init__(self, entries: Mapping[str, Mapping[str, str]]) -> None:
        self.entries: dict[str, Counterparty] = {}
        for common_name, entry in entries.items():
            where = f"[plugins.settings.trisa.counterparties.{common_name!r}]"
            endpoint = str(entry.get("endpoint", ""))
            if ":" not in endpoint:
                raise ValueError(f'{where}: endpoint = "host:port" is required')
            key = b""
            if entry.get("sealing_key"):
                try:
                    public = serialization.load_pem_public_key(str(entry["sealing_key"]).encode())
                except ValueError:
                    raise ValueError(f"{where}: sealing_key is not a PEM public key") from None
                key = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            self.entries[common_name] = Counterparty(
                common_name=common_name,
                endpoint=endpoint,
                name=str(entry.get("name", common_name)),
                country=str(entry.get("country", "")),
                sealing_key=key,
            )

    def lookup(self, common_name: str) -> Counterparty | None:
        """The listed counterparty called ``common_name``."""
        return self.entries.get(common_name)

    def search(self, name: str, *, country: str = "") -> list[Counterparty]:
        """Listed counterparties whose name contains ``name`` (case-insensitive)."""
        wanted = name.casefold()
        return [
            c for c in self.entries.values() if wanted in c.name.casefold() and (not country or c.country == country)
        ]


def _certificate_key(der: bytes) -> bytes:
    if not der:
        return b""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise DirectoryError("the directory sent a signing certificate that does not parse") from None
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class GdsDirectory:
    """The TRISA Global Directory Service at ``endpoint`` (e.g. ``api.trisa.directory:443``), over TLS.

    ``trust_chain`` is the CA bundle to check the directory's certificate with (``None``: the system's roots);
    ``identity`` adds our client certificate for a directory that requires mTLS.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        trust_chain: bytes | None = None,
        identity: MtlsIdentity | None = None,
        timeout: float = 10.0,
    ) -> None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=trust_chain,
            private_key=identity.private_key if identity else None,
            certificate_chain=identity.certificate if identity else None,
        )
        self.endpoint = endpoint
        self.timeout = timeout
        self._channel = grpc.secure_channel(endpoint, credentials)

    def _call(self, method: str, request: Any, reply_type: Any) -> Any:
        stub = self._channel.unary_unary(
            method, request_serializer=type(request).SerializeToString, response_deserializer=reply_type.FromString
        )
        try:
            return stub(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise DirectoryError(f"directory {self.endpoint}: {exc.code().name} {exc.details()}") from None

    def lookup(self, common_name: str) -> Counterparty | None:
        """``Lookup`` by common name."""
        reply = self._call(LOOKUP, LookupRequest(common_name=common_name), LookupReply)
        if reply is None:
            return None
        if reply.HasField("error") and reply.error.code:
            raise DirectoryError(f"directory {self.endpoint}: error {reply.error.code} {reply.error.message}")
        if reply.common_name != common_name or not reply.endpoint:
            raise DirectoryError(f"directory {self.endpoint} answered for {reply.common_name!r}, not {common_name!r}")
        if reply.identity_certificate.revoked or reply.signing_certificate.revoked:
            raise DirectoryError(f"the directory marks {common_name}'s certificate as revoked: nothing is sent to it")
        return Counterparty(
            common_name=reply.common_name,
            endpoint=reply.endpoint,
            name=reply.name,
            country=reply.country,
            vasp_id=reply.id,
            sealing_key=_certificate_key(bytes(reply.signing_certificate.data)),
        )

    def search(self, name: str, *, country: str = "") -> list[Counterparty]:
        """``Search`` by name (and country)."""
        request = SearchRequest(name=[name], country=[country] if country else [])
        reply = self._call(SEARCH, request, SearchReply)
        if reply is None:
            return []
        if reply.HasField("error") and reply.error.code:
            raise DirectoryError(f"directory {self.endpoint}: error {reply.error.code} {reply.error.message}")
        return [
            Counterparty(common_name=r.common_name, endpoint=r.endpoint, vasp_id=r.id)
            for r in reply.results
            if r.common_name and r.endpoint
        ]

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
