"""Wallet tests are coroutines, run by anyio's pytest plugin (anyio comes with starlette) on asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
