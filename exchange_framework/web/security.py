"""Browser security for the portal and admin console: CSRF tokens and login rate limits.

A CSRF token is an HMAC keyed with the browser's secret cookie (the login session token once logged in, a random
browser id before that): a page served to that browser carries it, another site cannot read the cookie and so
cannot compute it. Nothing is stored on the server and tokens survive restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CSRF_FIELD", "LoginLimiter", "csrf_token", "csrf_valid"]

CSRF_FIELD = "csrf_token"


def csrf_token(secret: str) -> str:
    """The CSRF token for a browser whose secret cookie value is ``secret``."""
    return hmac.new(secret.encode(), b"exchange-framework csrf v1", hashlib.sha256).hexdigest()


def csrf_valid(secret: str, token: str) -> bool:
    """Whether ``token`` is the CSRF token of ``secret`` (constant-time comparison)."""
    return bool(secret) and hmac.compare_digest(csrf_token(secret), token)


@dataclass
class LoginLimiter:
    """Counts failed logins in a sliding window, per client address and per e-mail, in memory.

    ``per_ip`` failures from one address or ``per_email`` failures for one e-mail within ``window_s`` seconds
    block further attempts until the oldest failure leaves the window.
    """

    per_ip: int = 20
    per_email: int = 5
    window_s: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def blocked(self, ip: str, email: str) -> str | None:
        """Return a message saying when to try again if this address or e-mail is blocked, else ``None``."""
        for key, limit in ((f"ip:{ip}", self.per_ip), (f"email:{email.strip().lower()}", self.per_email)):
            times = self._recent(key)
            if len(times) >= limit:
                minutes = max(1, math.ceil((times[0] + self.window_s - self.clock()) / 60))
                return (
                    f"Too many failed login attempts: wait {minutes} minute{'s' if minutes != 1 else ''} and try "
                    "again, checking the e-mail address and password."
                )
        return None

    def failed(self, ip: str, email: str) -> None:
        """Record one failed attempt."""
        now = self.clock()
        self._recent(f"ip:{ip}").append(now)
        self._recent(f"email:{email.strip().lower()}").append(now)
        if len(self._failures) > 100_000:  # bound memory under a spray of e-mails: keep only live windows
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def succeeded(self, email: str) -> None:
        """Forget the e-mail's failures after a successful login."""
        self._failures.pop(f"email:{email.strip().lower()}", None)
