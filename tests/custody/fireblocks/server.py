"""A local server of the Fireblocks API endpoints the plugin uses, written from Fireblocks' documentation.

Authentication as documented: every ``/v1`` request carries ``X-API-Key`` and ``Authorization: Bearer <JWT>``; the
JWT must verify (RS256) with the API user's registered public key, name the API key in ``sub`` and the request's
path and query in ``uri``, carry ``bodyHash`` = hex SHA-256 of the raw body, a fresh ``nonce`` and an ``exp`` no
more than 60 s after ``iat`` (the documentation says under 30 s; Fireblocks' own SDK signs 55 s, which the service
accepts) and not passed. Anything else is 401 and changes nothing.

Endpoints: ``POST /v1/transactions`` (TRANSFER from a vault account to a one-time address; ``externalTxId`` unique;
``Idempotency-Key`` answers a repeat with the first answer), ``GET /v1/transactions/{txId}``,
``GET /v1/transactions/external_tx_id/{externalTxId}``, ``GET /v1/vault/accounts_paged`` (cursor paging),
``POST /v1/vault/accounts``, ``GET /v1/vault/accounts/{id}``, ``GET|POST /v1/vault/accounts/{id}/{assetId}``; and the
Webhooks v2 JWKS at ``/.well-known/jwks.json``. Errors use the documented ``{"message", "code"}`` body.

Raw signing: ``POST /v1/transactions`` with ``operation: RAW`` and ``extraParameters.rawMessageData.messages``
signs each hex ``content`` with the key of the source vault's asset wallet (secp256k1 ECDSA over the 32-byte
content, half the time returned high-S as any ECDSA signer may; Ed25519 over the content bytes for EdDSA assets) and
puts ``signedMessages`` (``content``, ``algorithm``, ``derivationPath``, ``signature {fullSig, r, s, v}``,
``publicKey``) on the COMPLETED transaction. ``GET /v1/vault/accounts/{id}/{asset}/{change}/{index}/public_key_info``
answers the wallet's public key. ``reject_raw`` ends raw requests REJECTED; ``corrupt_signatures`` signs other bytes.

Transactions walk through the documented statuses, one step each time they are read (or on demand with
:meth:`FireblocksState.advance`): SUBMITTED, PENDING_AUTHORIZATION, QUEUED, PENDING_SIGNATURE, BROADCASTING,
CONFIRMING, COMPLETED (the vault is debited). A destination in ``rejected`` ends REJECTED (REJECTED_BY_USER), one in
``blocked`` ends BLOCKED (BLOCKED_BY_POLICY); a vault that cannot pay ends FAILED (INSUFFICIENT_FUNDS). Every
status change is sent as a webhook signed with the server's own RSA key: ``Fireblocks-Signature`` (base64 RSA-SHA512
of the body) and ``Fireblocks-Webhook-Signature`` (detached RS512 JWS whose ``kid`` is in the JWKS).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import coincurve
import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HAPPY_PATH = (
    "SUBMITTED",
    "PENDING_AUTHORIZATION",
    "QUEUED",
    "PENDING_SIGNATURE",
    "BROADCASTING",
    "CONFIRMING",
    "COMPLETED",
)
MAX_TOKEN_LIFETIME = 60
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
EDDSA_ASSETS = frozenset({"SOL", "SOL_TEST", "XLM", "XLM_TEST"})
RAW_PATH = (("PENDING_AUTHORIZATION", ""), ("QUEUED", ""), ("PENDING_SIGNATURE", ""), ("COMPLETED", ""))


@dataclass
class FireblocksState:
    """The workspace the server keeps: API user, vaults, transactions, and what it was asked."""

    api_key: str
    api_public_key: rsa.RSAPublicKey
    webhook_key: rsa.RSAPrivateKey
    webhook_kid: str = "test-webhook-key-1"
    vaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"name", "assets": {assetId: Decimal}}
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    paths: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # txId -> remaining (status, subStatus)
    external_ids: dict[str, str] = field(default_factory=dict)
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)
    advance_on_read: bool = True
    keys: dict[tuple[str, str], coincurve.PrivateKey | Ed25519PrivateKey] = field(default_factory=dict)
    reject_raw: bool = False
    fail_requests: int = 0  # answer this many next /v1 requests 503 before doing anything
    lose_create_answers: int = 0  # create this many next transactions but answer 500 (the answer is lost)
    corrupt_signatures: bool = False
    signatures: int = 0  # raw signatures made
    delay_seconds: float = 0  # answer requests of these methods this late (a slow or hung Fireblocks)
    delay_methods: frozenset[str] = frozenset({"GET", "POST"})
    required_confirmations: int = 3
    webhook_url: str = ""
    webhooks: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)  # every webhook sent
    deliveries: list[int] = field(default_factory=list)  # HTTP status of each delivery to webhook_url
    auth_failures: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    outbox: queue.Queue[tuple[bytes, dict[str, str]] | None] = field(default_factory=queue.Queue)

    # -- set-up ---------------------------------------------------------------------------------------------------

    def add_vault(self, name: str, assets: dict[str, str]) -> str:
        """Create a vault account holding ``assets`` (Fireblocks asset id -> decimal string); return its id."""
        with self.lock:
            vault_id = str(len(self.vaults))
            self.vaults[vault_id] = {"name": name, "assets": {}}
            for asset, amount in assets.items():
                self.activate(vault_id, asset, amount)
            return vault_id

    def activate(self, vault_id: str, asset: str, amount: str = "0") -> None:
        """Create a vault's asset wallet (and its key) if it has none."""
        with self.lock:
            wallets = self.vaults[vault_id]["assets"]
            if asset not in wallets:
                wallets[asset] = Decimal(amount)
                self.keys[(vault_id, asset)] = (
                    Ed25519PrivateKey.generate() if asset in EDDSA_ASSETS else coincurve.PrivateKey()
                )

    def public_key(self, vault_id: str, asset: str) -> tuple[str, bytes]:
        """(algorithm, compressed public key) of a vault's asset wallet."""
        key = self.keys[(vault_id, asset)]
        if isinstance(key, Ed25519PrivateKey):
            raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return "MPC_EDDSA_ED25519", raw
        return "MPC_ECDSA_SECP256K1", key.public_key.format(compressed=True)

    def _raw_sign(self, tx: dict[str, Any]) -> None:
        vault_id, asset = tx["source"]["id"], tx["assetId"]
        key = self.keys[(vault_id, asset)]
        algorithm, public_key = self.public_key(vault_id, asset)
        signed = []
        for message in tx["extraParameters"]["rawMessageData"]["messages"]:
            content = bytes.fromhex(message["content"])
            to_sign = hashlib.sha256(content).digest() if self.corrupt_signatures else content
            self.signatures += 1
            if isinstance(key, Ed25519PrivateKey):
                full = key.sign(to_sign)
                signature: dict[str, Any] = {"fullSig": full.hex(), "r": full[:32].hex(), "s": full[32:].hex()}
            else:
                recoverable = key.sign_recoverable(to_sign, hasher=None)
                r, s_value, v = recoverable[:32], int.from_bytes(recoverable[32:64], "big"), recoverable[64]
                if self.signatures % 2:  # the other valid ECDSA signature (high S, flipped recovery id)
                    s_value, v = SECP256K1_ORDER - s_value, v ^ 1
                s_bytes = s_value.to_bytes(32, "big")
                signature = {"fullSig": (r + s_bytes).hex(), "r": r.hex(), "s": s_bytes.hex(), "v": v}
            signed.append(
                {
                    "content": message["content"],
                    "algorithm": algorithm,
                    "derivationPath": [44, 60, int(vault_id), 0, 0],
                    "signature": signature,
                    "publicKey": public_key.hex(),
                }
            )
        tx["signedMessages"] = signed

    def jwks(self) -> dict[str, Any]:
        """The JWKS publishing the webhook key."""
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.webhook_key.public_key()))
        key.update({"kid": self.webhook_kid, "use": "sig", "alg": "RS512"})
        return {"keys": [key]}

    # -- webhooks -------------------------------------------------------------------------------------------------

    def sign(self, body: bytes) -> dict[str, str]:
        """Both signature headers Fireblocks sends with a webhook body."""
        legacy = self.webhook_key.sign(body, padding.PKCS1v15(), hashes.SHA512())
        token = jwt.api_jws.encode(body, self.webhook_key, algorithm="RS512", headers={"kid": self.webhook_kid})
        header, _payload, signature = token.split(".")
        return {
            "Fireblocks-Signature": base64.b64encode(legacy).decode("ascii"),
            "Fireblocks-Webhook-Signature": f"{header}..{signature}",
        }

    def _notify(self, kind: str, tx: dict[str, Any]) -> None:
        body = json.dumps(
            {"type": kind, "tenantId": "test-workspace", "timestamp": int(time.time() * 1000), "data": tx}
        ).encode()
        headers = self.sign(body)
        self.webhooks.append((body, headers))
        if self.webhook_url:
            self.outbox.put((body, headers))

    def deliver(self) -> None:
        """Post queued webhooks to ``webhook_url`` in order until a None arrives (run on its own thread)."""
        while (item := self.outbox.get()) is not None:
            body, headers = item
            request = urllib.request.Request(
                self.webhook_url, data=body, headers={**headers, "Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    self.deliveries.append(answer.status)
            except urllib.error.HTTPError as exc:
                self.deliveries.append(exc.code)
            except OSError:
                self.deliveries.append(0)

    # -- transactions ---------------------------------------------------------------------------------------------

    def advance(self, tx_id: str) -> dict[str, Any]:
        """Move a transaction one status along its path (nothing once final); return it."""
        with self.lock:
            tx = self.transactions[tx_id]
            remaining = self.paths[tx_id]
            if not remaining:
                return tx
            status, sub_status = remaining.pop(0)
            if tx["operation"] == "RAW":
                if status == "COMPLETED":
                    self._raw_sign(tx)
                tx["status"], tx["subStatus"] = status, sub_status
                self._notify("TRANSACTION_STATUS_UPDATED", tx)
                return tx
            vault = self.vaults[tx["source"]["id"]]["assets"]
            amount = Decimal(tx["amountInfo"]["amount"])
            if status == "PENDING_SIGNATURE" and vault.get(tx["assetId"], Decimal(0)) < amount:
                status, sub_status = "FAILED", "INSUFFICIENT_FUNDS"
                remaining.clear()
            if status == "BROADCASTING":
                tx["txHash"] = "0x" + hashlib.sha256(tx_id.encode()).hexdigest()
            if status == "CONFIRMING":
                tx["numOfConfirmations"] = 1
            if status == "COMPLETED":
                tx["numOfConfirmations"] = self.required_confirmations
                vault[tx["assetId"]] -= amount
            tx["status"], tx["subStatus"] = status, sub_status
            tx["lastUpdated"] = int(time.time() * 1000)
            self._notify("TRANSACTION_STATUS_UPDATED", tx)
            return tx

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("operation") == "RAW":
            return self._create_raw(body)
        if body.get("operation", "TRANSFER") != "TRANSFER":
            return 400, {"message": "only TRANSFER and RAW are served here", "code": 1000}
        source, destination = body.get("source") or {}, body.get("destination") or {}
        asset, amount = body.get("assetId"), body.get("amount")
        if source.get("type") != "VAULT_ACCOUNT" or source.get("id") not in self.vaults:
            return 400, {"message": "source must be an existing VAULT_ACCOUNT", "code": 1001}
        one_time = destination.get("oneTimeAddress") or {}
        if destination.get("type") != "ONE_TIME_ADDRESS" or not one_time.get("address"):
            return 400, {"message": "destination must be a ONE_TIME_ADDRESS with an address", "code": 1002}
        if not isinstance(asset, str) or not isinstance(amount, str) or not re.fullmatch(r"\d+(\.\d+)?", amount):
            return 400, {"message": "assetId and a numeric-string amount are required", "code": 1003}
        external = body.get("externalTxId")
        if external is not None and external in self.external_ids:
            return 400, {"message": f"a transaction with externalTxId {external} already exists", "code": 1438}
        tx_id = str(uuid.uuid4())
        now = int(time.time() * 1000)
        address = one_time["address"]
        if address in self.blocked:
            path = [("BLOCKED", "BLOCKED_BY_POLICY")]
        elif address in self.rejected:
            path = [("PENDING_AUTHORIZATION", ""), ("REJECTED", "REJECTED_BY_USER")]
        else:
            path = [(status, "CONFIRMED" if status == "COMPLETED" else "") for status in HAPPY_PATH[1:]]
        tx = {
            "id": tx_id,
            "externalTxId": external,
            "status": "SUBMITTED",
            "subStatus": "",
            "txHash": "",
            "operation": "TRANSFER",
            "note": body.get("note") or "",
            "assetId": asset,
            "source": {"type": "VAULT_ACCOUNT", "id": source["id"], "name": self.vaults[source["id"]]["name"]},
            "destination": {"type": "ONE_TIME_ADDRESS", "name": "N/A"},
            "destinationAddress": address,
            "destinationTag": one_time.get("tag") or "",
            "amountInfo": {"amount": amount, "requestedAmount": amount, "netAmount": amount},
            "feeInfo": {"networkFee": "0"},
            "createdAt": now,
            "lastUpdated": now,
            "numOfConfirmations": 0,
            "signedBy": [],
            "createdBy": self.api_key,
        }
        self.transactions[tx_id] = tx
        self.paths[tx_id] = path
        if external is not None:
            self.external_ids[external] = tx_id
        self._notify("TRANSACTION_CREATED", tx)
        return 200, {"id": tx_id, "status": "SUBMITTED"}

    def _create_raw(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        source, asset = body.get("source") or {}, body.get("assetId")
        vault_id = source.get("id")
        if source.get("type") != "VAULT_ACCOUNT" or (vault_id, asset) not in self.keys:
            return 400, {"message": "raw signing needs a VAULT_ACCOUNT source with an asset wallet", "code": 1005}
        messages = ((body.get("extraParameters") or {}).get("rawMessageData") or {}).get("messages")
        if not isinstance(messages, list) or not 0 < len(messages) <= 127:
            return 400, {"message": "rawMessageData.messages: 1 to 127 messages", "code": 1006}
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, str) or not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", content):
                return 400, {"message": "every message needs a hex content", "code": 1007}
            if asset not in EDDSA_ASSETS and len(content) != 64:
                return 400, {"message": "an ECDSA raw message is a 32-byte hash", "code": 1008}
        external = body.get("externalTxId")
        if external is not None and external in self.external_ids:
            return 400, {"message": f"a transaction with externalTxId {external} already exists", "code": 1438}
        tx_id = str(uuid.uuid4())
        now = int(time.time() * 1000)
        self.transactions[tx_id] = {
            "id": tx_id,
            "externalTxId": external,
            "status": "SUBMITTED",
            "subStatus": "",
            "operation": "RAW",
            "note": body.get("note") or "",
            "assetId": asset,
            "source": {"type": "VAULT_ACCOUNT", "id": vault_id, "name": self.vaults[vault_id]["name"]},
            "destination": {"type": "UNKNOWN"},
            "extraParameters": {"rawMessageData": {"messages": messages}},
            "createdAt": now,
            "lastUpdated": now,
            "signedMessages": [],
        }
        rejected = (("PENDING_AUTHORIZATION", ""), ("REJECTED", "REJECTED_BY_USER"))
        self.paths[tx_id] = list(rejected if self.reject_raw else RAW_PATH)
        if external is not None:
            self.external_ids[external] = tx_id
        self._notify("TRANSACTION_CREATED", self.transactions[tx_id])
        return 200, {"id": tx_id, "status": "SUBMITTED"}

    def _read(self, tx_id: str) -> dict[str, Any]:
        if self.advance_on_read:
            return self.advance(tx_id)
        return self.transactions[tx_id]

    @staticmethod
    def _vault_view(vault_id: str, vault: dict[str, Any]) -> dict[str, Any]:
        assets = [
            {
                "id": asset,
                "total": format(amount, "f"),
                "balance": format(amount, "f"),
                "available": format(amount, "f"),
                "pending": "0",
                "frozen": "0",
                "lockedAmount": "0",
            }
            for asset, amount in vault["assets"].items()
        ]
        return {"id": vault_id, "name": vault["name"], "hiddenOnUI": False, "autoFuel": False, "assets": assets}

    # -- authentication -------------------------------------------------------------------------------------------

    def authenticate(self, method: str, path: str, headers: Any, body: bytes) -> str | None:
        """Return why the request is refused, or None if it is authentic."""
        api_key = headers.get("X-API-Key")
        authorization = headers.get("Authorization") or ""
        if api_key != self.api_key:
            return "unknown API key"
        if not authorization.startswith("Bearer "):
            return "no bearer token"
        try:
            claims = jwt.decode(
                authorization[len("Bearer ") :],
                self.api_public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "sub", "uri", "nonce", "bodyHash"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            return f"JWT does not verify: {exc}"
        if claims["sub"] != api_key:
            return "JWT sub is not the API key"
        if claims["uri"] != path:
            return f"JWT uri {claims['uri']!r} is not the request's {path!r}"
        if claims["bodyHash"] != hashlib.sha256(body).hexdigest():
            return "JWT bodyHash does not match the body"
        if not isinstance(claims["iat"], int) or claims["exp"] - claims["iat"] > MAX_TOKEN_LIFETIME:
            return "JWT lifetime too long"
        if claims["iat"] > time.time() + 5:
            return "JWT issued in the future"
        with self.lock:
            if claims["nonce"] in self.nonces:
                return "JWT nonce used before"
            self.nonces.add(claims["nonce"])
        return None


def make_handler(state: FireblocksState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go out as separate writes: do not wait for an ACK

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client stopped waiting
                self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length) if length else b""
            state.requests.append((method, self.path))
            if self.path == "/.well-known/jwks.json" and method == "GET":
                self._send(200, state.jwks())
                return
            if state.delay_seconds and method in state.delay_methods:
                time.sleep(state.delay_seconds)
            with state.lock:
                failing = state.fail_requests > 0
                state.fail_requests -= int(failing)
            if failing:
                self._send(503, {"message": "Service Unavailable", "code": 503})
                return
            refused = state.authenticate(method, self.path, self.headers, raw)
            if refused is not None:
                state.auth_failures.append(refused)
                self._send(401, {"message": f"Unauthorized: {refused}", "code": -7})
                return
            body: dict[str, Any] = {}
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"message": "the body is not JSON", "code": 1004})
                    return
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            with state.lock:
                status, answer = self._route(method, url.path, query, body)
            self._send(status, answer)

        def _route(
            self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
        ) -> tuple[int, dict[str, Any] | list[Any]]:
            if method == "POST" and path == "/v1/transactions":
                key = self.headers.get("Idempotency-Key")
                if key is not None and key in state.idempotent:
                    return state.idempotent[key]
                answer = state._create(body)
                if key is not None and answer[0] == 200:
                    state.idempotent[key] = answer
                if answer[0] == 200 and state.lose_create_answers > 0:
                    state.lose_create_answers -= 1
                    return 500, {"message": "Internal Server Error", "code": 500}
                return answer
            if method == "GET" and (match := re.fullmatch(r"/v1/transactions/external_tx_id/([^/]+)", path)):
                tx_id = state.external_ids.get(urllib.parse.unquote(match[1]))
                if tx_id is None:
                    return 404, {"message": "Transaction not found", "code": 1404}
                return 200, state._read(tx_id)
            if method == "GET" and (match := re.fullmatch(r"/v1/transactions/([^/]+)", path)):
                if match[1] not in state.transactions:
                    return 404, {"message": "Transaction not found", "code": 1404}
                return 200, state._read(match[1])
            if method == "GET" and path == "/v1/vault/accounts_paged":
                prefix = query.get("namePrefix", "")
                ids = sorted((i for i, v in state.vaults.items() if v["name"].startswith(prefix)), key=int)
                start = int(query.get("after") or 0)
                limit = int(float(query.get("limit") or 200))
                page = ids[start : start + limit]
                paging = {"after": str(start + limit)} if start + limit < len(ids) else {}
                return 200, {"accounts": [state._vault_view(i, state.vaults[i]) for i in page], "paging": paging}
            if method == "POST" and path == "/v1/vault/accounts":
                vault_id = state.add_vault(str(body.get("name") or ""), {})
                return 200, state._vault_view(vault_id, state.vaults[vault_id])
            pattern = r"/v1/vault/accounts/([^/]+)/([^/]+)/(\d+)/(\d+)/public_key_info"
            if method == "GET" and (match := re.fullmatch(pattern, path)):
                if (match[1], match[2]) not in state.keys:
                    return 404, {"message": "Asset wallet not found", "code": 11006}
                algorithm, public_key = state.public_key(match[1], match[2])
                derivation = [44, 60, int(match[1]), int(match[3]), int(match[4])]
                return 200, {"algorithm": algorithm, "derivationPath": derivation, "publicKey": public_key.hex()}
            if match := re.fullmatch(r"/v1/vault/accounts/([^/]+)(?:/([^/]+))?", path):
                vault = state.vaults.get(match[1])
                if vault is None:
                    return 404, {"message": "Vault account not found", "code": 11001}
                if match[2] is None:
                    return (200, state._vault_view(match[1], vault)) if method == "GET" else (405, {"message": "-"})
                asset = match[2]
                if method == "POST":
                    state.activate(match[1], asset)
                    return 200, {"id": f"{asset.lower()}-address-{match[1]}", "address": f"addr-{match[1]}-{asset}"}
                if asset not in vault["assets"]:
                    return 404, {"message": "Asset wallet not found", "code": 11006}
                view = state._vault_view(match[1], {"name": vault["name"], "assets": {asset: vault["assets"][asset]}})
                return 200, view["assets"][0]
            return 404, {"message": f"no route {method} {path}", "code": 404}

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler


@contextmanager
def running(state: FireblocksState) -> Iterator[str]:
    """Run the server for ``state``; yield its base URL (the API is under ``/v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    sender = threading.Thread(target=state.deliver, name="fireblocks-webhooks", daemon=True)
    thread.start()
    sender.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        state.outbox.put(None)
        thread.join(timeout=5)
        sender.join(timeout=10)
