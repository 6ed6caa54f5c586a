"""Admin pages that read records: deposit alerts and compliance cases, and the audit log with its verification."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from exchange_framework.admin.console import AdminConsole
from exchange_framework.audit import AuditEntry, verify

__all__ = ["RecordPages"]

AUDIT_PAGE = 100


class RecordPages:
    """Alerts and cases; the audit log."""

    def __init__(self, console: AdminConsole) -> None:
        self.console = console
        self.ctx = console.ctx
        self.web = console.web

    async def alerts(self, request: Request) -> Response:
        """Deposit alerts (such as a credited deposit removed by a reorg) and, when installed, compliance cases."""
        wallet = self.console.wallet
        values: dict[str, Any] = {
            "configured": wallet is not None,
            "alerts": wallet.deposit_store.alerts(limit=200) if wallet is not None else [],
            # Compliance cases: the compliance module (ctx.extras["compliance"]) is being built; until it lands the
            # page says it is not installed. See templates/admin/alerts.html, block "compliance_cases".
            "compliance": self.ctx.extras.get("compliance"),
        }
        return self.console.render(request, "admin/alerts.html", values)

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
