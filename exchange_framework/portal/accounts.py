"""Account pages: sign-up, login (with two-factor), logout, two-factor enrolment, sessions and API keys."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exchange_framework.api.context import ApiContext
from exchange_framework.compliance.onboarding import Applicant
from exchange_framework.identity import IdentityError, Scope
from exchange_framework.portal.kyc import onboarding_gate
from exchange_framework.portal.twofactor import PendingLogins, TotpChecker, qr_svg
from exchange_framework.web import Form, FormError, NotFound, Web, safe_next

__all__ = ["AccountPages"]

SCOPES = tuple(s.value for s in Scope)


class AccountPages:
    """Handlers for the account pages of one app."""

    def __init__(self, ctx: ApiContext, web: Web, totp: TotpChecker) -> None:
        self.ctx = ctx
        self.web = web
        self.identity = ctx.identity
        self.totp = totp
        self.pending = PendingLogins()

    def routes(self) -> list[BaseRoute]:
        """The account routes."""
        e = self.web.endpoint
        return [
            Route("/signup", e(self.signup_page), methods=["GET"], name="signup"),
            Route("/signup", e(self.signup), methods=["POST"]),
            Route("/login", e(self.login_page), methods=["GET"], name="login"),
            Route("/login", e(self.login), methods=["POST"]),
            Route("/login/2fa", e(self.login_code), methods=["POST"], name="login_2fa"),
            Route("/logout", e(self.logout), methods=["POST"], name="logout"),
            Route("/account", e(self.account, login=True), methods=["GET"], name="account"),
            Route("/account/2fa", e(self.twofactor_page, login=True), methods=["GET"], name="twofactor"),
            Route("/account/2fa/enable", e(self.twofactor_enable, login=True), methods=["POST"]),
            Route("/account/2fa/disable", e(self.twofactor_disable, login=True), methods=["POST"]),
            Route("/account/sessions", e(self.sessions_page, login=True), methods=["GET"], name="sessions"),
            Route("/account/sessions/revoke", e(self.session_revoke, login=True), methods=["POST"]),
            Route("/account/api-keys", e(self.keys_page, login=True), methods=["GET"], name="api_keys"),
            Route("/account/api-keys", e(self.key_create, login=True), methods=["POST"]),
            Route("/account/api-keys/revoke", e(self.key_revoke, login=True), methods=["POST"]),
        ]

    # -- sign-up
    async def signup_page(self, request: Request) -> Response:
        if self.web.current_user(request) is not None:
            return self.web.redirect(request, "/account")
        return self.web.render(request, "signup.html", {"values": {}, "error": None})

    async def signup(self, request: Request) -> Response:
        form = Form(await self.web.form(request))
        values = {"email": form.text("email", max_length=254), "country": form.text("country").upper()}
        try:
            password = form.text("password", required=True, max_length=1000)
            if password != form.text("password_again", max_length=1000):
                raise FormError("The two passwords differ: type the same password twice.")
            if not values["country"]:
                raise FormError("Choose your country of residence (a two-letter code such as DE).")
            user = self.identity.create_user(values["email"], password, country=values["country"])
        except (FormError, IdentityError) as exc:
            return self.web.render(request, "signup.html", {"values": values, "error": _sentence(exc)}, status=400)
        applicant = Applicant(account=user.id, country=user.country, email=user.email, source="signup")
        await asyncio.to_thread(onboarding_gate(self.ctx).screen, applicant, trigger="signup", required=False)
        self.web.login(request, user)
        return self.web.redirect(
            request, "/account", "Welcome! Your account is open. Turn on two-factor authentication next.", "success"
        )

    # -- login
    async def login_page(self, request: Request) -> Response:
        next_url = safe_next(request.query_params.get("next"), "/account")
        if self.web.current_user(request) is not None:
            return self.web.redirect(request, next_url)
        return self.web.render(request, "login.html", {"email": "", "next": next_url, "error": None})

    async def login(self, request: Request) -> Response:
        form = Form(await self.web.form(request))
        email = form.text("email", max_length=254)
        next_url = safe_next(form.text("next", max_length=2000), "/account")
        ip = self.web.client_ip(request)
        blocked = self.web.limiter.blocked(ip, email)
        if blocked:
            return self.web.render(
                request, "login.html", {"email": email, "next": next_url, "error": blocked}, status=429
            )
        user = self.identity.authenticate(email, form.text("password", max_length=1000))
        if user is None:
            self.web.limiter.failed(ip, email)
            error = "Wrong e-mail or password: check both and try again (passwords are case-sensitive)."
            return self.web.render(
                request, "login.html", {"email": email, "next": next_url, "error": error}, status=400
            )
        if user.has_totp:
            nonce = self.pending.start(user.id, user.email)
            return self.web.render(request, "login_2fa.html", {"nonce": nonce, "next": next_url, "error": None})
        self.web.limiter.succeeded(email)
        self.web.login(request, user)
        return self.web.redirect(request, next_url)

    async def login_code(self, request: Request) -> Response:
        form = Form(await self.web.form(request))
        nonce = form.text("nonce", max_length=100)
        next_url = safe_next(form.text("next", max_length=2000), "/account")
        pending = self.pending.get(nonce)
        if pending is None:
            return self.web.redirect(request, "/login", "That login took too long: enter your password again.", "error")
        account, email = pending
        ip = self.web.client_ip(request)
        blocked = self.web.limiter.blocked(ip, email)
        if blocked:
            self.pending.finish(nonce)
            return self.web.redirect(request, "/login", blocked, "error")
        secret = self.identity.totp_secret(account)
        user = self.identity.user(account)
        if secret is None or user is None or not self.totp.check(account, secret, form.text("code")):
            self.web.limiter.failed(ip, email)
            error = "That code is not right: enter the current six-digit code from your authenticator app."
            return self.web.render(
                request, "login_2fa.html", {"nonce": nonce, "next": next_url, "error": error}, status=400
            )
        self.pending.finish(nonce)
        self.web.limiter.succeeded(email)
        self.web.login(request, user)
        return self.web.redirect(request, next_url)

    async def logout(self, request: Request) -> Response:
        await self.web.form(request)
        self.web.logout(request)
        return self.web.redirect(request, "/login", "You are logged out.", "success")

    # -- account, two-factor, sessions
    async def account(self, request: Request) -> Response:
        user = self.web.require_user(request)
        balances = self.ctx.node.balances.balances(user.id)
        rows = [
            (asset, self.ctx.units.amount(asset, avail), self.ctx.units.amount(asset, held))
            for asset, (avail, held) in sorted(balances.items())
        ]
        return self.web.render(request, "account.html", {"balances": rows})

    async def twofactor_page(self, request: Request) -> Response:
        user = self.web.require_user(request)
        return self._twofactor(request, user.email, self.totp.new_secret(), None)

    def _twofactor(self, request: Request, email: str, secret: str, error: str | None, status: int = 200) -> Response:
        uri = self.totp.uri(secret, email, self.web.config.brand.name)
        values = {"secret": secret, "uri": uri, "qr": qr_svg(uri), "error": error}
        return self.web.render(request, "twofactor.html", values, status=status)

    async def twofactor_enable(self, request: Request) -> Response:
        user = self.web.require_user(request)
        form = Form(await self.web.form(request))
        if user.has_totp:
            return self.web.redirect(request, "/account/2fa", "Two-factor authentication is already on.")
        secret = form.text("secret", required=True, max_length=64).upper()
        if len(secret) < 16 or not all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for c in secret):
            return self._twofactor(
                request, user.email, self.totp.new_secret(), "Start again with this new secret.", 400
            )
        if not self.totp.check(user.id, secret, form.text("code")):
            error = "That code does not match: add the secret to your app, then enter the six-digit code it shows."
            return self._twofactor(request, user.email, secret, error, 400)
        self.identity.set_totp_secret(user.id, secret)
        return self.web.redirect(request, "/account", "Two-factor authentication is on.", "success")

    async def twofactor_disable(self, request: Request) -> Response:
        user = self.web.require_user(request)
        form = Form(await self.web.form(request))
        secret = self.identity.totp_secret(user.id)
        if secret is None:
            return self.web.redirect(request, "/account/2fa", "Two-factor authentication is already off.")
        if not self.totp.check(user.id, secret, form.text("code")):
            return self.web.redirect(
                request,
                "/account/2fa",
                "That code is not right: enter the current code to turn two-factor off.",
                "error",
            )
        self.identity.set_totp_secret(user.id, None)
        return self.web.redirect(request, "/account", "Two-factor authentication is off.", "success")

    async def sessions_page(self, request: Request) -> Response:
        user = self.web.require_user(request)
        current = self.web.session(request)
        sessions = self.identity.sessions(user.id)
        return self.web.render(
            request, "sessions.html", {"sessions": sessions, "current": current.token_hash if current else ""}
        )

    async def session_revoke(self, request: Request) -> Response:
        user = self.web.require_user(request)
        form = Form(await self.web.form(request))
        token_hash = form.text("session", required=True, max_length=64)
        try:
            self.identity.revoke_session(user.id, token_hash)
        except IdentityError:
            raise NotFound("No such session on your account: reload the sessions page.") from None
        return self.web.redirect(request, "/account/sessions", "The session was logged out.", "success")

    # -- API keys
    async def keys_page(self, request: Request) -> Response:
        user = self.web.require_user(request)
        return self._keys(request, user.id, created=None, error=None)

    def _keys(
        self, request: Request, account: int, *, created: object, error: str | None, status: int = 200
    ) -> Response:
        keys = self.identity.api_keys(account)
        values = {"keys": keys, "created": created, "error": error, "scopes": SCOPES}
        return self.web.render(request, "api_keys.html", values, status=status)

    async def key_create(self, request: Request) -> Response:
        user = self.web.require_user(request)
        form = Form(await self.web.form(request))
        try:
            scopes = form.all("scopes")
            if Scope.WITHDRAW.value in scopes and not user.has_totp:
                raise FormError("A key with the withdraw scope needs two-factor authentication: turn it on first.")
            ips = [ip for ip in form.text("allowed_ips", max_length=1000).replace(",", " ").split() if ip]
            key = self.identity.create_api_key(
                user.id, label=form.text("label", max_length=80), scopes=scopes, allowed_ips=ips
            )
        except (FormError, IdentityError) as exc:
            return self._keys(request, user.id, created=None, error=_sentence(exc), status=400)
        return self._keys(request, user.id, created=key, error=None)

    async def key_revoke(self, request: Request) -> Response:
        user = self.web.require_user(request)
        form = Form(await self.web.form(request))
        try:
            self.identity.revoke_api_key(user.id, form.text("key", required=True, max_length=64))
        except IdentityError:
            raise NotFound("No such API key on your account: reload the API keys page.") from None
        return self.web.redirect(request, "/account/api-keys", "The API key was revoked.", "success")


def _sentence(exc: Exception) -> str:
    text = str(exc)
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
