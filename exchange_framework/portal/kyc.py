"""Manual KYC review: customers submit their details from the portal, an operator decides in the admin console.

Submissions are kept in a small SQLite file of their own (``kyc.db`` beside the identity database) with the
standard library's ``sqlite3``: one table, append-only submissions with their decision. The user's
``kyc_status``/``kyc_tier`` in the identity store follow: ``pending`` on submission, ``approved`` (with the tier)
or ``rejected`` on decision.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exchange_framework.api.context import ApiContext
from exchange_framework.compliance.onboarding import Applicant, OnboardingGate, Standing
from exchange_framework.engine.commands import CancelAll
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Decision
from exchange_framework.web import Form, FormError, Web

__all__ = ["KycError", "KycPages", "KycReviews", "KycSubmission", "cancel_open_orders", "onboarding_gate"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kyc_submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account INTEGER NOT NULL,
    full_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    country TEXT NOT NULL,
    document_number TEXT NOT NULL,
    submitted_ns INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    tier INTEGER NOT NULL DEFAULT 0,
    decided_by TEXT NOT NULL DEFAULT '',
    decided_ns INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS kyc_submissions_account ON kyc_submissions (account);
CREATE INDEX IF NOT EXISTS kyc_submissions_status ON kyc_submissions (status);
"""
_COLUMNS = (
    "id, account, full_name, date_of_birth, country, document_number, submitted_ns, status, tier, decided_by, "
    "decided_ns, note"
)


class KycError(ValueError):
    """A KYC submission or decision that cannot be made; the message says what to change."""


@dataclass(frozen=True, slots=True)
class KycSubmission:
    """One customer's submitted details and the review's outcome (``status``: pending, approved, rejected)."""

    id: int
    account: int
    full_name: str
    date_of_birth: str
    country: str
    document_number: str
    submitted_ns: int
    status: str
    tier: int
    decided_by: str
    decided_ns: int
    note: str


class KycReviews:
    """KYC submissions in SQLite, keeping the identity store's ``kyc_status`` and ``kyc_tier`` in step."""

    def __init__(self, path: Path, identity: IdentityStore, *, clock: Callable[[], int] = time.time_ns) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.identity = identity
        self._now = clock

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def submit(
        self, account: int, *, full_name: str, date_of_birth: str, country: str, document_number: str
    ) -> KycSubmission:
        """Record a submission for review and mark the user ``pending``; refuse while one is already pending."""
        full_name = " ".join(full_name.split())
        if not 2 <= len(full_name) <= 120:
            raise KycError("Enter your full name as on your identity document (2 to 120 characters).")
        try:
            born = dt.date.fromisoformat(date_of_birth)
        except ValueError:
            raise KycError("Enter your date of birth as YYYY-MM-DD, for example 1990-04-25.") from None
        today = dt.datetime.fromtimestamp(self._now() / 1e9, tz=dt.UTC).date()
        if not dt.date(1900, 1, 1) <= born <= today.replace(year=today.year - 18):
            raise KycError("You must be at least 18 years old: check your date of birth.")
        country = country.strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise KycError("Enter the document's issuing country as a two-letter code such as DE.")
        document_number = document_number.strip().upper()
        if not re.fullmatch(r"[A-Z0-9<-]{4,30}", document_number):
            raise KycError("Enter the document number as printed (4 to 30 letters and digits).")
        if self.identity.user(account) is None:
            raise KycError(f"There is no user with account {account}.")
        with self._lock:
            latest = self.latest(account)
            if latest is not None and latest.status == "pending":
                raise KycError("Your details are already being reviewed: wait for the decision.")
            cur = self._db.execute(
                "INSERT INTO kyc_submissions (account, full_name, date_of_birth, country, document_number, "
                "submitted_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (account, full_name, born.isoformat(), country, document_number, self._now()),
            )
            submission_id = cur.lastrowid
        user = self.identity.user(account)
        self.identity.set_kyc(account, tier=user.kyc_tier if user else 0, status="pending")
        found = self.get(int(submission_id or 0))
        assert found is not None
        return found

    def decide(
        self,
        submission_id: int,
        *,
        approve: bool,
        operator: str,
        tier: int = 1,
        note: str = "",
        gate: OnboardingGate | None = None,
    ) -> KycSubmission:
        """An operator's decision on a pending submission; the user's KYC status and tier change with it.

        With an onboarding ``gate``, an approval screens the submitted details again (``screen_onboarding``) and
        raises the tier only if the account is clear of onboarding cases; otherwise the tier waits until a compliance
        officer clears the case.
        """
        with self._lock:
            found = self.get(submission_id)
            if found is None:
                raise KycError(f"There is no KYC submission {submission_id}.")
            if found.status != "pending":
                raise KycError(f"KYC submission {submission_id} was already decided ({found.status}).")
            if approve and tier < 1:
                raise KycError("An approval needs a tier of 1 or more.")
            status = "approved" if approve else "rejected"
            self._db.execute(
                "UPDATE kyc_submissions SET status = ?, tier = ?, decided_by = ?, decided_ns = ?, note = ? "
                "WHERE id = ?",
                (status, tier if approve else 0, operator, self._now(), note, submission_id),
            )
        user = self.identity.user(found.account)
        if approve and gate is not None:  # screened again with the approved details: the tier waits for a clear
            verdict = Decision.allow(f"approved by {operator} at tier {tier}", provider="manual")
            applicant = Applicant(
                account=found.account,
                full_name=found.full_name,
                date_of_birth=found.date_of_birth,
                country=found.country,
                email=user.email if user else "",
                source="manual",
            )
            gate.kyc_verified(self.identity, found.account, verdict, tier=tier, provider="manual", applicant=applicant)
        else:
            tier_now = tier if approve else (user.kyc_tier if user else 0)
            self.identity.set_kyc(found.account, tier=tier_now, status=status)
        decided = self.get(submission_id)
        assert decided is not None
        return decided

    def get(self, submission_id: int) -> KycSubmission | None:
        """One submission."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM kyc_submissions WHERE id = ?", (submission_id,)).fetchone()
        return KycSubmission(*row) if row else None

    def latest(self, account: int) -> KycSubmission | None:
        """``account``'s newest submission."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM kyc_submissions WHERE account = ? ORDER BY id DESC LIMIT 1", (account,)
        ).fetchone()
        return KycSubmission(*row) if row else None

    def submissions(self, *, status: str | None = None, limit: int = 100) -> list[KycSubmission]:
        """Submissions oldest first (the review queue), optionally only those in ``status``."""
        if status is None:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM kyc_submissions ORDER BY id LIMIT ?", (limit,))
        else:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM kyc_submissions WHERE status = ? ORDER BY id LIMIT ?", (status, limit)
            )
        return [KycSubmission(*row) for row in rows.fetchall()]


