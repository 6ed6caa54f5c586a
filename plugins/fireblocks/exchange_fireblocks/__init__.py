"""Fireblocks custody for the exchange: withdrawals sent by external id, vault balances, verified webhooks."""

from exchange_fireblocks.client import FireblocksApi, FireblocksError
from exchange_fireblocks.custody import FireblocksCustody, FireblocksTransfer, TransferState, state_of
from exchange_fireblocks.settings import FireblocksConfigError, Settings
from exchange_fireblocks.webhook import WebhookSignatureError, WebhookVerifier

__all__ = [
    "FireblocksApi",
    "FireblocksConfigError",
    "FireblocksCustody",
    "FireblocksError",
    "FireblocksTransfer",
    "Settings",
    "TransferState",
    "WebhookSignatureError",
    "WebhookVerifier",
    "state_of",
]
__version__ = "0.1.0"
