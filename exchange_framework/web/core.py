"""Per-request web plumbing shared by the portal and the admin console: sessions, CSRF, flash messages, rendering.

Wrap every handler with :meth:`Web.endpoint`: it checks login and roles, turns :class:`WebError` into a page,
sets the cookies the request asked for (HttpOnly, SameSite=Lax, Secure over https) and adds the page headers.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import pluggy
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from exchange_framework.config import ExchangeConfig
from exchange_framework.identity import IdentityStore, SessionInfo, UserInfo
from exchange_framework.web.security import CSRF_FIELD, LoginLimiter, csrf_token, csrf_valid
from exchange_framework.web.templating import make_environment

__all__ = [
    "BROWSER_COOKIE",
    "CONTENT_SECURITY_POLICY",
    "SESSION_COOKIE",
    "CsrfRefused",
    "Forbidden",
    "Handler",
    "LoginRequired",
    "NotFound",
    "Web",
    "WebError",
    "safe_next",
]

SESSION_COOKIE = "exchange_session"
BROWSER_COOKIE = "exchange_browser"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
MAX_FLASH_BROWSERS = 10_000

Handler = Callable[[Request], Awaitable[Response]]


class WebError(Exception):
    """Stops a handler and shows a page instead (raised by the helpers below, or by handlers)."""

    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class LoginRequired(WebError):
    """The page needs a logged-in user: the browser is sent to the login page and back afterwards."""

    status = 401


class Forbidden(WebError):
    """The user may not do this (wrong role, someone else's object); the message says what to do instead."""

    status = 403


class CsrfRefused(Forbidden):
    """A form post without this browser's CSRF token: refused, nothing changed."""


class NotFound(WebError):
    """No such page or object (also what another user's object looks like)."""

    status = 404


def _state(request: Request) -> dict[str, Any]:
    """This request's web state (browser id, session, cookies to set), kept in the ASGI scope."""
    state: dict[str, Any] = request.scope.setdefault("exchange_web", {})
    return state


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to return to after login; anything that could leave the site becomes ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


class Web:
    """The web layer of one exchange app: template environment, identity store, login limiter and flash messages.

    Get the app's single instance with :meth:`Web.of`.
    """

    def __init__(
        self,
        config: ExchangeConfig,
        identity: IdentityStore,
        pm: pluggy.PluginManager,
        *,
        env: jinja2.Environment | None = None,
        limiter: LoginLimiter | None = None,
        login_path: str = "/login",
    ) -> None:
        self.config = config
        self.identity = identity
        self.pm = pm
        self.env = env if env is not None else make_environment(config, pm)
        self.limiter = limiter if limiter is not None else LoginLimiter()
        self.login_path = login_path
        self._flashes: dict[str, list[tuple[str, str]]] = {}

    @classmethod
    def of(cls, ctx: Any) -> Web:
        """The :class:`Web` of an :class:`~exchange_framework.api.context.ApiContext` (made on first use)."""
        web = ctx.extras.get("web")
        if web is None:
            web = ctx.extras["web"] = cls(ctx.node.config, ctx.identity, ctx.node.pm)
        assert isinstance(web, Web)
        return web

    # -- who is asking
    @staticmethod
    def client_ip(request: Request) -> str:
        """The client's address as the server saw it."""
        return request.client.host if request.client else ""

    @staticmethod
    def is_https(request: Request) -> bool:
        """Whether the request came over https (cookies are then marked Secure)."""
        return request.url.scheme in ("https", "wss")

    def _set_cookie(self, request: Request, name: str, value: str | None) -> None:
        pending: dict[str, str | None] = _state(request).setdefault("cookies", {})
        pending[name] = value

    def browser_id(self, request: Request) -> str:
        """This browser's random id (a cookie set on its first visit); keys CSRF before login and flash messages."""
        state = _state(request)
        if "web_browser" not in state:
            value = request.cookies.get(BROWSER_COOKIE, "")
            if len(value) < 32:
                value = secrets.token_urlsafe(32)
                self._set_cookie(request, BROWSER_COOKIE, value)
            state["web_browser"] = value
        browser: str = state["web_browser"]
        return browser

    def _session(self, request: Request) -> tuple[str, SessionInfo, UserInfo] | None:
        state = _state(request)
        if "web_session" not in state:
            found: tuple[str, SessionInfo, UserInfo] | None = None
            token = request.cookies.get(SESSION_COOKIE, "")
            if token:
                info = self.identity.session(token)
                user = self.identity.user(info.account) if info is not None else None
                if info is not None and user is not None and not user.disabled:
                    found = (token, info, user)
            state["web_session"] = found
        session: tuple[str, SessionInfo, UserInfo] | None = state["web_session"]
        return session

    def session(self, request: Request) -> SessionInfo | None:
        """The live login session of this request, or ``None``."""
        found = self._session(request)
        return found[1] if found else None

    def current_user(self, request: Request) -> UserInfo | None:
        """The logged-in user of this request (an enabled account with a live session), or ``None``."""
        found = self._session(request)
        return found[2] if found else None

    def require_user(self, request: Request) -> UserInfo:
        """The logged-in user; raise :class:`LoginRequired` if there is none."""
        user = self.current_user(request)
        if user is None:
            raise LoginRequired("Log in to see this page.")
        return user

    def require_role(self, request: Request, *roles: str) -> UserInfo:
        """The logged-in user if their role is one of ``roles``; raise :class:`LoginRequired` or :class:`Forbidden`."""
        user = self.require_user(request)
        if user.role not in roles:
            raise Forbidden(f"This page is for {' or '.join(roles)} accounts; ask an administrator for access.")
        return user

    # -- logging in and out
    def login(self, request: Request, user: UserInfo) -> str:
        """Start a session for ``user``; the cookie is set on this request's response. Return the token."""
        token = self.identity.create_session(
            user.id, user_agent=request.headers.get("user-agent", ""), ip=self.client_ip(request)
        )
        self._set_cookie(request, SESSION_COOKIE, token)
        return token

    def logout(self, request: Request) -> None:
        """End this request's session (revoked in the store) and clear its cookie."""
        found = self._session(request)
        if found is not None:
            self.identity.revoke_session(found[1].account, found[1].token_hash)
        _state(request)["web_session"] = None
        self._set_cookie(request, SESSION_COOKIE, None)

    # -- CSRF and forms
    def _csrf_secret(self, request: Request) -> str:
        found = self._session(request)
        return found[0] if found else self.browser_id(request)

    def csrf_token(self, request: Request) -> str:
        """The CSRF token forms on this request's page must send back (field ``csrf_token``)."""
        return csrf_token(self._csrf_secret(request))

    async def form(self, request: Request) -> FormData:
        """The posted form, after checking its CSRF token and origin; raise :class:`CsrfRefused` otherwise."""
        origin = request.headers.get("origin")
        # Browsers send "null" for form posts under Referrer-Policy: no-referrer; the token still decides. Hosts only:
        # behind a TLS proxy the scheme seen here may differ from the browser's.
        if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
            raise CsrfRefused("This form was sent from another site and was refused; nothing was changed.")
        form = await request.form()
        token = form.get(CSRF_FIELD)
        if not isinstance(token, str) or not csrf_valid(self._csrf_secret(request), token):
            raise CsrfRefused(
                "The form's security token is missing or has expired; nothing was changed. Reload the page and "
                "submit the form again."
            )
        return form

    # -- flash messages
    def flash(self, request: Request, message: str, kind: str = "info") -> None:
        """Show ``message`` on the next page this browser renders (``kind``: info, success, error)."""
        browser = self.browser_id(request)
        if browser not in self._flashes and len(self._flashes) >= MAX_FLASH_BROWSERS:
            self._flashes.pop(next(iter(self._flashes)))
        self._flashes.setdefault(browser, []).append((kind, message))

    def pop_flashes(self, request: Request) -> list[tuple[str, str]]:
        """This browser's pending flash messages, ``(kind, message)``, removed as they are returned."""
        return self._flashes.pop(self.browser_id(request), [])

    # -- responses
    def context(self, request: Request, template: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The variables a page sees: plugins' ``extra_template_vars``, then the kernel's, then ``values``."""
        merged: dict[str, Any] = {}
        for extra in self.pm.hook.extra_template_vars(template=template, request=request, config=self.config):
            if extra:
                merged.update(extra)
        token = self.csrf_token(request)
        merged.update(
            request=request,
            user=self.current_user(request),
            brand=self.config.brand,
            csrf_token=token,
            csrf_field=Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token),
            flashes=self.pop_flashes(request),
        )
        merged.update(values or {})
        return merged

    def render(
        self, request: Request, template: str, values: Mapping[str, Any] | None = None, *, status: int = 200
    ) -> HTMLResponse:
        """Render ``template`` with :meth:`context` into an HTML response."""
        html = self.env.get_template(template).render(self.context(request, template, values))
        return HTMLResponse(html, status_code=status)

    def redirect(self, request: Request, url: str, message: str | None = None, kind: str = "info") -> Response:
        """A 303 redirect (after a form post), optionally with a flash message for the next page."""
        if message:
            self.flash(request, message, kind)
        return RedirectResponse(url, status_code=303)

    def finish(self, request: Request, response: Response) -> Response:
        """Set the cookies this request asked for and the page headers (CSP, no caching of private pages)."""
        secure = self.is_https(request)
        for name, value in _state(request).get("cookies", {}).items():
            if value is None:
                response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="lax")
            else:
                response.set_cookie(name, value, path="/", secure=secure, httponly=True, samesite="lax")
        response.headers.setdefault("content-security-policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("cache-control", "no-store")
        return response

    def endpoint(self, fn: Handler, *, login: bool = False, roles: Iterable[str] = ()) -> Handler:
        """Wrap a handler: require a login (and one of ``roles``) if asked, show :class:`WebError` as a page and
        :meth:`finish` the response."""
        role_list = tuple(roles)

        async def handler(request: Request) -> Response:
            try:
                if role_list:
                    self.require_role(request, *role_list)
                elif login:
                    self.require_user(request)
                response = await fn(request)
            except LoginRequired:
                path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"{self.login_path}?next={quote(path, safe='/')}", status_code=303)
            except WebError as exc:
                response = self.render(
                    request, "error.html", {"message": exc.message, "status": exc.status}, status=exc.status
                )
            return self.finish(request, response)

        handler.__name__ = getattr(fn, "__name__", "handler")
        handler.__doc__ = fn.__doc__
        return handler
