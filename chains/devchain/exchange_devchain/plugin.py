"""The ``devchain`` plugin: registers one development chain adapter from ``[plugins.settings.devchain]``.

Settings (all optional)::

    [plugins.settings.devchain]
    data_dir = "var/devchain"      # where the chain's state file lives (relative to exchange.toml)
    chain_id = "devchain-1"
    xpub = "xpub..."               # deposit keys; default: the public dev key below (demo only)
    confirmations = 3
    native_asset = "DEV"
    assets = ["DEV", "DUSD"]
    min_fee = 1000                 # atomic units of the native asset
    memo_deposits = false          # true: one shared address, accounts told apart by memo (like memo chains)
    block_time = 0                 # seconds between blocks mined in the background (0: mine on demand only)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from bip_utils import Bip32Slip10Secp256k1

from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.node import DevChain
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig

__all__ = [
    "DEV_SEED",
    "DEV_XPRV",
    "DEV_XPUB",
    "SETTINGS_NAME",
    "adapter_from_settings",
    "register_chain_adapters",
    "register_commands",
]

SETTINGS_NAME = "devchain"
# A published, well-known seed: fine for a development chain, never for real money.
DEV_SEED = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
DEV_XPUB: str = str(Bip32Slip10Secp256k1.FromSeed(DEV_SEED).PublicKey().ToExtended())
DEV_XPRV: str = str(Bip32Slip10Secp256k1.FromSeed(DEV_SEED).PrivateKey().ToExtended())  # sweeps on the dev chain

_DEFAULTS: dict[str, Any] = {
    "data_dir": "var/devchain",
    "chain_id": "devchain-1",
    "xpub": DEV_XPUB,
    "confirmations": 3,
    "native_asset": "DEV",
    "assets": ["DEV", "DUSD"],
    "min_fee": 1_000,
    "memo_deposits": False,
    "block_time": 0,
}


def adapter_from_settings(settings: Mapping[str, Any], config: ExchangeConfig | None = None) -> DevChainAdapter:
    """Build the adapter described by a ``[plugins.settings.devchain]`` table; raise ``ValueError`` naming a bad key."""
    unknown = sorted(set(settings) - set(_DEFAULTS))
    if unknown:
        raise ValueError(
            f"[plugins.settings.{SETTINGS_NAME}] has unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_DEFAULTS))}"
        )
    merged = {**_DEFAULTS, **settings}
    if not isinstance(merged["block_time"], int | float) or isinstance(merged["block_time"], bool):
        raise ValueError(f"[plugins.settings.{SETTINGS_NAME}] block_time must be a number of seconds")
    for key in ("confirmations", "min_fee"):
        if not isinstance(merged[key], int) or isinstance(merged[key], bool):
            raise ValueError(f"[plugins.settings.{SETTINGS_NAME}] {key} must be an integer, got {merged[key]!r}")
    data_dir = config.resolve_path(merged["data_dir"]) if config is not None else merged["data_dir"]
    chain_id = str(merged["chain_id"])

    def open_node() -> DevChain:
        node = DevChain.open(
            data_dir, chain_id=chain_id, native_asset=merged["native_asset"], min_fee=merged["min_fee"]
        )
        if merged["block_time"] > 0:
            node.start_miner(float(merged["block_time"]))
        return node

    return DevChainAdapter(
        open_node,
        xpub=merged["xpub"],
        name=SETTINGS_NAME,
        chain_id=chain_id,
        required_confirmations=merged["confirmations"],
        native_asset=merged["native_asset"],
        assets=tuple(merged["assets"]),
        memo_deposits=bool(merged["memo_deposits"]),
        dev_deposit_xprv=DEV_XPRV if merged["xpub"] == DEV_XPUB else "",
    )


@hookimpl
def register_chain_adapters(config: ExchangeConfig | None) -> list[DevChainAdapter]:
    """Register the development chain (its node opens on first use, so registering creates no file)."""
    settings = config.plugin_settings(SETTINGS_NAME) if config is not None else {}
    return [adapter_from_settings(settings, config)]


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``exchange devchain`` (status, faucet, mine, reorg)."""
    from exchange_devchain.cli import devchain

    cli.add_command(devchain)
