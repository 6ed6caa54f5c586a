"""TOTP two-factor codes (RFC 6238 via pyotp) with replay protection, and QR codes as inline SVG (segno)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyotp
import segno
from markupsafe import Markup

__all__ = ["PendingLogins", "TotpChecker", "qr_svg"]

STEP_S = 30


def qr_svg(data: str) -> Markup:
    """``data`` as an inline SVG QR code (safe to put in a page: segno writes only its own markup)."""
    svg = segno.make(data, error="m").svg_inline(scale=4, dark="#000", light="#fff", omitsize=False)
    return Markup(svg)  # segno's own markup: the data is drawn as modules, never copied into the SVG as text


@dataclass
class TotpChecker:
    """Checks six-digit codes, one 30-second step of clock drift either way, each code usable only once."""

    clock: Callable[[], float] = time.time
    _last_step: dict[int, int] = field(default_factory=dict)

    @staticmethod
    def new_secret() -> str:
        """A fresh base32 secret for enrolment."""
        return pyotp.random_base32()

    @staticmethod
    def uri(secret: str, email: str, issuer: str) -> str:
        """The ``otpauth://`` URI authenticator apps scan."""
        return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)

    def check(self, account: int, secret: str, code: str) -> bool:
        """Whether ``code`` is valid now for ``secret`` and was not used before by ``account``."""
        code = code.strip().replace(" ", "")
        if len(code) != 6 or not code.isdigit():
            return False
        totp = pyotp.TOTP(secret)
        now = self.clock()
        for offset in (0, -1, 1):
            at = now + offset * STEP_S
            if secrets.compare_digest(totp.at(at), code):
                step = totp.timecode(at)
                if step <= self._last_step.get(account, -1):
                    return False
                self._last_step[account] = step
                return True
        return False


@dataclass
class PendingLogins:
    """Logins that passed the password and wait for a two-factor code (five minutes, one code attempt budget)."""

    ttl_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _pending: dict[str, tuple[int, str, float]] = field(default_factory=dict)

    def start(self, account: int, email: str) -> str:
        """Remember a password-checked login; return the nonce the code form sends back."""
        now = self.clock()
        for nonce in [n for n, (_, _, exp) in self._pending.items() if exp <= now]:
            del self._pending[nonce]
        nonce = secrets.token_urlsafe(24)
        self._pending[nonce] = (account, email, now + self.ttl_s)
        return nonce

    def get(self, nonce: str) -> tuple[int, str] | None:
        """The account and e-mail of a live pending login."""
        found = self._pending.get(nonce)
        if found is None or found[2] <= self.clock():
            return None
        return found[0], found[1]

    def finish(self, nonce: str) -> None:
        """Forget a pending login (logged in, or given up)."""
        self._pending.pop(nonce, None)
