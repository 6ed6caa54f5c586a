"""``exchange ledger``: migrate, settle, check, balances and statements, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from exchange_framework.cli import main
from exchange_framework.config import DEMO_CONFIG
from exchange_framework.ledger.store import SqlLedgerStore


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str) -> tuple[Path, str]:
    """A directory with the demo exchange's config pointed at ``ledger_url``, and a journal from `exchange demo`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXCHANGE_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    backend = "sqlite" if ledger_url.startswith("sqlite") else "postgresql"
    body = DEMO_CONFIG.read_text()
    body = body.replace('ledger = "sqlite"', f'ledger = "{backend}"')
    body = body.replace('url = "sqlite:///var/demo/ledger.db"', f'url = "{ledger_url}"')
    (tmp_path / "exchange.toml").write_text(body)
    assert ok(invoke("simulate", "--orders", "600")).exit_code == 0
    return tmp_path, ledger_url


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_settle_then_check_passes_and_settling_again_changes_nothing(workdir: tuple[Path, str]) -> None:
    ok(invoke("ledger", "migrate"))
    first = ok(invoke("ledger", "settle", "--batch", "97"))
    assert "settled up to sequence 640 of 640" in first.output
    assert "settled up to sequence 640 of 640" in ok(invoke("ledger", "settle")).output
    report = ok(invoke("ledger", "check")).output
    assert "zero-sum per asset: ok" in report
    assert "engine balances and holds at sequence 640: ok" in report
    assert "ledger check passed" in report


def test_check_reports_a_tampered_balance_and_exits_1(workdir: tuple[Path, str]) -> None:
    _, url = workdir
    ok(invoke("ledger", "settle"))

    async def tamper() -> None:
        store = SqlLedgerStore(url)
        async with store.engine.begin() as conn:  # behind the store's back, as an attacker or a bug would
            await conn.execute(
                text(
                    "UPDATE ledger_balances SET balance = balance + 1 WHERE account_id = "
                    "(SELECT id FROM ledger_accounts WHERE code = 'fees') AND asset = 'USDT'"
                )
                if url.startswith("postgresql")
                else text(
                    "UPDATE ledger_balances SET balance = CAST(CAST(balance AS INTEGER) + 1 AS TEXT) WHERE account_id ="
                    " (SELECT id FROM ledger_accounts WHERE code = 'fees') AND asset = 'USDT'"
                )
            )
        await store.close()

    asyncio.run(tamper())
    result = invoke("ledger", "check")
    assert result.exit_code == 1
    assert "USDT: accounts sum to 1, not 0" in result.output
    assert "BREAK: fees USDT: ledger" in result.output


def test_balances_and_statement_agree(workdir: tuple[Path, str]) -> None:
    ok(invoke("ledger", "settle"))
    lines = ok(invoke("ledger", "balances", "--account", "customer:3:available", "--asset", "USDT")).output.splitlines()
    assert lines[0].split() == ["ACCOUNT", "ASSET", "BALANCE"]
    balance = int(lines[1].split()[2])
    ok(invoke("ledger", "statement", "customer:3:available", "--asset", "USDT", "--csv", "s.csv", "--page-size", "7"))
    rows = list(csv.DictReader(io.StringIO(Path("s.csv").read_text())))
    assert rows, "the statement is empty"
    assert sum(int(r["amount"]) for r in rows) == int(rows[-1]["balance"]) == balance
    assert [int(r["posting_id"]) for r in rows] == sorted(int(r["posting_id"]) for r in rows)


def test_a_backend_that_does_not_match_the_url_is_a_clear_error(workdir: tuple[Path, str]) -> None:
    root, url = workdir
    config = (root / "exchange.toml").read_text()
    wrong = "postgresql" if url.startswith("sqlite") else "sqlite"
    right = "sqlite" if wrong == "postgresql" else "postgresql"
    (root / "exchange.toml").write_text(config.replace(f'ledger = "{right}"', f'ledger = "{wrong}"'))
    result = invoke("ledger", "balances")
    assert result.exit_code == 1
    assert f"[backends] ledger = {wrong!r} needs a" in result.output
