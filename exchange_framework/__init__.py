"""exchange_framework: the kernel of a plugin-based white-label cryptocurrency exchange."""

from __future__ import annotations

from exchange_framework.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
