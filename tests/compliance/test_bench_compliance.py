"""``exchange bench screening`` and ``exchange bench monitoring`` run on a small N and write the standard JSON
(timings are figures, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from exchange_framework.bench.compliance_bench import write_sdn_list
from exchange_framework.cli import main
from exchange_framework.compliance.ofac import parse_csv


def test_the_synthetic_sdn_list_is_in_ofacs_layout(tmp_path: Path) -> None:
    addresses = write_sdn_list(tmp_path, 500, seed=3)
    parsed = parse_csv((tmp_path / "sdn.csv").read_text(), (tmp_path / "alt.csv").read_text())
    assert len(parsed.entries) == 500 and parsed.address_count == len(addresses) > 0
    assert sum(len(e.aliases) for e in parsed.entries) > 400
    assert parsed.screen_address(addresses[0])[0].uid > 0


def test_bench_screening_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "screening.json"
    result = CliRunner().invoke(
        main, ["bench", "screening", "--withdrawals", "300", "--entries", "1500", "--json", str(out)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "screening step p50" in result.output
    data = json.loads(out.read_text())
    assert data["ops"] == 300 and data["sdn_entries"] == 1500 and data["sdn_addresses"] > 0
    assert data["listed_hold_with_case"]["n"] > 0  # listed destinations were held (frozen, with a case)
    assert data["p50_us"] <= data["p99_us"] <= data["p999_us"]
    assert data["via_thread"]["p50_us"] > 0 and data["name_screening"]["n"] == 300


def test_bench_monitoring_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "monitoring.json"
    result = CliRunner().invoke(
        main, ["bench", "monitoring", "--events", "6000", "--customers", "300", "--json", str(out)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "events/s" in result.output and "with scoring" in result.output
    data = json.loads(out.read_text())
    assert data["ops"] == 6000 and data["alerts"] > 0  # more than one 60-day chunk (300 customers ~ 3,300 events)
    assert data["with_scoring"]["alerts_scored"] == data["alerts"]  # the same events raise the same alerts


def test_bench_refuses_nonsense() -> None:
    assert CliRunner().invoke(main, ["bench", "monitoring", "--events", "0"]).exit_code != 0
    assert CliRunner().invoke(main, ["bench", "screening", "--entries", "0"]).exit_code != 0
