"""The audit log: appending, chaining, canonical encoding, the file store, torn tails and tampering detection."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from exchange_framework.audit import (
    GENESIS_HASH,
    AuditError,
    AuditFormatError,
    AuditLog,
    CorruptAuditLogError,
    ProblemKind,
    TornTailError,
    canonical_json,
    verify,
)
from exchange_framework.audit.entry import decode_line


class FakeClock:
    """A clock the test advances by hand."""

    def __init__(self, start: int = 1_700_000_000_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1_000
        return self.now


def write_log(path: Path, n: int) -> list[str]:
    hashes = []
    with AuditLog.open(path, clock=FakeClock(), fsync=False) as log:
        for i in range(n):
            entry = log.append(
                actor=f"op{i % 3}", action="custody.whitelist.approve", target=f"w{i}", details={"i": i, "n": [i, "x"]}
            )
            hashes.append(entry.hash)
    return hashes


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_appends_chain_each_entry_to_the_one_before(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    clock = FakeClock()
    with AuditLog.open(path, clock=clock, fsync=False) as log:
        first = log.append(actor="alice", action="admin.login", target="console")
        second = log.append(actor="bob", action="custody.deny", target="w-1", details={"reason": "odd"}, ts_ns=42)
        assert first.seq == 1 and first.prev_hash == GENESIS_HASH
        assert second.seq == 2 and second.prev_hash == first.hash and second.ts_ns == 42
        assert first.ts_ns == 1_700_000_000_000_001_000  # from the injected clock
        assert log.head() == second
        assert [e.seq for e in log.entries(actor="bob")] == [2]
        assert [e.seq for e in log.entries(action="custody.")] == [2]
        assert [e.seq for e in log.entries(action="custody")] == []
    report = verify(path)
    assert report.ok and report.entries == 2 and report.head == second.hash


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    hashes = write_log(path, 3)
    with AuditLog.open(path, fsync=False) as log:
        entry = log.append(actor="carol", action="config.change")
    assert entry.seq == 4 and entry.prev_hash == hashes[-1]
    assert verify(path).ok


def test_the_line_is_the_canonical_encoding(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog.open(path, fsync=False) as log:
        entry = log.append(actor="ä", action="x", details={"b": 1, "a": {"z": None, "y": True}, "big": 10**30})
    line = lines(path)[0]
    assert line == entry.line()
    assert line.index(b'"a"') < line.index(b'"b"') < line.index(b'"big"')
    assert b" " not in line and "ä".encode() in line
    assert decode_line(line.rstrip(b"\n")) == entry
    assert json.loads(line)["details"]["big"] == 10**30


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"amount": 1.5}, "floats are not allowed"),
        ({"nested": [1, {"x": float("nan")}]}, "floats are not allowed"),
        ({1: "x"}, "keys must be strings"),
        ({"b": b"bytes"}, "bytes is not a JSON value"),
        ({"s": "\ud800"}, "valid Unicode"),
    ],
)
def test_bad_details_are_refused_and_nothing_is_written(tmp_path: Path, details: dict, message: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "audit.log"
    with AuditLog.open(path, fsync=False) as log:
        with pytest.raises(AuditFormatError, match=message):
            log.append(actor="a", action="b", details=details)
        assert log.head() is None
    assert path.read_bytes() == b""


@pytest.mark.parametrize(("field", "value"), [("actor", ""), ("action", ""), ("ts_ns", -1), ("ts_ns", 1.0)])
def test_bad_fields_are_refused(tmp_path: Path, field: str, value: object) -> None:
    with AuditLog.open(tmp_path / "audit.log", fsync=False) as log:
        kwargs: dict = {"actor": "a", "action": "b", field: value}  # type: ignore[type-arg]
        with pytest.raises(AuditFormatError, match=field):
            log.append(**kwargs)


def test_canonical_json_refuses_floats() -> None:
    assert canonical_json({"b": [1, "é"], "a": None}) == '{"a":null,"b":[1,"é"]}'.encode()
    with pytest.raises(AuditFormatError):
        canonical_json({"x": 0.1})


def test_details_are_read_only(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "audit.log", fsync=False) as log:
        source = {"list": [1, 2]}
        entry = log.append(actor="a", action="b", details=source)
        source["list"].append(3)
        assert entry.details["list"] == (1, 2)
        with pytest.raises(TypeError):
            entry.details["new"] = 1  # type: ignore[index]


WRITER = """
import sys
from exchange_framework.audit import AuditLog
with AuditLog.open(sys.argv[1], fsync=False) as log:
    for i in range(int(sys.argv[3])):
        log.append(actor=sys.argv[2], action="x", details={"i": i})
