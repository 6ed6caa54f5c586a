"""Run a local anvil node (Foundry's development EVM node) for tests and benchmarks, on 127.0.0.1 only.

``scripts/setup`` installs the binary with npm into ``.cache/npm``; :func:`find_anvil` looks there, then at
``$ANVIL`` and on ``PATH``. :class:`AnvilNode` starts one on a free port with automining off, so blocks are mined
only when asked, and stops it by its process id.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from exchange_evm.rpc import JsonRpcClient, NodeFault

__all__ = ["ANVIL_NPM_PATH", "AnvilNode", "find_anvil", "free_port"]

ANVIL_NPM_PATH = Path(".cache/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


def find_anvil() -> Path:
    """Return the anvil binary: ``$ANVIL``, the repository's npm cache, or ``PATH``; raise naming the fix."""
    candidates: list[Path] = []
    if os.environ.get("ANVIL"):
        candidates.append(Path(os.environ["ANVIL"]))
    here = Path(__file__).resolve()
    candidates += [parent / ANVIL_NPM_PATH for parent in here.parents]
    on_path = shutil.which("anvil")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "anvil not found: run scripts/setup (npm install --prefix .cache/npm @foundry-rs/anvil) or set $ANVIL"
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilNode:
    """One anvil process: ``start()``, ``stop()``, ``url`` and a JSON-RPC client ``rpc``."""

    def __init__(
        self,
        *,
        chain_id: int = 31337,
        port: int | None = None,
        state_file: Path | None = None,
        rpc_timeout: float = 30.0,
    ) -> None:
        self.chain_id = chain_id
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.state_file = state_file
        self.url = f"http://127.0.0.1:{self.port}"
        self.rpc_timeout = rpc_timeout
        self.rpc = JsonRpcClient(self.url, timeout=rpc_timeout)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> AnvilNode:
        """Start anvil (automine off) and wait until it answers; a port taken meanwhile is replaced (3 tries)."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except OSError:
                if self._fixed_port or attempt == 2:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self.rpc = JsonRpcClient(self.url, timeout=self.rpc_timeout)
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> AnvilNode:
        command = [
            str(find_anvil()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--no-mining",
            "--silent",
        ]  # fmt: skip
        if self.state_file is not None:
            command += ["--state", str(self.state_file)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        probe = JsonRpcClient(self.url, timeout=1.0)
        try:
            while True:
                try:
                    probe.call("eth_chainId")
                    return self
                except NodeFault:
                    self._check_alive(deadline, timeout)
                    time.sleep(0.05)
        finally:
            probe.close()

    def _check_alive(self, deadline: float, timeout: float) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None
            raise OSError(f"anvil exited with {code}: {error[:500]}")
        if time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"anvil did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        """Stop anvil (SIGTERM, then SIGKILL after 10 s); with a state file, anvil saves its state on the way out."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        self.rpc.close()

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
