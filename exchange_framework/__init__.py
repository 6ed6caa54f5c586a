"""exchange_framework: the kernel of a plugin-based white-label cryptocurrency exchange."""

from __future__ import annotations

__version__ = "0.1.0"
