"""The admin console: operators with roles review KYC, approve withdrawals, run markets and fees, read alerts.

Pages live under ``/admin``; :data:`~exchange_framework.admin.policy.ROUTES` lists every route with the one action it
performs and :data:`~exchange_framework.admin.policy.ACTIONS` the roles allowed each action, checked on every
request. Every operator action is appended to the audit log before it is done. See ``docs/admin.md``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from exchange_framework.admin.console import AdminConsole, plugin_page
from exchange_framework.admin.funds import FundsPages
from exchange_framework.admin.markets import MarketPages
from exchange_framework.admin.people import PeoplePages
from exchange_framework.admin.policy import ACTIONS, OPERATOR_ROLES, ROUTES, AdminRoute, allowed
from exchange_framework.admin.records import RecordPages
from exchange_framework.admin.tiers import TierPages
from exchange_framework.api.context import ApiContext
from exchange_framework.web import Web

__all__ = ["ACTIONS", "OPERATOR_ROLES", "ROUTES", "AdminConsole", "AdminRoute", "allowed", "plugin_page", "routes"]


def routes(ctx: ApiContext) -> list[BaseRoute]:
    """The admin console's routes, all under ``/admin``."""
    console = AdminConsole(ctx, Web.of(ctx))
    ctx.extras["admin"] = console
    return console.routes(
        PeoplePages(console), FundsPages(console), MarketPages(console), RecordPages(console), TierPages(console)
    )
