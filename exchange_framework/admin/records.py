"""Admin pages that read records: deposit alerts and compliance cases, and the audit log with its verification."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from exchange_framework.admin.console import ActionRefused, AdminConsole
from exchange_framework.audit import AuditEntry, verify
from exchange_framework.compliance import Case, CaseError, CaseStatus, CaseStore, Resolution
from exchange_framework.compliance.sar import FORMATS, build_report, customer_facts, render, report_sha256
from exchange_framework.portal.kyc import onboarding_gate
from exchange_framework.web import Form, FormError, NotFound

__all__ = ["RecordPages"]

AUDIT_PAGE = 100
CASE_DECISIONS = ("escalate", "cleared", "confirmed")


class RecordPages:
    """Alerts and cases; the audit log."""

    def __init__(self, console: AdminConsole) -> None:
        self.console = console
        self.ctx = console.ctx
        self.web = console.web

    async def alerts(self, request: Request) -> Response:
        """Deposit alerts (such as a credited deposit removed by a reorg) and, when installed, compliance cases."""
        wallet = self.console.wallet
        cases = self.console.cases
        values: dict[str, Any] = {
            "configured": wallet is not None,
            "alerts": wallet.deposit_store.alerts(limit=200) if wallet is not None else [],
            # Compliance cases (templates/admin/alerts.html, block "compliance_cases"); None: no case store.
            "compliance": cases,
            "compliance_error": self.ctx.extras.get("compliance_error", ""),
            "open_cases": cases.open_cases(limit=500) if cases is not None else [],
            "closed_cases": cases.list_cases(statuses=[CaseStatus.CLOSED], limit=20) if cases is not None else [],
        }
        values["emails"] = self._emails([c.account for c in values["open_cases"] + values["closed_cases"]])
        return self.console.render(request, "admin/alerts.html", values)

    def _emails(self, accounts: list[int]) -> dict[int, str]:
        emails: dict[int, str] = {}
        for account in accounts:
            if account not in emails:
                user = self.ctx.identity.user(account) if account > 0 else None
                emails[account] = user.email if user else "no account"
        return emails

    async def case_decide(self, request: Request) -> Response:
        """Escalate an open case, or close it as cleared (a false positive) or confirmed (a true hit), with a note.

        This records the decision only: the held withdrawal, deposit or KYC submission is released or refused on
        its own page, as a separate audited action.
        """
        case_id = int(request.path_params["case"])
        back = "/admin/alerts#compliance-cases"
        cases = self.console.cases
        if cases is None:
            raise NotFound("No compliance module is installed, so there are no cases to decide.")
        form = Form(await self.web.form(request))
        try:
            decision = form.choice("decision", CASE_DECISIONS, label="decision")
            note = form.text("note", label="note", required=True, max_length=2000)
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        case = cases.get(case_id)
        if case is None:
            return self.console.refuse(request, back, f"There is no compliance case {case_id}.")
        operator = self.console.operator(request)

        async def do() -> str:
            try:
                if decision == "escalate":
                    await asyncio.to_thread(cases.escalate, case_id, operator=operator.email, note=note)
                    return f"Case {case_id} is escalated."
                resolution = Resolution.CLEARED if decision == "cleared" else Resolution.CONFIRMED
                await asyncio.to_thread(  # a cleared onboarding case lets the account's deferred KYC tier apply
                    onboarding_gate(self.ctx).resolve,
                    case_id,
                    operator=operator.email,
                    resolution=resolution,
                    note=note,
                    identity=self.ctx.identity,
                    store=cases,
                )
            except CaseError as exc:
                raise ActionRefused(str(exc)) from None
            follow_up = {
                "withdrawal": "clear or reject the withdrawal on the withdrawals page",
                "deposit": "credit or reject the deposit on the held deposits page",
                "onboarding": "check the account's KYC tier (a cleared account gets the tier KYC approved)",
            }.get(case.subject.value, "act on its subject")
            return f"Case {case_id} is closed as {decision}; now {follow_up}."

        action = {"escalate": "admin.case.escalate", "cleared": "admin.case.clear", "confirmed": "admin.case.confirm"}
        details = {"subject": case.subject.value, "reference": case.reference, "account": case.account, "note": note}
        return await self.console.perform(
            request, action=action[decision], target=f"case:{case_id}", details=details, do=do, back=back
        )

    def _case_or_404(self, request: Request) -> tuple[CaseStore, Case]:
        cases = self.console.cases
        if cases is None:
            raise NotFound("No compliance module is installed, so there are no cases.")
        case = cases.get(int(request.path_params["case"]))
        if case is None:
            raise NotFound(f"There is no compliance case {request.path_params['case']}.")
        return cases, case

    async def _sar(self, case: Case, fmt: str) -> tuple[bytes, tuple[str, ...]]:
        config = self.ctx.node.config

        def build() -> tuple[bytes, tuple[str, ...]]:
            facts = customer_facts(config, case.account, self.ctx.identity)
            report = build_report(case, config=config, customer=facts, now_ns=time.time_ns())
            return render(report, fmt), report.missing

        return await asyncio.to_thread(build)

    async def case_sar(self, request: Request) -> Response:
        """Download a SAR-style report of a case (JSON, CSV or XML); the export and its hash are audited first."""
        back = "/admin/alerts#compliance-cases"
        form = Form(await self.web.form(request))
        try:
            fmt = form.choice("format", FORMATS, label="format")
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        _cases, case = self._case_or_404(request)
        data, missing = await self._sar(case, fmt)
        digest = report_sha256(data)
        details = {"format": fmt, "sha256": digest, "missing": len(missing), "account": case.account}
        operator = self.console.operator(request)
        self.console.record(operator, request, "admin.case.export_sar", f"case:{case.id}", details)
        media = {"json": "application/json", "csv": "text/csv", "xml": "application/xml"}[fmt]
        headers = {
            "Content-Disposition": f'attachment; filename="sar-case-{case.id}.{fmt}"',
            "X-Report-SHA256": digest,
            "X-Missing-Fields": str(len(missing)),
            "Cache-Control": "no-store",
        }
        return Response(data, media_type=media, headers=headers)

    async def case_file(self, request: Request) -> Response:
        """Record that the case's SAR-style report (in the format chosen, as exported now) was filed: its SHA-256
        goes on the case and in the audit log."""
        back = "/admin/alerts#compliance-cases"
        form = Form(await self.web.form(request))
        try:
            fmt = form.choice("format", FORMATS, label="format")
            note = form.text("note", label="note", required=True, max_length=2000)
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        cases, case = self._case_or_404(request)
        data, missing = await self._sar(case, fmt)
        digest = report_sha256(data)
        operator = self.console.operator(request)

        async def do() -> str:
            try:
                await asyncio.to_thread(
                    cases.file_report, case.id, operator=operator.email, report_sha256=digest, fmt=fmt, note=note
                )
            except CaseError as exc:
                raise ActionRefused(str(exc)) from None
            todo = f" ({len(missing)} critical fields were still empty in the export)" if missing else ""
            return f"Case {case.id} is recorded as filed: report sha256 {digest}{todo}."

        details = {"format": fmt, "sha256": digest, "missing": len(missing), "note": note, "account": case.account}
        return await self.console.perform(
            request, action="admin.case.file", target=f"case:{case.id}", details=details, do=do, back=back
        )

    async def case_assign(self, request: Request) -> Response:
        """Assign an open case to an officer."""
        back = "/admin/alerts#compliance-cases"
        form = Form(await self.web.form(request))
        try:
            to = form.text("assignee", label="officer", required=True, max_length=254)
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        cases, case = self._case_or_404(request)
        operator = self.console.operator(request)

        async def do() -> str:
            try:
                await asyncio.to_thread(cases.assign, case.id, operator=operator.email, assignee=to, note="assigned")
            except CaseError as exc:
                raise ActionRefused(str(exc)) from None
            return f"Case {case.id} is assigned to {to}."

        return await self.console.perform(
            request, action="admin.case.assign", target=f"case:{case.id}", details={"assignee": to}, do=do, back=back
        )

    async def case_comment(self, request: Request) -> Response:
        """Add a comment to a case."""
        back = "/admin/alerts#compliance-cases"
        form = Form(await self.web.form(request))
        try:
            note = form.text("note", label="comment", required=True, max_length=2000)
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        cases, case = self._case_or_404(request)
        operator = self.console.operator(request)

        async def do() -> str:
            try:
                await asyncio.to_thread(cases.comment, case.id, operator=operator.email, note=note)
            except CaseError as exc:
                raise ActionRefused(str(exc)) from None
            return f"Comment added to case {case.id}."

        return await self.console.perform(
            request, action="admin.case.comment", target=f"case:{case.id}", details={"note": note}, do=do, back=back
        )

    async def audit(self, request: Request) -> Response:
        """The newest audit entries, optionally only those whose action starts with a prefix or whose actor is one."""
        log = self.console.audit_log
        action = request.query_params.get("action", "").strip()
        actor = request.query_params.get("actor", "").strip()
        entries: list[AuditEntry] = []
        problem = ""
        if log is None:
            problem = "The audit log is not open: check the exchange's start-up log and the [audit] path."
        else:
            wanted = action if not action or action.endswith(".") else action + "."
            newest: deque[AuditEntry] = deque(maxlen=AUDIT_PAGE)
            try:
                for entry in await asyncio.to_thread(lambda: list(log.entries(actor=actor or None))):
                    if not action or entry.action == action or entry.action.startswith(wanted):
                        newest.append(entry)
            except Exception as exc:  # a damaged file: show why, and point at verify
                problem = f"The audit log could not be read ({exc}): run `exchange audit verify`."
            entries = list(newest)[::-1]
        rows = [(e, json.dumps(dict(e.details), sort_keys=True, ensure_ascii=False)) for e in entries]
        head = log.head() if log is not None and not problem else None
        values = {"entries": rows, "action": action, "actor": actor, "problem": problem, "head": head}
        return self.console.render(request, "admin/audit.html", values)

    async def audit_verify(self, request: Request) -> Response:
        """Check the whole chain now (as ``exchange audit verify`` does) and show the result."""
        await self.web.form(request)
        log = self.console.audit_log
        path = getattr(log.store, "path", None) if log is not None else None
        path = path if path is not None else self.ctx.node.config.audit_path()

        async def do() -> str:
            report = await asyncio.to_thread(verify, path)
            if not report.ok:
                raise ValueError(
                    f"The audit chain is broken: {report.problem}. Keep a copy of the file and investigate before "
                    "anything else"
                )
            return f"The audit chain is whole: {report.entries} entries, head {report.head}."

        return await self.console.perform(
            request, action="admin.audit.verify", target=str(path), details={}, do=do, back="/admin/audit"
        )
