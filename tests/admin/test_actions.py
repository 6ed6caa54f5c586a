"""Operator actions without chains: KYC decisions, roles, market halts, fee overrides and the audit log itself.

Each action is checked for its effect, its audit entry, and that the audit file still verifies afterwards.
"""

from __future__ import annotations

import pytest

from exchange_framework.admin.console import NAV
from exchange_framework.admin.policy import allowed
from exchange_framework.audit import AuditLog
from exchange_framework.compliance import CaseStatus, CaseStore, Subject
from exchange_framework.interfaces import Decision
from exchange_framework.types import MarketStatus
from tests.admin.conftest import Admin, audit_entries, audit_ok, flash
from tests.api.client import Rest

KYC = {"full_name": "Alice Example", "date_of_birth": "1990-04-25", "country": "DE", "document_number": "C01X00T47"}


def submit_kyc(admin: Admin, name: str) -> int:
    customer = admin.client(name)
    response = customer.post("/kyc", KYC)
    assert response.status_code == 303, response.text[:500]
    latest = admin.server.ctx.extras["kyc_reviews"].latest(admin.user(name).account)
    assert latest is not None and latest.status == "pending"
    return int(latest.id)


def test_compliance_approves_kyc_to_tier_1_and_it_is_audited(admin: Admin) -> None:
    submission = submit_kyc(admin, "carol")
    officer = admin.as_role("compliance")
    queue = officer.get("/admin/kyc")
    assert f'id="kyc-{submission}"' in queue.text and "Alice Example" in queue.text
    page = officer.act(f"/admin/kyc/{submission}/decide", {"decision": "approve", "tier": "1"}, page="/admin/kyc")
    assert flash(page) == ("success", f"KYC submission {submission} approved: account {admin.user('carol').account} "
                           "is now tier 1.")  # fmt: skip
    user = admin.server.ctx.identity.user(admin.user("carol").account)
    assert user is not None and (user.kyc_tier, user.kyc_status) == (1, "approved")
    entry, screened = audit_entries(admin.server)[-2:]  # the approval, then the screening it ran before the tier
    assert (entry.actor, entry.action, entry.target) == (officer.email, "admin.kyc.approve", f"kyc:{submission}")
    assert entry.details["tier"] == 1 and entry.details["role"] == "compliance"
    assert (screened.action, screened.details["outcome"]) == ("compliance.onboarding.screen", "allow")
    assert screened.target == f"account:{admin.user('carol').account}"
    audit_ok(admin.server)
    again = officer.act(f"/admin/kyc/{submission}/decide", {"decision": "approve"}, page="/admin/kyc")
    assert flash(again) == ("error", f"KYC submission {submission} was already decided (approved).")
    assert audit_entries(admin.server)[-1].action == "admin.kyc.approve.refused"


def test_a_kyc_rejection_needs_a_reason(admin: Admin) -> None:
    submission = submit_kyc(admin, "dave")
    officer = admin.as_role("administrator")
    before = len(audit_entries(admin.server))
    refused = officer.act(f"/admin/kyc/{submission}/decide", {"decision": "reject"}, page="/admin/kyc")
    assert flash(refused) == ("error", "Enter the reason.")
    assert len(audit_entries(admin.server)) == before  # nothing attempted, nothing recorded
    assert admin.server.ctx.extras["kyc_reviews"].get(submission).status == "pending"
    data = {"decision": "reject", "note": "The document number does not match the photo: upload it again."}
    page = officer.act(f"/admin/kyc/{submission}/decide", data, page="/admin/kyc")
    assert flash(page) == ("success", f"KYC submission {submission} rejected.")
    user = admin.server.ctx.identity.user(admin.user("dave").account)
    assert user is not None and (user.kyc_tier, user.kyc_status) == (0, "rejected")
    entry = audit_entries(admin.server)[-1]
    assert entry.action == "admin.kyc.reject" and entry.details["note"] == data["note"]
    audit_ok(admin.server)