class KycPages:
    """The customer's KYC page."""

    def __init__(self, ctx: ApiContext, web: Web) -> None:
        self.ctx = ctx
        self.web = web
        onboarding_gate(ctx)  # from the start: a refresh that changes the OFAC list re-screens every customer

    @property
    def reviews(self) -> KycReviews:
        """The app's KYC reviews (``ctx.extras["kyc_reviews"]``, opened beside the node's data on first use)."""
        found = self.ctx.extras.get("kyc_reviews")
        if found is None:
            found = self.ctx.extras["kyc_reviews"] = KycReviews(self.ctx.node.data_dir / "kyc.db", self.ctx.identity)
        assert isinstance(found, KycReviews)
        return found

    def routes(self) -> list[BaseRoute]:
        """The KYC routes."""
        e = self.web.endpoint
        return [
            Route("/kyc", e(self.page, login=True), methods=["GET"], name="kyc"),
            Route("/kyc", e(self.submit, login=True), methods=["POST"]),
        ]

    async def page(self, request: Request) -> Response:
        user = self.web.require_user(request)
        return self._page(request, user.id, error=None, values={})

    def _page(
        self, request: Request, account: int, *, error: str | None, values: dict[str, str], status: int = 200
    ) -> Response:
        latest = self.reviews.latest(account)
        return self.web.render(request, "kyc.html", {"latest": latest, "error": error, "values": values}, status=status)

    async def submit(self, request: Request) -> Response:
        user = self.web.require_user(request)
        form = Form(await self.web.form(request))
        names = ("full_name", "date_of_birth", "country", "document_number")
        values = {name: form.text(name, max_length=200) for name in names}
        try:
            submission = self.reviews.submit(user.id, **values)
        except (FormError, KycError) as exc:
            return self._page(request, user.id, error=str(exc), values=values, status=400)
        applicant = Applicant(
            account=user.id,
            full_name=submission.full_name,
            date_of_birth=submission.date_of_birth,
            country=submission.country,
            email=user.email,
            source="manual",
        )
        # The customer is told the same whatever screening found (no tipping off); a case opens for officers.
        gate = onboarding_gate(self.ctx)
        await asyncio.to_thread(gate.screen, applicant, trigger="kyc_submitted")
        if await asyncio.to_thread(gate.standing, user.id) is Standing.FROZEN:
            await cancel_open_orders(self.ctx, user.id)
        return self.web.redirect(request, "/kyc", "Thank you: your details were sent for review.", "success")


def onboarding_gate(ctx: ApiContext) -> OnboardingGate:
    """The app's onboarding screening (``ctx.extras["onboarding"]``: the node's plugins, the app's audit log)."""
    found = ctx.extras.get("onboarding")
    if found is None:
        found = ctx.extras["onboarding"] = OnboardingGate(
            ctx.node.config, pm=ctx.node.pm, audit=lambda: ctx.extras.get("audit")
        )
        found.rescreen_on_list_change()
    assert isinstance(found, OnboardingGate)
    return found


async def cancel_open_orders(ctx: ApiContext, account: int) -> int:
    """Cancel every open order of a frozen ``account`` so nothing of it trades on; return the markets affected."""
    markets = {order.market for order in ctx.node.orders.open_orders(account, None)}
    for market in sorted(markets):
        await ctx.node.submit(CancelAll(account=account, market=market))
    return len(markets)
