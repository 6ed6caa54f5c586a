"""A small local TRISA Global Directory Service: ``TRISADirectory.Lookup`` and ``Search`` as trisacrypto/trisa's
``proto/trisa/gds/api/v1beta1/api.proto`` documents them, over TLS on 127.0.0.1.

``Lookup`` finds a VASP by id or common name (gRPC ``NOT_FOUND`` when there is none, as the directory answers);
``Search`` matches names case-insensitively (any of the requested names, as a substring) and filters by country.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]
from exchange_trisa.transport import MtlsIdentity
from exchange_trisa.wire import LookupReply, LookupRequest, SearchReply, SearchRequest

SERVICE = "trisa.gds.api.v1beta1.TRISADirectory"
DIRECTORY = "testnet.directory"


@dataclass
class VaspRecord:
    """A registered VASP: its id, common name, TRISA endpoint, name, country and signing certificate (DER)."""

    vasp_id: str
    common_name: str
    endpoint: str
    name: str
    country: str
    signing_certificate: bytes = b""
    revoked: bool = False


@dataclass
class LocalGds:
    """The directory's records; ``start`` serves them on a free port of 127.0.0.1 with ``identity``'s certificate
    (with ``members``, only to clients whose certificate ``identity.trust_chain`` issued)."""

    identity: MtlsIdentity
    records: list[VaspRecord] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    members: bool = False  # the members endpoint: clients must present a certificate from the same CA
    port: int = 0
    _server: Any = None

    def lookup(self, request: Any, context: Any) -> Any:
        self.calls.append("Lookup")
        for r in self.records:
            if (request.id and r.vasp_id == request.id) or (
                request.common_name and r.common_name == request.common_name
            ):
                reply = LookupReply(
                    id=r.vasp_id,
                    registered_directory=DIRECTORY,
                    common_name=r.common_name,
                    endpoint=r.endpoint,
                    name=r.name,
                    country=r.country,
                    verified_on="2026-01-01T00:00:00Z",
                )
                if r.signing_certificate:
                    reply.signing_certificate.data = r.signing_certificate
                reply.identity_certificate.revoked = r.revoked
                return reply
        context.abort(grpc.StatusCode.NOT_FOUND, "could not find VASP by ID or common name")

    def search(self, request: Any, context: Any) -> Any:
        self.calls.append("Search")
        if not request.name and not request.website:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no search query was specified")
        names = [n.casefold() for n in request.name]
        reply = SearchReply()
        for r in self.records:
            if any(n in r.name.casefold() for n in names) and (not request.country or r.country in request.country):
                reply.results.add(
                    id=r.vasp_id, registered_directory=DIRECTORY, common_name=r.common_name, endpoint=r.endpoint
                )
        return reply

    def start(self) -> str:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        unary = grpc.unary_unary_rpc_method_handler
        handlers = {
            "Lookup": unary(self.lookup, LookupRequest.FromString, LookupReply.SerializeToString),
            "Search": unary(self.search, SearchRequest.FromString, SearchReply.SerializeToString),
        }
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        credentials = grpc.ssl_server_credentials(
            [(self.identity.private_key, self.identity.certificate)],
            root_certificates=self.identity.trust_chain if self.members else None,
            require_client_auth=self.members,
        )
        self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        self._server.start()
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(0).wait()
