"""A fake plugin implementing a hook that does not exist: loading it must fail."""

from __future__ import annotations

from exchange_framework import hookimpl


@hookimpl
def register_spaceships() -> list[str]:
    return []
