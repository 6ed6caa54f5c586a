"""Onboarding screening: every applicant passes ``screen_onboarding`` at sign-up and when identity data arrives.

:class:`OnboardingGate` is what the portal, the admin console, the KYC providers' verdicts and the CLI call:

- :meth:`~OnboardingGate.screen` runs the ``screen_onboarding`` hook (the built-in OFAC name screening and any
  plugin) through :func:`~exchange_framework.plugins.run_screening`, which fails closed (a plugin error or no answer
  is a hold) and opens a case for anything but an allow. Every decision is kept (``onboarding_screenings`` in
  ``compliance.db``), with the identity data screened (``applicants``, for re-screening) and an audit entry.
- :meth:`~OnboardingGate.standing` says where an account stands: ``clear``; ``held`` while an onboarding case is not
  closed (KYC may not raise its tier, so a new customer cannot withdraw); ``frozen`` while an onboarding case that
  rejected or carried a sanctions hit (:data:`~exchange_framework.compliance.cases.FROZEN_REASON`) is not closed as
  cleared: the account may neither trade nor withdraw, and its funds stay where they are.
- :meth:`~OnboardingGate.apply_kyc` raises a KYC tier only for a clear account; otherwise the tier waits (deferred)
  until an officer clears the case with :meth:`~OnboardingGate.resolve`, which then applies it (audited).
- :meth:`~OnboardingGate.rescreen` screens every known applicant again after the sanctions list changed, opening
  cases only for hits an officer has not already cleared.

:class:`FrozenAccounts` answers "is this account frozen?" on the order and withdrawal paths from memory, reloading
when ``compliance.db`` changes (SQLite's ``data_version``), so the check costs microseconds.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from exchange_framework.compliance.cases import (
    CASES_FILENAME,
    FROZEN_REASON,
    Case,
    CaseError,
    CaseStatus,
    CaseStore,
    Resolution,
    Subject,
)
from exchange_framework.interfaces import Decision, OnboardingRequest, Outcome
from exchange_framework.types import AccountId

if TYPE_CHECKING:
    import pluggy

    from exchange_framework.audit.log import AuditLog
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.identity import IdentityStore

__all__ = [
    "AccountFrozenError",
    "Applicant",
    "FrozenAccounts",
    "OnboardingGate",
    "RescreenReport",
    "ScreeningRecord",
    "Standing",
    "frozen_accounts",
    "frozen_message",
]

Clock = Callable[[], int]
_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS onboarding_screenings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account INTEGER NOT NULL,
    trigger TEXT NOT NULL,
    outcome TEXT NOT NULL,
    providers TEXT NOT NULL,
    reasons TEXT NOT NULL,
    case_id INTEGER,
    at_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS onboarding_screenings_account ON onboarding_screenings (account, id);
CREATE TABLE IF NOT EXISTS applicants (
    account INTEGER PRIMARY KEY,
    full_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    country TEXT NOT NULL,
    email TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rescreened_lists (
    fingerprint TEXT PRIMARY KEY,
    at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deferred_tiers (
    account INTEGER PRIMARY KEY,
    tier INTEGER NOT NULL,
    provider TEXT NOT NULL,
    at_ns INTEGER NOT NULL
);
"""

_OUTCOMES = {Outcome.ALLOW: "allow", Outcome.HOLD: "hold", Outcome.REJECT: "reject"}
_FROZEN_SQL = (
    "SELECT DISTINCT account FROM cases WHERE subject = 'onboarding' AND (frozen = 1 OR outcome = 'reject') "
    "AND (resolution IS NULL OR resolution != 'cleared')"
)


class AccountFrozenError(PermissionError):
    """The account is frozen by a compliance case: no trading or withdrawals; the message says what to do."""


def frozen_message(account: int, action: str) -> str:
    """The message a customer sees when a frozen account tries ``action`` (``"trade"``, ``"withdraw"``)."""
    return (
        f"Account {account} is frozen pending a compliance review, so it cannot {action}; your funds stay held in "
        "the account. Contact support."
    )


class Standing(StrEnum):
    """Where an account stands with onboarding screening."""

    CLEAR = "clear"
    HELD = "held"  # an onboarding case is open: KYC may not raise the tier
    FROZEN = "frozen"  # a sanctions hit or a rejection not cleared: no trading, no withdrawals


