"""Admin pages about money moving: withdrawal approvals and screening holds, held deposits, custody balances."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from exchange_framework.admin.console import ActionRefused, AdminConsole
from exchange_framework.compliance import Subject
from exchange_framework.custody.rules import Tier
from exchange_framework.custody.tiers_store import OPEN_STAGES, SweepStage
from exchange_framework.funding.store import Stage
from exchange_framework.interfaces import CustodyBalance
from exchange_framework.ledger.reconcile import reconcile
from exchange_framework.plugins import collect_registered
from exchange_framework.portal.wallet import WITHDRAWAL_STAGES
from exchange_framework.wallet import WalletError, WithdrawalStage
from exchange_framework.wallet.custody import custody_report
from exchange_framework.web import Form, FormError, NotFound

__all__ = ["FundsPages"]

SHOWN_SWEEP_STAGES = OPEN_STAGES | {SweepStage.PROPOSED, SweepStage.CEREMONY}  # on the custody page
NO_WALLET = "Deposits and withdrawals are not configured on this exchange (no chain plugin is enabled)."


class FundsPages:
    """Withdrawals, held deposits and custody."""

    def __init__(self, console: AdminConsole) -> None:
        self.console = console
        self.ctx = console.ctx
        self.web = console.web

    def _wallet(self) -> Any:
        wallet = self.console.wallet
        if wallet is None:
            raise NotFound(NO_WALLET)
        return wallet

    # -- withdrawals
    async def withdrawals(self, request: Request) -> Response:
        """Withdrawals awaiting k-of-n approval, those held by screening, and the latest of all."""
        wallet = self.console.wallet
        values: dict[str, Any] = {"configured": wallet is not None, "stages": WITHDRAWAL_STAGES}
        if wallet is not None:
            values["awaiting"] = wallet.withdrawals(stage=WithdrawalStage.AWAITING_APPROVAL, limit=500)
            values["screening"] = wallet.withdrawals(stage=WithdrawalStage.SCREENING, limit=500) + wallet.withdrawals(
                stage=WithdrawalStage.TRAVEL_RULE, limit=500
            )  # a travel rule hold (e.g. an unhosted wallet) is cleared or rejected the same way
            values["recent"] = wallet.withdrawals(limit=50)
            values["emails"] = self._emails(values["awaiting"] + values["screening"] + values["recent"])
            values["signer_error"] = wallet.signer_error
        return self.console.render(request, "admin/withdrawals.html", values)

    def _emails(self, items: list[Any]) -> dict[int, str]:
        emails: dict[int, str] = {}
        for item in items:
            if item.account not in emails:
                user = self.ctx.identity.user(item.account)
                emails[item.account] = user.email if user else "?"
        return emails

    async def withdrawal_approval(self, request: Request) -> Response:
        """A custody officer's approval or denial of a withdrawal awaiting k-of-n approval (a denial rejects it)."""
        return await self._decide_withdrawal(request, WithdrawalStage.AWAITING_APPROVAL, ("approve", "deny"))

    async def withdrawal_screening(self, request: Request) -> Response:
        """A compliance officer clears a screening or travel rule hold (the withdrawal goes on) or rejects it (funds
        released)."""
        return await self._decide_withdrawal(request, WithdrawalStage.SCREENING, ("clear", "reject"))

    async def _decide_withdrawal(self, request: Request, stage: WithdrawalStage, choices: tuple[str, str]) -> Response:
        operator = self.console.operator(request)
        wallet = self._wallet()
        withdrawal_id = int(request.path_params["withdrawal"])
        back = "/admin/withdrawals"
        form = Form(await self.web.form(request))
        try:
            decision = form.choice("decision", choices, label="decision")
            note = form.text("note", label="note", required=decision == choices[1], max_length=500)
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        found = self._find_withdrawal(wallet, withdrawal_id, stage)
        if found is None:
            return self.console.refuse(request, back, f"There is no withdrawal {withdrawal_id}.")
        approve = decision == choices[0]

        async def do() -> str:
            current = self._find_withdrawal(wallet, withdrawal_id, stage, account=found.account) or found
            if approve:
                self._refuse_if_frozen(Subject.WITHDRAWAL, str(withdrawal_id), f"withdrawal {withdrawal_id}")
            if current.stage is not stage and not (
                stage is WithdrawalStage.SCREENING and current.stage is WithdrawalStage.TRAVEL_RULE
            ):
                what = "approval" if stage is WithdrawalStage.AWAITING_APPROVAL else "a screening decision"
                raise ActionRefused(
                    f"withdrawal {withdrawal_id} is {current.stage.value.replace('_', ' ')}, not waiting for {what}: "
                    "reload the page to see its stage"
                )
            try:
                view = await wallet.approve_withdrawal(
                    withdrawal_id, operator=operator.email, approve=approve, note=note
                )
            except WalletError as exc:
                raise ActionRefused(str(exc)) from None
            shown = view.stage.value.replace("_", " ")
            if view.stage is WithdrawalStage.AWAITING_APPROVAL:
                return (
                    f"Withdrawal {withdrawal_id}: {len(view.approvals)} of {view.required_approvals} approvals; "
                    "it waits for another operator."
                )
            return f"Withdrawal {withdrawal_id} is now {shown}."

        kind = "approval" if stage is WithdrawalStage.AWAITING_APPROVAL else "screening"
        action = f"admin.withdrawal.{kind}.{decision}"
        details = {
            "account": found.account,
            "asset": found.asset,
            "amount": found.amount,
            "address": found.address,
            "chain": found.chain,
            "stage": found.stage.value,
            "note": note,
            "approvals_before": list(found.approvals),
            "required_approvals": found.required_approvals,
        }
        return await self.console.perform(
            request, action=action, target=f"withdrawal:{withdrawal_id}", details=details, do=do, back=back
        )

    def _refuse_if_frozen(self, subject: Subject, reference: str, what: str) -> None:
        """Refuse to let funds move while a compliance case freezes them (a sanctions hit not cleared)."""
        cases = self.console.cases
        case = cases.frozen_case(subject, reference) if cases is not None else None
        if case is not None:
            raise ActionRefused(
                f"{what} is frozen by compliance case {case.id} (a sanctions hit): a compliance officer must close "
                "that case as cleared first; until then it can only be denied or rejected"
            )

    @staticmethod
    def _find_withdrawal(wallet: Any, withdrawal_id: int, stage: WithdrawalStage, *, account: int | None = None) -> Any:
        """The withdrawal's current view: looked for among those in ``stage`` first (the usual case), then all."""
        for candidates in (
            wallet.withdrawals(account, stage=stage, limit=10_000),
            wallet.withdrawals(account, limit=100_000),
        ):
            found = next((w for w in candidates if w.id == withdrawal_id), None)
            if found is not None:
                return found
        return None

    # -- held deposits
    async def deposits(self, request: Request) -> Response:
        """Deposits held for review (screening or a missing account), with their reasons."""
        wallet = self.console.wallet
        values: dict[str, Any] = {"configured": wallet is not None}
        if wallet is not None:
            held = wallet.deposit_store.deposits(stage=Stage.HELD, limit=500)
            values["held"] = [(d, self.ctx.units.amount(d.asset, d.amount)) for d in held]
            values["emails"] = self._emails([d for d in held if d.account > 0])
        return self.console.render(request, "admin/deposits.html", values)

    async def deposit_decide(self, request: Request) -> Response:
        """Credit a held deposit (optionally to a named account when its memo matched none) or reject it."""
        wallet = self._wallet()
        back = "/admin/deposits"
        form = Form(await self.web.form(request))
        try:
            decision = form.choice("decision", ("credit", "reject"), label="decision")
            chain = form.text("chain", label="chain", required=True)
            txid = form.text("txid", label="transaction id", required=True, max_length=200)
            index = int(form.text("index", label="output index", required=True))
            note = form.text("note", label="note", required=True, max_length=500)
            account_text = form.text("account", label="account")
            account = int(account_text) if account_text else None
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        except ValueError:
            return self.console.refuse(request, back, "The output index and account must be whole numbers.")
        tracker = wallet.trackers.get(chain)
        deposit = wallet.deposit_store.deposit(chain, txid, index)
        if tracker is None or deposit is None:
            return self.console.refuse(request, back, f"There is no deposit {txid}:{index} on {chain}.")
        if account is not None and self.ctx.identity.user(account) is None:
            return self.console.refuse(request, back, f"There is no user with account {account}: check the number.")

        async def do() -> str:
            if decision == "credit":
                reference = f"{chain}:{txid}:{deposit.address}"  # how screening names a deposit's case
                self._refuse_if_frozen(Subject.DEPOSIT, reference, f"deposit {txid}:{index}")
            try:
                done = await asyncio.to_thread(
                    tracker.resolve_held, txid, index, approve=decision == "credit", note=note, account=account
                )
            except ValueError as exc:
                raise ActionRefused(str(exc)) from None
            return f"Deposit {txid}:{index} on {chain} is now {done.stage.value}."

        details = {
            "chain": chain,
            "account": account if account is not None else deposit.account,
            "asset": deposit.asset,
            "amount": deposit.amount,
            "note": note,
        }
        return await self.console.perform(
            request,
            action=f"admin.deposit.{decision}",
            target=f"deposit:{chain}:{txid}:{index}",
            details=details,
            do=do,
            back=back,
        )

    # -- custody
    async def custody(self, request: Request) -> Response:
        """The hot wallet key, what each custody tier reports holding (the wallet's own hot and deposit addresses
        on chain included), and the ledger's omnibus accounts reconciled with them account by account."""
        wallet = self.console.wallet
        config = self.ctx.node.config
        assets = sorted(self.ctx.node.assets)
        reports: list[CustodyBalance] = []
        report_error = ""
        try:
            for found in self.ctx.node.pm.hook.custody_balances(config=config, assets=assets):
                reports.extend(found or ())
            if wallet is not None:  # what the wallet's own addresses hold on chain
                reports.extend(
                    await asyncio.to_thread(
                        custody_report,
                        wallet.adapters,
                        deposit_store=wallet.deposit_store,
                        custody_store=wallet.custody_store,
                        assets=assets,
                    )
                )
        except Exception as exc:  # a custody plugin that cannot report: say so, never show partial totals as whole
            report_error = f"{type(exc).__name__}: {exc}"
            reports = []
        totals: dict[str, int] = defaultdict(int)
        for item in reports:
            totals[item.asset] += item.amount
        units = self.ctx.units
        values: dict[str, Any] = {
            "wallet": wallet,
            "hot_key_id": wallet.hot_key_id if wallet is not None else config.wallet.hot_key_id,
            "hot_public_key": wallet.hot_public_key.hex() if wallet is not None else "",
            "signer_error": wallet.signer_error if wallet is not None else "",
            "reports": [(r, units.amount(r.asset, r.amount)) for r in reports],
            "totals": [(asset, units.amount(asset, totals[asset])) for asset in sorted(totals)],
            "report_error": report_error,
        }
        balances, values["omnibus_error"] = await self._ledger_balances()
        values["omnibus"] = None
        values["reconciliation"] = []
        if balances is not None:
            values["omnibus"] = [
                (account, asset, units.amount(asset, amount))
                for (account, asset), amount in sorted(balances.items())
                if account.startswith("omnibus:") and asset in self.ctx.node.assets
            ]
            if not report_error:
                values["reconciliation"] = [
                    (
                        row,
                        units.amount(row.asset, row.ledger),
                        "-" if row.custody is None else units.amount(row.asset, row.custody),
                        units.amount(row.asset, row.difference),
                    )
                    for row in reconcile(balances, reports)
                    if row.asset in self.ctx.node.assets
                ]
        values["tiers"] = self._custody_tiers()
        return self.console.render(request, "admin/custody.html", values)

    async def _ledger_balances(self) -> tuple[dict[tuple[str, str], int] | None, str]:
        """The settled ledger's balances by (account, asset), read through the configured ledger backend as
        ``exchange ledger check`` does, or ``None`` and why not."""
        config = self.ctx.node.config
        try:
            backends = collect_registered(self.ctx.node.pm, "register_ledger_stores", config=config)
            store = backends[config.backends.ledger].open(config)
        except Exception as exc:  # no such backend, or it cannot be opened: say so instead of a page error
            return None, f"{type(exc).__name__}: {exc}"
        try:
            await store.create_schema()
            balances: dict[tuple[str, str], int] = await store.balances()
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            await store.close()
        return balances, ""

    # -- custody tiers (bands, forecast, sweep proposals: docs/custody-tiers.md)
    def _custody_tiers(self) -> dict[str, Any]:
        """The tier planner's latest plan per asset and chain (holdings against bands, forecast, proposed sweeps)
        and the sweep proposals still open, for the custody page; ``configured`` is False without a planner."""
        planner = self.ctx.extras.get("tiers")
        if planner is None:
            return {"configured": False}
        units = self.ctx.units
        assets = []
        for status in planner.last:
            h, p = status.holdings, status.plan
            rows = []
            for tier in (Tier.HOT, Tier.WARM, Tier.COLD):
                low, high = p.bands[tier]
                held = h.of(tier)
                where = "within" if low <= held <= high else ("below" if held < low else "above")
                bp = held * 10_000 // h.total if h.total else 0
                share = f"{bp // 100}.{bp % 100:02d} %" if h.total else "-"
                band = f"{units.amount(h.asset, low)} - {units.amount(h.asset, high)}"
                rows.append((tier.value, units.amount(h.asset, held), share, str(status.bands.band(tier)), band, where))
            sweeps = [
                (s.source.value, s.destination.value, units.amount(h.asset, s.amount), s.ceremony, s.reason)
                for s in p.sweeps
            ]
            forecast = (
                status.forecast.horizon_hours,
                units.amount(h.asset, status.forecast.demand),
                status.forecast.basis,
                units.amount(h.asset, status.pending) if status.pending else "",
            )
            assets.append({"asset": h.asset, "chain": h.chain, "rows": rows, "forecast": forecast, "sweeps": sweeps})
        open_rows = planner.sweeper.store.sweeps(stages=sorted(SHOWN_SWEEP_STAGES), limit=200, oldest_first=True)
        proposals = [(r, units.amount(r.asset, r.amount)) for r in open_rows]
        return {
            "configured": True,
            "assets": assets,
            "proposals": proposals,
            "planned_ns": planner.last_ns,
            "error": planner.last_error,
        }
