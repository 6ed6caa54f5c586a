"""Sign-up, login, two-factor, sessions, API keys: authz, CSRF, cookie flags and messages that say what to do."""

from __future__ import annotations

import time

import pyotp
import pytest

from exchange_framework.api.app import SECURITY_HEADERS
from exchange_framework.web import CONTENT_SECURITY_POLICY, LoginLimiter, Web
from tests.portal.conftest import PASSWORD, PortalClient
from tests.portal.conftest import Portal as Exchange

LOGIN_PAGES = [
    "/account", "/account/2fa", "/account/sessions", "/account/api-keys", "/wallet", "/wallet/withdrawals",
    "/wallet/whitelist", "/wallet/ETH", "/kyc", "/trade/BTCUSDT/mine",
]  # fmt: skip


@pytest.mark.parametrize("path", LOGIN_PAGES)
def test_private_pages_send_anonymous_visitors_to_login(browser: PortalClient, path: str) -> None:
    response = browser.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


@pytest.mark.parametrize("path", ["/", "/markets", "/trade/BTCUSDT", "/login", "/signup"])
def test_public_pages_render_with_security_headers(browser: PortalClient, path: str) -> None:
    response = browser.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"
    assert "Demo Exchange" in response.text


def test_brand_colours_become_css_variables(browser: PortalClient) -> None:
    page = browser.get("/").text
    assert "--primary: #1f6feb;" in page and "--accent: #f0b90b;" in page and "--background: #0d1117;" in page


def test_unknown_market_is_a_404_page_that_says_what_to_do(browser: PortalClient) -> None:
    response = browser.get("/trade/NOPE")
    assert response.status_code == 404
    assert "pick one from the market list" in response.text


def test_signup_logs_in_with_httponly_lax_cookies(exchange: Exchange, browser: PortalClient) -> None:
    response = browser.post(
        "/signup",
        {
            "email": f"Carol{exchange.alice.account}@Example.com",
            "password": PASSWORD,
            "password_again": PASSWORD,
            "country": "de",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/account"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("exchange_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert "secure" not in flags  # served over plain http
    page = browser.follow(response)
    email = f"carol{exchange.alice.account}@example.com"
    assert email in page.text and "Your account is open" in page.text
    user = exchange.server.ctx.identity.user_by_email(email)
    assert user is not None and user.country == "DE"


def test_cookies_are_secure_over_https(exchange: Exchange) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1, as it would from a TLS-terminating proxy there.
    client = PortalClient(exchange.url, **{"x-forwarded-proto": "https"})
    try:
        page = client.get("/login")
        browser_cookie = next(c for c in page.headers.get_list("set-cookie") if c.startswith("exchange_browser="))
        assert "secure" in browser_cookie.lower() and "httponly" in browser_cookie.lower()
        # httpx, like a browser, keeps Secure cookies away from http:// URLs: send it as the https browser would
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        response = client.http.post(
            "/login",
            data={"email": exchange.alice.email, "password": PASSWORD, "csrf_token": token},
            headers={"cookie": browser_cookie.split(";", 1)[0]},
        )
        assert response.status_code == 303
        session = next(c for c in response.headers.get_list("set-cookie") if c.startswith("exchange_session="))
        assert "secure" in session.lower() and "httponly" in session.lower() and "samesite=lax" in session.lower()
    finally:
        client.close()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "password_again": PASSWORD, "country": "DE"},
         "use the form name@example.com"),
        ({"email": "d@example.com", "password": "short", "password_again": "short", "country": "DE"},
         "needs at least 10 characters"),
        ({"email": "d@example.com", "password": PASSWORD, "password_again": PASSWORD + "x", "country": "DE"},
         "type the same password twice"),
        ({"email": "d@example.com", "password": PASSWORD, "password_again": PASSWORD, "country": ""},
         "two-letter code"),
        ({"email": "{alice}", "password": PASSWORD, "password_again": PASSWORD, "country": "DE"},
         "already has an account: log in"),
    ],
)  # fmt: skip
def test_signup_errors_say_what_to_do_and_create_nothing(
    exchange: Exchange, browser: PortalClient, form: dict[str, str], message: str
) -> None:
    if form["email"] == "{alice}":
        form = {**form, "email": exchange.alice.email}
    before = exchange.server.ctx.identity.users(limit=10_000)
    response = browser.post("/signup", form)
    assert response.status_code == 400
    assert message in response.text
    assert exchange.server.ctx.identity.users(limit=10_000) == before
    assert "exchange_session=" not in response.headers.get("set-cookie", "")


def test_login_and_logout(exchange: Exchange, browser: PortalClient) -> None:
    response = browser.post("/login", {"email": exchange.alice.email, "password": PASSWORD, "next": "/wallet"})
    assert response.headers["location"] == "/wallet"
    assert browser.get("/account").status_code == 200
    out = browser.post("/logout", {}, page="/account")
    assert out.status_code == 303
    assert "You are logged out" in browser.follow(out).text
    assert browser.get("/account").status_code == 303
    assert exchange.server.ctx.identity.sessions(exchange.alice.account) == []


