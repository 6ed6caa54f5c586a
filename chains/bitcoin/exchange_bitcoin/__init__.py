"""Bitcoin-family chain adapter for the exchange framework: Bitcoin and Litecoin as configurations of one adapter.

See ``docs/chains-bitcoin.md``. The adapter is :class:`UtxoChainAdapter`; :mod:`exchange_bitcoin.plugin` registers
one per ``[plugins.settings.bitcoin.networks.<name>]`` table.
"""

from exchange_bitcoin.adapter import FeeTooHigh, InsufficientFunds, NodeMismatch, UtxoChainAdapter
from exchange_bitcoin.network import PRESETS, NetworkParams
from exchange_bitcoin.rpc import NodeUnavailable, RpcClient, RpcError

__all__ = [
    "PRESETS",
    "FeeTooHigh",
    "InsufficientFunds",
    "NetworkParams",
    "NodeMismatch",
    "NodeUnavailable",
    "RpcClient",
    "RpcError",
    "UtxoChainAdapter",
]
