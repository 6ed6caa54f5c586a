"""Record retention: find and purge compliance records that are past ``[compliance.retention] years`` and closed.

What is kept in ``compliance.db`` and when its retention period starts:

- a case (screening holds, onboarding cases, monitoring cases with their alerts and evidence): when it was closed,
  or when its report was last filed if that is later. An open or escalated case is never purged, however old, nor
  a closed one that still freezes funds or an account (a confirmed sanctions hit: the freeze rests on it);
- an onboarding screening decision: when it was made; never while the case it opened is still open (or, with no
  case, while any onboarding case of the account is open).

The audit log is append-only and never purged: a purge is recorded in it (``compliance.retention.purge``, with the
ids removed) before anything is deleted, and nothing is deleted if that entry cannot be written. Rows are deleted
with SQLite's ``secure_delete`` on, so their content does not linger in free pages. :func:`plan` only reports
(the CLI's default, a dry run); :func:`purge` deletes what :func:`plan` found, in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from exchange_framework.compliance.cases import CASES_FILENAME

if TYPE_CHECKING:
    from exchange_framework.audit.log import AuditLog
    from exchange_framework.config import ExchangeConfig

__all__ = ["RetentionError", "RetentionReport", "cutoff_ns", "plan", "purge"]


class RetentionError(RuntimeError):
    """A purge was refused (no operator, the audit log could not record it); nothing was deleted."""


class RetentionReport(msgspec.Struct, frozen=True):
    """What is past retention: the case and screening-record ids to purge, and what is kept although old."""

    years: int
    cutoff: str  # ISO date: records whose retention started before this are past retention
    cases: tuple[int, ...]  # closed cases past retention
    screenings: tuple[int, ...]  # onboarding screening decisions past retention
    kept_open_cases: tuple[int, ...]  # old enough, but still open or escalated: never purged
    kept_freezing_cases: tuple[int, ...]  # closed but still freezing funds or an account (a confirmed hit): kept
    total_cases: int
    total_screenings: int
    purged: bool = False


def cutoff_ns(now_ns: int, years: int) -> int:
    """The instant ``years`` calendar years before ``now_ns`` (29 February falls back to the 28th)."""
    now = datetime.fromtimestamp(now_ns / 1e9, UTC)
    try:
        then = now.replace(year=now.year - years)
    except ValueError:
        then = now.replace(year=now.year - years, day=28)
    return int(then.timestamp()) * 10**9 + now_ns % 10**9


def _path(config: ExchangeConfig) -> Path:
    return config.journal_path().parent / CASES_FILENAME


@contextmanager
def _db(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(str(path), timeout=30, isolation_level=None)) as db:
        db.execute("PRAGMA secure_delete=ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _has(db: sqlite3.Connection, table: str) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return row is not None


def _find(db: sqlite3.Connection, years: int, now_ns: int) -> RetentionReport:
    cutoff = cutoff_ns(now_ns, years)
    cases: list[int] = []
    kept: list[int] = []
    in_effect: list[int] = []
    total_cases = total_screenings = 0
    screenings: list[int] = []
    if _has(db, "cases"):
        rows = db.execute(
            "SELECT id, status, closed_ns, opened_ns, history, subject, frozen, outcome, resolution FROM cases "
            "ORDER BY id"
        ).fetchall()
        total_cases = len(rows)
        for case_id, status, closed_ns, opened_ns, history, subject, frozen, outcome, resolution in rows:
            freezes = (frozen or (subject == "onboarding" and outcome == "reject")) and resolution != "cleared"
            if status != "closed" or closed_ns is None or freezes:
                if opened_ns < cutoff:
                    (in_effect if freezes and status == "closed" else kept).append(case_id)
                continue
            started = max(closed_ns, _last_filing(history))
            if started < cutoff:
                cases.append(case_id)
    if _has(db, "onboarding_screenings"):
        total_screenings = int(db.execute("SELECT COUNT(*) FROM onboarding_screenings").fetchone()[0])
        open_accounts = set()
        open_cases = set()
        if _has(db, "cases"):
            for case_id, account in db.execute(
                "SELECT id, account FROM cases WHERE subject = 'onboarding' AND status != 'closed'"
            ).fetchall():
                open_cases.add(case_id)
                open_accounts.add(account)
        for record_id, account, case_id in db.execute(
            "SELECT id, account, case_id FROM onboarding_screenings WHERE at_ns < ? ORDER BY id", (cutoff,)
        ).fetchall():
            if case_id in open_cases or (case_id is None and account in open_accounts):
                continue
            screenings.append(record_id)
    return RetentionReport(
        years=years,
        cutoff=datetime.fromtimestamp(cutoff / 1e9, UTC).date().isoformat(),
        cases=tuple(cases),
        screenings=tuple(screenings),
        kept_open_cases=tuple(kept),
        kept_freezing_cases=tuple(in_effect),
        total_cases=total_cases,
        total_screenings=total_screenings,
    )


def _last_filing(history: str) -> int:
    latest = 0
    for event in msgspec.json.decode(history):
        if str(event.get("action", "")).startswith("filed "):
            latest = max(latest, int(event.get("at_ns", 0)))
    return latest


def plan(config: ExchangeConfig, *, now_ns: int) -> RetentionReport:
    """Report what is past retention (a dry run: nothing changes)."""
    path = _path(config)
    years = config.compliance.retention.years
    if not path.exists():
        return RetentionReport(years, datetime.fromtimestamp(cutoff_ns(now_ns, years) / 1e9, UTC).date().isoformat(),
                               (), (), (), (), 0, 0)  # fmt: skip
    with _db(path) as db:
        return _find(db, years, now_ns)


def purge(config: ExchangeConfig, *, now_ns: int, operator: str, audit: AuditLog) -> RetentionReport:
    """Delete the closed cases and screening decisions past retention, after recording the purge in ``audit``.

    Raise :class:`RetentionError` without deleting anything if ``operator`` is empty or the audit entry cannot be
    written. Open cases and the audit log are never touched.
    """
    operator = operator.strip()
    if not operator:
        raise RetentionError("name the operator purging (it goes in the audit log)")
    path = _path(config)
    if not path.exists():
        return plan(config, now_ns=now_ns)
    with _db(path) as db:
        found = _find(db, config.compliance.retention.years, now_ns)
        if not found.cases and not found.screenings:
            return found
        try:
            audit.append(
                actor=operator,
                action="compliance.retention.purge",
                target=str(path),
                details={
                    "years": found.years,
                    "cutoff": found.cutoff,
                    "cases": list(found.cases),
                    "screenings": list(found.screenings),
                    "kept_open_cases": list(found.kept_open_cases),
                    "kept_freezing_cases": list(found.kept_freezing_cases),
                },
            )
        except Exception as exc:  # no audit entry, no purge (fail closed)
            raise RetentionError(f"the audit log could not record the purge, so nothing was deleted: {exc}") from exc
        db.executemany("DELETE FROM cases WHERE id = ?", [(i,) for i in found.cases])
        db.executemany("DELETE FROM onboarding_screenings WHERE id = ?", [(i,) for i in found.screenings])
    return msgspec.structs.replace(found, purged=True)
