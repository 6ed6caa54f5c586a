"""The ``solana`` entry point registers an adapter from exchange.toml."""

from __future__ import annotations

from pathlib import Path

from exchange_solana import SolanaAdapter

from exchange_framework.chains import chain_adapters
from exchange_framework.config import parse_config
from exchange_framework.interfaces import ChainAdapter, DepositAddress
from exchange_framework.plugins import make_plugin_manager

from .conftest import OWNER, PER_ACCOUNT, TOKEN


def test_plugin_registers_the_configured_adapter(tmp_path: Path, installed_entry_points: None) -> None:
    """A LiteSVM-backed dev chain from settings: memo deposits, per-account addresses and the token."""
    text = f"""
[brand]
name = "T"
[plugins.settings.solana]
name = "solana-dev"
chain_id = "litesvm-dev"
node = "litesvm"
deposit_owner = "{OWNER.pubkey()}"
confirmations = 2
account_addresses = {{ "1" = "{PER_ACCOUNT[1]}" }}
[[plugins.settings.solana.tokens]]
symbol = "DUSD"
mint = "{TOKEN.mint}"
decimals = 6
"""
    config = parse_config(text, root=tmp_path)
    adapter = chain_adapters(make_plugin_manager(config), config)["solana-dev"]
    assert isinstance(adapter, ChainAdapter) and isinstance(adapter, SolanaAdapter)
    assert (adapter.chain_id, adapter.required_confirmations, adapter.native_asset) == ("litesvm-dev", 2, "SOL")
    assert adapter.deposit_address(1) == DepositAddress(PER_ACCOUNT[1])
    assert adapter.deposit_address(2) == DepositAddress(str(OWNER.pubkey()), "2")
    assert set(adapter.tokens) == {"DUSD"}
