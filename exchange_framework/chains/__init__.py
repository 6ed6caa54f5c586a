"""Chain adapters: the contract's helpers, deposit key derivation and the conformance kit.

The contract itself is :class:`exchange_framework.interfaces.ChainAdapter`; adapters are registered by plugins
through the ``register_chain_adapters`` hook and each is its own distribution under ``chains/``. The kernel never
imports an adapter: it finds them with :func:`chain_adapters`.
"""

from __future__ import annotations

import pluggy

from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import ChainAdapter
from exchange_framework.plugins import collect_registered

__all__ = ["chain_adapters"]


def chain_adapters(pm: pluggy.PluginManager, config: ExchangeConfig) -> dict[str, ChainAdapter]:
    """Return every registered chain adapter by name (start-up errors as :func:`collect_registered` raises them)."""
    return collect_registered(pm, "register_chain_adapters", config=config)
