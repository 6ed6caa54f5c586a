"""The customer portal (server-rendered jinja2 pages): sign-up and login, trading, wallet, KYC, API keys."""

from __future__ import annotations

from starlette.routing import BaseRoute

from exchange_framework.api.context import ApiContext

__all__ = ["routes"]


def routes(ctx: ApiContext) -> list[BaseRoute]:
    """The portal's routes (pages, forms and static files)."""
    return []
