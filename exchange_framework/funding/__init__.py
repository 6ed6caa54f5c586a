"""Funding: deposits from chain to credit (and, later, withdrawals), each with a visible stage.

:class:`~exchange_framework.funding.deposits.DepositTracker` follows one chain adapter; the
:class:`~exchange_framework.funding.store.DepositStore` keeps every deposit's state and answers the API's queries.
"""

from __future__ import annotations

from exchange_framework.funding.deposits import (
    DepositTracker,
    PollResult,
    Screener,
    Submit,
    TrackerStatus,
    hook_screener,
)
from exchange_framework.funding.service import DepositPoller, deposit_trackers, open_deposit_store
from exchange_framework.funding.store import (
    Deposit,
    DepositAlert,
    DepositStore,
    Stage,
    StageChange,
    deposit_reference,
)

__all__ = [
    "Deposit",
    "DepositAlert",
    "DepositPoller",
    "DepositStore",
    "DepositTracker",
    "PollResult",
    "Screener",
    "Stage",
    "StageChange",
    "Submit",
    "TrackerStatus",
    "deposit_reference",
    "deposit_trackers",
    "hook_screener",
    "open_deposit_store",
]
