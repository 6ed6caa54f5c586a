"""The EVM benchmark runs end to end at a tiny size (figures are measured, never asserted)."""

from __future__ import annotations

from pathlib import Path

from exchange_evm.bench import main


def test_bench_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "evm.json"
    figures = main(["--blocks", "3", "--transfers-per-block", "4", "--empty-blocks", "5", "--withdrawals", "2",
                    "--out", str(out)])  # fmt: skip
    assert out.exists()
    assert figures["deposit_scan"]["transfers"] == 12  # the bench itself checks the scan found every transfer
    assert figures["empty_block_scan"]["blocks"] == 5
    assert figures["withdrawal_latency_ms"]["count"] == 2
    assert set(figures["withdrawal_latency_ms"]) >= {"build", "sign", "assemble", "broadcast", "total"}
