"""Latency percentiles and the JSON result shape every benchmark writes."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any


def percentile_us(sorted_ns: list[int], fraction: float) -> float:
    """The ``fraction`` percentile (0..1) of sorted nanosecond samples, in microseconds."""
    if not sorted_ns:
        return 0.0
    index = min(len(sorted_ns) - 1, int(fraction * len(sorted_ns)))
    return sorted_ns[index] / 1_000


def summary(name: str, ops: int, seconds: float, latencies_ns: list[int], **extra: Any) -> dict[str, Any]:
    """The standard result: ops, ops_per_s, p50/p99/p99.9 in µs, plus the benchmark's own figures."""
    latencies_ns.sort()
    return {
        "benchmark": name,
        "ops": ops,
        "seconds": round(seconds, 4),
        "ops_per_s": round(ops / seconds) if seconds else 0,
        "p50_us": percentile_us(latencies_ns, 0.50),
        "p99_us": percentile_us(latencies_ns, 0.99),
        "p999_us": percentile_us(latencies_ns, 0.999),
        "python": platform.python_version(),
        "machine": platform.machine(),
        **extra,
    }


def write_json(result: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
