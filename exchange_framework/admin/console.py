"""The admin console's shared plumbing: routes from the role table, the operator, rendering, and auditing actions.

Every operator action goes through :meth:`AdminConsole.perform`: the action is appended to the audit log first and
is done only if that append succeeded (fail closed); a refusal after the append is audited as ``<action>.refused``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exchange_framework.admin.policy import ACTIONS, OPERATOR_ROLES, ROUTES, allowed
from exchange_framework.api.context import ApiContext
from exchange_framework.audit import AuditLog
from exchange_framework.compliance import CaseStore
from exchange_framework.identity import UserInfo
from exchange_framework.interfaces import AdminPage
from exchange_framework.plugins import collect_registered
from exchange_framework.portal.kyc import KycPages, KycReviews
from exchange_framework.wallet import WalletService
from exchange_framework.web import Handler, Web, WebError

__all__ = ["NAV", "ActionRefused", "AdminConsole", "AuditUnavailable", "plugin_page"]

_log = logging.getLogger(__name__)

# The navigation: (path, title, the action that page needs); an operator sees only the entries their role allows.
NAV: tuple[tuple[str, str, str], ...] = (
    ("/admin", "Dashboard", "dashboard.view"),
    ("/admin/users", "Users", "users.view"),
    ("/admin/kyc", "KYC queue", "kyc.view"),
    ("/admin/withdrawals", "Withdrawals", "withdrawals.view"),
    ("/admin/deposits", "Held deposits", "deposits.view"),
    ("/admin/alerts", "Alerts & cases", "alerts.view"),
    ("/admin/markets", "Markets", "markets.view"),
    ("/admin/fees", "Fees", "fees.view"),
    ("/admin/custody", "Custody", "custody.view"),
    ("/admin/audit", "Audit log", "audit.view"),
)


class AuditUnavailable(WebError):
    """The audit log could not record an action, so the action was not done (fail closed)."""

    status = 503


class ActionRefused(ValueError):
    """An operator action that cannot be done as asked; the message says what to do. Nothing was changed."""


Action = Callable[[], Awaitable[str]]


class AdminConsole:
    """The admin console of one app: its context, web layer, plugin pages and the audit log it writes to."""

    def __init__(self, ctx: ApiContext, web: Web) -> None:
        self.ctx = ctx
        self.web = web
        found = collect_registered(ctx.node.pm, "register_admin_pages", config=ctx.node.config)
        self.plugin_pages: list[AdminPage] = list(found.values())

    # -- services of the app
    @property
    def audit_log(self) -> AuditLog | None:
        """The app's audit log (``ctx.extras["audit"]``, opened by the app's lifespan), or ``None``."""
        found = self.ctx.extras.get("audit")
        return found if isinstance(found, AuditLog) else None

    @property
    def wallet(self) -> Any:
        """The wallet (:class:`~exchange_framework.wallet.WalletService` with trackers), or ``None``."""
        found = self.ctx.extras.get("wallet")
        return found if isinstance(found, WalletService) else None

    @property
    def cases(self) -> CaseStore | None:
        """The compliance cases (``ctx.extras["compliance"]``; opened beside the journal on first use), or ``None``
        if they cannot be opened (the reason is in ``ctx.extras["compliance_error"]``)."""
        found = self.ctx.extras.get("compliance")
        if found is None and "compliance_error" not in self.ctx.extras:
            try:
                found = self.ctx.extras["compliance"] = CaseStore.for_config(self.ctx.node.config)
            except Exception as exc:  # the pages say so; nothing else depends on it
                _log.error("the compliance cases could not be opened: %s", exc)
                self.ctx.extras["compliance_error"] = str(exc)
        return found if isinstance(found, CaseStore) else None

    @property
    def kyc(self) -> KycReviews:
        """The manual KYC reviews shared with the portal (``ctx.extras["kyc_reviews"]``)."""
        return KycPages(self.ctx, self.web).reviews

    # -- routes
    def routes(self, *pages: object) -> list[BaseRoute]:
        """Every route of :data:`~exchange_framework.admin.policy.ROUTES`, each handler found on one of ``pages``
        and wrapped so that only the roles of its action get in (anonymous visitors go to the login page)."""
        built: list[BaseRoute] = []
        for route in ROUTES:
            found = [getattr(p, route.handler) for p in pages if hasattr(p, route.handler)]
            if len(found) != 1:
                raise RuntimeError(f"{len(found)} handlers named {route.handler!r} for {route.method} {route.path}")
            handler = found[0]
            roles = sorted(ACTIONS[route.action])
            built.append(Route(route.path, self.web.endpoint(handler, roles=roles), methods=[route.method]))
        return built

    # -- pages
    def operator(self, request: Request) -> UserInfo:
        """The logged-in operator (the route's role check has already passed)."""
        return self.web.require_user(request)

    def render(self, request: Request, template: str, values: Mapping[str, Any] | None = None) -> Response:
        """Render an admin page with the navigation the operator's role allows."""
        user = self.operator(request)
        nav = [(path, title) for path, title, action in NAV if allowed(user.role, action)]
        context = {
            "nav": nav,
            "plugin_pages": self.plugin_pages,
            "can": lambda action: allowed(user.role, action),
            "active": request.url.path,
            **(values or {}),
        }
        return self.web.render(request, template, context)

    # -- auditing actions
    def record(
        self, operator: UserInfo, request: Request, action: str, target: str, details: Mapping[str, Any]
    ) -> None:
        """Append an operator action to the audit log; raise :class:`AuditUnavailable` if it cannot be written."""
        log = self.audit_log
        if log is None:
            why = self.ctx.extras.get("audit_error") or "check the exchange's start-up log and the [audit] path"
            raise AuditUnavailable(f"The audit log is not open, so nothing was done ({why}). Fix it, then try again.")
        try:
            log.append(
                actor=operator.email,
                action=action,
                target=target,
                details={**details, "role": operator.role, "ip": self.web.client_ip(request)},
            )
        except Exception as exc:  # any failure to record refuses the action (design invariant 7)
            _log.error("audit append failed for %s by %s: %s", action, operator.email, exc)
            raise AuditUnavailable(
                f"The audit log could not record this action, so nothing was done ({exc}). Check the disk and run "
                "`exchange audit verify`, then try again."
            ) from None

    async def perform(
        self,
        request: Request,
        *,
        action: str,
        target: str,
        details: Mapping[str, Any],
        do: Action,
        back: str,
    ) -> Response:
        """Audit ``action``, then run ``do`` (which returns the success message) and redirect to ``back``.

        An :class:`ActionRefused` (or a service's ``ValueError``) from ``do`` is audited as ``<action>.refused``, any
        other exception as ``<action>.failed``; both are shown as an error on ``back``.
        """
        operator = self.operator(request)
        self.record(operator, request, action, target, details)
        try:
            message = await do()
        except ValueError as exc:
            reason = str(exc)
            try:
                self.record(operator, request, f"{action}.refused", target, {"reason": reason})
            except AuditUnavailable:
                _log.error("could not audit the refusal of %s on %s: %s", action, target, reason)
            return self.web.redirect(request, back, _sentence(reason), "error")
        except Exception as exc:  # a node, signer or database fault: record it and say what to check
            _log.exception("%s on %s failed", action, target)
            failure = f"{type(exc).__name__}: {exc}"
            try:
                self.record(operator, request, f"{action}.failed", target, {"error": failure})
            except AuditUnavailable:
                _log.error("could not audit the failure of %s on %s: %s", action, target, failure)
            return self.web.redirect(
                request,
                back,
                f"The action failed ({failure}). It may or may not have taken effect: reload the page to see the "
                "current state before trying again.",
                "error",
            )
        return self.web.redirect(request, back, message, "success")

    def refuse(self, request: Request, back: str, message: str) -> Response:
        """Send a form that could not be read back to ``back`` with ``message`` (nothing was attempted)."""
        return self.web.redirect(request, back, message, "error")


def plugin_page(fn: Handler, *, name: str, roles: Iterable[str] = OPERATOR_ROLES) -> Handler:
    """Wrap a plugin's admin page handler (for a route from ``register_routes``) as the console's own pages are.

    Only logged-in accounts with one of ``roles`` get in (others: the login page or 403), and every request is
    appended to the audit log as ``admin.plugin.<name>`` (method, path, query) before ``fn`` runs: if it cannot be
    recorded, ``fn`` does not run (fail closed). ``fn`` gets the request; a form post must still be read with
    ``Web.of(request.app.state.api).form(request)`` (the CSRF check).
    """
    allowed_roles = tuple(roles)

    async def audited(request: Request) -> Response:
        console = request.app.state.api.extras["admin"]
        assert isinstance(console, AdminConsole)
        operator = console.operator(request)
        details = {"method": request.method, "path": request.url.path, "query": request.url.query}
        console.record(operator, request, f"admin.plugin.{name}", request.url.path, details)
        return await fn(request)

    async def handler(request: Request) -> Response:
        web = Web.of(request.app.state.api)
        return await web.endpoint(audited, roles=allowed_roles)(request)

    handler.__name__ = getattr(fn, "__name__", "plugin_page")
    handler.__doc__ = fn.__doc__
    return handler


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "The action was refused; nothing was changed."
    if "@" not in text.split(" ", 1)[0]:  # an e-mail address keeps its case
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
