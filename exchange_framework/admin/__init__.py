"""The admin console: operators with roles review KYC, approve withdrawals, run markets and fees, read alerts."""

from __future__ import annotations

from starlette.routing import BaseRoute

from exchange_framework.api.context import ApiContext

__all__ = ["routes"]


def routes(ctx: ApiContext) -> list[BaseRoute]:
    """The admin console's routes, all under ``/admin``."""
    return []
