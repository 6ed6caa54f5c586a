"""The portal in real headless Chromium (Debian's, driven by Playwright): a customer's first session end to end.

Sign up, turn on two-factor, log out and back in with a code, place a limit order from the form, watch another
user's order arrive in the live book, see the fill in the fills table and as a candle on the chart, get verified,
whitelist an address and request a withdrawal. Screenshots go to tests/portal/screenshots/ (ignored by git).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import coincurve
import pyotp
import pytest
from exchange_devchain.tx import address_of
from playwright.sync_api import Browser, Page, expect, sync_playwright

from exchange_framework.engine.commands import CreditFunds
from exchange_framework.wallet import WithdrawalStage
from tests.api.client import Rest
from tests.api.conftest import Exchange

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip  # docs: /work/shared/RECIPES.md "Browser"
SHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "a long browser password"

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


class Codes:
    """Two-factor codes as a phone app shows them; each step is used once (the server refuses replays)."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last = -1

    def next(self) -> str:
        now = time.time()
        for offset in (-30, 0, 30):  # the server accepts one step of drift either way
            step = self.totp.timecode(now + offset)
            if step > self.last:
                self.last = step
                return self.totp.at(now + offset)
        raise AssertionError("three codes used within one step")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def flash(page: Page) -> str:
    return page.locator(".flash").first.inner_text()


