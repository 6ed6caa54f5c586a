"""Compliance cases: every screening hold or rejection becomes a case an operator works through to a resolution.

A case names its subject (a deposit, a withdrawal or an onboarding, with the subject's reference and account), keeps
every provider's decision with its reasons, and moves ``open -> escalated -> closed`` (or straight to closed) with
the operator, a resolution and a note. Cases live in a small SQLite file beside the node's journal data
(``compliance.db``), written in short transactions on a connection opened per call, so any thread or process can
use a :class:`CaseStore`. Screening the same subject again while its case is not closed adds the new decisions to
that case instead of opening another.

Operator actions (escalate, resolve) go to the audit log when the store has one, before they commit: if the audit
log cannot be written the action is refused and nothing changes (fail closed).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from enum import StrEnum
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from exchange_framework.interfaces import Decision, Outcome

if TYPE_CHECKING:
    from exchange_framework.audit.log import AuditLog
    from exchange_framework.config import ExchangeConfig

__all__ = [
    "CASES_FILENAME",
    "FROZEN_REASON",
    "Case",
    "CaseDecision",
    "CaseError",
    "CaseEvent",
    "CaseStatus",
    "CaseStore",
    "Resolution",
    "Subject",
    "assignee",
    "filings",
]

CASES_FILENAME = "compliance.db"
FROZEN_REASON = "sanctions hit: frozen"  # a decision reason that marks a case's funds as frozen

Clock = Callable[[], int]


class CaseError(ValueError):
    """A case action was refused (unknown case, already closed, missing operator or note); nothing changed."""


class Subject(StrEnum):
    """What a case is about."""

    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    ONBOARDING = "onboarding"
    MONITORING = "monitoring"  # a transaction-monitoring alert about an account's pattern of movements


class CaseStatus(StrEnum):
    """Where a case stands: ``open`` (new), ``escalated`` (to a senior officer), ``closed`` (resolved)."""

    OPEN = "open"
    ESCALATED = "escalated"
    CLOSED = "closed"


class Resolution(StrEnum):
    """How an operator closed a case.

    ``cleared``: a false positive; the subject may proceed (the operator still releases it in the wallet or KYC
    review). ``confirmed``: a true hit; the subject stays blocked (frozen funds stay held) and is reported.
    """

    CLEARED = "cleared"
    CONFIRMED = "confirmed"


class CaseDecision(msgspec.Struct, frozen=True):
    """One provider's answer recorded on a case."""

    provider: str
    outcome: str  # "allow", "hold" or "reject"
    reasons: tuple[str, ...]
    at_ns: int


class CaseEvent(msgspec.Struct, frozen=True):
    """One step of a case's story: opened, screened again, escalated, resolved."""

    at_ns: int
    actor: str  # "screening" or the operator
    action: str
    note: str = ""


