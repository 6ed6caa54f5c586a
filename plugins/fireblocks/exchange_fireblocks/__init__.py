"""Fireblocks custody for the exchange: withdrawals by external id, vault balances, webhooks, raw signing."""

from exchange_fireblocks.client import FireblocksApi, FireblocksError
from exchange_fireblocks.custody import FireblocksCustody, FireblocksTransfer, TransferState, state_of
from exchange_fireblocks.settings import FireblocksConfigError, Settings
from exchange_fireblocks.signer import FireblocksSigner
from exchange_fireblocks.webhook import WebhookSignatureError, WebhookVerifier

__all__ = [
    "FireblocksApi",
    "FireblocksConfigError",
    "FireblocksCustody",
    "FireblocksError",
    "FireblocksSigner",
    "FireblocksTransfer",
    "Settings",
    "TransferState",
    "WebhookSignatureError",
    "WebhookVerifier",
    "state_of",
]
__version__ = "0.1.0"
