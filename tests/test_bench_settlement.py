"""``exchange bench settlement``: runs on SQLite and PostgreSQL and writes the standard JSON (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework.cli import main


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_bench_settlement_writes_json(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "result" / "settlement.json"
    result = CliRunner().invoke(
        main, ["bench", "settlement", "--trades", "300", "--db", db, "--json", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "trades/s" in result.output
    data = json.loads(out.read_text())
    for key in ("ops", "ops_per_s", "p50_us", "p99_us", "p999_us", "entries", "postings", "postings_per_s"):
        assert key in data, key
    assert data["benchmark"] == f"settlement-{db}"
    assert data["ops"] == data["trades"] >= 300
    assert data["entries"] > 0 and data["postings"] > data["entries"]
    assert data["p50_us"] <= data["p99_us"] <= data["p999_us"]
    assert ("synchronous=FULL" if db == "sqlite" else "synchronous_commit=on") in data["durability"]


def test_bench_settlement_refuses_nonsense() -> None:
    result = CliRunner().invoke(main, ["bench", "settlement", "--trades", "0"])
    assert result.exit_code != 0
    assert "--trades" in result.output