class Case(msgspec.Struct, frozen=True):
    """A compliance case as the admin console shows it.

    ``outcome`` is the strictest screening outcome seen ("hold" or "reject"); ``frozen`` is set when a decision
    carried :data:`FROZEN_REASON` (a sanctions hit: the funds stay held until an operator resolves the case);
    ``details`` are the subject's facts (asset, amount in atomic units as text, chain, address, ...).
    """

    id: int
    subject: Subject
    reference: str
    account: int
    outcome: str
    frozen: bool
    status: CaseStatus
    details: dict[str, str]
    decisions: tuple[CaseDecision, ...]
    history: tuple[CaseEvent, ...]
    opened_ns: int
    updated_ns: int
    resolution: Resolution | None = None
    resolved_by: str | None = None
    resolution_note: str | None = None
    closed_ns: int | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    reference TEXT NOT NULL,
    account INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    frozen INTEGER NOT NULL,
    status TEXT NOT NULL,
    details TEXT NOT NULL,
    decisions TEXT NOT NULL,
    history TEXT NOT NULL,
    opened_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    resolution TEXT,
    resolved_by TEXT,
    resolution_note TEXT,
    closed_ns INTEGER
);
CREATE INDEX IF NOT EXISTS cases_status ON cases (status, id);
CREATE INDEX IF NOT EXISTS cases_subject ON cases (subject, reference);
CREATE INDEX IF NOT EXISTS cases_account ON cases (account, id);
"""

_COLUMNS = (
    "id, subject, reference, account, outcome, frozen, status, details, decisions, history, opened_ns, updated_ns, "
    "resolution, resolved_by, resolution_note, closed_ns"
)
_OUTCOME_NAMES = {Outcome.ALLOW: "allow", Outcome.HOLD: "hold", Outcome.REJECT: "reject"}
_STRICTNESS = {"allow": 0, "hold": 1, "reject": 2}
MAX_NOTE = 2000


def _case(row: Sequence[Any]) -> Case:
    (case_id, subject, reference, account, outcome, frozen, status, details, decisions, history, opened, updated,
     resolution, resolved_by, note, closed) = row  # fmt: skip
    return Case(
        id=case_id,
        subject=Subject(subject),
        reference=reference,
        account=account,
        outcome=outcome,
        frozen=bool(frozen),
        status=CaseStatus(status),
        details=json.loads(details),
        decisions=msgspec.json.decode(decisions, type=tuple[CaseDecision, ...]),
        history=msgspec.json.decode(history, type=tuple[CaseEvent, ...]),
        opened_ns=opened,
        updated_ns=updated,
        resolution=Resolution(resolution) if resolution is not None else None,
        resolved_by=resolved_by,
        resolution_note=note,
        closed_ns=closed,
    )


class CaseStore:
    """The compliance cases of one exchange: recorded by the screening pipeline, worked by operators.

    The query API the admin console calls: :meth:`open_cases`, :meth:`list_cases`, :meth:`get`, :meth:`find`,
    :meth:`counts`, :meth:`escalate`, :meth:`resolve`, :meth:`assign`, :meth:`comment` and :meth:`file_report`.
    """

    def __init__(
        self, path: str | PathLike[str], *, audit: AuditLog | None = None, clock: Clock = time.time_ns
    ) -> None:
        self.path = Path(path)
        self.audit = audit
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(str(self.path), timeout=30, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: readers never wait for the writer
            db.executescript(_SCHEMA)

    @classmethod
    def for_config(cls, config: ExchangeConfig, *, audit: AuditLog | None = None) -> CaseStore:
        """Open the cases of the exchange ``config`` describes (``compliance.db`` beside its journal)."""
        return cls(config.journal_path().parent / CASES_FILENAME, audit=audit)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(str(self.path), timeout=30, isolation_level=None)) as db:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- recording (the screening pipeline) -------------------------------------------------------------------------

    def record(
        self,
        subject: Subject,
        reference: str,
        account: int,
        decisions: Sequence[Decision],
        details: Mapping[str, str] | None = None,
    ) -> Case:
        """Open a case for a screening that held or rejected ``subject``, or add to its case if one is not closed.

        ``decisions`` are every provider's answers (an ALLOW among them is kept too, for the record). Raise
        :class:`CaseError` if no decision is a hold or a rejection: there is nothing to review.
        """
        worst = max((d.outcome for d in decisions), default=Outcome.ALLOW)
        if worst is Outcome.ALLOW:
            raise CaseError("a case needs a decision that holds or rejects; every decision allowed")
        now = self.clock()
        new = [
            CaseDecision(d.provider or "unnamed", _OUTCOME_NAMES[d.outcome], tuple(d.reasons), now) for d in decisions
        ]
        frozen = any(reason.startswith(FROZEN_REASON) for d in decisions for reason in d.reasons)
        outcome = _OUTCOME_NAMES[worst]
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM cases WHERE subject = ? AND reference = ? AND status != ? "
                "ORDER BY id DESC LIMIT 1",
                (subject.value, reference, CaseStatus.CLOSED.value),
            ).fetchone()
            if row is None:
                history: tuple[CaseEvent, ...] = (CaseEvent(now, "screening", f"opened: screening answered {outcome}"),)
                cursor = db.execute(
                    f"INSERT INTO cases ({_COLUMNS.removeprefix('id, ')}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)",
                    (
                        subject.value,
                        reference,
                        account,
                        outcome,
                        int(frozen),
                        CaseStatus.OPEN.value,
                        json.dumps(dict(details or {}), sort_keys=True),
                        msgspec.json.encode(new).decode(),
                        msgspec.json.encode(history).decode(),
                        now,
                        now,
                    ),
                )
                case_id = cursor.lastrowid
            else:
                existing = _case(row)
                case_id = existing.id
                if _STRICTNESS[outcome] < _STRICTNESS[existing.outcome]:
                    outcome = existing.outcome
                history = (*existing.history, CaseEvent(now, "screening", f"screened again: answered {outcome}"))
                db.execute(
                    "UPDATE cases SET outcome = ?, frozen = ?, decisions = ?, history = ?, updated_ns = ? WHERE id = ?",
                    (
                        outcome,
                        int(frozen or existing.frozen),
                        msgspec.json.encode((*existing.decisions, *new)).decode(),
                        msgspec.json.encode(history).decode(),
                        now,
                        case_id,
                    ),
                )
            found = db.execute(f"SELECT {_COLUMNS} FROM cases WHERE id = ?", (case_id,)).fetchone()
        return _case(found)

    # -- queries (the admin console) ----------------------------------------------------------------------------------

    def get(self, case_id: int) -> Case | None:
        """Return one case with its decisions and history, or None if there is no such case."""
        with self._transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM cases WHERE id = ?", (case_id,)).fetchone()
        return _case(row) if row is not None else None

    def find(self, subject: Subject, reference: str) -> list[Case]:
        """Return every case about one subject (``reference`` as recorded), newest first."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM cases WHERE subject = ? AND reference = ? ORDER BY id DESC",
                (Subject(subject).value, reference),
            ).fetchall()
        return [_case(row) for row in rows]

    def frozen_case(self, subject: Subject, reference: str) -> Case | None:
        """Return the case that keeps a subject's funds frozen, or None if nothing does.

        A subject is frozen by its newest frozen case unless that case was closed as ``cleared``: the wallet's
        operator actions (releasing a withdrawal, crediting a held deposit) should refuse while this returns a case.
        """
        for case in self.find(subject, reference):
            if case.frozen:
                return None if case.resolution is Resolution.CLEARED else case
        return None

    def list_cases(
        self,
        *,
        statuses: Sequence[CaseStatus] | None = None,
        subject: Subject | None = None,
        account: int | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[Case]:
        """Return cases newest first, keeping those matching every filter given; page on with ``before_id``."""
        clauses: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            wanted = [CaseStatus(s).value for s in statuses]
            if not wanted:
                return []
            clauses.append(f"status IN ({', '.join('?' for _ in wanted)})")
            params.extend(wanted)
        if subject is not None:
            clauses.append("subject = ?")
            params.append(Subject(subject).value)
        if account is not None:
            clauses.append("account = ?")
            params.append(account)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(max(0, min(limit, 10_000)))
        with self._transaction() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM cases {where} ORDER BY id DESC LIMIT ?", params).fetchall()
        return [_case(row) for row in rows]

    def open_cases(self, *, limit: int = 100) -> list[Case]:
        """Return the cases still to be worked (open or escalated), oldest first: the review queue."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM cases WHERE status != ? ORDER BY id LIMIT ?",
                (CaseStatus.CLOSED.value, max(0, min(limit, 10_000))),
            ).fetchall()
        return [_case(row) for row in rows]

    def counts(self) -> dict[CaseStatus, int]:
        """Return how many cases are in each status (every status present, zero if none)."""
        with self._transaction() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM cases GROUP BY status").fetchall()
        found = {CaseStatus(status): count for status, count in rows}
        return {status: found.get(status, 0) for status in CaseStatus}

    # -- operator actions ---------------------------------------------------------------------------------------------

    def escalate(self, case_id: int, *, operator: str, note: str) -> Case:
        """Escalate an open case to a senior officer. Raise :class:`CaseError` if it is not open."""
        operator, note = _check_actor(operator, note)
        return self._act(
            case_id,
            operator,
            "compliance.case.escalate",
            allowed={CaseStatus.OPEN},
            update={"status": CaseStatus.ESCALATED.value},
            event=CaseEvent(self.clock(), operator, "escalated", note),
            audit_details={"note": note},
        )

    def resolve(self, case_id: int, *, operator: str, resolution: Resolution | str, note: str) -> Case:
        """Close an open or escalated case as ``cleared`` or ``confirmed`` with a note.

        Raise :class:`CaseError` for an unknown resolution, a closed or unknown case, or an empty operator or note.
        This records the decision only: releasing or returning the subject's funds is the wallet's own action.
        """
        operator, note = _check_actor(operator, note)
        try:
            chosen = Resolution(resolution)
        except ValueError:
            allowed = ", ".join(r.value for r in Resolution)
            raise CaseError(f"resolution {resolution!r} is not one of: {allowed}") from None
        now = self.clock()
        return self._act(
            case_id,
            operator,
            "compliance.case.resolve",
            allowed={CaseStatus.OPEN, CaseStatus.ESCALATED},
            update={
                "status": CaseStatus.CLOSED.value,
                "resolution": chosen.value,
                "resolved_by": operator,
                "resolution_note": note,
                "closed_ns": now,
            },
            event=CaseEvent(now, operator, f"resolved: {chosen.value}", note),
            audit_details={"resolution": chosen.value, "note": note},
        )

    def assign(self, case_id: int, *, operator: str, assignee: str, note: str = "assigned") -> Case:
        """Assign a case that is not closed to ``assignee`` (an officer); recorded on the case and audited."""
        operator, note = _check_actor(operator, note)
        assignee = assignee.strip()
        if not assignee:
            raise CaseError("name the officer the case is assigned to")
        return self._act(
            case_id,
            operator,
            "compliance.case.assign",
            allowed={CaseStatus.OPEN, CaseStatus.ESCALATED},
            update={},
            event=CaseEvent(self.clock(), operator, f"assigned to {assignee}", note),
            audit_details={"assignee": assignee, "note": note},
        )

    def comment(self, case_id: int, *, operator: str, note: str) -> Case:
        """Add an officer's comment to a case (any status); recorded on the case and audited."""
        operator, note = _check_actor(operator, note)
        return self._act(
            case_id,
            operator,
            "compliance.case.comment",
            allowed=set(CaseStatus),
            update={},
            event=CaseEvent(self.clock(), operator, "commented", note),
            audit_details={"note": note},
        )

    def file_report(self, case_id: int, *, operator: str, report_sha256: str, fmt: str, note: str) -> Case:
        """Record that a SAR-style report for the case was filed: the SHA-256 of the exported report goes on the case
        and in the audit log (``compliance.case.file``). A case may be filed more than once (a correction)."""
        operator, note = _check_actor(operator, note)
        digest = report_sha256.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise CaseError("the report hash must be a SHA-256 in hex (64 characters)")
        return self._act(
            case_id,
            operator,
            "compliance.case.file",
            allowed=set(CaseStatus),
            update={},
            event=CaseEvent(self.clock(), operator, f"filed {fmt} report sha256:{digest}", note),
            audit_details={"report_sha256": digest, "format": fmt, "note": note},
        )

    def _act(
        self,
        case_id: int,
        operator: str,
        action: str,
        *,
        allowed: set[CaseStatus],
        update: Mapping[str, Any],
        event: CaseEvent,
        audit_details: Mapping[str, Any],
    ) -> Case:
        with self._transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM cases WHERE id = ?", (case_id,)).fetchone()
            if row is None:
                raise CaseError(f"there is no compliance case {case_id}")
            case = _case(row)
            if case.status not in allowed:
                raise CaseError(
                    f"case {case_id} is {case.status.value}; this needs a case that is "
                    + " or ".join(sorted(s.value for s in allowed))
                )
            values = {
                **update,
                "history": msgspec.json.encode((*case.history, event)).decode(),
                "updated_ns": event.at_ns,
            }
            assignments = ", ".join(f"{column} = ?" for column in values)
            db.execute(f"UPDATE cases SET {assignments} WHERE id = ?", (*values.values(), case_id))
            if self.audit is not None:  # before the commit: no audit entry, no action
                details = {**audit_details, "subject": case.subject.value, "reference": case.reference}
                self.audit.append(actor=operator, action=action, target=f"case:{case_id}", details=details)
            found = db.execute(f"SELECT {_COLUMNS} FROM cases WHERE id = ?", (case_id,)).fetchone()
        return _case(found)


def _check_actor(operator: str, note: str) -> tuple[str, str]:
    operator, note = operator.strip(), note.strip()
    if not operator:
        raise CaseError("name the operator taking this action")
    if not note:
        raise CaseError("write a note saying why (it goes on the case and in the audit log)")
    if len(note) > MAX_NOTE:
        raise CaseError(f"the note is {len(note)} characters long; keep it to {MAX_NOTE}")
    return operator, note


def assignee(case: Case) -> str | None:
    """The officer a case was last assigned to, or None."""
    for event in reversed(case.history):
        if event.action.startswith("assigned to "):
            return event.action.removeprefix("assigned to ")
    return None


def filings(case: Case) -> list[tuple[int, str]]:
    """When and with which report hash a case was filed: ``(at_ns, sha256)``, oldest first."""
    found = []
    for event in case.history:
        if event.action.startswith("filed ") and "sha256:" in event.action:
            found.append((event.at_ns, event.action.rpartition("sha256:")[2]))
    return found
