"""The wallet's values and the service interface the API, portal and admin console use."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["AddressBookEntry", "DepositView", "WalletError", "WalletService", "WithdrawalStage", "WithdrawalView"]


class WalletError(ValueError):
    """A wallet request that cannot be done (unknown asset, bad address, not whitelisted, too much...).

    The message says what to change; nothing was changed.
    """


class WithdrawalStage(StrEnum):
    """Where a withdrawal stands; every withdrawal is in exactly one stage, visible to its owner and operators."""

    REQUESTED = "requested"  # held on the ledger, waiting for compliance screening
    SCREENING = "screening"
    TRAVEL_RULE = "travel_rule"  # travel rule data sent to the beneficiary's VASP: waiting for it to accept
    AWAITING_APPROVAL = "awaiting_approval"  # custody policy wants k-of-n operator approvals
    APPROVED = "approved"  # policy passed: goes to the signer
    SIGNED = "signed"
    BROADCAST = "broadcast"  # sent to the network, confirming n of N
    COMPLETED = "completed"  # final on chain: the held funds were debited
    REJECTED = "rejected"  # refused (compliance, policy, an operator): the held funds were released
    FAILED = "failed"  # could not be sent (node fault past retries): released, nothing sent
    CANCELLED = "cancelled"  # the customer cancelled before it was approved: released


class DepositView(msgspec.Struct, frozen=True):
    """One deposit for display. ``amount`` is a decimal string in whole units of ``asset``."""

    id: str  # "<chain>:<txid>:<index>"
    chain: str
    asset: str
    amount: str
    address: str
    memo: str
    txid: str
    stage: str  # seen, confirming, screening, credited, held, rejected, orphaned
    confirmations: int
    required_confirmations: int
    reasons: tuple[str, ...]
    first_seen_ms: int
    updated_ms: int


class WithdrawalView(msgspec.Struct, frozen=True):
    """One withdrawal for display. Amounts are decimal strings in whole units of ``asset``."""

    id: int
    account: int
    chain: str
    asset: str
    amount: str
    fee: str
    address: str
    memo: str
    stage: WithdrawalStage
    txid: str
    confirmations: int
    required_confirmations: int
    reasons: tuple[str, ...]
    approvals: tuple[str, ...]  # who approved (operator e-mails), for k-of-n withdrawals
    required_approvals: int
    requested_ms: int
    updated_ms: int


class AddressBookEntry(msgspec.Struct, frozen=True):
    """A withdrawal address the customer whitelisted; usable from ``usable_from_ms`` (after a cooling-off period)."""

    id: int
    chain: str
    asset: str
    address: str
    memo: str
    label: str
    added_ms: int
    usable_from_ms: int


@runtime_checkable
class WalletService(Protocol):
    """Deposits, withdrawals and whitelists of customer accounts. Amounts cross this interface as decimal strings
    in whole units (as people type them); the service converts them to atomic units and refuses anything that does
    not fit the asset exactly. Every method raises :class:`WalletError` with a message that says what to fix."""

    def assets(self) -> dict[str, list[str]]:
        """Every depositable asset and the chains it can move on: ``{"ETH": ["devchain"], ...}``."""
        ...

    def deposit_address(self, account: int, asset: str, chain: str | None = None) -> tuple[str, str]:
        """``account``'s deposit address (and memo, "" if none) for ``asset`` on ``chain`` (default: its first)."""
        ...

    def deposits(self, account: int, *, asset: str | None = None, limit: int = 100) -> list[DepositView]:
        """``account``'s deposits, newest first."""
        ...

    def whitelist(self, account: int) -> list[AddressBookEntry]:
        """``account``'s whitelisted withdrawal addresses."""
        ...

    def add_to_whitelist(
        self, account: int, *, asset: str, address: str, chain: str | None = None, memo: str = "", label: str = ""
    ) -> AddressBookEntry:
        """Whitelist an address (validated for its chain); it becomes usable after the cooling-off period."""
        ...

    def remove_from_whitelist(self, account: int, entry_id: int) -> None:
        """Remove one of ``account``'s whitelist entries."""
        ...

    async def request_withdrawal(
        self,
        account: int,
        *,
        asset: str,
        amount: str,
        address: str,
        chain: str | None = None,
        memo: str = "",
        beneficiary_name: str = "",
        beneficiary_vasp: str = "",
    ) -> WithdrawalView:
        """Hold ``amount`` and start a withdrawal to a whitelisted, usable ``address`` (the caller checked 2FA).

        ``beneficiary_name`` and ``beneficiary_vasp`` are what the customer declares for the travel rule (who receives
        it, and which VASP holds the address; both optional).
        """
        ...

    async def cancel_withdrawal(self, account: int, withdrawal_id: int) -> WithdrawalView:
        """Cancel one of ``account``'s withdrawals that is not yet approved; the held funds are released."""
        ...

    def withdrawals(
        self, account: int | None = None, *, stage: WithdrawalStage | None = None, limit: int = 100
    ) -> list[WithdrawalView]:
        """Withdrawals newest first: ``account``'s, or everyone's (operators), optionally in one stage."""
        ...

    async def approve_withdrawal(
        self, withdrawal_id: int, *, operator: str, approve: bool, note: str = ""
    ) -> WithdrawalView:
        """An operator's approval or denial (any denial rejects it; k approvals let it go to the signer)."""
        ...
