"""Benchmark the EVM adapter on a local anvil: deposit scanning throughput and withdrawal latency (measured only).

``python -m exchange_evm.bench [--blocks N] [--transfers-per-block N] [--empty-blocks N] [--withdrawals N]
[--out FILE]`` starts its own anvil on 127.0.0.1, fills blocks with native and ERC-20 payments to watched deposit
addresses, times ``scan`` over them (blocks/s, transfers/s; again with internal-payment tracing on) and over empty
blocks, then times withdrawals build -> sign -> assemble -> broadcast one after another (the signer is a local
coincurve key standing in for the custody signer). Figures are printed and written as JSON.
``adapter_cpu_seconds`` is this process's CPU time during the scan; the rest of the wall time is spent in the node
(anvil serialises full-transaction blocks at about 0.4 ms per transaction on the project's machines).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import coincurve
from bip_utils import Bip32Slip10Secp256k1

from exchange_evm.adapter import EvmAdapter
from exchange_evm.address import address_of_public_key, keccak256, to_checksum_address
from exchange_evm.anvil import AnvilNode
from exchange_evm.codec import EvmTx, encode_erc20_transfer, encode_signed, encode_unsigned
from exchange_evm.devtoken import RUNTIME, balance_slot
from exchange_evm.nonces import NonceBook
from exchange_evm.settings import NetworkSettings, TokenSettings

__all__ = ["main", "run"]

_CHAIN_ID = 31337
# The BIP44 account key m/44'/60'/0' of BIP32 test vector 1's seed (a published seed: benchmark addresses only).
_XPUB = str(Bip32Slip10Secp256k1.FromSeed(bytes(range(16))).DerivePath("m/44'/60'/0'").PublicKey().ToExtended())


def _sign(key: bytes, tx: EvmTx) -> bytes:
    signature = coincurve.PrivateKey(key).sign_recoverable(keccak256(encode_unsigned(tx)), hasher=None)
    return encode_signed(
        tx, signature[64], int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    )


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(
    *, blocks: int, transfers_per_block: int, empty_blocks: int, withdrawals: int, work_dir: Path
) -> dict[str, Any]:
    """Run the benchmark on a fresh anvil and return the figures."""
    token = to_checksum_address(hashlib.sha256(b"bench token").digest()[:20])
    payer_key = hashlib.sha256(b"bench payer").digest()
    hot_key = hashlib.sha256(b"bench hot wallet").digest()
    payer = address_of_public_key(coincurve.PrivateKey(payer_key).public_key.format())
    hot_public = coincurve.PrivateKey(hot_key).public_key.format()
    hot = address_of_public_key(hot_public)
    with AnvilNode(chain_id=_CHAIN_ID) as node:
        rpc = node.rpc
        rpc.call("anvil_setBlockGasLimit", hex(10**9))
        rpc.call("anvil_setCode", token, "0x" + RUNTIME.hex())
        for holder in (payer, hot):
            rpc.call("anvil_setBalance", holder, hex(10**24))
            rpc.call("anvil_setStorageAt", token, balance_slot(holder), "0x" + (10**30).to_bytes(32, "big").hex())
        rpc.call("evm_mine")
        settings = NetworkSettings(
            name="bench", chain_id=_CHAIN_ID, rpc_url=node.url, confirmations=1, native_symbol="ETH", xpub=_XPUB,
            tokens=(TokenSettings(symbol="DUSD", contract=token, decimals=6),),
        )  # fmt: skip
        adapter = EvmAdapter(settings, nonce_book=NonceBook(work_dir / "bench-nonces.sqlite"))
        watched = [adapter.deposit_address(account).address for account in range(1, 1001)]

        # Fill blocks: half native payments, half token transfers, to watched addresses.
        start = int(rpc.call("eth_blockNumber"), 16) + 1
        nonce = 0
        fill_started = time.perf_counter()
        for _ in range(blocks):
            raws = []
            for i in range(transfers_per_block):
                to = bytes.fromhex(watched[nonce % len(watched)][2:])
                if i % 2 == 0:
                    tx = EvmTx(2, _CHAIN_ID, nonce, 10**10, 10**9, 21_000, to, 10**15 + nonce)
                else:
                    data = encode_erc20_transfer(to, 10**6 + nonce)
                    tx = EvmTx(2, _CHAIN_ID, nonce, 10**10, 10**9, 60_000, bytes.fromhex(token[2:]), 0, data)
                raws.append(("eth_sendRawTransaction", ["0x" + _sign(payer_key, tx).hex()]))
                nonce += 1
            rpc.batch(raws)
            rpc.call("evm_mine")
        fill_seconds = time.perf_counter() - fill_started
        end = int(rpc.call("eth_blockNumber"), 16)

        watched_set = set(watched)
        scan_started, scan_cpu_started = time.perf_counter(), time.process_time()
        found = 0
        height = start
        while height <= end:
            scanned = adapter.scan(height, watched_set, max_blocks=min(100, end - height + 1))
            found += sum(len(b.transfers) for b in scanned)
            height += len(scanned)
        scan_seconds = time.perf_counter() - scan_started
        scan_cpu_seconds = time.process_time() - scan_cpu_started

        tracing = EvmAdapter(
            settings.model_copy(update={"trace_internal_transfers": True}), nonce_book=NonceBook(":memory:")
        )
        traced_started = time.perf_counter()
        height = start
        while height <= end:
            height += len(tracing.scan(height, watched_set, max_blocks=min(100, end - height + 1)))
        traced_seconds = time.perf_counter() - traced_started
        tracing.close()
        expected = blocks * transfers_per_block
        if found != expected:
            raise RuntimeError(f"scan found {found} transfers, expected {expected}")

        for chunk in range(0, empty_blocks, 200):
            rpc.call("anvil_mine", hex(min(200, empty_blocks - chunk)))
        empty_start, empty_end = end + 1, end + empty_blocks
        empty_started = time.perf_counter()
        height = empty_start
        while height <= empty_end:
            height += len(adapter.scan(height, watched_set, max_blocks=min(100, empty_end - height + 1)))
        empty_seconds = time.perf_counter() - empty_started

        stages: dict[str, list[float]] = {"build": [], "sign": [], "assemble": [], "broadcast": [], "total": []}
        for i in range(withdrawals):
            asset = "ETH" if i % 2 == 0 else "DUSD"
            t0 = time.perf_counter()
            unsigned = adapter.build_withdrawal(
                key_id="bench-hot", public_key=hot_public, destination=watched[i], asset=asset, amount=1000 + i
            )
            t1 = time.perf_counter()
            signature = coincurve.PrivateKey(hot_key).sign_recoverable(unsigned.digests[0], hasher=None)
            t2 = time.perf_counter()
            signed = adapter.assemble(unsigned, [signature])
            t3 = time.perf_counter()
            adapter.broadcast(signed)
            t4 = time.perf_counter()
            for name, seconds in (("build", t1 - t0), ("sign", t2 - t1), ("assemble", t3 - t2),
                                  ("broadcast", t4 - t3), ("total", t4 - t0)):  # fmt: skip
                stages[name].append(seconds * 1000)
        adapter.close()
        adapter.nonce_book.close()

    latency: dict[str, Any] = {
        name: {
            "mean": round(statistics.fmean(values), 3),
            "p50": round(_percentile(values, 0.5), 3),
            "p95": round(_percentile(values, 0.95), 3),
        }
        for name, values in stages.items()
    }
    latency["count"] = withdrawals
    return {
        "benchmark": "evm-adapter-anvil",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine skews the figures
        },
        "deposit_scan": {
            "blocks": blocks,
            "transfers": expected,
            "watched_addresses": len(watched),
            "seconds": round(scan_seconds, 4),
            "blocks_per_s": round(blocks / scan_seconds, 1),
            "transfers_per_s": round(expected / scan_seconds, 1),
            "adapter_cpu_seconds": round(scan_cpu_seconds, 4),  # the rest of the wall time is the node's
            "fill_seconds": round(fill_seconds, 2),
        },
        "deposit_scan_with_call_traces": {
            "blocks": blocks,
            "seconds": round(traced_seconds, 4),
            "blocks_per_s": round(blocks / traced_seconds, 1),
            "transfers_per_s": round(expected / traced_seconds, 1),
        },
        "empty_block_scan": {
            "blocks": empty_blocks,
            "seconds": round(empty_seconds, 4),
            "blocks_per_s": round(empty_blocks / empty_seconds, 1),
        },
        "withdrawal_latency_ms": latency,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run, print the figures and write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--transfers-per-block", type=int, default=20)
    parser.add_argument("--empty-blocks", type=int, default=2000)
    parser.add_argument("--withdrawals", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/evm-anvil.json"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work_dir:
        figures = run(
            blocks=args.blocks,
            transfers_per_block=args.transfers_per_block,
            empty_blocks=args.empty_blocks,
            withdrawals=args.withdrawals,
            work_dir=Path(work_dir),
        )
    text = json.dumps(figures, indent=2)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return figures


if __name__ == "__main__":
    main()
