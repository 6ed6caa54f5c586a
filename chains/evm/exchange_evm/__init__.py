"""The EVM chain adapter: Ethereum, Polygon, Arbitrum and any EVM network, configured as data.

:class:`~exchange_evm.adapter.EvmAdapter` implements the kernel's ``ChainAdapter`` contract over JSON-RPC
(:class:`~exchange_evm.rpc.JsonRpcClient`); :mod:`exchange_evm.codec` encodes EIP-1559 and legacy EIP-155
transactions; :class:`~exchange_evm.nonces.NonceBook` keeps the hot wallet's nonces on disk;
:mod:`exchange_evm.anvil` runs a local anvil node for tests and benchmarks. The ``evm`` plugin registers one adapter
per network in ``[plugins.settings.evm]``.
"""

from __future__ import annotations

from exchange_evm.adapter import EvmAdapter, InsufficientFunds
from exchange_evm.address import address_of_public_key, is_checksum_address, keccak256, to_checksum_address
from exchange_evm.nonces import NonceBook
from exchange_evm.rpc import JsonRpcClient, NodeFault, RpcError
from exchange_evm.settings import EvmSettings, NetworkSettings, TokenSettings, parse_settings

__all__ = [
    "EvmAdapter",
    "EvmSettings",
    "InsufficientFunds",
    "JsonRpcClient",
    "NetworkSettings",
    "NodeFault",
    "NonceBook",
    "RpcError",
    "TokenSettings",
    "address_of_public_key",
    "is_checksum_address",
    "keccak256",
    "parse_settings",
    "to_checksum_address",
]
__version__ = "0.1.0"
