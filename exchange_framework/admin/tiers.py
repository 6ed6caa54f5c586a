"""Admin action on custody tier sweeps: a custody officer approves or denies a proposed sweep (docs/custody-tiers.md).

The custody page (:mod:`exchange_framework.admin.funds`) shows the bands and proposals; this records the decision,
audited as an admin action and again by the sweeper as a custody action, for the running exchange to hand to the
custody policy engine. Ceremony proposals (cold -> warm) are refused: only the cold-vault ceremony moves cold.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from exchange_framework.admin.console import ActionRefused, AdminConsole
from exchange_framework.custody.tiers_sweeps import SweepError
from exchange_framework.web import Form, FormError, NotFound

__all__ = ["TierPages"]

NO_TIERS = "Custody tier planning is not running on this exchange (it needs a [custody] policy and a chain plugin)."


class TierPages:
    """The sweep decision form's handler."""

    def __init__(self, console: AdminConsole) -> None:
        self.console = console
        self.ctx = console.ctx
        self.web = console.web

    async def sweep_decision(self, request: Request) -> Response:
        """Approve or deny (with a note) a proposed sweep; the policy engine then decides as for a withdrawal."""
        planner = self.ctx.extras.get("tiers")
        if planner is None:
            raise NotFound(NO_TIERS)
        operator = self.console.operator(request)
        sweep_id = int(request.path_params["sweep"])
        back = "/admin/custody"
        form = Form(await self.web.form(request))
        try:
            decision = form.choice("decision", ("approve", "deny"), label="decision")
            note = form.text("note", label="note", required=decision == "deny", max_length=500)
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        row = planner.sweeper.store.sweep(sweep_id)
        if row is None:
            return self.console.refuse(request, back, f"There is no sweep {sweep_id}.")

        async def do() -> str:
            try:
                planner.sweeper.record_decision(
                    sweep_id, operator=operator.email, approve=decision == "approve", note=note
                )
            except SweepError as exc:
                raise ActionRefused(str(exc)) from None
            return f"Your {'approval' if decision == 'approve' else 'denial'} of sweep {sweep_id} is recorded."

        details = {
            "asset": row.asset,
            "chain": row.chain,
            "source": row.source.value,
            "destination": row.destination.value,
            "amount": row.amount,
            "note": note,
        }
        return await self.console.perform(
            request, action=f"admin.sweep.{decision}", target=f"sweep:{sweep_id}", details=details, do=do, back=back
        )