"""


def test_several_processes_append_to_one_chain(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "audit.log"
    with AuditLog.open(path, fsync=False) as log:
        log.append(actor="parent", action="start")
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{n}", "150"], stderr=subprocess.PIPE)
            for n in range(3)
        ]
        for i in range(150):
            log.append(actor="parent", action="x", details={"i": i})
        for writer in writers:
            _, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err.decode()
        last = log.append(actor="parent", action="end")  # sees the other processes' entries
    report = verify(path)
    assert report.ok, report.problem
    assert report.entries == 2 + 4 * 150 == last.seq
    with AuditLog.open(path, fsync=False) as log:
        actors = [e.actor for e in log.entries()]
    assert {a: actors.count(a) for a in set(actors)} == {"parent": 152, "p0": 150, "p1": 150, "p2": 150}


def test_threads_append_safely(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog.open(path, fsync=False) as log:

        def work(t: int) -> None:
            for i in range(50):
                log.append(actor=f"t{t}", action="x", details={"i": i})

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    report = verify(path)
    assert report.ok and report.entries == 400


# -- damage and tampering -----------------------------------------------------------------------------------------


def test_tampered_details_are_a_hash_mismatch_at_that_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 5)
    data = lines(path)
    data[2] = data[2].replace(b'"i":2', b'"i":7')
    path.write_bytes(b"".join(data))
    report = verify(path)
    assert report.problem is not None
    assert (report.problem.entry, report.problem.kind) == (3, ProblemKind.HASH_MISMATCH)
    assert report.entries == 2


def test_tampered_and_rehashed_entry_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 5)
    data = lines(path)
    fields = json.loads(data[1])
    fields["details"]["i"] = 99
    from exchange_framework.audit.entry import entry_hash

    fields["hash"] = entry_hash(fields)
    data[1] = canonical_json(fields) + b"\n"
    path.write_bytes(b"".join(data))
    report = verify(path)
    assert report.problem is not None
    assert (report.problem.entry, report.problem.kind) == (3, ProblemKind.BROKEN_PREV_LINK)


def test_deleted_entry_is_a_bad_sequence_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 5)
    data = lines(path)
    del data[1]
    path.write_bytes(b"".join(data))
    report = verify(path)
    assert report.problem is not None
    assert (report.problem.entry, report.problem.kind) == (2, ProblemKind.BAD_SEQUENCE)
    assert "expected seq 2, found 3" in report.problem.message


def test_reordered_entries_are_a_bad_sequence(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 5)
    data = lines(path)
    data[3], data[4] = data[4], data[3]
    path.write_bytes(b"".join(data))
    report = verify(path)
    assert report.problem is not None
    assert (report.problem.entry, report.problem.kind) == (4, ProblemKind.BAD_SEQUENCE)


def test_truncation_mid_line_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 5)
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    report = verify(path)
    assert report.problem is not None
    assert (report.problem.entry, report.problem.kind) == (5, ProblemKind.TORN_TAIL)
    assert report.entries == 4


def test_unparseable_and_non_canonical_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 3)
    data = lines(path)
    data[1] = data[1].replace(b'{"action"', b'{ "action"')  # same JSON, not canonical
    path.write_bytes(b"".join(data))
    report = verify(path)
    assert report.problem is not None
    assert (report.problem.entry, report.problem.kind) == (2, ProblemKind.UNPARSEABLE)
    assert "canonical" in report.problem.message
    data[1] = b"garbage\n"
    path.write_bytes(b"".join(data))
    report = verify(path)
    assert report.problem is not None and report.problem.kind is ProblemKind.UNPARSEABLE
    data[2] = b"garbage\n"
    path.write_bytes(b"".join(data))
    with pytest.raises(CorruptAuditLogError, match="last entry"):  # opening checks the entry it chains onto
        AuditLog.open(path, fsync=False)


def test_float_smuggled_into_the_file_is_unparseable(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 2)
    data = lines(path)
    data[1] = data[1].replace(b'"i":1', b'"i":1.0')
    path.write_bytes(b"".join(data))
    report = verify(path)
    assert report.problem is not None and report.problem.kind is ProblemKind.UNPARSEABLE
    assert "floats are not allowed" in report.problem.message


def test_removed_last_entries_are_caught_by_the_expected_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    hashes = write_log(path, 5)
    assert verify(path, expect_head=hashes[2]).ok  # the log has grown past an older anchor: fine
    data = lines(path)
    path.write_bytes(b"".join(data[:3]))
    assert verify(path).ok  # cutting whole entries off the end leaves a valid (shorter) chain...
    report = verify(path, expect_head=hashes[4])  # ...that only an anchor written down earlier catches
    assert report.problem is not None and report.problem.kind is ProblemKind.HEAD_MISMATCH
    assert report.problem.entry == 4


def test_missing_file_is_reported(tmp_path: Path) -> None:
    report = verify(tmp_path / "nope.log")
    assert report.problem is not None and report.problem.kind is ProblemKind.MISSING


# -- torn tails on open ---------------------------------------------------------------------------------------------


def test_open_refuses_a_torn_tail_until_recovered(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    hashes = write_log(path, 3)
    good = path.read_bytes()
    path.write_bytes(good + b'{"action":"half')
    with pytest.raises(TornTailError, match="exchange audit recover"):
        AuditLog.open(path, fsync=False)
    assert path.read_bytes() == good + b'{"action":"half'  # refusing changed nothing
    with AuditLog.open(path, fsync=False, recover_torn_tail=True, actor="ops") as log:
        head = log.head()
        assert head is not None
        assert head.seq == 4 and head.prev_hash == hashes[-1]
        assert head.action == "audit.recovered_torn_tail" and head.actor == "ops"
        assert head.details["bytes"] == len(b'{"action":"half') and head.details["offset"] == len(good)
    assert (tmp_path / f"audit.log.torn-{len(good)}").read_bytes() == b'{"action":"half'
    assert verify(path).ok


def test_append_after_close_fails(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "audit.log", fsync=False)
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.append(actor="a", action="b")


def test_long_entries_and_a_lone_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog.open(path, fsync=False) as log:
        big = log.append(actor="a", action="b", details={"blob": "x" * 300_000})  # longer than one read chunk
    with AuditLog.open(path, fsync=False) as log:
        assert log.head() == big
        log.append(actor="a", action="c", details={"blob": "y" * 300_000})
    assert verify(path).entries == 2
    lone = tmp_path / "lone.log"
    lone.write_bytes(b'{"v":1')
    with pytest.raises(TornTailError, match="byte 0"):
        AuditLog.open(lone, fsync=False)
    with AuditLog.open(lone, fsync=False, recover_torn_tail=True) as log:
        head = log.head()
        assert head is not None and head.seq == 1 and head.prev_hash == GENESIS_HASH
    assert verify(lone).ok


def test_a_torn_line_left_by_another_writer_stops_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog.open(path, fsync=False) as log:
        log.append(actor="a", action="b")
        with path.open("ab") as other:
            other.write(b'{"v":1,"seq":2')  # another process died mid-append
        with pytest.raises(TornTailError, match="exchange audit recover"):
            log.append(actor="a", action="c")
        with pytest.raises(TornTailError):
            log.head()
    assert path.read_bytes().endswith(b'{"v":1,"seq":2')
