"""Travel rule holds in the admin console: a withdrawal the travel rule holds for review (an address no VASP is
known for) is listed with the screening holds; a compliance officer clears it (it goes on to approval) or rejects it
(the funds come back), and both are audited."""

from __future__ import annotations

from exchange_framework.interfaces import Decision, WithdrawalRequest
from exchange_framework.wallet import WithdrawalStage
from tests.admin.conftest import audit_entries, audit_ok, flash
from tests.admin.test_funds import Operator, eth, operator, stage_of, start_withdrawal
from tests.api.conftest import Exchange
from tests.api.test_wallet_api import chain_exchange

__all__ = ["chain_exchange", "operator"]


class UnknownCounterparty:
    """A travel rule provider for which no VASP holds any address: every transfer is held for an operator."""

    name = "test-travel-rule"

    def required(self, withdrawal: WithdrawalRequest) -> bool:
        return True

    def send(self, withdrawal: WithdrawalRequest, originator: object) -> str:
        return f"tr-{withdrawal.withdrawal_id}"

    def status(self, reference: str) -> Decision:
        return Decision.hold("no VASP is known for this address: held for review", provider=self.name)


def test_compliance_clears_or_rejects_a_travel_rule_hold(chain_exchange: Exchange, operator: Operator) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    wallet.travel_rule = (UnknownCounterparty(),)
    officer = operator(ex, "compliance1@example.com", "compliance")
    cleared, _ = start_withdrawal(ex, "1")
    rejected, _ = start_withdrawal(ex, "1")
    assert stage_of(ex, cleared) is WithdrawalStage.TRAVEL_RULE
    page = officer.get("/admin/withdrawals")
    assert "no VASP is known for this address" in page.text and f"/admin/withdrawals/{cleared}/screening" in page.text
    page = officer.act(f"/admin/withdrawals/{cleared}/screening", {"decision": "clear", "note": "owner verified"},
                       page="/admin/withdrawals")  # fmt: skip
    assert flash(page)[0] == "success"
    assert stage_of(ex, cleared) in (WithdrawalStage.REQUESTED, WithdrawalStage.AWAITING_APPROVAL)
    before = eth(ex)
    page = officer.act(f"/admin/withdrawals/{rejected}/screening", {"decision": "reject", "note": "not verified"},
                       page="/admin/withdrawals")  # fmt: skip
    assert flash(page) == ("success", f"Withdrawal {rejected} is now rejected.")
    assert eth(ex) == (before[0] + 10**18, before[1] - 10**18)
    entries = [e for e in audit_entries(ex.server) if e.actor == "compliance1@example.com"]
    assert [e.action for e in entries] == ["admin.withdrawal.screening.clear", "admin.withdrawal.screening.reject"]
    assert all(e.details["stage"] == "travel_rule" for e in entries)
    audit_ok(ex.server)
