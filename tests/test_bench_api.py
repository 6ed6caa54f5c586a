"""``exchange bench api`` runs end to end at a tiny size and reports its figures (never judged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework.cli import main


@pytest.mark.slow
def test_bench_api_reports_rest_and_fanout_figures(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    result = CliRunner().invoke(
        main,
        ["bench", "api", "--orders", "300", "--rest-seconds", "1", "--concurrency", "8", "--subscribers", "20",
         "--rate", "20", "--seconds", "1", "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["benchmark"] == "api_rest_orders" and data["ops"] > 0 and data["errors"] == {}
    assert data["socket_errors"] == 0 and data["load_generator"] == "wrk" and data["distinct_requests"] == 300
    assert data["ws_fanout_in_process"]["gaps"] == 0
    sockets = data["ws_fanout_sockets"]
    assert sockets["subscribers"] == 20 and sockets["ops"] > 0 and sockets["gaps"] == 0
