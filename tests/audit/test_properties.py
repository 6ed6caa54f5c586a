"""Property tests: any sequence of appends verifies; any single-byte change of the file is detected."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.audit import AuditLog, verify

json_leaf = st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | st.text(max_size=12)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
appends = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=8),
        st.text(min_size=1, max_size=12),
        st.text(max_size=8),
        st.dictionaries(st.text(max_size=6), json_value, max_size=4),
        st.integers(min_value=0, max_value=2**63),
    ),
    min_size=1,
    max_size=8,
)


def _write(path: Path, items: list[tuple[str, str, str, dict[str, Any], int]]) -> list[str]:
    hashes = []
    with AuditLog.open(path, fsync=False) as log:
        for actor, action, target, details, ts in items:
            hashes.append(log.append(actor=actor, action=action, target=target, details=details, ts_ns=ts).hash)
    return hashes


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(appends)
def test_any_sequence_of_appends_verifies_and_reads_back(
    items: list[tuple[str, str, str, dict[str, Any], int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.log"
        hashes = _write(path, items)
        report = verify(path, expect_head=hashes[0])
        assert report.ok, report.problem
        assert report.entries == len(items) and report.head == hashes[-1]
        with AuditLog.open(path, fsync=False) as log:
            read = list(log.entries())
        assert [(e.actor, e.action, e.target, e.ts_ns) for e in read] == [(a, b, c, t) for a, b, c, _, t in items]
        assert [e.fields()["details"] for e in read] == [d for _, _, _, d, _ in items]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(appends, st.data())
def test_any_single_byte_change_is_detected(
    items: list[tuple[str, str, str, dict[str, Any], int]], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.log"
        _write(path, items)
        original = path.read_bytes()
        position = data.draw(st.integers(min_value=0, max_value=len(original) - 1), label="position")
        new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != original[position]), label="byte")
        damaged = bytearray(original)
        damaged[position] = new
        path.write_bytes(bytes(damaged))
        report = verify(path)
        assert not report.ok
        assert report.problem is not None
        line_of_change = original[:position].count(b"\n") + 1
        assert report.problem.entry == line_of_change  # reported at the entry whose line was changed
