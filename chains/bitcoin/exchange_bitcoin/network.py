"""Network parameters of the Bitcoin family: address prefixes, coin type, asset, and the presets that fill them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["PRESETS", "NetworkParams"]


class NetworkParams(msgspec.Struct, frozen=True):
    """What makes one Bitcoin-family network's addresses and transactions its own.

    ``chain_id`` is what the adapter writes into every PSBT it builds (and what ``decode`` reports); ``node_chain``
    is the ``chain`` the node must report in ``getblockchaininfo`` (``main``, ``test``, ``regtest``), checked on
    first contact so an adapter configured for one network never talks to a node of another.
    """

    chain_id: str
    node_chain: str
    hrp: str  # bech32 human-readable part of segwit addresses
    p2pkh_versions: tuple[int, ...]  # base58check version bytes of pay-to-pubkey-hash addresses
    p2sh_versions: tuple[int, ...]  # ... of pay-to-script-hash addresses (Litecoin accepts two)
    asset: str  # the exchange asset symbol of the coin
    coin_type: int  # SLIP-44 coin type of the BIP84 account path m/84'/coin'/account'
    dust_limit: int = 546  # smallest output (atomic units) the adapter creates


PRESETS: Mapping[str, NetworkParams] = {
    "bitcoin-mainnet": NetworkParams("bitcoin-mainnet", "main", "bc", (0x00,), (0x05,), "BTC", 0),
    "bitcoin-testnet": NetworkParams("bitcoin-testnet", "test", "tb", (0x6F,), (0xC4,), "BTC", 1),
    "bitcoin-regtest": NetworkParams("bitcoin-regtest", "regtest", "bcrt", (0x6F,), (0xC4,), "BTC", 1),
    "litecoin-mainnet": NetworkParams("litecoin-mainnet", "main", "ltc", (0x30,), (0x32, 0x05), "LTC", 2),
    "litecoin-testnet": NetworkParams("litecoin-testnet", "test", "tltc", (0x6F,), (0x3A, 0xC4), "LTC", 1),
    "litecoin-regtest": NetworkParams("litecoin-regtest", "regtest", "rltc", (0x6F,), (0x3A, 0xC4), "LTC", 1),
}


def params_from_settings(preset: str | None, overrides: Mapping[str, Any], where: str) -> NetworkParams:
    """Return a preset's parameters with ``overrides`` applied; raise ``ValueError`` naming ``where`` and the key."""
    if preset is None:
        missing = sorted(set(NetworkParams.__struct_fields__) - {"dust_limit"} - set(overrides))
        if missing:
            raise ValueError(
                f"{where} needs a preset (one of {', '.join(PRESETS)}) or every network key; missing {missing}"
            )
        base: dict[str, Any] = {}
    elif preset not in PRESETS:
        raise ValueError(f"{where} preset {preset!r} is unknown: use one of {', '.join(PRESETS)}")
    else:
        base = msgspec.structs.asdict(PRESETS[preset])
    merged = {**base, **overrides}
    for key in ("p2pkh_versions", "p2sh_versions"):
        value = merged[key]
        if isinstance(value, int):
            value = [value]
        if (
            not isinstance(value, list | tuple)
            or not value
            or not all(isinstance(v, int) and 0 <= v < 256 for v in value)
        ):
            raise ValueError(f"{where} {key} must be a list of version bytes (0-255), got {value!r}")
        merged[key] = tuple(value)
    for key in ("coin_type", "dust_limit"):
        if not isinstance(merged[key], int) or isinstance(merged[key], bool) or merged[key] < 0:
            raise ValueError(f"{where} {key} must be a non-negative integer, got {merged[key]!r}")
    for key in ("chain_id", "node_chain", "hrp", "asset"):
        if not isinstance(merged[key], str) or not merged[key]:
            raise ValueError(f"{where} {key} must be a non-empty string, got {merged[key]!r}")
    if merged["hrp"] != merged["hrp"].lower():
        raise ValueError(f"{where} hrp must be lower case, got {merged['hrp']!r}")
    return NetworkParams(**merged)
