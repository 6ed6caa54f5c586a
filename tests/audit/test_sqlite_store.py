"""The SQLite audit store: same chain, same verifier, several writers, tampering detected."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from exchange_framework.audit import AuditFormatError, AuditLog, ProblemKind, SqliteAuditStore


def open_log(path: Path) -> AuditLog:
    return AuditLog(SqliteAuditStore(path, fsync=False))


def test_appends_chain_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with open_log(path) as log:
        first = log.append(actor="alice", action="admin.login", target="console")
        second = log.append(actor="bob", action="custody.deny", target="w1", details={"amount": 10**30})
        assert second.prev_hash == first.hash and log.head() == second
        assert [e.seq for e in log.entries(actor="bob")] == [2]
        with pytest.raises(AuditFormatError):
            log.append(actor="x", action="y", details={"f": 0.5})
        assert log.head() == second  # the refused append wrote nothing
    store = SqliteAuditStore(path)
    report = store.verify(expect_head=first.hash)
    assert report.ok and report.entries == 2 and report.head == second.hash
    store.close()


def test_tampered_deleted_and_cut_rows_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with open_log(path) as log:
        hashes = [log.append(actor="a", action="x", details={"i": i}).hash for i in range(5)]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE audit_log SET line = replace(line, '\"i\":2', '\"i\":9') WHERE seq = 3")
    db.close()
    store = SqliteAuditStore(path)
    report = store.verify()
    assert report.problem is not None and (report.problem.entry, report.problem.kind) == (3, ProblemKind.HASH_MISMATCH)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM audit_log WHERE seq = 3")
    db.close()
    report = store.verify()
    assert report.problem is not None and (report.problem.entry, report.problem.kind) == (3, ProblemKind.BAD_SEQUENCE)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM audit_log WHERE seq >= 3")
    db.close()
    assert store.verify().ok
    report = store.verify(expect_head=hashes[-1])
    assert report.problem is not None and report.problem.kind is ProblemKind.HEAD_MISMATCH
    store.close()


WRITER = """
import sys
from exchange_framework.audit import AuditLog, SqliteAuditStore
with AuditLog(SqliteAuditStore(sys.argv[1], fsync=False)) as log:
    for i in range(100):
        log.append(actor=sys.argv[2], action="x", details={"i": i})
"""


def test_threads_and_processes_append_to_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with open_log(path) as log:
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{n}"], stderr=subprocess.PIPE)
            for n in range(2)
        ]
        threads = [
            threading.Thread(target=lambda t=t: [log.append(actor=f"t{t}", action="x") for _ in range(100)])
            for t in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for writer in writers:
            _, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err.decode()
    store = SqliteAuditStore(path)
    report = store.verify()
    assert report.ok and report.entries == 400
    store.close()
