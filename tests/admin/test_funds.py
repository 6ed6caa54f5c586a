"""Operator actions on money, on the dev chain with the real wallet: k-of-n withdrawal approvals, denials, screening
holds, held deposits, and the custody page."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import coincurve
import pytest
from exchange_devchain.tx import address_of

from exchange_framework.compliance import FROZEN_REASON, CaseStore, Subject
from exchange_framework.funding.store import Stage
from exchange_framework.interfaces import Decision
from exchange_framework.wallet import WithdrawalStage
from tests.admin.conftest import AdminClient, audit_entries, audit_ok, flash, login
from tests.api.conftest import Exchange
from tests.api.test_wallet_api import chain_exchange, until

__all__ = ["chain_exchange"]


Operator = Callable[[Exchange, str, str], AdminClient]


@pytest.fixture
def operator() -> Iterator[Operator]:
    """Make an operator with a role and log them in; their clients are closed after the test."""
    clients: list[AdminClient] = []

    def make(ex: Exchange, email: str, role: str) -> AdminClient:
        identity = ex.server.ctx.identity
        user = identity.create_user(email, "correct horse battery staple")
        identity.set_role(user.id, role)
        clients.append(login(ex.url, email))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def start_withdrawal(ex: Exchange, amount: str = "1.5") -> tuple[int, str]:
    """Alice asks to withdraw ``amount`` ETH to a fresh whitelisted address; return its id once it awaits approval."""
    wallet = ex.server.ctx.extras["wallet"]
    chain = wallet.adapters["devchain"].node
    if chain.balance(address_of(wallet.hot_public_key), "ETH") == 0:
        chain.faucet(address_of(wallet.hot_public_key), 50 * 10**18)
        chain.mine(1)
    outside = address_of(coincurve.PrivateKey().public_key.format())
    wallet.add_to_whitelist(ex.alice.account, asset="ETH", address=outside)
    view = ex.server.call(
        lambda: wallet.request_withdrawal(ex.alice.account, asset="ETH", amount=amount, address=outside)
    )
    until(lambda: stage_of(ex, view.id) is not WithdrawalStage.REQUESTED)
    return int(view.id), outside


def stage_of(ex: Exchange, withdrawal_id: int) -> WithdrawalStage:
    wallet = ex.server.ctx.extras["wallet"]
    stage: WithdrawalStage = next(w for w in wallet.withdrawals(limit=1000) if w.id == withdrawal_id).stage
    return stage


def eth(ex: Exchange) -> tuple[int, int]:
    return ex.server.ctx.node.balances.balances(ex.alice.account)["ETH"]


def test_two_custody_officers_approve_a_withdrawal_and_it_goes_out(
    chain_exchange: Exchange, operator: Operator
) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    wallet.fallback_approvals = 2  # what [wallet] fallback_approvals = 2 configures
    first = operator(ex, "custody1@example.com", "custody")
    second = operator(ex, "custody2@example.com", "custody")
    withdrawal_id, outside = start_withdrawal(ex)
    assert stage_of(ex, withdrawal_id) is WithdrawalStage.AWAITING_APPROVAL
    page = first.get("/admin/withdrawals")
    assert f'id="withdrawal-{withdrawal_id}"' in page.text and "0 of 2 approvals" in page.text
    dashboard = first.get("/admin")
    assert 'id="count-approvals">1<' in dashboard.text

    form = f"/admin/withdrawals/{withdrawal_id}/approval"
    page = first.act(form, {"decision": "approve", "note": "address checked"}, page="/admin/withdrawals")
    assert flash(page) == ("success", f"Withdrawal {withdrawal_id}: 1 of 2 approvals; it waits for another operator.")
    assert "1 of 2 approvals: custody1@example.com" in page.text
    again = first.act(form, {"decision": "approve"}, page="/admin/withdrawals")
    assert flash(again) == ("error", f"custody1@example.com has already approved withdrawal {withdrawal_id}.")
    assert stage_of(ex, withdrawal_id) is WithdrawalStage.AWAITING_APPROVAL
    wrong = first.act(f"/admin/withdrawals/{withdrawal_id}/approval", {"decision": "maybe"}, page="/admin/withdrawals")
    assert flash(wrong) == ("error", "Choose the decision from: approve, deny.")

    page = second.act(form, {"decision": "approve"}, page="/admin/withdrawals")
    assert flash(page)[0] == "success"
    until(lambda: stage_of(ex, withdrawal_id) in (WithdrawalStage.BROADCAST, WithdrawalStage.COMPLETED))
    wallet.adapters["devchain"].node.mine(3)
    until(lambda: stage_of(ex, withdrawal_id) is WithdrawalStage.COMPLETED)
    assert wallet.adapters["devchain"].node.balance(outside, "ETH") == 15 * 10**17

    mine = [e for e in audit_entries(ex.server) if e.target == f"withdrawal:{withdrawal_id}"]
    assert [(e.actor, e.action) for e in mine] == [
        ("custody1@example.com", "admin.withdrawal.approval.approve"),
        ("custody1@example.com", "admin.withdrawal.approval.approve"),
        ("custody1@example.com", "admin.withdrawal.approval.approve.refused"),
        ("custody2@example.com", "admin.withdrawal.approval.approve"),
    ]
    assert mine[0].details["note"] == "address checked" and mine[0].details["amount"] == "1.5"
    assert list(mine[3].details["approvals_before"]) == ["custody1@example.com"]
    audit_ok(ex.server)


def test_a_denial_rejects_the_withdrawal_and_releases_the_funds(chain_exchange: Exchange, operator: Operator) -> None:
    ex = chain_exchange
    ex.server.ctx.extras["wallet"].fallback_approvals = 2
    officer = operator(ex, "custody3@example.com", "custody")
    before = eth(ex)
    withdrawal_id, _ = start_withdrawal(ex, "2")
    assert eth(ex) == (before[0] - 2 * 10**18, before[1] + 2 * 10**18)
    form = f"/admin/withdrawals/{withdrawal_id}/approval"
    refused = officer.act(form, {"decision": "deny"}, page="/admin/withdrawals")
    assert flash(refused) == ("error", "Enter the note.")
    assert stage_of(ex, withdrawal_id) is WithdrawalStage.AWAITING_APPROVAL
    page = officer.act(form, {"decision": "deny", "note": "customer says it was not them"}, page="/admin/withdrawals")
    assert flash(page) == ("success", f"Withdrawal {withdrawal_id} is now rejected.")
    assert stage_of(ex, withdrawal_id) is WithdrawalStage.REJECTED
    assert eth(ex) == before
    late = officer.act(form, {"decision": "approve"}, page="/admin/withdrawals")
    assert flash(late)[0] == "error" and "is rejected, not waiting for approval" in flash(late)[1]
    assert audit_entries(ex.server)[-2].action == "admin.withdrawal.approval.approve"
    assert audit_entries(ex.server)[-1].action == "admin.withdrawal.approval.approve.refused"
    audit_ok(ex.server)


def test_compliance_clears_or_rejects_a_screening_hold_but_cannot_approve(
    chain_exchange: Exchange, operator: Operator
) -> None:
    ex = chain_exchange
    screening = ex.server.ctx.node.pm.get_plugin("test-screening")
    screening.decision = Decision.hold("address on a watch list", provider="test")
    officer = operator(ex, "compliance1@example.com", "compliance")
    held, _ = start_withdrawal(ex, "1")
    rejected, _ = start_withdrawal(ex, "1")
    assert stage_of(ex, held) is WithdrawalStage.SCREENING
    page = officer.get("/admin/withdrawals")
    assert "address on a watch list" in page.text
    assert "/approval" not in page.text  # compliance has no approval buttons...
    assert officer.http.post(f"/admin/withdrawals/{held}/approval", data={}).status_code == 403  # ...nor the right
    screening.decision = Decision.allow(provider="test")
    page = officer.act(f"/admin/withdrawals/{held}/screening", {"decision": "clear", "note": "false positive"},
                       page="/admin/withdrawals")  # fmt: skip
    assert flash(page)[0] == "success"
    until(lambda: stage_of(ex, held) is WithdrawalStage.AWAITING_APPROVAL)
    before = eth(ex)
    page = officer.act(f"/admin/withdrawals/{rejected}/screening", {"decision": "reject", "note": "sanctioned"},
                       page="/admin/withdrawals")  # fmt: skip
    assert flash(page) == ("success", f"Withdrawal {rejected} is now rejected.")
    assert eth(ex) == (before[0] + 10**18, before[1] - 10**18)
    actions = [e.action for e in audit_entries(ex.server) if e.actor == "compliance1@example.com"]
    assert actions == ["admin.withdrawal.screening.clear", "admin.withdrawal.screening.reject"]
    audit_ok(ex.server)


def test_held_deposits_are_credited_or_rejected_with_a_note(chain_exchange: Exchange, operator: Operator) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    chain = wallet.adapters["devchain"].node
    screening = ex.server.ctx.node.pm.get_plugin("test-screening")
    screening.decision = Decision.hold("source on a watch list", provider="test")
    officer = operator(ex, "compliance2@example.com", "compliance")
    address, _ = wallet.deposit_address(ex.alice.account, "ETH")
    first = chain.faucet(address, 3 * 10**18)
    second = chain.faucet(address, 4 * 10**18)
    chain.mine(1)
    until(lambda: wallet.deposit_store.stage_counts()[Stage.CONFIRMING] == 2)
    ctx = ex.server.ctx
    real_clock = ctx.now_ms
    ctx.now_ms = lambda: real_clock() + 2 * 3600 * 1000  # two hours on: both deposits look stuck
    try:
        stuck = officer.get("/admin").text
    finally:
        ctx.now_ms = real_clock
    row = stuck[stuck.index('id="deposits-confirming"') :].split("</tr>")[0]
    assert row.count('">2</td>') == 2  # two confirming, both stuck
    assert '<td class="num"></td>' in stuck[stuck.index('id="deposits-credited"') :].split("</tr>")[0]
    fresh = officer.get("/admin").text
    assert '<td class="num">0</td>' in fresh[fresh.index('id="deposits-confirming"') :].split("</tr>")[0]
    chain.mine(2)
    until(lambda: len(wallet.deposit_store.deposits(stage="held")) == 2)
    page = officer.get("/admin/deposits")
    assert page.text.count('class="deposit-row"') == 2 and "source on a watch list" in page.text
    assert 'id="count-held-deposits">2<' in officer.get("/admin").text
    before = eth(ex)
    held = {d.txid: d for d in wallet.deposit_store.deposits(stage="held")}
    credit = {"chain": "devchain", "txid": first, "index": str(held[first].index), "decision": "credit"}
    refused = officer.act("/admin/deposits/decide", credit, page="/admin/deposits")
    assert flash(refused) == ("error", "Enter the note.")
    page = officer.act("/admin/deposits/decide", {**credit, "note": "source explained"}, page="/admin/deposits")
    assert flash(page) == ("success", f"Deposit {first}:{held[first].index} on devchain is now credited.")
    assert eth(ex) == (before[0] + 3 * 10**18, before[1])
    reject = {**credit, "txid": second, "index": str(held[second].index), "decision": "reject", "note": "no reply"}
    page = officer.act("/admin/deposits/decide", reject, page="/admin/deposits")
    assert flash(page) == ("success", f"Deposit {second}:{held[second].index} on devchain is now rejected.")
    assert eth(ex) == (before[0] + 3 * 10**18, before[1])
    again = officer.act("/admin/deposits/decide", reject, page="/admin/deposits")
    assert flash(again)[0] == "error" and "is not held" in flash(again)[1]
    actions = [(e.action, e.target) for e in audit_entries(ex.server) if e.actor == "compliance2@example.com"]
    assert actions == [
        ("admin.deposit.credit", f"deposit:devchain:{first}:{held[first].index}"),
        ("admin.deposit.reject", f"deposit:devchain:{second}:{held[second].index}"),
        ("admin.deposit.reject", f"deposit:devchain:{second}:{held[second].index}"),
        ("admin.deposit.reject.refused", f"deposit:devchain:{second}:{held[second].index}"),
    ]
    audit_ok(ex.server)


@pytest.mark.parametrize("role", ["custody", "administrator"])
def test_the_custody_page_shows_the_hot_wallet_key(chain_exchange: Exchange, operator: Operator, role: str) -> None:
    ex = chain_exchange
    client = operator(ex, f"{role}-viewer@example.com", role)
    page = client.get("/admin/custody")
    assert page.status_code == 200
    wallet = ex.server.ctx.extras["wallet"]
    assert wallet.hot_public_key.hex() in page.text and wallet.hot_key_id in page.text
    assert "Ledger omnibus accounts" in page.text and "The ledger could not be read" not in page.text


def test_a_frozen_withdrawal_moves_only_after_its_case_is_cleared(chain_exchange: Exchange, operator: Operator) -> None:
    ex = chain_exchange
    screening = ex.server.ctx.node.pm.get_plugin("test-screening")
    screening.decision = Decision.hold(f"{FROZEN_REASON}: SDN entry 12345", provider="test")
    officer = operator(ex, "compliance3@example.com", "compliance")
    withdrawal_id, _ = start_withdrawal(ex, "1")
    assert stage_of(ex, withdrawal_id) is WithdrawalStage.SCREENING
    cases = CaseStore.for_config(ex.server.ctx.node.config)
    frozen = until(lambda: cases.frozen_case(Subject.WITHDRAWAL, str(withdrawal_id)))  # opened by the pipeline
    screening.decision = Decision.allow(provider="test")
    form = f"/admin/withdrawals/{withdrawal_id}/screening"
    refused = officer.act(form, {"decision": "clear", "note": "looks fine"}, page="/admin/withdrawals")
    assert flash(refused) == (
        "error",
        f"Withdrawal {withdrawal_id} is frozen by compliance case {frozen.id} (a sanctions hit): a compliance officer "
        "must close that case as cleared first; until then it can only be denied or rejected.",
    )
    assert stage_of(ex, withdrawal_id) is WithdrawalStage.SCREENING
    page = officer.act(f"/admin/cases/{frozen.id}/decide", {"decision": "cleared", "note": "a namesake, DOB differs"},
                       page="/admin/alerts")  # fmt: skip
    assert flash(page)[0] == "success"
    page = officer.act(form, {"decision": "clear", "note": "case cleared"}, page="/admin/withdrawals")
    assert flash(page)[0] == "success"
    until(lambda: stage_of(ex, withdrawal_id) is WithdrawalStage.AWAITING_APPROVAL)
    actions = [e.action for e in audit_entries(ex.server) if e.actor == "compliance3@example.com"]
    assert actions == [
        "admin.withdrawal.screening.clear",
        "admin.withdrawal.screening.clear.refused",
        "admin.case.clear",
        "admin.withdrawal.screening.clear",
    ]
    audit_ok(ex.server)
