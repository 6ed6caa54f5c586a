"""The OpenAPI 3.1 document of the REST API, generated from the endpoint declarations the routes are built from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchange_framework import __version__
from exchange_framework.api.auth import API_KEY_HEADER
from exchange_framework.api.endpoints import Endpoint, Security
from exchange_framework.config import ExchangeConfig

__all__ = ["openapi_document"]

_ERROR = {
    "description": "An error: Binance's code and a message saying what to fix.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["code", "msg"],
                "properties": {"code": {"type": "integer"}, "msg": {"type": "string"}},
            }
        }
    },
}


def _operation(e: Endpoint) -> dict[str, Any]:
    in_body = e.method in ("POST", "PUT")
    op: dict[str, Any] = {
        "summary": e.summary,
        "operationId": f"{e.method.lower()}_{e.path.strip('/').replace('/', '_')}",
        "tags": [e.tag],
        "x-weight": e.weight,
        "x-security-type": e.security.value,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
            "400": _ERROR,
            "401": _ERROR,
            "429": _ERROR,
        },
    }
    schema_of = {"number": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}}
    if e.params and not in_body:
        op["parameters"] = [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": p.description,
                "schema": schema_of.get(p.type, {"type": p.type}),
            }
            for p in e.params
        ]
    if e.params and in_body:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": [p.name for p in e.params if p.required],
                        "properties": {
                            p.name: {**schema_of.get(p.type, {"type": p.type}), "description": p.description}
                            for p in e.params
                        },
                    }
                }
            },
        }
    if e.security is not Security.NONE:
        op["security"] = [{"apiKey": []}]
    return op


def openapi_document(config: ExchangeConfig, endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    """The document for ``endpoints``, titled with the exchange's brand."""
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{config.brand.name} API",
            "version": __version__,
            "description": (
                "Follows Binance's spot REST API conventions. Signed endpoints need the API key in the "
                f"{API_KEY_HEADER} header and a hex HMAC-SHA256 'signature' of the query string followed by the "
                "body, keyed with the API secret, with 'timestamp' (ms) and optional 'recvWindow'."
            ),
        },
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}}},
        "paths": paths,
    }
