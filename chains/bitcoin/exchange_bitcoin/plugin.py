"""The ``bitcoin`` plugin: one :class:`UtxoChainAdapter` per network in ``[plugins.settings.bitcoin.networks]``.

Bitcoin and Litecoin are configurations of the same adapter::

    [plugins.settings.bitcoin.networks.litecoin]     # the table name is the chain's name in the exchange
    preset = "litecoin-mainnet"                      # fills chain_id, node_chain, hrp, version bytes, asset
    url = "http://127.0.0.1:9332"
    rpc_user = "exchange"
    rpc_password_env = "LTC_RPC_PASSWORD"            # or rpc_cookie_file = "/var/lib/litecoind/.cookie"
    deposit_xpub = "zpub..."                         # account key m/84'/2'/0' (xpub, zpub, Ltub, ... accepted)
    hot_key_id = "ltc-hot-1"                         # the custody key withdrawals are paid from
    confirmations = 6

    [plugins.settings.bitcoin.networks.litecoin.change_keys]  # optional: fresh change addresses
    "ltc-hot-1-change-1" = "02..."                   # key id in the custody signer = public key (hex)

Registering opens nothing: the node is first contacted when the adapter is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from exchange_bitcoin.adapter import UtxoChainAdapter
from exchange_bitcoin.network import NetworkParams, params_from_settings
from exchange_bitcoin.rpc import RpcClient
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig

__all__ = ["SETTINGS_NAME", "adapter_from_settings", "register_chain_adapters"]

SETTINGS_NAME = "bitcoin"
_NETWORK_KEYS = set(NetworkParams.__struct_fields__) | {"preset"}
_ADAPTER_KEYS = {
    "url": None,
    "rpc_user": "",
    "rpc_password_env": None,
    "rpc_cookie_file": None,
    "rpc_timeout": 30,
    "wallet": "exchange-watch",
    "deposit_xpub": None,
    "hot_key_id": None,
    "confirmations": 6,
    "conf_target": 6,
    "fallback_fee": 20_000,
    "max_fee_rate": 1_000_000,
    "min_input_confirmations": 1,
    "change_keys": {},
}


def adapter_from_settings(
    name: str, settings: Mapping[str, Any], config: ExchangeConfig | None = None
) -> UtxoChainAdapter:
    """Build the adapter for one ``[plugins.settings.bitcoin.networks.<name>]`` table; ``ValueError`` names the key."""
    where = f"[plugins.settings.{SETTINGS_NAME}.networks.{name}]"
    unknown = sorted(set(settings) - _NETWORK_KEYS - set(_ADAPTER_KEYS))
    if unknown:
        allowed = ", ".join(sorted(_NETWORK_KEYS | set(_ADAPTER_KEYS)))
        raise ValueError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
    merged = {**_ADAPTER_KEYS, **{k: v for k, v in settings.items() if k in _ADAPTER_KEYS}}
    for key in ("url", "deposit_xpub"):
        if not isinstance(merged[key], str) or not merged[key]:
            raise ValueError(f"{where} needs {key}")
    params = params_from_settings(
        settings.get("preset"), {k: v for k, v in settings.items() if k in _NETWORK_KEYS - {"preset"}}, where
    )
    password = ""
    cookie = merged["rpc_cookie_file"]
    if merged["rpc_password_env"] is not None:
        variable = str(merged["rpc_password_env"])
        if variable not in os.environ:
            raise ValueError(f"{where} rpc_password_env names {variable}, which is not set in the environment")
        password = os.environ[variable]
    elif cookie is None:
        raise ValueError(f"{where} needs rpc_password_env (with rpc_user) or rpc_cookie_file for the node's RPC")
    if cookie is not None and config is not None:
        cookie = config.resolve_path(cookie)
    rpc = RpcClient(
        merged["url"],
        user=str(merged["rpc_user"]),
        password=password,
        cookie_file=cookie,
        timeout=float(merged["rpc_timeout"]),
        label=f"{name} node",
    )
    change_keys = merged["change_keys"]
    if not isinstance(change_keys, Mapping) or not all(isinstance(v, str) for v in change_keys.values()):
        raise ValueError(f"{where} change_keys must be a table of key id = public key (hex)")
    try:
        parsed_change_keys = {str(k): bytes.fromhex(v) for k, v in change_keys.items()}
    except ValueError:
        raise ValueError(f"{where} change_keys: every public key must be hex") from None
    try:
        return UtxoChainAdapter(
            rpc,
            params,
            name=name,
            deposit_xpub=merged["deposit_xpub"],
            required_confirmations=merged["confirmations"],
            wallet=str(merged["wallet"]),
            hot_key_id=merged["hot_key_id"],
            conf_target=merged["conf_target"],
            fallback_fee=merged["fallback_fee"],
            max_fee_rate=merged["max_fee_rate"],
            min_input_confirmations=merged["min_input_confirmations"],
            change_keys=parsed_change_keys,
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


@hookimpl
def register_chain_adapters(config: ExchangeConfig | None) -> list[UtxoChainAdapter]:
    """Register one adapter per configured network (none when the plugin has no settings)."""
    settings = config.plugin_settings(SETTINGS_NAME) if config is not None else {}
    unknown = sorted(set(settings) - {"networks"})
    if unknown:
        raise ValueError(
            f"[plugins.settings.{SETTINGS_NAME}] has unknown key(s) {', '.join(unknown)}; use networks.<name>"
        )
    networks = settings.get("networks", {})
    if not isinstance(networks, Mapping):
        raise ValueError(f"[plugins.settings.{SETTINGS_NAME}.networks] must be a table of networks by name")
    return [adapter_from_settings(name, table, config) for name, table in networks.items()]