def test_login_refuses_next_urls_off_the_site(exchange: Exchange, browser: PortalClient) -> None:
    response = browser.post("/login", {"email": exchange.alice.email, "password": PASSWORD, "next": "//evil.test/x"})
    assert response.headers["location"] == "/account"


def test_wrong_password_says_what_to_do(exchange: Exchange, browser: PortalClient) -> None:
    response = browser.post("/login", {"email": exchange.alice.email, "password": "wrong password!"})
    assert response.status_code == 400
    assert "Wrong e-mail or password: check both and try again" in response.text


def test_login_attempts_are_rate_limited_per_email(exchange: Exchange, browser: PortalClient) -> None:
    for _ in range(5):
        assert browser.post("/login", {"email": exchange.alice.email, "password": "wrong password!"}).status_code == 400
    blocked = browser.post("/login", {"email": exchange.alice.email, "password": PASSWORD})
    assert blocked.status_code == 429
    assert "Too many failed login attempts: wait 15 minutes" in blocked.text
    # another e-mail from the same address still works
    assert browser.post("/login", {"email": exchange.bob.email, "password": PASSWORD}).status_code == 303


def test_login_attempts_are_rate_limited_per_address(exchange: Exchange, browser: PortalClient) -> None:
    Web.of(exchange.server.ctx).limiter = LoginLimiter(per_ip=4)  # the default 20 costs 20 Argon2 checks
    for i in range(4):
        browser.post("/login", {"email": f"nobody{i}@example.com", "password": "wrong password!"})
    assert browser.post("/login", {"email": exchange.bob.email, "password": PASSWORD}).status_code == 429


def test_post_without_csrf_token_is_refused_and_changes_nothing(exchange: Exchange, alice: PortalClient) -> None:
    identity = exchange.server.ctx.identity
    keys = identity.api_keys(exchange.alice.account)
    for data in ({"label": "x", "scopes": "read"}, {"label": "x", "scopes": "read", "csrf_token": "0" * 64}):
        response = alice.http.post("/account/api-keys", data=data)
        assert response.status_code == 403
        assert "Reload the page and submit the form again" in response.text
    assert identity.api_keys(exchange.alice.account) == keys