def test_first_session_in_a_real_browser(chain_exchange: Exchange, chromium: Browser) -> None:
    ex = chain_exchange
    ctx = ex.server.ctx
    context = chromium.new_context(base_url=ex.url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    email = "browser@example.com"

    # sign up
    page.goto("/signup")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_again]", PASSWORD)
    page.fill("input[name=country]", "NL")
    page.click("button[type=submit].primary")
    expect(page).to_have_url(f"{ex.url}/account")
    assert "Your account is open" in flash(page)
    shot(page, "01-account")
    account = ctx.identity.user_by_email(email).id  # type: ignore[union-attr]

    # two-factor: scan (read) the secret, confirm a code
    page.goto("/account/2fa")
    assert page.locator(".qr svg").count() == 1
    codes = Codes(page.inner_text("#totp-secret"))
    shot(page, "02-two-factor")
    page.fill("input[name=code]", codes.next())
    page.click("text=Turn two-factor on")
    expect(page.locator("#twofactor-status")).to_have_text("on")

    # log out, log in with password and code
    page.click("button:has-text('Log out')")
    assert "You are logged out" in flash(page)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    expect(page.locator("h1")).to_have_text("Enter your two-factor code")
    page.fill("input[name=code]", codes.next())
    page.click("button[type=submit].primary")
    expect(page).to_have_url(f"{ex.url}/account")

    # fund the account (as a deposit would) and trade
    for asset, amount in (("USDT", 10_000 * 10**6), ("ETH", 5 * 10**18)):
        ex.server.call(lambda a=asset, n=amount: ctx.node.submit(CreditFunds(account, a, n, f"browser:{a}")))
    page.goto("/trade/BTCUSDT")
    expect(page.locator("#chart")).to_have_attribute("data-candles", "0")
    page.select_option("select[name=type]", "LIMIT")
    assert page.locator("input[name=stop_price]").is_hidden()  # the form shows the chosen type's fields only
    page.fill("input[name=price]", "50000")
    page.fill("input[name=quantity]", "0.01")
    page.click("text=Place order")
    assert flash(page).endswith("placed: new.")
    expect(page.locator("tr.order-row")).to_have_count(1)
    expect(page.locator("#trade")).to_have_attribute("data-live", "1")  # (the CSP forbids eval: no wait_for_function)

    # another user's resting ask arrives in the live book without a reload
    bob = Rest(ex.url, ex.bob.key)
    try:
        placed = bob.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="LIMIT",
                            timeInForce="GTC", quantity="0.5", price="51000")  # fmt: skip
        assert placed.status_code == 200, placed.text
        expect(page.locator("#book-asks")).to_contain_text("51000")
        # ... and fills our bid: the fill shows after the redirect-free refresh, the candle on the live chart
        filled = bob.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01")
        assert filled.status_code == 200 and filled.json()["status"] == "FILLED", filled.text
    finally:
        bob.close()
    expect(page.locator("#chart")).not_to_have_attribute("data-candles", "0")  # drawn from the kline stream
    expect(page.locator("#public-trades tr").first).to_contain_text("50000")  # the trade stream
    assert int(page.get_attribute("#chart", "data-candles") or 0) >= 1
    expect(page.locator("tr.fill-row")).to_have_count(1)  # the page re-fetched its own-orders part, no reload
    expect(page.locator("tr.order-row")).to_have_count(0)
    expect(page.locator("#my-balances")).to_contain_text("BTC: 0.00999 available")  # 0.01 less the 0.1 % fee
    shot(page, "03-trade-live")
    page.reload()
    expect(page.locator("tr.fill-row")).to_have_count(1)
    expect(page.locator("#chart")).not_to_have_attribute("data-candles", "0")  # drawn from /api/v3/klines
    expect(page.locator("#chart-note")).to_contain_text("last close 50000")
    shot(page, "04-trade-filled")

    # the form sends only the chosen type's fields: a price typed before switching to MARKET is not sent
    bob = Rest(ex.url, ex.bob.key)
    try:
        bid = bob.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                         quantity="0.01", price="49000")  # fmt: skip
        assert bid.status_code == 200, bid.text
    finally:
        bob.close()
    page.fill("input[name=price]", "12345")
    page.select_option("select[name=type]", "MARKET")
    page.check("input[name=side][value=SELL]")
    page.fill("input[name=quantity]", "0.005")
    page.click("text=Place order")
    assert flash(page).startswith("Sell order") and flash(page).endswith("placed: filled."), flash(page)
    page.select_option("select[name=type]", "STOP_LOSS")
    assert page.locator("input[name=price]").is_hidden() and page.locator("input[name=stop_price]").is_visible()
    page.check("input[name=side][value=SELL]")
    page.fill("input[name=stop_price]", "45000")
    page.fill("input[name=quantity]", "0.004")
    page.click("text=Place order")
    assert flash(page).endswith("placed: new."), flash(page)
    expect(page.locator("tr.order-row")).to_have_count(1)

    # verification: submit details; an operator approves them (the admin console's part)
    page.goto("/kyc")
    page.fill("input[name=full_name]", "Brow Ser")
    page.fill("input[name=date_of_birth]", "1990-04-25")
    page.fill("input[name=document_number]", "NX1234567")
    page.click("text=Submit for review")
    expect(page.locator("#kyc-status")).to_have_text("pending")
    submission = ctx.extras["kyc_reviews"].latest(account)
    ctx.extras["kyc_reviews"].decide(submission.id, approve=True, operator="ops@example.com", tier=1)
    page.reload()
    expect(page.locator("#kyc-status")).to_have_text("approved")

    # withdraw: whitelist an address, then request with the two-factor code
    outside = address_of(coincurve.PrivateKey().public_key.format())
    page.goto("/wallet/whitelist")
    page.select_option("select[name=asset]", "ETH")
    page.fill("input[name=address]", outside)
    page.fill("input[name=label]", "my cold wallet")
    page.click("text=Add address")
    assert "whitelisted for ETH" in flash(page)
    page.goto("/wallet/ETH")
    assert page.locator(".qr svg").count() == 1 and page.inner_text("#deposit-address").strip()
    page.select_option("select[name=entry]", label="my cold wallet (devchain)")
    page.fill("input[name=amount]", "1.5")
    page.fill("input[name=code]", codes.next())
    page.click("text=Request withdrawal")
    assert page.locator(".form-error").count() == 0, page.locator(".form-error").inner_text()
    assert "Withdrawal" in flash(page) and "of 1.5 ETH requested; stage: " in flash(page)
    expect(page.locator("tr.withdrawal-row")).to_have_count(1)
    shot(page, "05-withdrawal")
    withdrawals = ctx.extras["wallet"].withdrawals(account)
    assert len(withdrawals) == 1 and withdrawals[0].address == outside and withdrawals[0].amount.startswith("1.5")
    assert withdrawals[0].stage not in (WithdrawalStage.REJECTED, WithdrawalStage.FAILED)
    assert errors == []
    context.close()
