"""The ``evm`` plugin: registers one chain adapter per network listed in ``[plugins.settings.evm]``.

With no networks configured it registers nothing. Registering opens nothing: the node is first called, and the
nonce book (``<data_dir>/<network>-nonces.sqlite``) first opened, when the adapter is used. See
:mod:`exchange_evm.settings` for the table's keys and ``docs/chains-evm.md`` for the operator's guide.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exchange_evm.adapter import EvmAdapter
from exchange_evm.settings import SETTINGS_NAME, parse_settings
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig

__all__ = ["adapters_from_settings", "register_chain_adapters"]


def adapters_from_settings(settings: Mapping[str, Any], config: ExchangeConfig | None = None) -> list[EvmAdapter]:
    """Build the adapters described by a ``[plugins.settings.evm]`` table; ``ValueError`` naming a bad key."""
    parsed = parse_settings(settings)
    data_dir = config.resolve_path(parsed.data_dir) if config is not None else Path(parsed.data_dir)
    return [EvmAdapter.from_settings(network, data_dir) for network in parsed.networks]


@hookimpl
def register_chain_adapters(config: ExchangeConfig | None) -> list[EvmAdapter]:
    """Register an adapter for every configured EVM network (none when ``[plugins.settings.evm]`` is absent)."""
    settings = config.plugin_settings(SETTINGS_NAME) if config is not None else {}
    return adapters_from_settings(settings, config)
