"""Admin pages about people: the dashboard, user lookup and detail, role changes, and the manual KYC queue."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from exchange_framework.admin.console import ActionRefused, AdminConsole
from exchange_framework.compliance import CaseStatus
from exchange_framework.funding.store import OPEN_STAGES, Stage
from exchange_framework.identity import UserInfo
from exchange_framework.identity.store import ROLES
from exchange_framework.portal.kyc import KycError, onboarding_gate
from exchange_framework.portal.wallet import WITHDRAWAL_STAGES
from exchange_framework.types import MarketStatus
from exchange_framework.wallet import WithdrawalStage
from exchange_framework.web import Form, FormError, NotFound

__all__ = ["PeoplePages"]

SEARCH_SCAN_LIMIT = 10_000  # users scanned for a partial e-mail match
STUCK_AFTER_NS = 3600 * 10**9  # a deposit in an open stage unchanged for this long is counted as stuck


class PeoplePages:
    """Dashboard, users and KYC review."""

    def __init__(self, console: AdminConsole) -> None:
        self.console = console
        self.ctx = console.ctx
        self.web = console.web

    # -- dashboard
    async def dashboard(self, request: Request) -> Response:
        """Counts of what waits for someone, and every market's status."""
        wallet = self.console.wallet
        deposit_stages: list[tuple[str, int, int]] = []
        counts: dict[str, int | None] = {
            "kyc": len(self.console.kyc.submissions(status="pending", limit=100_000)),
            "approvals": None,
            "screening": None,
            "held_deposits": None,
            "alerts": None,
            "cases": None,
        }
        cases = self.console.cases
        if cases is not None:
            counts["cases"] = sum(n for status, n in cases.counts().items() if status is not CaseStatus.CLOSED)
        if wallet is not None:
            counts["approvals"] = len(wallet.withdrawals(stage=WithdrawalStage.AWAITING_APPROVAL, limit=100_000))
            counts["screening"] = len(wallet.withdrawals(stage=WithdrawalStage.SCREENING, limit=100_000))
            counts["held_deposits"] = wallet.deposit_store.stage_counts()[Stage.HELD]
            counts["alerts"] = len(wallet.deposit_store.alerts(limit=1000))
            store = wallet.deposit_store
            stuck_before = self.ctx.now_ms() * 1_000_000 - STUCK_AFTER_NS
            by_stage = store.stage_counts()
            stuck = store.stage_counts(updated_before_ns=stuck_before)
            deposit_stages = [
                (stage.value, by_stage[stage], stuck[stage] if stage in OPEN_STAGES else 0) for stage in Stage
            ]
        markets = [(symbol, self._status_of(symbol)) for symbol in sorted(self.ctx.node.markets)]
        values = {
            "counts": counts,
            "markets": markets,
            "deposit_stages": deposit_stages,
            "stuck_hours": STUCK_AFTER_NS // 3600 // 10**9,
        }
        return self.console.render(request, "admin/dashboard.html", values)

    def _status_of(self, market: str) -> str:
        """A market's status as the market data shows it: open, halted or closed."""
        status: MarketStatus = self.ctx.market_data.status(market)
        return status.name.lower()

    # -- users
    async def users(self, request: Request) -> Response:
        """Search users by account number or (part of) their e-mail address."""
        query = request.query_params.get("q", "").strip()
        found: list[UserInfo] = []
        identity = self.ctx.identity
        if query.isdigit():
            user = identity.user(int(query))
            found = [user] if user else []
        elif query:
            needle = query.lower()
            offset = 0
            while offset < SEARCH_SCAN_LIMIT and len(found) < 100:
                page = identity.users(offset=offset, limit=500)
                found.extend(u for u in page if needle in u.email)
                if len(page) < 500:
                    break
                offset += 500
            found = found[:100]
        else:
            found = identity.users(limit=100)
        return self.console.render(request, "admin/users.html", {"query": query, "found": found})

    async def user_detail(self, request: Request) -> Response:
        """One user: balances, open orders, deposits and withdrawals with their stages, sessions, KYC."""
        account = int(request.path_params["account"])
        user = self.ctx.identity.user(account)
        if user is None:
            raise NotFound(f"There is no user with account {account}: search the users page by e-mail instead.")
        units = self.ctx.units
        held = self.ctx.node.balances.balances(account)
        balances = [
            (asset, units.amount(asset, held.get(asset, (0, 0))[0]), units.amount(asset, held.get(asset, (0, 0))[1]))
            for asset in sorted(self.ctx.node.assets)
        ]
        orders: list[dict[str, Any]] = []
        for order in self.ctx.node.orders.open_orders(account):
            market = units.symbol(order.market)
            orders.append(
                {
                    "id": order.order_id,
                    "market": order.market,
                    "side": order.side.name.lower(),
                    "type": order.type.name.lower().replace("_", " "),
                    "price": market.price(order.price) if order.price else "market",
                    "qty": market.qty(order.orig_qty),
                    "filled": market.qty(order.executed_qty),
                    "status": str(order.status).replace("_", " ").lower(),
                }
            )
        wallet = self.console.wallet
        values = {
            "subject": user,
            "balances": balances,
            "orders": orders,
            "deposits": wallet.deposits(account, limit=50) if wallet is not None else [],
            "withdrawals": wallet.withdrawals(account, limit=50) if wallet is not None else [],
            "wallet_configured": wallet is not None,
            "stages": WITHDRAWAL_STAGES,
            "sessions": self.ctx.identity.sessions(account),
            "kyc": self.console.kyc.latest(account),
            "roles": ROLES,
        }
        gate = onboarding_gate(self.ctx)  # frozen or held by onboarding screening, and the case that does it
        values["standing"] = (await asyncio.to_thread(gate.standing, account)).value
        values["standing_case"] = await asyncio.to_thread(gate.blocking_case, account)
        return self.console.render(request, "admin/user.html", values)

    async def set_role(self, request: Request) -> Response:
        """An administrator changes a user's role."""
        operator = self.console.operator(request)
        account = int(request.path_params["account"])
        back = f"/admin/users/{account}"
        form = Form(await self.web.form(request))
        try:
            role = form.choice("role", ROLES, label="role")
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        user = self.ctx.identity.user(account)
        if user is None:
            return self.console.refuse(request, "/admin/users", f"There is no user with account {account}.")

        async def do() -> str:
            if user.id == operator.id:
                raise ActionRefused("you cannot change your own role: ask another administrator")
            if user.role == role:
                raise ActionRefused(f"{user.email} already has the role {role}")
            self.ctx.identity.set_role(account, role)
            return f"{user.email} is now {role}."

        details = {"from": user.role, "to": role}
        return await self.console.perform(
            request, action="admin.user.role", target=f"account:{account}", details=details, do=do, back=back
        )

    # -- KYC
    async def kyc_queue(self, request: Request) -> Response:
        """Pending KYC submissions, oldest first, and the latest decisions."""
        reviews = self.console.kyc
        pending = reviews.submissions(status="pending", limit=200)
        decided = [s for s in reviews.submissions(limit=10_000) if s.status != "pending"][-20:][::-1]
        emails = {s.account: (u.email if (u := self.ctx.identity.user(s.account)) else "?") for s in pending + decided}
        return self.console.render(
            request, "admin/kyc.html", {"pending": pending, "decided": decided, "emails": emails}
        )

    async def kyc_decide(self, request: Request) -> Response:
        """Approve a submission (tier 1 or more) or reject it with a reason the customer can act on."""
        operator = self.console.operator(request)
        submission_id = int(request.path_params["submission"])
        back = "/admin/kyc"
        form = Form(await self.web.form(request))
        try:
            decision = form.choice("decision", ("approve", "reject"), label="decision")
            tier = form.integer("tier", label="tier") if decision == "approve" and form.text("tier") else 1
            note = form.text("note", label="reason", required=decision == "reject", max_length=500)
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        reviews = self.console.kyc
        submission = reviews.get(submission_id)
        if submission is None:
            return self.console.refuse(request, back, f"There is no KYC submission {submission_id}.")

        async def do() -> str:
            try:
                gate = onboarding_gate(self.ctx)
                decided = await asyncio.to_thread(
                    reviews.decide,
                    submission_id,
                    approve=decision == "approve",
                    operator=operator.email,
                    tier=tier,
                    note=note,
                    gate=gate,
                )
            except KycError as exc:
                raise ActionRefused(str(exc)) from None
            held = await asyncio.to_thread(gate.blocking_case, decided.account)
            if decided.status == "approved" and held is not None:
                return (
                    f"KYC submission {submission_id} approved, but account {decided.account} stays at its tier: "
                    f"onboarding case {held.id} must be cleared first (Alerts & cases)."
                )
            if decided.status == "approved":
                return f"KYC submission {submission_id} approved: account {decided.account} is now tier {tier}."
            return f"KYC submission {submission_id} rejected."

        details: dict[str, Any] = {"account": submission.account, "note": note}
        if decision == "approve":
            details["tier"] = tier
        return await self.console.perform(
            request,
            action=f"admin.kyc.{decision}",
            target=f"kyc:{submission_id}",
            details=details,
            do=do,
            back=back,
        )
