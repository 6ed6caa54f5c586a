"""The Cosmos SDK chain adapter: bank ``MsgSend`` with memo, SIGN_MODE_DIRECT, built and checked offline.

:class:`~exchange_cosmos.adapter.CosmosAdapter` derives bech32 deposit addresses from an xpub, builds the
``SignDoc`` a custody signer signs (SHA-256 digest), decodes it for the policy engine and assembles the ``TxRaw``;
:mod:`exchange_cosmos.proto` encodes the protobuf messages. Node operations are not implemented (``NodeRequired``).
"""

from __future__ import annotations

from exchange_cosmos.adapter import AccountState, CosmosAdapter, NodeRequired, tx_hash
from exchange_cosmos.address import address_of_public_key, is_address
from exchange_cosmos.proto import AuthInfo, Coin, MsgSend, ProtoError, SignDoc, TxBody, TxRaw
from exchange_cosmos.settings import CosmosSettings, parse_settings

__all__ = [
    "AccountState",
    "AuthInfo",
    "Coin",
    "CosmosAdapter",
    "CosmosSettings",
    "MsgSend",
    "NodeRequired",
    "ProtoError",
    "SignDoc",
    "TxBody",
    "TxRaw",
    "address_of_public_key",
    "is_address",
    "parse_settings",
    "tx_hash",
]
__version__ = "0.1.0"
