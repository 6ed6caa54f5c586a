"""Wallet pages: balances, per-asset deposit address (with QR code) and deposits by stage, withdrawals, whitelist.

The pages call the :class:`~exchange_framework.wallet.WalletService` in ``ctx.extras["wallet"]``; without one they
show balances and say that deposits and withdrawals are not configured. A withdrawal needs two-factor
authentication on, and its current code.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exchange_framework.api.context import ApiContext
from exchange_framework.portal.twofactor import TotpChecker, qr_svg
from exchange_framework.wallet import DepositView, WalletError, WalletService, WithdrawalStage
from exchange_framework.web import Form, FormError, NotFound, Web

__all__ = ["DEPOSIT_STAGES", "WITHDRAWAL_STAGES", "WalletPages"]

# What each stage means to a customer, in words that say whether they need to do anything.
DEPOSIT_STAGES = {
    "seen": "Seen on the network; waiting for its first confirmation.",
    "confirming": "Confirming on the network; it is credited automatically at the required confirmations.",
    "screening": "Confirmed; a routine compliance check is running. No action needed.",
    "credited": "Credited to your balance.",
    "held": "Held for review by our compliance team; we will contact you if we need anything.",
    "rejected": "Rejected by compliance review; contact support.",
    "orphaned": "Dropped by a network reorganisation; if you sent it again it will show as a new deposit.",
}
WITHDRAWAL_STAGES = {
    WithdrawalStage.REQUESTED: "Requested; the amount is held from your balance.",
    WithdrawalStage.SCREENING: "A routine compliance check is running.",
    WithdrawalStage.TRAVEL_RULE: "Waiting for the receiving platform to confirm the beneficiary (travel rule).",
    WithdrawalStage.AWAITING_APPROVAL: "Waiting for operator approval.",
    WithdrawalStage.APPROVED: "Approved; being signed.",
    WithdrawalStage.SIGNED: "Signed; being sent to the network.",
    WithdrawalStage.BROADCAST: "Sent to the network; confirming.",
    WithdrawalStage.COMPLETED: "Completed.",
    WithdrawalStage.REJECTED: "Rejected; the held amount was returned to your balance.",
    WithdrawalStage.FAILED: "Could not be sent; the held amount was returned to your balance.",
    WithdrawalStage.CANCELLED: "Cancelled; the held amount was returned to your balance.",
}
CANCELLABLE = frozenset(
    {
        WithdrawalStage.REQUESTED,
        WithdrawalStage.SCREENING,
        WithdrawalStage.TRAVEL_RULE,
        WithdrawalStage.AWAITING_APPROVAL,
    }
)


def deposit_progress(deposit: DepositView) -> dict[str, Any]:
    """A deposit with what the page shows: the stage's explanation and "n of N confirmations"."""
    needed = max(deposit.required_confirmations, 0)
    shown = min(deposit.confirmations, needed) if needed else deposit.confirmations
    return {
        "d": deposit,
        "explain": DEPOSIT_STAGES.get(deposit.stage, deposit.stage),
        "confirmations": f"{shown} of {needed} confirmations" if needed else f"{deposit.confirmations} confirmations",
        "percent": 100 if not needed else min(100, deposit.confirmations * 100 // needed),
    }


class WalletPages:
    """Handlers for the wallet pages."""

    def __init__(self, ctx: ApiContext, web: Web, totp: TotpChecker) -> None:
        self.ctx = ctx
        self.web = web
        self.totp = totp

    @property
    def service(self) -> WalletService | None:
        """The wallet service, if the app has one."""
        found = self.ctx.extras.get("wallet")
        return found if isinstance(found, WalletService) else None

    def routes(self) -> list[BaseRoute]:
        """The wallet routes."""
        e = self.web.endpoint
        return [
            Route("/wallet", e(self.overview, login=True), methods=["GET"], name="wallet"),
            Route("/wallet/withdrawals", e(self.history, login=True), methods=["GET"], name="withdrawals"),
            Route(
                "/wallet/withdrawals/{withdrawal_id:int}/cancel", e(self.cancel, login=True), methods=["POST"],
                name="cancel_withdrawal",
            ),
            Route("/wallet/whitelist", e(self.whitelist_page, login=True), methods=["GET"], name="whitelist"),
            Route("/wallet/whitelist", e(self.whitelist_add, login=True), methods=["POST"]),
            Route("/wallet/whitelist/{entry_id:int}/remove", e(self.whitelist_remove, login=True), methods=["POST"]),
            Route("/wallet/{asset}", e(self.asset, login=True), methods=["GET"], name="wallet_asset"),
            Route("/wallet/{asset}/withdraw", e(self.withdraw, login=True), methods=["POST"], name="withdraw"),
        ]  # fmt: skip

    def _need_service(self) -> WalletService:
        service = self.service
        if service is None:
            raise NotFound("Deposits and withdrawals are not configured on this exchange.")
        return service

    def _balances(self, account: int) -> list[tuple[str, str, str]]:
        held = self.ctx.node.balances.balances(account)
        return [
            (asset, self.ctx.units.amount(asset, held.get(asset, (0, 0))[0]),
             self.ctx.units.amount(asset, held.get(asset, (0, 0))[1]))
            for asset in sorted(self.ctx.node.assets)
        ]  # fmt: skip

    async def overview(self, request: Request) -> Response:
        user = self.web.require_user(request)
        service = self.service
        values: dict[str, Any] = {
            "balances": self._balances(user.id),
            "configured": service is not None,
            "depositable": service.assets() if service is not None else {},
            "deposits": [deposit_progress(d) for d in service.deposits(user.id, limit=20)] if service else [],
            "withdrawals": service.withdrawals(user.id, limit=10) if service else [],
            "stages": WITHDRAWAL_STAGES,
        }
        return self.web.render(request, "wallet.html", values)

    def _asset_name(self, request: Request, service: WalletService) -> str:
        asset = str(request.path_params["asset"]).upper()
        if asset not in service.assets():
            raise NotFound(f"{asset} cannot be deposited or withdrawn here: pick an asset from your wallet.")
        return asset

    async def asset(self, request: Request) -> Response:
        user = self.web.require_user(request)
        service = self._need_service()
        asset = self._asset_name(request, service)
        return self._asset_page(request, user.id, user.has_totp, service, asset, error=None)

    def _asset_page(
        self, request: Request, account: int, has_totp: bool, service: WalletService, asset: str, *,
        error: str | None, status: int = 200, values: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        chains = service.assets()[asset]
        chain = request.query_params.get("chain") or chains[0]
        if chain not in chains:
            chain = chains[0]
        address, memo = service.deposit_address(account, asset, chain)
        avail, held = self.ctx.node.balances.balances(account).get(asset, (0, 0))
        page = {
            "asset": asset,
            "chain": chain,
            "chains": chains,
            "address": address,
            "memo": memo,
            "qr": qr_svg(address),
            "available": self.ctx.units.amount(asset, avail) if asset in self.ctx.node.assets else "0",
            "held": self.ctx.units.amount(asset, held) if asset in self.ctx.node.assets else "0",
            "deposits": [deposit_progress(d) for d in service.deposits(account, asset=asset)],
            "whitelist": [w for w in service.whitelist(account) if w.asset == asset],
            "now_ms": self.ctx.now_ms(),
            "withdrawals": [w for w in service.withdrawals(account) if w.asset == asset],
            "stages": WITHDRAWAL_STAGES,
            "cancellable": CANCELLABLE,
            "has_totp": has_totp,
            "error": error,
            "values": values or {},
        }
        return self.web.render(request, "wallet_asset.html", page, status=status)

    async def withdraw(self, request: Request) -> Response:
        user = self.web.require_user(request)
        service = self._need_service()
        asset = self._asset_name(request, service)
        form = Form(await self.web.form(request))
        values = {"amount": form.text("amount", max_length=60), "entry": form.text("entry", max_length=20)}
        try:
            secret = self.ctx.identity.totp_secret(user.id)
            if secret is None:
                raise FormError(
                    "Withdrawals need two-factor authentication: turn it on under Account > Two-factor, then try again."
                )
            entry_id = form.integer("entry", label="whitelisted address")
            entry = next((w for w in service.whitelist(user.id) if w.id == entry_id and w.asset == asset), None)
            if entry is None:
                raise FormError("Choose one of your whitelisted addresses for this asset, or whitelist one first.")
            amount = form.text("amount", required=True, max_length=60)
            if not self.totp.check(user.id, secret, form.text("code")):
                raise FormError("That two-factor code is not right: enter the current code from your app.")
            withdrawal = await service.request_withdrawal(
                user.id,
                asset=asset,
                amount=amount,
                address=entry.address,
                chain=entry.chain,
                memo=entry.memo,
                beneficiary_name=form.text("beneficiary_name", max_length=140),
                beneficiary_vasp=form.text("beneficiary_vasp", max_length=140),
            )
        except (FormError, WalletError) as exc:
            return self._asset_page(
                request, user.id, user.has_totp, service, asset, error=str(exc), status=400, values=values
            )
        if withdrawal.stage in (WithdrawalStage.REJECTED, WithdrawalStage.FAILED):
            why = "; ".join(withdrawal.reasons) or withdrawal.stage.value
            message = f"Withdrawal {withdrawal.id} was refused ({why}); nothing left your balance."
            return self.web.redirect(request, f"/wallet/{asset}", message, "error")
        stage = withdrawal.stage.value
        message = f"Withdrawal {withdrawal.id} of {withdrawal.amount} {asset} requested; stage: {stage}."
        return self.web.redirect(request, f"/wallet/{asset}", message, "success")

    async def cancel(self, request: Request) -> Response:
        user = self.web.require_user(request)
        service = self._need_service()
        await self.web.form(request)
        withdrawal_id = int(request.path_params["withdrawal_id"])
        if not any(w.id == withdrawal_id for w in service.withdrawals(user.id)):
            raise NotFound("No such withdrawal on your account: reload your withdrawal history.")
        try:
            view = await service.cancel_withdrawal(user.id, withdrawal_id)
        except WalletError as exc:
            return self.web.redirect(request, "/wallet/withdrawals", str(exc), "error")
        return self.web.redirect(request, "/wallet/withdrawals", f"Withdrawal {view.id} cancelled.", "success")

    async def history(self, request: Request) -> Response:
        user = self.web.require_user(request)
        service = self._need_service()
        values = {"withdrawals": service.withdrawals(user.id), "stages": WITHDRAWAL_STAGES, "cancellable": CANCELLABLE}
        return self.web.render(request, "withdrawals.html", values)

    async def whitelist_page(self, request: Request) -> Response:
        user = self.web.require_user(request)
        service = self._need_service()
        return self._whitelist(request, user.id, service, error=None)

    def _whitelist(
        self, request: Request, account: int, service: WalletService, *, error: str | None, status: int = 200,
        values: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        page = {
            "entries": service.whitelist(account),
            "assets": service.assets(),
            "now_ms": self.ctx.now_ms(),
            "error": error,
            "values": values or {},
        }
        return self.web.render(request, "whitelist.html", page, status=status)

    async def whitelist_add(self, request: Request) -> Response:
        user = self.web.require_user(request)
        service = self._need_service()
        form = Form(await self.web.form(request))
        values = {name: form.text(name, max_length=200) for name in ("asset", "chain", "address", "memo", "label")}
        try:
            asset = form.text("asset", required=True, max_length=16).upper()
            entry = service.add_to_whitelist(
                user.id, asset=asset, address=form.text("address", required=True, max_length=200),
                chain=values["chain"] or None, memo=values["memo"], label=form.text("label", max_length=80),
            )  # fmt: skip
        except (FormError, WalletError) as exc:
            return self._whitelist(request, user.id, service, error=str(exc), status=400, values=values)
        return self.web.redirect(
            request, "/wallet/whitelist", f"{entry.address} whitelisted for {entry.asset}; usable from the time shown.",
            "success",
        )  # fmt: skip

    async def whitelist_remove(self, request: Request) -> Response:
        user = self.web.require_user(request)
        service = self._need_service()
        await self.web.form(request)
        entry_id = int(request.path_params["entry_id"])
        if not any(w.id == entry_id for w in service.whitelist(user.id)):
            raise NotFound("No such whitelisted address on your account: reload the whitelist.")
        try:
            service.remove_from_whitelist(user.id, entry_id)
        except WalletError as exc:
            return self.web.redirect(request, "/wallet/whitelist", str(exc), "error")
        return self.web.redirect(request, "/wallet/whitelist", "Address removed from your whitelist.", "success")
