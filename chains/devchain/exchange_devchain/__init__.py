"""A development blockchain that runs inside the exchange process, and the chain adapter that talks to it.

:class:`~exchange_devchain.node.DevChain` is a small but real chain: blocks linked by parent hashes, a mempool,
mining, confirmations, a faucet, balances and nonces, signatures checked on broadcast, scripted reorgs, and its
state saved to a file. :class:`~exchange_devchain.adapter.DevChainAdapter` implements the kernel's
``ChainAdapter`` contract against it. The ``devchain`` plugin registers one adapter from
``[plugins.settings.devchain]``.
"""

from __future__ import annotations

from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.node import DevChain, NodeUnavailable
from exchange_devchain.tx import address_of, sign_digest

__all__ = ["DevChain", "DevChainAdapter", "NodeUnavailable", "address_of", "sign_digest"]
__version__ = "0.1.0"
