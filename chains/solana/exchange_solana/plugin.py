"""The ``solana`` plugin: registers one Solana adapter when ``[plugins.settings.solana]`` is present.

Registering opens nothing: the JSON-RPC client connects on first use. See :mod:`exchange_solana.settings` for the
table's keys and ``docs/chains-solana.md`` for the operator's guide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_solana.adapter import SolanaAdapter, Token
from exchange_solana.litesvm_node import LiteSvmNode
from exchange_solana.node import SolanaNode
from exchange_solana.rpc import JsonRpcNode
from exchange_solana.settings import SETTINGS_NAME, parse_settings

__all__ = ["adapter_from_settings", "register_chain_adapters"]


def adapter_from_settings(settings: Mapping[str, Any]) -> SolanaAdapter:
    """Build the adapter a ``[plugins.settings.solana]`` table describes; ``ValueError`` naming a bad key."""
    parsed = parse_settings(settings)
    node: SolanaNode
    if parsed.node == "litesvm":
        node = LiteSvmNode()
    else:
        node = JsonRpcNode(parsed.rpc_url, commitment=parsed.commitment, timeout=parsed.rpc_timeout)
    return SolanaAdapter(
        node,
        deposit_owner=parsed.deposit_owner,
        chain_id=parsed.chain_id,
        name=parsed.name,
        native_asset=parsed.native_asset,
        confirmations=parsed.confirmations,
        account_addresses={int(k): v for k, v in parsed.account_addresses.items()},
        tokens=[Token(t.symbol, t.mint, t.decimals) for t in parsed.tokens],
        legacy=parsed.transaction_version == "legacy",
        compute_unit_price=parsed.compute_unit_price,
        lamports_per_signature=parsed.lamports_per_signature,
    )


@hookimpl
def register_chain_adapters(config: ExchangeConfig | None) -> list[SolanaAdapter]:
    """Register the configured Solana adapter (none when ``[plugins.settings.solana]`` is absent)."""
    settings = config.plugin_settings(SETTINGS_NAME) if config is not None else {}
    return [adapter_from_settings(settings)] if settings else []
