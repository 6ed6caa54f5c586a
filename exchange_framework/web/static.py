"""Static files of the default theme (``/static/...``) and the operator's logo (``/brand/logo``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from exchange_framework.config import ExchangeConfig
from exchange_framework.web.templating import KERNEL_STATIC

__all__ = ["static_routes"]


def static_routes(config: ExchangeConfig) -> list[BaseRoute]:
    """``/static`` (the theme's CSS and JS) and ``/brand/logo`` (``[brand] logo``, 404 when none is set)."""

    async def logo(_request: Request) -> Response:
        if config.brand.logo is None:
            return Response("no logo is configured: set [brand] logo", status_code=404)
        return FileResponse(config.resolve_path(config.brand.logo))

    return [
        Mount("/static", app=StaticFiles(directory=str(KERNEL_STATIC)), name="static"),
        Route("/brand/logo", logo, methods=["GET"], name="brand_logo"),
    ]
