"""The ``cosmos`` plugin: registers one Cosmos SDK adapter when ``[plugins.settings.cosmos]`` is present.

The adapter builds, decodes and assembles withdrawals offline; its node methods raise ``NodeRequired`` (deposits,
broadcasting and status need a CometBFT RPC endpoint, not implemented yet). See ``docs/chains-cosmos.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exchange_cosmos.adapter import CosmosAdapter
from exchange_cosmos.settings import SETTINGS_NAME, parse_settings
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig

__all__ = ["adapter_from_settings", "register_chain_adapters"]


def adapter_from_settings(settings: Mapping[str, Any]) -> CosmosAdapter:
    """Build the adapter a ``[plugins.settings.cosmos]`` table describes; ``ValueError`` naming a bad key."""
    parsed = parse_settings(settings)
    return CosmosAdapter(
        chain_id=parsed.chain_id,
        xpub=parsed.xpub,
        name=parsed.name,
        hrp=parsed.hrp,
        native_asset=parsed.native_asset,
        native_denom=parsed.native_denom,
        assets=parsed.assets,
        gas_limit=parsed.gas_limit,
        fee_amount=parsed.fee_amount,
        confirmations=parsed.confirmations,
    )


@hookimpl
def register_chain_adapters(config: ExchangeConfig | None) -> list[CosmosAdapter]:
    """Register the configured Cosmos adapter (none when ``[plugins.settings.cosmos]`` is absent)."""
    settings = config.plugin_settings(SETTINGS_NAME) if config is not None else {}
    return [adapter_from_settings(settings)] if settings else []
