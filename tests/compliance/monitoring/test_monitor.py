"""The monitor: idempotent by seq, deterministic, opens compliance cases, orders its queue by score."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_framework.compliance import CaseStore
from exchange_framework.compliance.monitoring import Monitor, Rule
from exchange_framework.compliance.monitoring.synthetic import MARKETS, PARAMS, generate


def test_replaying_events_changes_nothing() -> None:
    history = generate(5, 300)
    monitor = Monitor(MARKETS, PARAMS)
    first = monitor.feed(history.batches)
    assert first, "the generated history should raise alerts"
    snapshot = msgspec.json.encode(monitor.alerts)
    assert monitor.feed(history.batches) == []  # the whole journal again
    assert monitor.feed(history.batches[len(history.batches) // 2 :]) == []  # a tail again
    assert msgspec.json.encode(monitor.alerts) == snapshot
    assert monitor.last_seq == history.batches[-1][1][-1].seq


def test_a_replay_overlapping_new_events_applies_only_the_new_ones() -> None:
    history = generate(5, 300)
    whole = Monitor(MARKETS, PARAMS)
    whole.feed(history.batches)
    half = len(history.batches) // 2
    pieces = Monitor(MARKETS, PARAMS)
    pieces.feed(history.batches[: half + 50])
    pieces.feed(history.batches[half:])  # 50 batches seen twice
    assert msgspec.json.encode(pieces.alerts) == msgspec.json.encode(whole.alerts)


def test_same_events_give_the_same_alerts() -> None:
    history = generate(9, 300)
    a = Monitor(MARKETS, PARAMS).feed(history.batches)
    b = Monitor(MARKETS, PARAMS).feed(generate(9, 300).batches)
    assert msgspec.json.encode(a) == msgspec.json.encode(b)
    assert {alert.rule for alert in a} == set(Rule)  # every typology shows up in a few hundred customers


def test_alerts_open_cases_with_their_evidence(tmp_path: Path) -> None:
    store = CaseStore(tmp_path / "compliance.db")
    history = generate(5, 200)
    monitor = Monitor(MARKETS, PARAMS, cases=store)
    alerts = monitor.feed(history.batches)
    cases = store.list_cases(limit=10_000)
    assert {c.reference for c in cases} == {f"monitoring:{a.account}" for a in alerts}
    alert = alerts[0]
    case = next(c for c in cases if c.reference == f"monitoring:{alert.account}")
    assert case.account == alert.account and case.outcome == "hold" and not case.frozen
    assert case.details["source"] == "monitoring" and case.details["alert"] == alerts[0].id
    reasons = [r for d in case.decisions for r in d.reasons]
    assert f"monitoring: {alert.rule.value}: {alert.summary}" in reasons
    seqs = ",".join(str(s) for s in sorted({m.seq for m in alert.evidence}))
    assert f"evidence seqs {seqs}" in reasons
    assert all(d.provider == "monitoring" for d in case.decisions)
    per_account = sum(1 for a in alerts if a.account == alert.account)
    assert len(case.decisions) == per_account  # later alerts on the account add to its open case
    # replaying the journal, into this monitor or a fresh one (a restarted node), records nothing twice
    before = store.list_cases(limit=10_000)
    monitor.feed(history.batches)
    Monitor(MARKETS, PARAMS, cases=store).feed(history.batches)
    assert store.list_cases(limit=10_000) == before


def test_an_alert_whose_case_cannot_be_written_is_kept_and_recorded_on_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "compliance.db"
    store = CaseStore(path)
    history = generate(5, 200)
    monitor = Monitor(MARKETS, PARAMS, cases=store)
    probe = Monitor(MARKETS, PARAMS)
    first_alert = next(i for i, (ts, events) in enumerate(history.batches) if probe.on_batch(ts, events))
    monitor.feed(history.batches[:first_alert])
    path.unlink()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.mkdir()  # the database cannot be opened: a real sqlite3 error
    with pytest.raises(sqlite3.OperationalError):
        monitor.feed(history.batches[first_alert : first_alert + 1])
    (lost,) = monitor.unrecorded
    path.rmdir()
    store = monitor.cases = CaseStore(path)
    monitor.feed(history.batches[first_alert + 1 :])
    assert monitor.unrecorded == []
    recorded = {r for c in store.list_cases(limit=10_000) for d in c.decisions for r in d.reasons}
    assert f"alert {lost.id}, unscored" in recorded
    assert {f"alert {a.id}, unscored" for a in monitor.alerts} <= recorded


def test_the_queue_is_highest_score_first() -> None:
    from exchange_framework.compliance.monitoring.model import load

    model = load()
    monitor = Monitor(MARKETS, PARAMS, model=model)
    monitor.feed(generate(21, 400).batches)
    queue = monitor.queue()
    scores = [a.score for a in queue]
    assert all(s is not None for s in scores) and len(queue) == len(monitor.alerts)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert monitor.queue(limit=3) == queue[:3]
    assert queue[0].score != queue[-1].score


_HISTORY = generate(13, 120)
_WHOLE = msgspec.json.encode(Monitor(MARKETS, PARAMS).feed(_HISTORY.batches))


@settings(max_examples=20, deadline=None)
@given(
    cuts=st.lists(st.integers(0, len(_HISTORY.batches)), max_size=6),
    rewinds=st.lists(st.integers(0, 200), min_size=6, max_size=6),
)
def test_any_split_with_any_replayed_overlap_gives_the_alerts_of_one_pass(cuts: list[int], rewinds: list[int]) -> None:
    batches = _HISTORY.batches
    pieces = Monitor(MARKETS, PARAMS)
    start = 0
    for cut, rewind in zip([*sorted(cuts), len(batches)], rewinds, strict=False):
        pieces.feed(batches[max(0, start - rewind) : cut])  # each piece re-sends up to 200 batches already seen
        start = max(start, cut)
    pieces.feed(batches[start:])
    assert msgspec.json.encode(pieces.alerts) == _WHOLE
