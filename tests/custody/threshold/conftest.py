"""Five real signer node processes on 127.0.0.1 (node 2 injects bad shares on request) and their coordinator."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from exchange_threshold.channel import public_bytes
from exchange_threshold.node import load_identity
from exchange_threshold.signer import NodeAddress, ThresholdSigner
from exchange_threshold.store import SealedStore

from exchange_framework.custody.keystore import KdfCost

PASSPHRASE = "threshold test passphrase"
ENV = "EXCHANGE_THRESHOLD_TEST_PASSPHRASE"
FAST_KDF = KdfCost(memory_kib=256, iterations=1, lanes=4)  # tests only: real stores use RFC 9106's 64 MiB
IDS = [1, 2, 3, 4, 5]
EVIL = 2  # runs evil_node.py: a wrong share for payloads starting with MISBEHAVE


@dataclass
class Cluster:
    """The running nodes, their addresses, and the coordinator's store."""

    root: Path
    coordinator_store: SealedStore
    nodes: dict[int, NodeAddress]
    processes: dict[int, subprocess.Popen[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    logs: list[IO[str]] = field(default_factory=list)

    def signer(self, ids: list[int] | None = None, *, threshold: int = 3) -> ThresholdSigner:
        """A coordinator over the shared store that talks to ``ids`` (default: all five nodes)."""
        chosen = [self.nodes[i] for i in (ids or IDS)]
        return ThresholdSigner(self.coordinator_store, chosen, threshold=threshold, timeout=5.0)

    def stop(self, i: int) -> None:
        """Stop node ``i``'s process (its store stays)."""
        _stop(self.processes.pop(i))

    def start(self, i: int, script: str | None = None) -> None:
        """Start node ``i`` again, on the port it had, from its store (``script``: a fault-injecting node here)."""
        path = self.root / f"node{i}.json"
        config = json.loads(path.read_text())
        config["port"] = self.nodes[i].port
        path.write_text(json.dumps(config))
        self.processes[i] = _spawn(self.root, i, self.env, self.logs, script=script)
        _wait_listening({i: self.processes[i]})


def _spawn(
    root: Path, i: int, env: dict[str, str], logs: list[IO[str]], *, script: str | None
) -> subprocess.Popen[str]:
    program = [str(Path(__file__).with_name(script))] if script else ["-m", "exchange_threshold.node"]
    logs.append((root / f"node{i}.log").open("a"))
    return subprocess.Popen(
        [sys.executable, *program, "serve", "--config", str(root / f"node{i}.json")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=logs[-1],
        text=True,
    )


def _stop(p: subprocess.Popen[str]) -> None:
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p.stdout is not None:
        p.stdout.close()


def _wait_listening(processes: dict[int, subprocess.Popen[str]], timeout: float = 20.0) -> dict[int, int]:
    ports: dict[int, int] = {}
    selector = selectors.DefaultSelector()
    for i, p in processes.items():
        assert p.stdout is not None
        selector.register(p.stdout, selectors.EVENT_READ, i)
    deadline = time.monotonic() + timeout
    while len(ports) < len(processes):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nodes did not start: only {sorted(ports)} listening")
        for key, _ in selector.select(timeout=0.5):
            line = key.fileobj.readline()  # type: ignore[union-attr]
            if line.startswith("listening"):
                ports[key.data] = int(line.split()[2])
                selector.unregister(key.fileobj)
            elif not line:
                raise RuntimeError(f"node {key.data} exited before listening")
    return ports


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Start the five node processes (each with its own sealed store and identity) and stop them at the end."""
    with running_cluster(tmp_path_factory.mktemp("threshold")) as started:
        yield started


@contextmanager
def running_cluster(root: Path, *, evil: int | None = EVIL, **settings: object) -> Iterator[Cluster]:
    """Five node processes with their stores under ``root`` (node ``evil`` runs evil_node.py), stopped at the end."""
    coordinator_store = SealedStore(root / "coordinator", PASSPHRASE.encode(), kdf=FAST_KDF)
    coordinator_key = public_bytes(load_identity(coordinator_store, create=True))
    keys = {}
    for i in IDS:
        keys[i] = public_bytes(
            load_identity(SealedStore(root / f"node{i}", PASSPHRASE.encode(), kdf=FAST_KDF), create=True)
        )
    env = {**os.environ, ENV: PASSPHRASE}
    processes: dict[int, subprocess.Popen[str]] = {}
    logs: list[IO[str]] = []
    cluster = Cluster(root, coordinator_store, {}, processes, env, logs)
    try:
        for i in IDS:
            config = {
                "identifier": i,
                "dir": f"node{i}",
                "host": "127.0.0.1",
                "port": 0,
                "coordinator_keys": [coordinator_key.hex()],
                "peers": {str(j): keys[j].hex() for j in IDS if j != i},
                "passphrase_env": ENV,
                **settings,
            }
            (root / f"node{i}.json").write_text(json.dumps(config))
            processes[i] = _spawn(root, i, env, logs, script="evil_node.py" if i == evil else None)
        ports = _wait_listening(processes)
        cluster.nodes.update(
            {i: NodeAddress(identifier=i, host="127.0.0.1", port=ports[i], public_key=keys[i].hex()) for i in IDS}
        )
        yield cluster
    finally:
        for p in processes.values():
            p.terminate()
        for p in list(processes.values()):
            _stop(p)
        for log in logs:
            log.close()
