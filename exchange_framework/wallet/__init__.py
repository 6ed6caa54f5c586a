"""The customer's wallet: deposit addresses and deposits (with their stages), withdrawals and address whitelists.

:class:`~exchange_framework.wallet.types.WalletService` is what the REST API, the portal and the admin console call;
the running exchange puts its implementation in ``ApiContext.extras["wallet"]``.
"""

from exchange_framework.wallet.types import (
    AddressBookEntry,
    DepositView,
    WalletError,
    WalletService,
    WithdrawalStage,
    WithdrawalView,
)

__all__ = [
    "AddressBookEntry",
    "DepositView",
    "WalletError",
    "WalletService",
    "WithdrawalStage",
    "WithdrawalView",
]
