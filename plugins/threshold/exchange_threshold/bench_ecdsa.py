"""Benchmark: threshold-ECDSA (DKLs23) 3-of-5 signing latency with the five nodes as separate processes.

``python -m exchange_threshold.bench_ecdsa --signs 50 [--json FILE]`` starts five node processes on 127.0.0.1 (each
with its own sealed store, identity and DKLs23 sidecar) in a throwaway directory, runs one key generation, then signs
``--signs`` random digests through a :class:`~exchange_threshold.signer.ThresholdSigner` (rotating through the ten
3-of-5 sets), verifying each signature, and prints the key generation time and signing latency (p50/p99/max).
Figures only: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exchange_framework.custody.keystore import KdfCost
from exchange_framework.custody.signing import verify_signature
from exchange_framework.interfaces import KeyScheme, SigningRequest
from exchange_threshold.channel import public_bytes
from exchange_threshold.dkls import sidecar_available
from exchange_threshold.node import load_identity
from exchange_threshold.signer import NodeAddress, ThresholdSigner
from exchange_threshold.store import SealedStore

__all__ = ["main", "run"]

_ENV = "EXCHANGE_THRESHOLD_BENCH_PASSPHRASE"
_KDF = KdfCost(memory_kib=256, iterations=1, lanes=4)  # throwaway stores: the KDF cost is not what is measured


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(signs: int, root: Path) -> dict[str, float | int]:
    """Start five nodes under ``root``, create a key, sign ``signs`` digests; return the figures (milliseconds)."""
    passphrase = secrets.token_hex(16)
    ids = [1, 2, 3, 4, 5]
    coordinator = SealedStore(root / "coordinator", passphrase.encode(), kdf=_KDF)
    coordinator_key = public_bytes(load_identity(coordinator, create=True))
    keys = {i: public_bytes(load_identity(SealedStore(root / f"node{i}", passphrase.encode(), kdf=_KDF), create=True))
            for i in ids}  # fmt: skip
    processes: dict[int, subprocess.Popen[str]] = {}
    try:
        for i in ids:
            config = {
                "identifier": i,
                "dir": f"node{i}",
                "port": 0,
                "coordinator_keys": [coordinator_key.hex()],
                "peers": {str(j): keys[j].hex() for j in ids if j != i},
                "passphrase_env": _ENV,
            }
            (root / f"node{i}.json").write_text(json.dumps(config))
            processes[i] = subprocess.Popen(
                [sys.executable, "-m", "exchange_threshold.node", "serve", "--config", str(root / f"node{i}.json")],
                env={**os.environ, _ENV: passphrase},
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        ports = {}
        for i, p in processes.items():
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line.startswith("listening"):
                raise RuntimeError(f"node {i} did not start")
            ports[i] = int(line.split()[2])
        nodes = [NodeAddress(identifier=i, host="127.0.0.1", port=ports[i], public_key=keys[i].hex()) for i in ids]
        signer = ThresholdSigner(coordinator, nodes, threshold=3, timeout=10.0)
        started = time.perf_counter()
        public_key = signer.create_key("bench-ecdsa", KeyScheme.SECP256K1)
        keygen_ms = (time.perf_counter() - started) * 1000
        subsets = list(itertools.combinations(ids, 3))
        latencies: list[float] = []
        for n in range(signs):
            subset = subsets[n % len(subsets)]
            trio = ThresholdSigner(coordinator, [nodes[i - 1] for i in subset], threshold=3, timeout=10.0)
            digest = secrets.token_bytes(32)
            request = SigningRequest(f"bench-{n}", "bench-ecdsa", "ethereum", digest, KeyScheme.SECP256K1)
            started = time.perf_counter()
            signature = trio.sign(request)
            latencies.append((time.perf_counter() - started) * 1000)
            trio.close()
            if not verify_signature(KeyScheme.SECP256K1, public_key, digest, signature):
                raise RuntimeError("a signature did not verify")
        signer.close()
    finally:
        for p in processes.values():
            p.terminate()
        for p in processes.values():
            p.wait(timeout=10)
            if p.stdout is not None:
                p.stdout.close()
    return {
        "ops": signs,
        "ops_per_s": round(1000 / statistics.mean(latencies), 2),
        "keygen_ms": round(keygen_ms, 1),
        "p50_ms": round(_percentile(latencies, 0.50), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "p50_us": round(_percentile(latencies, 0.50) * 1000),
        "p99_us": round(_percentile(latencies, 0.99) * 1000),
        "p999_us": round(_percentile(latencies, 0.999) * 1000),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--signs N [--json FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m exchange_threshold.bench_ecdsa", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--signs", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    problem = sidecar_available()
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-ecdsa-") as tmp:
        figures = run(args.signs, Path(tmp))
    print(
        f"threshold ECDSA (DKLs23) 3-of-5, nodes as processes: key generation {figures['keygen_ms']:.0f} ms; "
        f"signing ({figures['ops']} signatures) p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms, "
        f"max {figures['max_ms']:.0f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
