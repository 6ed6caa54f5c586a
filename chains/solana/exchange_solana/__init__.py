"""The Solana chain adapter: SOL and SPL tokens over a small node interface (JSON-RPC or LiteSVM in process).

:class:`~exchange_solana.adapter.SolanaAdapter` implements the kernel's ``ChainAdapter`` contract over a
:class:`~exchange_solana.node.SolanaNode`: :class:`~exchange_solana.rpc.JsonRpcNode` for a real cluster,
:class:`~exchange_solana.litesvm_node.LiteSvmNode` for tests and a development chain. The ``solana`` plugin
registers an adapter from ``[plugins.settings.solana]``.
"""

from __future__ import annotations

from exchange_solana.adapter import InsufficientFunds, SolanaAdapter, Token
from exchange_solana.litesvm_node import LiteSvmNode
from exchange_solana.node import NodeBlock, NodeFault, NodeTransaction, SignatureStatus, SolanaNode
from exchange_solana.rpc import JsonRpcNode, RpcError
from exchange_solana.settings import SolanaSettings, TokenSettings, is_address, parse_settings

__all__ = [
    "InsufficientFunds",
    "JsonRpcNode",
    "LiteSvmNode",
    "NodeBlock",
    "NodeFault",
    "NodeTransaction",
    "RpcError",
    "SignatureStatus",
    "SolanaAdapter",
    "SolanaNode",
    "SolanaSettings",
    "Token",
    "TokenSettings",
    "is_address",
    "parse_settings",
]
__version__ = "0.1.0"
