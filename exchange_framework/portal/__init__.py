"""The customer portal (server-rendered jinja2 pages): sign-up and login, trading, wallet, KYC, API keys.

Every page is a template of the default theme (``exchange_framework/templates``) that an operator can override;
see ``docs/portal.md``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from exchange_framework.api.context import ApiContext
from exchange_framework.portal.accounts import AccountPages
from exchange_framework.portal.kyc import KycPages
from exchange_framework.portal.trading import TradingPages
from exchange_framework.portal.twofactor import TotpChecker
from exchange_framework.portal.wallet import WalletPages
from exchange_framework.web import Web, static_routes

__all__ = ["routes"]


def routes(ctx: ApiContext) -> list[BaseRoute]:
    """The portal's routes (pages, forms and static files)."""
    web = Web.of(ctx)
    totp = ctx.extras.setdefault("totp", TotpChecker())
    return [
        *static_routes(ctx.node.config),
        *AccountPages(ctx, web, totp).routes(),
        *TradingPages(ctx, web).routes(),
        *WalletPages(ctx, web, totp).routes(),
        *KycPages(ctx, web).routes(),
    ]
