"""The admin console in real headless Chromium (Debian's, driven by Playwright): an operator approves a withdrawal.

A customer's withdrawal waits for approval; an administrator opens /admin (sent to the login page and back), sees the
count on the dashboard, approves the withdrawal with a note from the withdrawals page, watches it go out, and finds
the action in the audit log and the chain verified. Screenshots go to tests/admin/screenshots/ (ignored by git).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from exchange_framework.wallet import WithdrawalStage
from tests.admin.test_funds import chain_exchange, stage_of, start_withdrawal
from tests.api.conftest import Exchange
from tests.api.test_wallet_api import until

__all__ = ["chain_exchange"]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip  # docs: /work/shared/RECIPES.md "Browser"
SHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "an operator's long password"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed: run scripts/setup"),
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_an_administrator_approves_a_withdrawal_in_a_real_browser(chain_exchange: Exchange, chromium: Browser) -> None:
    ex = chain_exchange
    identity = ex.server.ctx.identity
    boss = identity.create_user("boss@example.com", PASSWORD)
    identity.set_role(boss.id, "administrator")
    withdrawal_id, _ = start_withdrawal(ex, "1.25")
    assert stage_of(ex, withdrawal_id) is WithdrawalStage.AWAITING_APPROVAL

    context = chromium.new_context(base_url=ex.url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/admin")
        expect(page).to_have_url(f"{ex.url}/login?next=/admin")
        page.fill("#f-email", "boss@example.com")
        page.fill("#f-password", PASSWORD)
        page.click("button:has-text('Log in')")
        expect(page).to_have_url(f"{ex.url}/admin")
        expect(page.locator("#count-approvals")).to_have_text("1")
        shot(page, "01-dashboard")

        page.click(".admin-sections a:has-text('Withdrawals')")
        row = page.locator(f"#withdrawal-{withdrawal_id}")
        expect(row).to_contain_text("0 of 1 approvals")
        expect(row).to_contain_text("1.25")
        row.locator("input[name=note]").fill("destination confirmed by phone")
        shot(page, "02-withdrawal-awaiting")
        row.locator("button[value=approve]").click()
        expect(page.locator(".flash-success")).to_contain_text(f"Withdrawal {withdrawal_id} is now approved")
        until(lambda: stage_of(ex, withdrawal_id) is WithdrawalStage.BROADCAST)
        ex.server.ctx.extras["wallet"].adapters["devchain"].node.mine(3)
        until(lambda: stage_of(ex, withdrawal_id) is WithdrawalStage.COMPLETED)
        page.reload()
        expect(page.locator(f"#recent-withdrawal-{withdrawal_id}")).to_contain_text("completed")
        shot(page, "03-withdrawal-completed")

        page.click(".admin-sections a:has-text('Audit log')")
        first = page.locator(".audit-row").first
        expect(first).to_contain_text("admin.withdrawal.approval.approve")
        expect(first).to_contain_text("destination confirmed by phone")
        page.click("button:has-text('Verify the whole chain')")
        expect(page.locator(".flash-success")).to_contain_text("The audit chain is whole")
        shot(page, "04-audit-verified")

        for n, (title, heading) in enumerate(
            [("Users", "Users"), ("Markets", "Markets"), ("Fees", "Fee schedule"), ("Custody", "Custody"),
             ("Alerts & cases", "Alerts & cases")],
            start=5,
        ):  # fmt: skip
            page.click(f".admin-sections a:has-text('{title}')")
            expect(page.locator("main h1")).to_have_text(heading)
            shot(page, f"{n:02d}-{title.split()[0].lower()}")
        page.click(".admin-sections a:has-text('Users')")
        page.fill("input[name=q]", "alice")
        page.click("button:has-text('Search')")
        page.click(".user-row a:has-text('alice@example.com')")
        expect(page.locator(".balance-row").first).to_be_visible()
        shot(page, "10-user")
    finally:
        context.close()
    assert errors == []