def test_administrators_change_roles_but_not_their_own(admin: Admin) -> None:
    boss = admin.as_role("administrator")
    erin = admin.user("erin")
    page = boss.act(f"/admin/users/{erin.account}/role", {"role": "support"}, page=f"/admin/users/{erin.account}")
    assert flash(page) == ("success", f"{erin.email} is now support.")
    assert admin.server.ctx.identity.user(erin.account).role == "support"  # type: ignore[union-attr]
    entry = audit_entries(admin.server)[-1]
    assert (entry.action, entry.target, entry.details["from"], entry.details["to"]) == (
        "admin.user.role",
        f"account:{erin.account}",
        "user",
        "support",
    )
    own = admin.user("administrator").account
    mine = boss.act(f"/admin/users/{own}/role", {"role": "user"}, page=f"/admin/users/{own}")
    assert flash(mine) == ("error", "You cannot change your own role: ask another administrator.")
    assert admin.server.ctx.identity.user(own).role == "administrator"  # type: ignore[union-attr]
    bad = boss.act(f"/admin/users/{erin.account}/role", {"role": "king"}, page=f"/admin/users/{erin.account}")
    assert flash(bad)[0] == "error" and "Choose the role from: user, administrator" in flash(bad)[1]
    audit_ok(admin.server)


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(admin: Admin) -> None:
    boss = admin.as_role("administrator")
    frank = admin.user("frank")
    before = len(audit_entries(admin.server))
    response = boss.http.post(f"/admin/users/{frank.account}/role", data={"role": "administrator"})
    assert response.status_code == 403 and "security token is missing" in response.text
    other = admin.as_role("support")  # another session's token
    forged = boss.http.post(
        f"/admin/users/{frank.account}/role", data={"role": "administrator", "csrf_token": other.token("/admin")}
    )
    assert forged.status_code == 403
    cross_site = boss.http.post(
        "/admin/markets/BTC-USDT/status",
        data={"status": "halted", "csrf_token": boss.token("/admin/markets")},
        headers={"origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403 and "another site" in cross_site.text
    assert admin.server.ctx.identity.user(frank.account).role == "user"  # type: ignore[union-attr]
    assert admin.server.ctx.market_data.status("BTC-USDT") is MarketStatus.OPEN
    assert len(audit_entries(admin.server)) == before


def test_support_reads_a_user_but_cannot_change_anything(admin: Admin) -> None:
    support = admin.as_role("support")
    gina = admin.user("gina")
    admin.client("gina")  # a live session to show
    page = support.get(f"/admin/users/{gina.account}")
    assert page.status_code == 200
    assert gina.email in page.text and 'class="balance-row"' in page.text and "10.00000000" in page.text
    assert 'class="session-row"' in page.text
    assert "Change role" not in page.text
    found = support.get(f"/admin/users?q=gina{admin.n}@")
    assert f"/admin/users/{gina.account}" in found.text
    by_number = support.get(f"/admin/users?q={gina.account}")
    assert gina.email in by_number.text
    assert support.get("/admin/users?q=nobody-at-all").text.count('class="user-row"') == 0
    assert support.get("/admin/users/999999").status_code == 404
    assert support.http.post(f"/admin/users/{gina.account}/role", data={"role": "administrator"}).status_code == 403


def order(rest: Rest) -> dict[str, object]:
    response = rest.signed(
        "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
        price="1000",
    )  # fmt: skip
    body: dict[str, object] = response.json()
    return body


def test_a_halted_market_refuses_new_orders_through_the_api_until_resumed(admin: Admin) -> None:
    boss = admin.as_role("administrator")
    trader = admin.user("harry")
    rest = Rest(admin.url, trader.key)
    try:
        placed = order(rest)
        assert "orderId" in placed
        detail = boss.get(f"/admin/users/{trader.account}").text
        row = detail[detail.index('class="order-row"') :].split("</tr>")[0]
        assert f"<td>{placed['orderId']}</td><td>BTC-USDT</td><td>buy</td><td>limit</td>" in row
        assert "1000.0" in row and "0.00100" in row and "<td>new</td>" in row
        page = boss.act("/admin/markets/BTC-USDT/status", {"status": "halted", "note": "drill"}, page="/admin/markets")
        kind, text = flash(page)
        assert kind == "success" and text.startswith("BTC-USDT is now halted (journal sequence ")
        assert admin.server.ctx.market_data.status("BTC-USDT") is MarketStatus.HALTED
        assert 'id="market-BTC-USDT"' in page.text and ">halted<" in page.text
        refused = order(rest)
        assert refused["code"] == -2010 and "halted" in str(refused["msg"])
        entry = audit_entries(admin.server)[-1]
        assert (entry.action, entry.target, entry.details["from"], entry.details["to"], entry.details["note"]) == (
            "admin.market.halt", "market:BTC-USDT", "open", "halted", "drill",
        )  # fmt: skip
        page = boss.act("/admin/markets/BTC-USDT/status", {"status": "open"}, page="/admin/markets")
        assert flash(page)[0] == "success"
        assert "orderId" in order(rest)
        assert audit_entries(admin.server)[-1].action == "admin.market.resume"
        unknown = boss.act("/admin/markets/NOPE-USDT/status", {"status": "halted"}, page="/admin/markets")
        assert flash(unknown) == ("error", "There is no market NOPE-USDT: use one of BTC-USDT, ETH-USDT.")
        audit_ok(admin.server)
    finally:
        rest.close()
        if admin.server.ctx.market_data.status("BTC-USDT") is not MarketStatus.OPEN:
            boss.act("/admin/markets/BTC-USDT/status", {"status": "open"}, page="/admin/markets")


def test_fee_overrides_are_sequenced_and_cleared(admin: Admin) -> None:
    boss = admin.as_role("administrator")
    ivy = admin.user("ivy")
    data = {"account": str(ivy.account), "maker": "0.0002", "taker": "0.0007", "mode": "set"}
    page = boss.act("/admin/fees/override", data, page="/admin/fees")
    assert flash(page) == ("success", f"Account {ivy.account} now pays maker 0.02 %, taker 0.07 %.")
    account = admin.server.ctx.node.engine.accounts[ivy.account]
    assert (account.maker_ppm, account.taker_ppm) == (200, 700)
    assert f'id="override-{ivy.account}"' in page.text
    entry = audit_entries(admin.server)[-1]
    assert (entry.action, entry.details["maker_ppm"], entry.details["taker_ppm"]) == ("admin.fees.set", 200, 700)
    too_high = boss.act("/admin/fees/override", {**data, "taker": "0.5"}, page="/admin/fees")
    assert flash(too_high)[0] == "error" and "taker rate between 0 % and 10 %" in flash(too_high)[1]
    too_fine = boss.act("/admin/fees/override", {**data, "maker": "0.00000001"}, page="/admin/fees")
    assert flash(too_fine)[0] == "error" and "Rates are decimals" in flash(too_fine)[1]
    assert (account.maker_ppm, account.taker_ppm) == (200, 700)
    page = boss.act("/admin/fees/override", {"account": str(ivy.account), "mode": "clear"}, page="/admin/fees")
    assert flash(page) == ("success", f"Account {ivy.account} pays its markets' rates again.")
    assert account.maker_ppm is None and account.taker_ppm is None
    assert audit_entries(admin.server)[-1].action == "admin.fees.clear"
    audit_ok(admin.server)


def test_the_audit_page_lists_entries_and_verifies_the_chain(admin: Admin) -> None:
    officer = admin.as_role("compliance")
    submit_kyc(admin, "jack")
    page = officer.act("/admin/audit/verify", {}, page="/admin/audit")
    kind, text = flash(page)
    assert kind == "success" and text.startswith("The audit chain is whole: ")
    entries = audit_entries(admin.server)
    assert entries[-1].action == "admin.audit.verify"
    assert f"{len(entries)} entries, head {entries[-1].hash}" in text
    filtered = officer.get("/admin/audit?action=admin.audit")
    assert filtered.text.count('class="audit-row"') == sum(1 for e in entries if e.action.startswith("admin.audit."))
    assert officer.get(f"/admin/audit?actor={officer.email}").text.count('class="audit-row"') == 1


def test_an_action_the_audit_log_cannot_record_is_not_done(admin: Admin) -> None:
    boss = admin.as_role("administrator")
    kate = admin.user("kate")
    ctx = admin.server.ctx
    working = ctx.extras["audit"]
    full = AuditLog.open("/dev/full", fsync=False)  # every write fails with ENOSPC, as on a full disk
    ctx.extras["audit"] = full
    try:
        response = boss.post(
            f"/admin/users/{kate.account}/role", {"role": "support"}, page=f"/admin/users/{kate.account}"
        )
        assert response.status_code == 503
        assert "could not record this action, so nothing was done" in response.text
        assert ctx.identity.user(kate.account).role == "user"  # type: ignore[union-attr]
        halted = boss.post("/admin/markets/ETH-USDT/status", {"status": "halted"}, page="/admin/markets")
        assert halted.status_code == 503 and ctx.market_data.status("ETH-USDT") is MarketStatus.OPEN
        del ctx.extras["audit"]
        closed = boss.post(
            f"/admin/users/{kate.account}/role", {"role": "support"}, page=f"/admin/users/{kate.account}"
        )
        assert closed.status_code == 503 and "The audit log is not open, so nothing was done" in closed.text
    finally:
        ctx.extras["audit"] = working
        full.close()
    assert ctx.identity.user(kate.account).role == "user"  # type: ignore[union-attr]
    audit_ok(admin.server)


@pytest.mark.parametrize("role", ["administrator", "compliance", "custody", "support"])
def test_the_navigation_shows_only_what_the_role_may_open(admin: Admin, role: str) -> None:
    page = admin.as_role(role).get("/admin")
    assert page.status_code == 200
    for path, _title, action in NAV:
        assert (f'href="{path}"' in page.text) is allowed(role, action), (role, path)


def test_compliance_escalates_and_clears_a_case_that_screening_opened(admin: Admin) -> None:
    ctx = admin.server.ctx
    lena = admin.user("lena")
    store = CaseStore.for_config(ctx.node.config)  # what the screening pipeline records into
    reference = f"w{admin.n}-{lena.account}"
    hold = Decision.hold("destination on a watch list", provider="test-screening")
    case = store.record(Subject.WITHDRAWAL, reference, lena.account, [hold], {"asset": "ETH", "amount": "100"})
    officer = admin.as_role("compliance")
    assert 'id="count-cases">' in officer.get("/admin").text
    page = officer.get("/admin/alerts")
    assert f'id="case-{case.id}"' in page.text and "destination on a watch list" in page.text
    assert lena.email in page.text and "no-compliance" not in page.text
    form = f"/admin/cases/{case.id}/decide"
    refused = officer.act(form, {"decision": "cleared"}, page="/admin/alerts")
    assert flash(refused) == ("error", "Enter the note.")
    page = officer.act(form, {"decision": "escalate", "note": "large amount"}, page="/admin/alerts")
    assert flash(page) == ("success", f"Case {case.id} is escalated.")
    assert store.get(case.id).status is CaseStatus.ESCALATED  # type: ignore[union-attr]
    page = officer.act(form, {"decision": "cleared", "note": "a namesake"}, page="/admin/alerts")
    assert flash(page) == (
        "success",
        f"Case {case.id} is closed as cleared; now clear or reject the withdrawal on the withdrawals page.",
    )
    closed = store.get(case.id)
    assert closed is not None and closed.status is CaseStatus.CLOSED and closed.resolved_by == officer.email
    late = officer.act(form, {"decision": "confirmed", "note": "changed my mind"}, page="/admin/alerts")
    assert flash(late)[0] == "error" and "is closed" in flash(late)[1]
    assert [(e.action, e.target) for e in audit_entries(admin.server) if e.actor == officer.email] == [
        ("admin.case.escalate", f"case:{case.id}"),
        ("admin.case.clear", f"case:{case.id}"),
        ("admin.case.confirm", f"case:{case.id}"),
        ("admin.case.confirm.refused", f"case:{case.id}"),
    ]
    assert admin.as_role("custody").http.post(form, data={}).status_code == 403
    audit_ok(admin.server)


def test_an_action_that_fails_midway_is_audited_as_failed_and_says_what_to_check(own_admin: Admin) -> None:
    boss = own_admin.as_role("administrator")
    page = boss.get("/admin/markets")
    assert page.status_code == 200
    own_admin.server.call(lambda: own_admin.server.ctx.node.close())  # the node stops taking commands
    response = boss.act("/admin/markets/ETH-USDT/status", {"status": "halted"}, page="/admin/markets")
    kind, text = flash(response)
    assert kind == "error" and text.startswith("The action failed (NodeClosed: ")
    assert "reload the page to see the current state before trying again" in text
    last = audit_entries(own_admin.server)[-2:]
    assert [e.action for e in last] == ["admin.market.halt", "admin.market.halt.failed"]
    assert "NodeClosed" in last[1].details["error"]
    audit_ok(own_admin.server)
