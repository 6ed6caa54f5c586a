"""``exchange audit verify | head | show | recover``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework.audit import AuditLog
from exchange_framework.cli import main


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    with AuditLog.open(path, fsync=False, clock=iter(range(10**18, 10**19, 10**9)).__next__) as log:
        log.append(actor="alice", action="custody.whitelist.propose", target="eth:0xabc", details={"k": 3})
        log.append(actor="bob", action="custody.whitelist.approve", target="eth:0xabc")
        log.append(actor="alice", action="admin.login", target="console", details={"ip": "127.0.0.1"})
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_verify_ok(log_path: Path) -> None:
    code, out, _ = run("audit", "verify", str(log_path))
    assert code == 0 and out.startswith("ok: 3 entries, head ")


def test_verify_reports_the_first_broken_link_and_exits_1(log_path: Path) -> None:
    lines = log_path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"bob"', b'"eve"')
    log_path.write_bytes(b"".join(lines))
    code, _, err = run("audit", "verify", str(log_path))
    assert code == 1
    assert "BROKEN at entry 2" in err and "hash mismatch" in err and "first 1 entries are valid" in err
    code, out, _ = run("audit", "verify", "--json", str(log_path))
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["problem"]["entry"] == 2 and report["problem"]["kind"] == "hash_mismatch"


def test_head_and_expect_head(log_path: Path) -> None:
    code, out, _ = run("audit", "head", str(log_path))
    assert code == 0
    head = out.strip()
    assert len(head) == 64
    assert run("audit", "verify", "--expect-head", head, str(log_path))[0] == 0
    log_path.write_bytes(b"".join(log_path.read_bytes().splitlines(keepends=True)[:2]))  # drop the last entry
    code, _, err = run("audit", "verify", "--expect-head", head, str(log_path))
    assert code == 1 and "head mismatch" in err
    code, _, err = run("audit", "verify", "--expect-head", "xyz", str(log_path))
    assert code == 2 and "64 hex digits" in err


def test_show_filters_and_limits(log_path: Path) -> None:
    code, out, _ = run("audit", "show", str(log_path), "--actor", "alice")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["SEQ", "TIME", "(UTC)", "ACTOR", "ACTION", "TARGET", "DETAILS"]
    assert [row.split()[0] for row in rows[1:]] == ["1", "3"]
    assert "2001-09-09 01:46:40.000000Z" in rows[1]
    code, out, _ = run("audit", "show", str(log_path), "--action", "custody.", "--limit", "1", "--json")
    assert code == 0
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [2]
    code, out, _ = run("audit", "show", str(log_path), "--actor", "nobody")
    assert code == 0 and out.strip() == "no matching entries"


def test_default_path_comes_from_the_config(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, log_path: Path
) -> None:
    config = write_config(f'[audit]\npath = "{log_path}"\n')
    monkeypatch.setenv("EXCHANGE_CONFIG", str(config))
    code, out, _ = run("audit", "verify")
    assert code == 0 and "3 entries" in out
    from exchange_framework.config import load_config

    with AuditLog.from_config(load_config(config)) as log:
        assert log.append(actor="carol", action="x").seq == 4


def test_recover_moves_a_torn_tail_aside(log_path: Path) -> None:
    with log_path.open("ab") as f:
        f.write(b'{"v":1,"seq":4')
    code, _, err = run("audit", "verify", str(log_path))
    assert code == 1 and "entry 4" in err and "incomplete last line" in err
    code, out, _ = run("audit", "recover", str(log_path), "--actor", "ops")
    assert code == 0 and "moved incomplete last line" in out
    code, out, _ = run("audit", "show", str(log_path), "--action", "audit.recovered_torn_tail", "--json")
    assert json.loads(out)["actor"] == "ops"
    assert run("audit", "verify", str(log_path))[0] == 0
    code, out, _ = run("audit", "recover", str(log_path), "--actor", "ops")
    assert code == 0 and "nothing to recover" in out


def test_verify_shows_progress_on_long_files(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import exchange_framework.cli.audit as audit_cli

    monkeypatch.setattr(audit_cli, "PROGRESS_FROM_BYTES", 1)
    code, out, err = run("audit", "verify", str(log_path))
    assert code == 0 and out.startswith("ok: 3 entries")
    assert f"verifying {log_path}" in err
