"""Retention: only closed records past ``[compliance.retention] years`` are purged, never open cases, never a closed
case that still freezes funds, never the audit log (the purge is recorded in it first); a dry run changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_framework.audit import AuditLog
from exchange_framework.cli import main
from exchange_framework.compliance.cases import FROZEN_REASON, CaseStore, Subject
from exchange_framework.compliance.onboarding import Applicant, OnboardingGate
from exchange_framework.compliance.retention import RetentionError, cutoff_ns, plan, purge
from exchange_framework.config import ConfigError, ExchangeConfig, load_config
from exchange_framework.interfaces import Decision

YEAR_NS = 365 * 24 * 3600 * 10**9
NOW = time.time_ns()


class Clock:
    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self) -> int:
        return self.at


def seeded(config: ExchangeConfig) -> dict[str, int]:
    """Cases of every kind and age, and onboarding screening decisions, written at the times they would have been."""
    clock = Clock(NOW - 8 * YEAR_NS)
    store = CaseStore.for_config(config)
    store.clock = clock
    hold = [Decision.hold("look at it", provider="p")]
    ids = {}
    ids["old_closed"] = store.record(Subject.DEPOSIT, "a", 1001, hold).id
    ids["old_open"] = store.record(Subject.DEPOSIT, "b", 1002, hold).id
    ids["old_filed_recently"] = store.record(Subject.MONITORING, "monitoring:1003", 1003, hold).id
    ids["old_frozen_confirmed"] = store.record(
        Subject.WITHDRAWAL, "7", 1004, [Decision.hold(FROZEN_REASON, "listed", provider="ofac")]
    ).id
    clock.at = NOW - 7 * YEAR_NS
    for name in ("old_closed", "old_filed_recently"):
        store.resolve(ids[name], operator="o", resolution="cleared", note="fine")
    store.resolve(ids["old_frozen_confirmed"], operator="o", resolution="confirmed", note="true hit")
    clock.at = NOW - 2 * YEAR_NS
    store.file_report(ids["old_filed_recently"], operator="o", report_sha256="ab" * 32, fmt="json", note="filed")
    ids["recent_closed"] = store.record(Subject.DEPOSIT, "c", 1005, hold).id
    store.resolve(ids["recent_closed"], operator="o", resolution="cleared", note="fine")
    gate = OnboardingGate(config, clock=Clock(NOW - 6 * YEAR_NS))
    gate._record(1006, "kyc_submitted", Decision.allow("clear", provider="ofac"))  # an old decision, no case
    gate.clock = Clock(NOW - YEAR_NS)
    gate._record(1006, "rescreen", Decision.allow("clear", provider="ofac"))  # a recent one
    gate._remember(Applicant(account=1006, full_name="Alice Example"))
    return ids


@pytest.fixture
def config(write_config: Callable[..., Path]) -> ExchangeConfig:
    return load_config(write_config())


def test_only_closed_records_past_retention_are_found_and_purged(config: ExchangeConfig) -> None:
    ids = seeded(config)
    audit = AuditLog.from_config(config)
    report = plan(config, now_ns=NOW)
    assert report.years == 5 and report.cases == (ids["old_closed"],)
    assert report.kept_open_cases == (ids["old_open"],) and report.kept_freezing_cases == (ids["old_frozen_confirmed"],)
    assert len(report.screenings) == 1 and report.total_screenings == 2
    store = CaseStore.for_config(config)
    assert len(store.list_cases()) == 5  # the dry run changed nothing
    done = purge(config, now_ns=NOW, operator="records@example.com", audit=audit)
    assert done.purged and done.cases == report.cases
    assert store.get(ids["old_closed"]) is None
    for kept in ("old_open", "old_filed_recently", "old_frozen_confirmed", "recent_closed"):
        assert store.get(ids[kept]) is not None, kept
    assert store.frozen_case(Subject.WITHDRAWAL, "7") is not None  # the freeze still rests on its case
    assert [r.trigger for r in OnboardingGate(config).screenings(1006)] == ["rescreen"]
    assert OnboardingGate(config).applicant(1006) is not None  # the customer's identity data is not a closed record
    (entry,) = [e for e in audit.entries() if e.action == "compliance.retention.purge"]
    assert entry.actor == "records@example.com" and list(entry.details["cases"]) == [ids["old_closed"]]
    # nothing more to purge; a second run changes nothing and writes nothing
    again = purge(config, now_ns=NOW, operator="records@example.com", audit=audit)
    assert again.cases == () and again.screenings == () and not again.purged
    assert len([e for e in audit.entries() if e.action == "compliance.retention.purge"]) == 1


def test_a_purge_that_cannot_be_audited_deletes_nothing(config: ExchangeConfig, tmp_path: Path) -> None:
    seeded(config)

    class Broken(AuditLog):
        def __init__(self) -> None:
            pass

        def append(self, **kwargs: object) -> object:  # type: ignore[override]
            raise OSError("disk full")

    with pytest.raises(RetentionError, match="nothing was deleted"):
        purge(config, now_ns=NOW, operator="records@example.com", audit=Broken())
    with pytest.raises(RetentionError, match="name the operator"):
        purge(config, now_ns=NOW, operator=" ", audit=AuditLog.from_config(config))
    assert len(CaseStore.for_config(config).list_cases()) == 5


def test_a_longer_retention_keeps_more_and_less_than_five_years_is_refused(
    write_config: Callable[..., Path],
) -> None:
    config = load_config(write_config("[compliance.retention]\nyears = 10\n"))
    seeded(config)
    assert plan(config, now_ns=NOW).cases == ()
    with pytest.raises(ConfigError, match="years"):
        load_config(write_config("[compliance.retention]\nyears = 3\n"))


def test_the_cutoff_is_in_calendar_years() -> None:
    leap_day = 1709164800 * 10**9  # 2024-02-29T00:00:00Z
    assert cutoff_ns(leap_day, 5) == 1551312000 * 10**9  # 2019-02-28T00:00:00Z


def test_the_cli_is_a_dry_run_unless_told_to_purge(write_config: Callable[..., Path]) -> None:
    path = write_config()
    config = load_config(path)
    ids = seeded(config)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, ["--config", str(path), "compliance", "retention", *args])

    dry = run()
    assert dry.exit_code == 0 and "dry run: nothing deleted" in dry.output and f"({ids['old_closed']})" in dry.output
    assert CaseStore.for_config(config).get(ids["old_closed"]) is not None
    refused = run("--purge")
    assert refused.exit_code == 1 and "--operator" in refused.output
    done = run("--purge", "--operator", "records@example.com", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["purged"] is True
    assert CaseStore.for_config(config).get(ids["old_closed"]) is None
