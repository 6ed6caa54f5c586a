"""Benchmark the adapter on a throwaway litecoind regtest node: deposit scanning and withdrawal latency.

    python -m exchange_bitcoin.bench [--blocks 200] [--outputs-per-block 20] [--withdrawals 40] [--json out.json]

Figures, measured and printed, never asserted:

- deposit detection: ``scan`` over blocks that each carry a payment to ``outputs-per-block`` watched deposit
  addresses, with ``watched`` (10,000) addresses watched: blocks per second and transfers per second in the steady
  state (a second pass; the first also parses every watched address, and its time is reported too);
- withdrawals: build (coin selection, fee estimate, PSBT, digests), sign (coincurve, standing in for a custody
  signer), assemble and broadcast, each timed per withdrawal: median and 95th percentile in milliseconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import coincurve

from exchange_bitcoin.adapter import UtxoChainAdapter
from exchange_bitcoin.address import p2wpkh_address
from exchange_bitcoin.network import PRESETS
from exchange_bitcoin.regtest import RegtestNode
from exchange_bitcoin.rpc import RpcClient

__all__ = ["main", "run"]

# A published, well-known account key (BIP84's "abandon ... about" m/84'/0'/0'): benchmark addresses only.
_BENCH_XPUB = (
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs"
)


_MWEB_HEIGHT = 432  # litecoind regtest cannot mine past it without MWEB peg-ins (see exchange_bitcoin.regtest)


def _coins(atoms: int) -> str:
    return str(Decimal(atoms) / Decimal(10**8))


def _ms(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered) * 1000, 3), "p95_ms": round(p95 * 1000, 3)}


def run(
    *,
    blocks: int = 200,
    outputs_per_block: int = 20,
    withdrawals: int = 40,
    watched: int = 10_000,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Start a regtest node, run both measurements and return the figures (the node is stopped afterwards)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        node = RegtestNode(Path(tmp) / "node").start()
        try:
            return _measure(node, blocks, outputs_per_block, withdrawals, watched)
        finally:
            node.stop()


def _measure(
    node: RegtestNode, blocks: int, outputs_per_block: int, withdrawals: int, n_watched: int
) -> dict[str, Any]:
    setup = 101 + withdrawals // 10 + blocks // 25 + 2
    if setup + blocks + 2 >= _MWEB_HEIGHT:
        raise ValueError(f"--blocks {blocks} would take the regtest chain past height {_MWEB_HEIGHT} (MWEB activation)")
    node.mine(setup)
    rpc = RpcClient(node.url, user=node.user, password=node.password, label="bench node")
    adapter = UtxoChainAdapter(rpc, PRESETS["litecoin-regtest"], name="litecoin", deposit_xpub=_BENCH_XPUB)
    watched = [adapter.deposit_address(account).address for account in range(1, n_watched + 1)]

    # -- deposits: fill blocks with payments to watched addresses, then time the scan ----------------------------
    start = adapter.tip_height() + 1
    for b in range(blocks):
        payees = watched[(b * outputs_per_block) % len(watched) :][:outputs_per_block]
        node.wallet("sendmany", "", {address: _coins(10_000 + b) for address in payees})
        node.mine(1)
    addresses = set(watched)
    cold = _scan_all(adapter, start, addresses)  # first pass: parses every watched address once (then cached)
    warm = _scan_all(adapter, start, addresses)  # steady state: what each poll of the deposit tracker pays
    deposits = {
        "blocks": warm[0],
        "transfers": warm[1],
        "watched_addresses": len(addresses),
        "seconds": round(warm[2], 3),
        "blocks_per_second": round(warm[0] / warm[2], 1),
        "transfers_per_second": round(warm[1] / warm[2], 1),
        "first_pass_seconds": round(cold[2], 3),
    }

    # -- withdrawals: build -> sign -> assemble -> broadcast, each stage timed ----------------------------------
    key = coincurve.PrivateKey(hashlib.sha256(b"bench hot key").digest())
    public_key = key.public_key.format()
    hot = p2wpkh_address(public_key, adapter.params)
    for _ in range(withdrawals):
        node.wallet("sendtoaddress", hot, "1.0")
    node.mine(1)
    destination = str(node.wallet("getnewaddress", "", "bech32"))
    stages: dict[str, list[float]] = {"build": [], "sign": [], "assemble": [], "broadcast": [], "total": []}
    for n in range(withdrawals):
        t0 = time.perf_counter()
        unsigned = adapter.build_withdrawal(
            key_id="bench", public_key=public_key, destination=destination, asset="LTC", amount=1_000_000 + n
        )
        t1 = time.perf_counter()
        signatures = [key.sign_recoverable(digest, hasher=None) for digest in unsigned.digests]
        t2 = time.perf_counter()
        signed = adapter.assemble(unsigned, signatures)
        t3 = time.perf_counter()
        adapter.broadcast(signed)
        t4 = time.perf_counter()
        for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            stages[stage].append(seconds)
    node.mine(1)
    adapter.close()
    rpc.close()
    return {
        "node": "litecoind 0.21 regtest",
        "deposit_scan": deposits,
        "withdrawal": {"count": withdrawals, **{stage: _ms(samples) for stage, samples in stages.items()}},
    }


def _scan_all(adapter: UtxoChainAdapter, start: int, addresses: set[str]) -> tuple[int, int, float]:
    began = time.perf_counter()
    height, transfers, scanned = start, 0, 0
    while batch := adapter.scan(height, addresses, max_blocks=100):
        scanned += len(batch)
        transfers += sum(len(b.transfers) for b in batch)
        height = batch[-1].header.height + 1
    return scanned, transfers, time.perf_counter() - began


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark from the command line, print the figures and optionally write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--outputs-per-block", type=int, default=20)
    parser.add_argument("--withdrawals", type=int, default=40)
    parser.add_argument("--watched", type=int, default=10_000, help="deposit addresses the scan watches")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    figures = run(
        blocks=args.blocks, outputs_per_block=args.outputs_per_block, withdrawals=args.withdrawals, watched=args.watched
    )
    d, w = figures["deposit_scan"], figures["withdrawal"]
    print(
        f"deposit scan: {d['blocks']} blocks, {d['transfers']} transfers to {d['watched_addresses']} watched "
        f"addresses in {d['seconds']} s: {d['blocks_per_second']} blocks/s, {d['transfers_per_second']} transfers/s "
        f"(first pass, parsing the addresses: {d['first_pass_seconds']} s)"
    )
    for stage in ("build", "sign", "assemble", "broadcast", "total"):
        print(f"withdrawal {stage:>9}: median {w[stage]['median_ms']} ms, p95 {w[stage]['p95_ms']} ms")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
