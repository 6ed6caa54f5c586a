"""The node's DKLs23 sidecar: a Node.js child process running Silence Laboratories' audited DKLs23 implementation.

No maintained Python binding of a threshold-ECDSA protocol exists; the library is Rust compiled to WebAssembly and
published on npm (``@silencelaboratories/dkls-wasm-ll-node``, pinned in ``scripts/setup``). Each signer node starts
one sidecar (``dkls_sidecar.js``, beside this module) and talks to it over its stdin/stdout, one JSON object a line.
The sidecar holds protocol sessions in memory only and writes nothing: key shares come back to the node, which seals
them in its store; they never reach a log or an exception text (library errors are cut to their short message).

Where the library is found: ``EXCHANGE_THRESHOLD_DKLS_MODULE`` (a path to the package directory), else
``<checkout>/.cache/npm/node_modules`` (where ``scripts/setup`` installs it), else Node's own module search.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from exchange_framework.interfaces import SigningError

__all__ = [
    "DKLS_PACKAGE",
    "DKLS_VERSION",
    "DklsError",
    "DklsMessage",
    "DklsSidecar",
    "SidecarUnavailableError",
    "find_dkls_module",
    "sidecar_available",
]

DKLS_PACKAGE = "@silencelaboratories/dkls-wasm-ll-node"
DKLS_VERSION = "1.1.2"  # keep in step with scripts/setup
MODULE_ENV = "EXCHANGE_THRESHOLD_DKLS_MODULE"
_SCRIPT = Path(__file__).with_name("dkls_sidecar.js")
_CHECKOUT = Path(__file__).resolve().parents[3]


class DklsError(SigningError):
    """A DKLs23 protocol step failed (bad or missing message, failed check); ``ban`` is the party it blames."""

    def __init__(self, message: str, ban: int | None = None) -> None:
        super().__init__(message)
        self.ban = ban


class SidecarUnavailableError(SigningError):
    """Node.js or the DKLs23 package is missing, or the sidecar died."""


DklsMessage = tuple[int, int | None, bytes]  # (from party, to party or None for a broadcast, payload)


def find_dkls_module() -> Path | None:
    """The installed DKLs23 package directory, or None if it is not where ``scripts/setup`` puts it."""
    configured = os.environ.get(MODULE_ENV)
    if configured:
        return Path(configured)
    local = _CHECKOUT / ".cache" / "npm" / "node_modules" / DKLS_PACKAGE
    return local if (local / "package.json").is_file() else None


def sidecar_available() -> str | None:
    """None when a sidecar can run here, else why not (and what to do)."""
    if shutil.which("node") is None:
        return "Node.js is not installed (threshold ECDSA runs DKLs23 in a Node.js sidecar): run scripts/setup"
    if find_dkls_module() is None:
        return f"the npm package {DKLS_PACKAGE}@{DKLS_VERSION} is not installed: run scripts/setup"
    return None


class DklsSidecar:
    """One Node.js process running ``dkls_sidecar.js``; calls are serialized (one request on the pipe at a time)."""

    def __init__(self) -> None:
        problem = sidecar_available()
        if problem is not None:
            raise SidecarUnavailableError(problem)
        module = find_dkls_module()
        assert module is not None
        env = {"PATH": os.environ.get("PATH", ""), MODULE_ENV: str(module.resolve())}
        self._process = subprocess.Popen(
            ["node", str(_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the library's panics could carry state: never into our logs
            env=env,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        self._next = 0
        ready = self._read_line()
        if ready.get("ready") is not True:
            self.close()
            raise SidecarUnavailableError("the DKLs23 sidecar did not start")

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Run one operation; bytes fields are sent as base64. Raise :class:`DklsError` if the library refuses."""
        with self._lock:
            self._next += 1
            request = {"id": self._next, "op": op, **{k: _encode(v) for k, v in fields.items()}}
            stdin = self._process.stdin
            if stdin is None or self._process.poll() is not None:
                raise SidecarUnavailableError("the DKLs23 sidecar is not running")
            try:
                stdin.write(json.dumps(request) + "\n")
                stdin.flush()
            except OSError as exc:
                raise SidecarUnavailableError(f"the DKLs23 sidecar is gone: {exc}") from None
            reply = self._read_line()
        if reply.get("id") != request["id"]:
            raise SidecarUnavailableError("the DKLs23 sidecar answered out of order")
        if "error" in reply:
            ban = reply.get("ban")
            raise DklsError(f"DKLs23 {op}: {str(reply['error'])[:200]}", ban if isinstance(ban, int) else None)
        ok: dict[str, Any] = reply["ok"]
        return ok

    def _read_line(self) -> dict[str, Any]:
        stdout = self._process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise SidecarUnavailableError("the DKLs23 sidecar exited")
        try:
            data: dict[str, Any] = json.loads(line)
        except ValueError:
            raise SidecarUnavailableError("the DKLs23 sidecar wrote something that is not JSON") from None
        return data

    def close(self) -> None:
        """Stop the sidecar (its sessions are lost)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def messages_to_json(messages: list[DklsMessage]) -> list[dict[str, Any]]:
    """The sidecar's form of protocol messages."""
    return [{"from": f, "to": t, "payload": base64.b64encode(p).decode()} for f, t, p in messages]


def messages_from_json(raw: list[dict[str, Any]]) -> list[DklsMessage]:
    """Protocol messages from the sidecar."""
    return [(int(m["from"]), None if m["to"] is None else int(m["to"]), base64.b64decode(m["payload"])) for m in raw]


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return messages_to_json(value)
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value
