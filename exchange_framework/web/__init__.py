"""The web layer shared by the customer portal and the admin console.

- :class:`Web` (``Web.of(ctx)``): sessions (``current_user``, ``require_user``, ``require_role``, ``login``,
  ``logout``), CSRF (``csrf_token``, ``await form(request)``), flash messages, ``render`` and ``redirect``, and
  ``endpoint`` to wrap handlers.
- :func:`make_environment`: the three-tier jinja2 environment (operator, plugins, kernel; ``default:`` prefix).
- :class:`Form`: typed getters over a posted form; :class:`LoginLimiter`: failed-login limits per address and e-mail.
"""

from exchange_framework.web.core import (
    BROWSER_COOKIE,
    CONTENT_SECURITY_POLICY,
    SESSION_COOKIE,
    CsrfRefused,
    Forbidden,
    Handler,
    LoginRequired,
    NotFound,
    Web,
    WebError,
    safe_next,
)
from exchange_framework.web.forms import Form, FormError
from exchange_framework.web.security import CSRF_FIELD, LoginLimiter, csrf_token, csrf_valid
from exchange_framework.web.static import static_routes
from exchange_framework.web.templating import KERNEL_STATIC, KERNEL_TEMPLATES, make_environment, template_dirs

__all__ = [
    "BROWSER_COOKIE",
    "CONTENT_SECURITY_POLICY",
    "CSRF_FIELD",
    "KERNEL_STATIC",
    "KERNEL_TEMPLATES",
    "SESSION_COOKIE",
    "CsrfRefused",
    "Forbidden",
    "Form",
    "FormError",
    "Handler",
    "LoginLimiter",
    "LoginRequired",
    "NotFound",
    "Web",
    "WebError",
    "csrf_token",
    "csrf_valid",
    "make_environment",
    "safe_next",
    "static_routes",
    "template_dirs",
]
