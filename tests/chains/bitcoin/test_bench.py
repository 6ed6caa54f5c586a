"""The benchmark runs end to end on a small chain and writes its figures (timings are reported, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from exchange_bitcoin.bench import main


@pytest.mark.slow
def test_bench_runs_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    main(["--blocks", "3", "--outputs-per-block", "4", "--withdrawals", "3", "--watched", "40", "--json", str(out)])
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["deposit_scan"]["blocks"] >= 3 and figures["deposit_scan"]["transfers"] == 12
    assert figures["withdrawal"]["count"] == 3
    assert set(figures["withdrawal"]) == {"count", "build", "sign", "assemble", "broadcast", "total"}
    assert "blocks/s" in capsys.readouterr().out
