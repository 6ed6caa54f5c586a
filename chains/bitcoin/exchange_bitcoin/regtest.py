"""A throwaway ``litecoind`` (or ``bitcoind``) regtest node for tests and benchmarks: free ports, own datadir.

Keep a litecoind regtest chain below height 432: Litecoin's MWEB deployment is signalled by every regtest block and
activates there, after which each block needs a HogEx transaction whose first one needs an MWEB peg-in, and
``generatetoaddress`` fails with ``bad-txns-vin-empty`` (``-vbparams`` did not hold it back in 0.21.2).

``RegtestNode(datadir).start()`` writes the config, starts the daemon as a child process, waits for its RPC and
creates a ``miner`` wallet; :meth:`RegtestNode.stop` stops it (and kills it if it will not stop). The node's data
survives a stop, so :meth:`start` again resumes the same chain.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from exchange_bitcoin.rpc import NodeUnavailable, RpcClient, RpcError

__all__ = ["RegtestNode", "free_port"]

_USER = "regtest"
_PASSWORD = "regtest-only-password"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RegtestNode:
    """One regtest node process; ``rpc`` talks to it, ``miner`` is the name of its funded wallet."""

    miner = "miner"

    def __init__(
        self, datadir: Path, *, binary: str = "litecoind", fallback_fee: str = "0.0002", extra_config: str = ""
    ) -> None:
        self.datadir = Path(datadir)
        self.extra_config = extra_config  # more litecoin.conf lines, such as "mempoolreplacement=1\n"
        self.binary = binary
        self.fallback_fee = fallback_fee
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.user = _USER
        self.password = _PASSWORD
        self.process: subprocess.Popen[bytes] | None = None
        self.rpc = RpcClient(self.url, user=self.user, password=self.password, timeout=60, label="regtest node")
        self._miner_address = ""
        # Where mine() pays when given no address (default: the miner wallet). Tests that reorganise the chain set an
        # address outside the wallet once the miner is funded: a coinbase output the wallet spends as soon as it
        # matures is evicted from the mempool when a reorg makes it immature again.
        self.coinbase_to: str | None = None

    @property
    def url(self) -> str:
        """The node's RPC url."""
        return f"http://127.0.0.1:{self.rpc_port}"

    def start(self, timeout: float = 60.0) -> RegtestNode:
        """Start the daemon and wait until its RPC answers; create and load the ``miner`` wallet."""
        executable = shutil.which(self.binary)
        if executable is None:
            raise FileNotFoundError(f"{self.binary} is not installed: run scripts/setup (Debian package litecoind)")
        self.datadir.mkdir(parents=True, exist_ok=True)
        (self.datadir / "litecoin.conf").write_text(
            "regtest=1\nserver=1\nlisten=0\ndnsseed=0\nupnp=0\ntxindex=1\nprinttoconsole=0\n"
            f"fallbackfee={self.fallback_fee}\nrpcuser={self.user}\nrpcpassword={self.password}\n{self.extra_config}"
            f"[regtest]\nrpcbind=127.0.0.1\nrpcallowip=127.0.0.1\nrpcport={self.rpc_port}\nport={self.p2p_port}\n",
            encoding="utf-8",
        )
        config = self.datadir / "litecoin.conf"
        self.process = subprocess.Popen(
            [executable, f"-datadir={self.datadir}", f"-conf={config}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"{self.binary} exited with {self.process.returncode}: {err.strip()}")
            try:
                self.rpc.call("getblockcount")
                break
            except NodeUnavailable:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.1)
        try:
            self.rpc.call("loadwallet", self.miner)
        except RpcError as exc:
            if exc.code == -18:
                self.rpc.call("createwallet", self.miner)
            elif exc.code != -35:  # -35: already loaded
                raise
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the daemon (RPC ``stop``, then SIGKILL if it does not exit in ``timeout`` seconds)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(NodeUnavailable, RpcError):
            self.rpc.call("stop")
        self.rpc.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    # -- chain controls ------------------------------------------------------------------------------------------

    def wallet(self, method: str, *params: Any) -> Any:
        """Call ``method`` on the miner wallet."""
        return self.rpc.call(method, *params, wallet=self.miner)

    @property
    def miner_address(self) -> str:
        """A bech32 address of the miner wallet (where mined coins go)."""
        if not self._miner_address:
            self._miner_address = str(self.wallet("getnewaddress", "", "bech32"))
        return self._miner_address

    def mine(self, blocks: int = 1, address: str | None = None) -> list[str]:
        """Mine ``blocks`` blocks (with the mempool) to ``address``, ``coinbase_to`` or the miner; return hashes."""
        to = address or self.coinbase_to or self.miner_address
        return [str(h) for h in self.rpc.call("generatetoaddress", blocks, to)]

    def fund_miner(self) -> None:
        """Make the miner wallet's coins spendable: mine past coinbase maturity (101 blocks) if not yet."""
        if int(self.rpc.call("getblockcount")) < 101:
            self.mine(101 - int(self.rpc.call("getblockcount")))
