"""``exchange custody tiers``: holdings from the ledger's custody accounts against their bands, the forecast, the
plan, stored proposals and audited approvals; refusals change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework.audit import AuditLog
from exchange_framework.cli import main
from exchange_framework.config import load_config
from exchange_framework.custody.tiers import tier_config
from exchange_framework.custody.tiers_store import SweepStage, SweepStore
from exchange_framework.ledger.postings import EXTERNAL, Entry, Posting
from exchange_framework.ledger.store import SqlLedgerStore
from tests.custody.test_tiers import CUSTODY

BTC = 10**8

TIERS = """
[journal]
path = "data/commands.journal"
[ledger]
url = "sqlite:///data/ledger.db"
[audit]
path = "data/audit.log"

[[custody.wallets]]
chain = "bitcoin"
address = "bc1-hot"
tier = "hot"
key_id = "hot-1"

[[custody.wallets]]
chain = "bitcoin"
address = "bc1-cold"
tier = "cold"

[custody.tiers]
state_path = "data/tiers.db"
[custody.tiers.assets.BTC]
unit = "0.01"
"""


def ledger_holds(config_path: Path, hot: int, warm: int, cold: int) -> None:
    """Put custody holdings on the ledger: custody accounts carry the negative of what custody holds."""
    config = load_config(config_path)
    (config_path.parent / "data").mkdir(exist_ok=True)  # as the running exchange makes it

    async def write() -> None:
        store = SqlLedgerStore(config.ledger_url())
        try:
            await store.create_schema()
            await store.ensure_assets(config.engine_assets())
            postings = [Posting(EXTERNAL, "BTC", hot + warm + cold)]
            postings += [
                Posting(f"omnibus:{t}:bitcoin", "BTC", -a) for t, a in (("hot", hot), ("warm", warm), ("cold", cold))
            ]
            await store.apply([Entry(1, postings)], consumer="test")
        finally:
            await store.close()

    asyncio.run(write())


@pytest.fixture
def config_path(write_config: Callable[..., Path]) -> Path:
    path = write_config(CUSTODY + TIERS)
    ledger_holds(path, 10 * BTC, 10 * BTC, 80 * BTC)
    return path


def run(config_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config_path), "custody", "tiers", *args])
    return result.exit_code, result.output


def test_show_lists_holdings_against_bands_the_forecast_and_the_plan(config_path: Path) -> None:
    code, out = run(config_path)
    assert code == 0, out
    assert "BTC on bitcoin: 100 in custody" in out
    assert "hot   10     10.00 %  2-5 %    2-5" in out and "above" in out
    assert "forecast 24 h: 0 (no forecast (no withdrawal history" in out
    assert "plan: hot -> cold 6.5 (hot above its band, cold within its band)" in out
    assert "proposals: none open" in out  # showing stores nothing


def test_json_output(config_path: Path) -> None:
    code, out = run(config_path, "--json")
    assert code == 0, out
    data = json.loads(out)
    (status,) = data["statuses"]
    assert status["tiers"]["hot"] == {"holds": "10", "band_percent": "2-5 %", "band": ["2", "5"], "in_band": False}
    assert status["forecast"]["hourly"] == ["0"] * 24 and status["forecast"]["horizon_hours"] == 24
    assert status["plan"] == [
        {
            "source": "hot",
            "destination": "cold",
            "amount": "6.5",
            "ceremony": False,
            "reason": "hot above its band, cold within its band",
        }
    ]


def test_propose_then_approve_is_recorded_and_audited(config_path: Path) -> None:
    code, out = run(config_path, "--propose", "--actor", "ops@example.com")
    assert code == 0, out
    assert "#1  BTC/bitcoin  hot -> cold  6.5     proposed" in out
    code, out = run(config_path, "--approve", "1", "--actor", "alice")
    assert code == 0, out
    assert "recorded alice's approval of sweep #1 (hot -> cold 6.5 BTC on bitcoin)" in out
    config = load_config(config_path)
    store = SweepStore(config.resolve_path(tier_config(config).state_path))
    try:
        (approval,) = store.approvals(1)
        assert (approval.approver, approval.approve, approval.handled) == ("alice", True, False)
        assert store.sweep(1).stage is SweepStage.PROPOSED  # type: ignore[union-attr]  # the exchange submits it
    finally:
        store.close()
    with AuditLog.open(config.audit_path(), fsync=False) as log:
        entries = [(e.actor, e.action, e.target) for e in log.entries()]
    assert ("ops@example.com", "custody.tiers.plan", "custody.tiers") in entries
    assert ("custody.tiers", "custody.tiers.propose", "sweep:1") in entries
    assert ("alice", "custody.tiers.approve", "sweep:1") in entries
    # proposing again with the same holdings keeps the same proposal
    code, out = run(config_path, "--propose", "--actor", "ops@example.com")
    assert code == 0 and "#1 " in out and "#2 " not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--approve", "1"], "--actor is required"),
        (["--approve", "1", "--deny", "1", "--actor", "a"], "not both"),
        (["--approve", "9", "--actor", "alice"], "there is no sweep 9"),
        (["--deny", "1", "--actor", "alice"], "say why the sweep is denied"),
    ],
)
def test_refusals_change_nothing(config_path: Path, args: list[str], message: str) -> None:
    run(config_path, "--propose", "--actor", "ops")
    code, out = run(config_path, *args)
    assert code != 0 and message in out
    config = load_config(config_path)
    store = SweepStore(config.resolve_path(tier_config(config).state_path))
    try:
        assert store.approvals() == []
    finally:
        store.close()


def test_a_ceremony_proposal_points_to_the_ceremony(write_config: Callable[..., Path]) -> None:
    path = write_config(CUSTODY + TIERS)
    ledger_holds(path, 3 * BTC, 5 * BTC, 92 * BTC)
    code, out = run(path, "--propose", "--actor", "ops")
    assert code == 0 and "plan: CEREMONY cold -> warm" in out and "ceremony" in out
    code, out = run(path, "--approve", "1", "--actor", "alice")
    assert code != 0 and "exchange custody ceremony recover" in out


def test_config_check_names_a_bad_band(write_config: Callable[..., Path]) -> None:
    path = write_config(CUSTODY + '\n[custody.tiers.assets.BTC]\nhot = ["6", "5"]\n')
    result = CliRunner().invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert 'custody.tiers.assets.BTC.hot = ["6", "5"]: the low end (6 %) is above the high end' in result.output