def test_post_from_another_origin_is_refused(exchange: Exchange, alice: PortalClient) -> None:
    token = alice.token("/account/api-keys")
    response = alice.http.post(
        "/account/api-keys",
        data={"label": "x", "scopes": "read", "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403 and "sent from another site" in response.text


def test_csrf_token_of_one_session_does_not_work_in_another(exchange: Exchange, alice: PortalClient) -> None:
    other = PortalClient(exchange.url)
    try:
        other.login(exchange.alice.email)
        token = alice.token("/account/api-keys")
        response = other.http.post("/account/api-keys", data={"label": "x", "scopes": "read", "csrf_token": token})
        assert response.status_code == 403
    finally:
        other.close()


def test_login_form_needs_csrf_too(exchange: Exchange, browser: PortalClient) -> None:
    response = browser.http.post("/login", data={"email": exchange.alice.email, "password": PASSWORD})
    assert response.status_code == 403


def _enable_2fa(client: PortalClient) -> str:
    page = client.get("/account/2fa").text
    secret = page.split('id="totp-secret">', 1)[1].split("<", 1)[0]
    assert "<svg" in page  # the QR code of the otpauth URI
    wrong = client.post("/account/2fa/enable", {"secret": secret, "code": "000000"}, page="/account/2fa")
    assert wrong.status_code == 400 and "enter the six-digit code it shows" in wrong.text
    ok = client.post("/account/2fa/enable", {"secret": secret, "code": pyotp.TOTP(secret).now()}, page="/account/2fa")
    assert ok.status_code == 303
    return secret


def test_two_factor_enrolment_and_login_with_code(exchange: Exchange, alice: PortalClient) -> None:
    secret = _enable_2fa(alice)
    identity = exchange.server.ctx.identity
    assert identity.totp_secret(exchange.alice.account) == secret
    assert identity.user(exchange.alice.account).has_totp  # type: ignore[union-attr]

    fresh = PortalClient(exchange.url)
    try:
        step = fresh.post("/login", {"email": exchange.alice.email, "password": PASSWORD})
        assert step.status_code == 200 and "Enter your two-factor code" in step.text
        assert "exchange_session=" not in step.headers.get("set-cookie", "")
        nonce = step.text.split('name="nonce" value="', 1)[1].split('"', 1)[0]
        wrong = fresh.post("/login/2fa", {"nonce": nonce, "code": "123456"}, page="/login")
        assert wrong.status_code == 400 and "enter the current six-digit code" in wrong.text
        assert fresh.get("/account").status_code == 303
        # the enrolment used the current step's code, which is spent; the next step's is accepted (clock drift)
        code = pyotp.TOTP(secret).at(time.time() + 30)
        ok = fresh.post("/login/2fa", {"nonce": nonce, "code": code}, page="/login")
        assert ok.status_code == 303
        assert fresh.get("/account").status_code == 200
    finally:
        fresh.close()


def test_totp_codes_are_single_use() -> None:
    from exchange_framework.portal.twofactor import TotpChecker

    now = [1_700_000_000.0]
    checker = TotpChecker(clock=lambda: now[0])
    secret = checker.new_secret()
    code = pyotp.TOTP(secret).at(now[0])
    assert checker.check(1, secret, code)
    assert not checker.check(1, secret, code)  # replay
    now[0] += 30
    assert checker.check(1, secret, pyotp.TOTP(secret).at(now[0]))
    assert not checker.check(1, secret, pyotp.TOTP(secret).at(now[0] - 30))  # an older step after a newer one
    assert not checker.check(2, secret, "12345") and not checker.check(2, secret, "abcdef")


def test_sessions_page_lists_and_revokes_other_sessions(exchange: Exchange, alice: PortalClient) -> None:
    other = PortalClient(exchange.url, **{"user-agent": "OtherDevice/1.0"})
    try:
        other.login(exchange.alice.email)
        page = alice.get("/account/sessions").text
        assert page.count('class="session-row"') == 2
        assert "OtherDevice/1.0" in page and "127.0.0.1" in page and "this browser" in page
        other_hash = next(
            s.token_hash for s in exchange.server.ctx.identity.sessions(exchange.alice.account)
            if s.user_agent == "OtherDevice/1.0"
        )  # fmt: skip
        response = alice.post("/account/sessions/revoke", {"session": other_hash}, page="/account/sessions")
        assert response.status_code == 303
        assert other.get("/account").status_code == 303  # logged out there
        assert alice.get("/account").status_code == 200
    finally:
        other.close()


def test_users_cannot_touch_each_others_sessions_or_keys(
    exchange: Exchange, alice: PortalClient, bob: PortalClient
) -> None:
    identity = exchange.server.ctx.identity
    bob_session = identity.sessions(exchange.bob.account)[0].token_hash
    response = alice.post("/account/sessions/revoke", {"session": bob_session}, page="/account/sessions")
    assert response.status_code == 404
    assert bob.get("/account").status_code == 200
    response = alice.post("/account/api-keys/revoke", {"key": exchange.bob.key.key}, page="/account/api-keys")
    assert response.status_code == 404
    assert identity.api_key(exchange.bob.key.key) is not None
    keys_page = alice.get("/account/api-keys").text
    assert exchange.alice.key.key[:12] in keys_page and exchange.bob.key.key[:12] not in keys_page
    sessions_page = alice.get("/account/sessions").text
    assert bob_session not in sessions_page


def test_api_key_secret_is_shown_once_then_revoked(exchange: Exchange, alice: PortalClient) -> None:
    response = alice.post(
        "/account/api-keys",
        {"label": "my bot", "scopes": ["read", "trade"], "allowed_ips": "203.0.113.7, 10.0.0.0/8"},
    )
    assert response.status_code == 200 and "it is shown only once" in response.text
    key = response.text.split('class="api-key">', 1)[1].split("<", 1)[0]
    secret = response.text.split('class="api-secret">', 1)[1].split("<", 1)[0]
    info = exchange.server.ctx.identity.api_key(key)
    assert info is not None and info.secret == secret and info.account == exchange.alice.account
    assert {s.value for s in info.scopes} == {"read", "trade"} and info.allowed_ips == ("203.0.113.7", "10.0.0.0/8")
    listing = alice.get("/account/api-keys").text
    assert secret not in listing and "my bot" in listing
    assert alice.post("/account/api-keys/revoke", {"key": key}, page="/account/api-keys").status_code == 303
    assert exchange.server.ctx.identity.api_key(key) is None


KEY_ERRORS = [
    ({"label": "x"}, "needs at least one scope"),
    ({"label": "x", "scopes": "read", "allowed_ips": "not-an-ip"}, "is not an IP address"),
    ({"label": "x", "scopes": ["read", "withdraw"]}, "needs two-factor authentication: turn it on first"),
]


def test_api_key_errors_say_what_to_do(exchange: Exchange, alice: PortalClient) -> None:
    before = exchange.server.ctx.identity.api_keys(exchange.alice.account)
    for form, message in KEY_ERRORS:
        response = alice.post("/account/api-keys", form)
        assert response.status_code == 400 and message in response.text
    assert exchange.server.ctx.identity.api_keys(exchange.alice.account) == before
