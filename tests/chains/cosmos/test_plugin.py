"""The ``cosmos`` entry point registers an adapter from exchange.toml."""

from __future__ import annotations

from pathlib import Path

from exchange_cosmos import CosmosAdapter

from exchange_framework.chains import chain_adapters
from exchange_framework.config import parse_config
from exchange_framework.interfaces import ChainAdapter
from exchange_framework.plugins import make_plugin_manager

from .test_cosmos import XPUB


def test_plugin_registers_the_configured_adapter(tmp_path: Path, installed_entry_points: None) -> None:
    """Settings for Osmosis-style addresses and an IBC denom reach the adapter."""
    text = f"""
[brand]
name = "T"
[plugins.settings.cosmos]
name = "osmosis"
chain_id = "osmosis-1"
hrp = "osmo"
xpub = "{XPUB}"
native_asset = "OSMO"
native_denom = "uosmo"
assets = {{ "ATOM" = "ibc/27394FB092D2ECCD56123C74F36E4C1F926001CEADA9CA97EA622B25F41E5EB2" }}
"""
    config = parse_config(text, root=tmp_path)
    adapter = chain_adapters(make_plugin_manager(config), config)["osmosis"]
    assert isinstance(adapter, ChainAdapter) and isinstance(adapter, CosmosAdapter)
    assert adapter.deposit_address(1).address.startswith("osmo1") and adapter.validate_address(
        adapter.deposit_address(1).address
    )
    assert adapter.denoms == {
        "OSMO": "uosmo",
        "ATOM": "ibc/27394FB092D2ECCD56123C74F36E4C1F926001CEADA9CA97EA622B25F41E5EB2",
    }