class Applicant(msgspec.Struct, frozen=True):
    """The identity data screened for one account (``source``: where it came from, such as ``manual`` or ``onfido``)."""

    account: int
    full_name: str = ""
    date_of_birth: str = ""
    country: str = ""
    email: str = ""
    source: str = "portal"

    def request(self, trigger: str) -> OnboardingRequest:
        """The ``screen_onboarding`` request for this applicant."""
        details = {
            key: value
            for key, value in (
                ("full_name", self.full_name),
                ("date_of_birth", self.date_of_birth),
                ("email", self.email),
                ("source", self.source),
                ("trigger", trigger),
            )
            if value
        }
        return OnboardingRequest(account=AccountId(self.account), country=self.country, details=details)


class ScreeningRecord(msgspec.Struct, frozen=True):
    """One onboarding screening decision as kept (``outcome``: allow, hold or reject)."""

    id: int
    account: int
    trigger: str
    outcome: str
    providers: str
    reasons: tuple[str, ...]
    case_id: int | None
    at_ns: int


class RescreenReport(msgspec.Struct, frozen=True):
    """What a re-screening of every applicant found."""

    screened: int
    allowed: int
    new_cases: tuple[int, ...]
    already_cleared: int


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(str(path), timeout=30, isolation_level=None)) as db:
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class OnboardingGate:
    """Onboarding screening of one exchange: screen, standing, KYC tiers held back, officers' decisions.

    ``pm`` is the exchange's plugin manager (built from ``config`` on first use if not given); ``audit`` the operator
    audit log, written for every decision when given.
    """

    def __init__(
        self,
        config: ExchangeConfig,
        *,
        pm: pluggy.PluginManager | None = None,
        audit: AuditLog | Callable[[], AuditLog | None] | None = None,
        clock: Clock = time.time_ns,
    ) -> None:
        self.config = config
        self._pm = pm
        self._audit = audit
        self.clock = clock
        self.cases = CaseStore.for_config(config, audit=None)
        self._rescreen_lock = threading.Lock()
        self.path = self.cases.path
        with closing(sqlite3.connect(str(self.path), timeout=30, isolation_level=None)) as db:
            db.executescript(_SCHEMA)

    @property
    def pm(self) -> pluggy.PluginManager:
        """The plugin manager screening goes through."""
        if self._pm is None:
            from exchange_framework.plugins import make_plugin_manager

            self._pm = make_plugin_manager(self.config)
        return self._pm

    @property
    def audit(self) -> AuditLog | None:
        """The audit log decisions go to, if any."""
        found = self._audit() if callable(self._audit) else self._audit
        return found

    def _audit_append(self, actor: str, action: str, target: str, details: Mapping[str, Any]) -> None:
        log = self.audit
        if log is not None:
            log.append(actor=actor, action=action, target=target, details=dict(details))

    # -- screening ----------------------------------------------------------------------------------------------------

    def screen(self, applicant: Applicant, *, trigger: str, required: bool = True) -> Decision:
        """Screen ``applicant`` through ``screen_onboarding``; keep and audit the decision; return it.

        ``required=False`` (sign-up, when no name is known yet) lets silence pass; otherwise silence holds. A case
        is opened by the pipeline for any hold or rejection.
        """
        from exchange_framework.plugins import run_screening  # the plugin manager imports the compliance package

        if applicant.full_name or applicant.date_of_birth:
            self._remember(applicant)
        decision = run_screening(
            self.pm, "screen_onboarding", required=required, config=self.config, request=applicant.request(trigger)
        )
        self._record(applicant.account, trigger, decision)
        return decision

    def _remember(self, applicant: Applicant) -> None:
        with _connect(self.path) as db:
            db.execute(
                "INSERT INTO applicants (account, full_name, date_of_birth, country, email, source, updated_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET full_name = excluded.full_name, "
                "date_of_birth = excluded.date_of_birth, country = excluded.country, email = excluded.email, "
                "source = excluded.source, updated_ns = excluded.updated_ns",
                (
                    applicant.account,
                    applicant.full_name,
                    applicant.date_of_birth,
                    applicant.country,
                    applicant.email,
                    applicant.source,
                    self.clock(),
                ),
            )

    def _record(self, account: int, trigger: str, decision: Decision) -> ScreeningRecord:
        open_case = self._open_case(account)
        case_id = open_case.id if open_case is not None and decision.outcome is not Outcome.ALLOW else None
        outcome = _OUTCOMES[decision.outcome]
        now = self.clock()
        with _connect(self.path) as db:
            cursor = db.execute(
                "INSERT INTO onboarding_screenings (account, trigger, outcome, providers, reasons, case_id, at_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (account, trigger, outcome, decision.provider, json.dumps(list(decision.reasons)), case_id, now),
            )
            record_id = int(cursor.lastrowid or 0)
        self._audit_append(
            "screening",
            "compliance.onboarding.screen",
            f"account:{account}",
            {"trigger": trigger, "outcome": outcome, "providers": decision.provider, "reasons": list(decision.reasons),
             "case": case_id},
        )  # fmt: skip
        return ScreeningRecord(record_id, account, trigger, outcome, decision.provider, decision.reasons, case_id, now)

    def screenings(self, account: int) -> list[ScreeningRecord]:
        """``account``'s onboarding screening decisions, oldest first."""
        with _connect(self.path) as db:
            rows = db.execute(
                "SELECT id, account, trigger, outcome, providers, reasons, case_id, at_ns FROM onboarding_screenings "
                "WHERE account = ? ORDER BY id",
                (account,),
            ).fetchall()
        return [ScreeningRecord(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), r[6], r[7]) for r in rows]

    def applicant(self, account: int) -> Applicant | None:
        """The identity data last screened for ``account``."""
        with _connect(self.path) as db:
            row = db.execute(
                "SELECT account, full_name, date_of_birth, country, email, source FROM applicants WHERE account = ?",
                (account,),
            ).fetchone()
        return Applicant(*row) if row else None

    def applicants(self) -> list[Applicant]:
        """Every applicant whose identity data was screened, by account."""
        with _connect(self.path) as db:
            rows = db.execute(
                "SELECT account, full_name, date_of_birth, country, email, source FROM applicants ORDER BY account"
            ).fetchall()
        return [Applicant(*row) for row in rows]

    # -- standing -----------------------------------------------------------------------------------------------------

    def _onboarding_cases(self, account: int) -> list[Case]:
        return self.cases.list_cases(subject=Subject.ONBOARDING, account=account, limit=10_000)

    def _open_case(self, account: int) -> Case | None:
        return next((c for c in self._onboarding_cases(account) if c.status is not CaseStatus.CLOSED), None)

    def blocking_case(self, account: int) -> Case | None:
        """The case that freezes or holds ``account`` (a freezing one first), or None if it is clear."""
        cases = self._onboarding_cases(account)
        for case in cases:
            if (case.frozen or case.outcome == "reject") and case.resolution is not Resolution.CLEARED:
                return case
        return next((c for c in cases if c.status is not CaseStatus.CLOSED), None)

    def standing(self, account: int) -> Standing:
        """Whether ``account`` is clear, held (an open onboarding case) or frozen."""
        case = self.blocking_case(account)
        if case is None:
            return Standing.CLEAR
        if (case.frozen or case.outcome == "reject") and case.resolution is not Resolution.CLEARED:
            return Standing.FROZEN
        return Standing.HELD

    def check_may(self, account: int, action: str) -> None:
        """Raise :class:`AccountFrozenError` if ``account`` is frozen (``action``: "trade" or "withdraw")."""
        if self.standing(account) is Standing.FROZEN:
            raise AccountFrozenError(frozen_message(account, action))

    # -- KYC tiers ----------------------------------------------------------------------------------------------------

    def apply_kyc(self, identity: IdentityStore, account: int, verdict: Decision, *, tier: int, provider: str) -> str:
        """Write a KYC verdict to ``identity``, raising the tier only for a clear account.

        Returns the KYC status written: ``approved``; ``pending`` (a hold, or an allow deferred behind an onboarding
        case: the tier is applied when an officer clears it); ``rejected``.
        """
        from exchange_framework.compliance.kyc import apply_verdict

        if verdict.outcome is Outcome.ALLOW and self.standing(account) is not Standing.CLEAR:
            with _connect(self.path) as db:
                db.execute(
                    "INSERT INTO deferred_tiers (account, tier, provider, at_ns) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (account) DO UPDATE SET tier = MAX(tier, excluded.tier), provider = excluded.provider,"
                    " at_ns = excluded.at_ns",
                    (account, tier, provider, self.clock()),
                )
            apply_verdict(identity, account, Decision.hold("onboarding screening case open"), tier=tier)
            case = self.blocking_case(account)
            self._audit_append(
                "screening",
                "compliance.onboarding.tier_deferred",
                f"account:{account}",
                {"tier": tier, "provider": provider, "case": case.id if case else None},
            )
            return "pending"
        apply_verdict(identity, account, verdict, tier=tier)
        return {Outcome.ALLOW: "approved", Outcome.HOLD: "pending", Outcome.REJECT: "rejected"}[verdict.outcome]

    def kyc_verified(
        self,
        identity: IdentityStore,
        account: int,
        verdict: Decision,
        *,
        tier: int,
        provider: str,
        applicant: Applicant | None = None,
    ) -> str:
        """A KYC provider's verdict arrived: screen the verified identity data, then apply the verdict gated.

        ``applicant`` is what the provider verified (name, date of birth, country); without it the data last
        screened for the account is used, and with none at all the screening holds (nothing to screen, fail closed).
        Returns the KYC status written, as :meth:`apply_kyc`.
        """
        if verdict.outcome is Outcome.ALLOW:
            data = applicant or self.applicant(account) or Applicant(account=account, source=provider)
            self.screen(msgspec.structs.replace(data, source=provider), trigger="kyc_verified")
        return self.apply_kyc(identity, account, verdict, tier=tier, provider=provider)

    def deferred_tier(self, account: int) -> int | None:
        """The KYC tier waiting for ``account``'s onboarding case to be cleared, if any."""
        with _connect(self.path) as db:
            row = db.execute("SELECT tier FROM deferred_tiers WHERE account = ?", (account,)).fetchone()
        return int(row[0]) if row else None

    # -- officers -----------------------------------------------------------------------------------------------------

    def resolve(
        self,
        case_id: int,
        *,
        operator: str,
        resolution: Resolution | str,
        note: str,
        identity: IdentityStore | None = None,
        store: CaseStore | None = None,
    ) -> Case:
        """Close a case (audited, as :meth:`CaseStore.resolve`); a cleared onboarding case lets the account proceed.

        ``store`` resolves it (default: this exchange's cases, auditing to :attr:`audit`; the admin console passes
        its own, having audited the action already). When the account is clear afterwards and a KYC tier was
        deferred, the tier is applied to ``identity`` (audited as ``compliance.onboarding.proceed``). Raise
        :class:`CaseError` as ``resolve`` does.
        """
        store = store if store is not None else CaseStore(self.path, audit=self.audit, clock=self.clock)
        case = store.resolve(case_id, operator=operator, resolution=resolution, note=note)
        if case.subject is Subject.ONBOARDING and identity is not None:
            self.proceed(case.account, identity, operator=operator)
        return case

    def proceed(self, account: int, identity: IdentityStore, *, operator: str) -> int | None:
        """Apply ``account``'s deferred KYC tier if it is clear now; return the tier applied, or None."""
        tier = self.deferred_tier(account)
        if tier is None or self.standing(account) is not Standing.CLEAR:
            return None
        user = identity.user(account)
        if user is None:
            return None
        self._audit_append(operator, "compliance.onboarding.proceed", f"account:{account}", {"tier": tier})
        identity.set_kyc(account, tier=max(user.kyc_tier, tier), status="approved")
        with _connect(self.path) as db:
            db.execute("DELETE FROM deferred_tiers WHERE account = ?", (account,))
        return tier

    # -- re-screening -------------------------------------------------------------------------------------------------

    def rescreen_on_list_change(self) -> threading.Thread | None:
        """Re-screen every customer whenever the OFAC list keeper's refresh changes the list.

        Also now, in a background thread (returned), if the list in use was never re-screened against (it changed
        while the exchange was down). None when there is no list or nothing to do now.
        """
        from exchange_framework.default_sanctions import keeper_for

        keeper = keeper_for(self.config)
        if keeper is None:
            return None
        keeper.add_listener(lambda _new: self._list_changed(keeper.fingerprint))
        fingerprint = keeper.fingerprint
        if not fingerprint or self._rescreened(fingerprint):
            return None
        thread = threading.Thread(target=self._list_changed, args=(fingerprint,), name="ofac-rescreen", daemon=True)
        thread.start()
        return thread

    def mark_rescreened(self, fingerprint: str) -> None:
        """Record that every customer was re-screened against the list with ``fingerprint`` (a restart skips it)."""
        with _connect(self.path) as db:
            db.execute(
                "INSERT OR IGNORE INTO rescreened_lists (fingerprint, at_ns) VALUES (?, ?)", (fingerprint, self.clock())
            )

    def _rescreened(self, fingerprint: str) -> bool:
        with _connect(self.path) as db:
            found = db.execute("SELECT 1 FROM rescreened_lists WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return found is not None

    def _list_changed(self, fingerprint: str) -> None:
        with self._rescreen_lock:
            if self._rescreened(fingerprint):
                return
            try:
                report = self.rescreen()
            except Exception:  # logged; the next change (or restart) tries again
                _log.exception("re-screening customers after the OFAC list changed failed")
                return
            self.mark_rescreened(fingerprint)
        _log.warning(
            "the OFAC list changed: re-screened %d customers, %d new case(s) %s",
            report.screened,
            len(report.new_cases),
            list(report.new_cases),
        )

    def rescreen(self, *, progress: Callable[[int], None] | None = None) -> RescreenReport:
        """Screen every known applicant again (after a list refresh); open cases only for hits not already cleared.

        A hold or rejection whose reasons were all seen on a case an officer closed as cleared is kept as a
        screening record but opens no case. ``progress`` is called with 1 after each applicant.
        """
        from exchange_framework.plugins import run_screening

        screened = allowed = cleared_before = 0
        new_cases: list[int] = []
        for applicant in self.applicants():
            request = applicant.request("rescreen")
            decision = run_screening(self.pm, "screen_onboarding", record=False, config=self.config, request=request)
            screened += 1
            if decision.outcome is Outcome.ALLOW:
                allowed += 1
            elif self._cleared_before(applicant.account, decision):
                cleared_before += 1
            else:
                before = self._open_case(applicant.account)
                case = self._record_case(applicant, decision)
                if case is not None and (before is None or before.id != case.id):
                    new_cases.append(case.id)
            self._record(applicant.account, "rescreen", decision)
            if progress is not None:
                progress(1)
        return RescreenReport(screened, allowed, tuple(new_cases), cleared_before)

    def _cleared_before(self, account: int, decision: Decision) -> bool:
        hits = {r for r in decision.reasons if r != FROZEN_REASON}
        for case in self._onboarding_cases(account):
            if case.resolution is Resolution.CLEARED:
                seen = {reason for d in case.decisions for reason in d.reasons}
                if hits and hits <= seen:
                    return True
        return False

    def _record_case(self, applicant: Applicant, decision: Decision) -> Case | None:
        from exchange_framework.compliance.pipeline import subject_of

        subject, reference, account, details = subject_of(applicant.request("rescreen"))
        try:
            return self.cases.record(subject, reference, account, [decision], details)
        except CaseError:
            return None


class FrozenAccounts:
    """The frozen accounts of one exchange, from memory, reloaded whenever ``compliance.db`` changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._version: int | None = None
        self._frozen: frozenset[int] = frozenset()

    @classmethod
    def for_config(cls, config: ExchangeConfig) -> FrozenAccounts:
        """The frozen accounts of the exchange ``config`` describes."""
        return cls(config.journal_path().parent / CASES_FILENAME)

    def _load(self) -> frozenset[int]:
        if self._db is None:
            if not self.path.exists():
                return frozenset()
            self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            try:
                rows = self._db.execute(_FROZEN_SQL).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                rows = []
            self._frozen = frozenset(int(r[0]) for r in rows)
            self._version = version
        return self._frozen

    def is_frozen(self, account: int) -> bool:
        """Whether ``account`` is frozen now. A failure to read the cases raises (the caller refuses: fail closed)."""
        with self._lock:
            return account in self._load()

    def check(self, account: int, action: str) -> None:
        """Raise :class:`AccountFrozenError` if ``account`` is frozen (``action``: "trade" or "withdraw")."""
        if self.is_frozen(account):
            raise AccountFrozenError(frozen_message(account, action))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


_frozen: dict[Path, FrozenAccounts] = {}
_frozen_lock = threading.Lock()
_frozen_by_config: dict[int, tuple[ExchangeConfig, FrozenAccounts]] = {}
_MAX_OPEN = 16


def frozen_accounts(config: ExchangeConfig) -> FrozenAccounts:
    """The (shared, per process) :class:`FrozenAccounts` of the exchange ``config`` describes."""
    known = _frozen_by_config.get(id(config))
    if known is not None and known[0] is config:  # asked on every order and withdrawal: skip resolving paths
        return known[1]
    path = (config.journal_path().parent / CASES_FILENAME).resolve()
    with _frozen_lock:
        found = _frozen.get(path)
        if found is None:
            if len(_frozen) >= _MAX_OPEN:  # one connection each: many exchanges in one process (tests) must not pile up
                for old in _frozen.values():
                    old.close()  # reopens on its next use
                _frozen.clear()
                _frozen_by_config.clear()
            found = _frozen[path] = FrozenAccounts(path)
        if len(_frozen_by_config) >= 64:
            _frozen_by_config.clear()
        _frozen_by_config[id(config)] = (config, found)  # the config object kept: its id is not reused
        return found
