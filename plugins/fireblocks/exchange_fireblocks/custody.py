"""Withdrawals sent by Fireblocks, tracked to a final status, and vault balances for ledger reconciliation.

Fireblocks holds the keys, signs and broadcasts: the exchange asks it to pay a policy-approved withdrawal and follows
the transaction. Every withdrawal becomes one Fireblocks transaction whose ``externalTxId`` is derived from the
withdrawal id; Fireblocks refuses a second transaction with the same external id, and the plugin looks the id up
before and after every create, so a retry (after a crash, a timeout or an error answer) never pays twice.

Fireblocks' primary statuses map to a :class:`TransferState`; only ``COMPLETED`` means sent. ``CANCELLED``,
``REJECTED`` and ``BLOCKED`` are refusals and ``FAILED`` a failure: final, never sent, and put in front of an operator
before the held funds are released. A status this module does not know is ``UNKNOWN``: hold, never guess.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum

import msgspec
from fireblocks.models.transaction_response import TransactionResponse

from exchange_fireblocks.client import FireblocksApi, FireblocksError
from exchange_fireblocks.settings import Settings
from exchange_framework.interfaces import CustodyBalance, WithdrawalRequest
from exchange_framework.money import MoneyError, format_atomic, parse_decimal, to_atomic

__all__ = [
    "FINAL_STATES",
    "STATUS_STATES",
    "FireblocksCustody",
    "FireblocksTransfer",
    "TransferState",
    "state_of",
]

SOURCE = "fireblocks"


class TransferState(StrEnum):
    """Where a Fireblocks transaction stands, as the exchange acts on it."""

    PENDING = "pending"  # screening, approvals, signing or broadcasting: not yet on chain
    CONFIRMING = "confirming"  # broadcast; waiting for the confirmations Fireblocks requires
    COMPLETED = "completed"  # final and sent
    REFUSED = "refused"  # final: cancelled, rejected or blocked by policy; Fireblocks did not send it
    FAILED = "failed"  # final: it did not complete; may have reached the chain (a revert), so review it
    UNKNOWN = "unknown"  # a status not in Fireblocks' documented list: hold for an operator


# Fireblocks' documented primary transaction statuses.
STATUS_STATES: Mapping[str, TransferState] = {
    "SUBMITTED": TransferState.PENDING,
    "PENDING_AML_SCREENING": TransferState.PENDING,
    "PENDING_ENRICHMENT": TransferState.PENDING,
    "PENDING_AUTHORIZATION": TransferState.PENDING,
    "QUEUED": TransferState.PENDING,
    "PENDING_SIGNATURE": TransferState.PENDING,
    "PENDING_3RD_PARTY_MANUAL_APPROVAL": TransferState.PENDING,
    "PENDING_3RD_PARTY": TransferState.PENDING,
    "BROADCASTING": TransferState.PENDING,
    "CANCELLING": TransferState.PENDING,  # not final until CANCELLED
    "CONFIRMING": TransferState.CONFIRMING,
    "COMPLETED": TransferState.COMPLETED,
    "CANCELLED": TransferState.REFUSED,
    "REJECTED": TransferState.REFUSED,
    "BLOCKED": TransferState.REFUSED,
    "FAILED": TransferState.FAILED,
}

FINAL_STATES = frozenset({TransferState.COMPLETED, TransferState.REFUSED, TransferState.FAILED})


def state_of(status: str | None) -> TransferState:
    """Map a Fireblocks primary status to a :class:`TransferState`; anything unknown is ``UNKNOWN`` (hold)."""
    return STATUS_STATES.get(status or "", TransferState.UNKNOWN)


class FireblocksTransfer(msgspec.Struct, frozen=True):
    """One withdrawal's Fireblocks transaction as last read. ``amount`` is in the asset's atomic units."""

    withdrawal_id: int
    external_tx_id: str
    tx_id: str
    status: str  # Fireblocks' primary status, as it answered
    sub_status: str
    state: TransferState
    asset: str
    amount: int
    destination: str
    tx_hash: str = ""
    confirmations: int = 0

    @property
    def final(self) -> bool:
        """Whether the transaction will not change any more."""
        return self.state in FINAL_STATES

    @property
    def sent(self) -> bool:
        """Whether the funds left custody for good: only ``COMPLETED`` counts."""
        return self.state is TransferState.COMPLETED


Listener = Callable[[FireblocksTransfer], None]


class FireblocksCustody:
    """Sends approved withdrawals through Fireblocks, follows them, and reports vault balances.

    ``decimals`` maps exchange asset symbols to their decimals (``config.assets``); only assets in both it and
    ``settings.assets`` can move. ``api`` is made on first use by ``api_factory`` (which reads the keys).
    """

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        decimals: Mapping[str, int],
        api_factory: Callable[[], FireblocksApi],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        external_id_prefix: str = "withdrawal-",
    ) -> None:
        self.settings = settings
        self.decimals = dict(decimals)
        self._api_factory = api_factory
        self._api: FireblocksApi | None = None
        self._lock = threading.Lock()
        self.sleep = sleep
        self.clock = clock
        self.external_id_prefix = external_id_prefix
        self.listeners: list[Listener] = []
        self.latest: dict[str, FireblocksTransfer] = {}  # by external id: the last state read

    @property
    def api(self) -> FireblocksApi:
        """The API client, made (and the keys read) on first use."""
        with self._lock:
            if self._api is None:
                self._api = self._api_factory()
            return self._api

    def close(self) -> None:
        """Release the API client."""
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    # -- identifiers and amounts --------------------------------------------------------------------------------

    def external_id(self, withdrawal_id: int) -> str:
        """Return the ``externalTxId`` of a withdrawal: the same on every attempt, so Fireblocks sends it once."""
        return f"{self.external_id_prefix}{withdrawal_id}"

    def withdrawal_id(self, external_tx_id: str) -> int | None:
        """Return the withdrawal id an external id was made from, or None if this exchange did not make it."""
        if not external_tx_id.startswith(self.external_id_prefix):
            return None
        rest = external_tx_id[len(self.external_id_prefix) :]
        return int(rest) if rest.isdigit() else None

    def asset_id(self, asset: str) -> str:
        """Return Fireblocks' asset id for an exchange asset; raise if it is not configured."""
        try:
            return self.settings.assets[asset]
        except KeyError:
            raise FireblocksError(
                f"asset {asset!r} has no Fireblocks asset id: add it to [plugins.settings.fireblocks.assets]"
            ) from None

    def _decimals(self, asset: str) -> int:
        try:
            return self.decimals[asset]
        except KeyError:
            raise FireblocksError(f"asset {asset!r} is not in [assets]") from None

    def _atomic(self, text: str | None, asset: str, what: str) -> int:
        try:
            return to_atomic(parse_decimal(text or "0", what=what), self._decimals(asset))
        except MoneyError as exc:
            raise FireblocksError(f"{what} for {asset}: {exc}") from None

    def _asset_of(self, asset_id: str | None) -> str:
        for symbol, fireblocks_id in self.settings.assets.items():
            if fireblocks_id == asset_id:
                return symbol
        raise FireblocksError(f"Fireblocks asset {asset_id!r} is not mapped in [plugins.settings.fireblocks.assets]")

    # -- transactions -------------------------------------------------------------------------------------------

    def _transfer(self, tx: TransactionResponse, withdrawal_id: int | None = None) -> FireblocksTransfer:
        external = tx.external_tx_id or ""
        number = withdrawal_id if withdrawal_id is not None else self.withdrawal_id(external)
        if number is None or not tx.id:
            raise FireblocksError(f"transaction {tx.id}: not a withdrawal of this exchange ({external!r})")
        asset = self._asset_of(tx.asset_id)
        amount_text = tx.amount_info.amount if tx.amount_info is not None else None
        transfer = FireblocksTransfer(
            withdrawal_id=number,
            external_tx_id=external,
            tx_id=tx.id,
            status=tx.status or "",
            sub_status=tx.sub_status or "",
            state=state_of(tx.status),
            asset=asset,
            amount=self._atomic(amount_text, asset, f"transaction {tx.id} amountInfo.amount"),
            destination=tx.destination_address or "",
            tx_hash=tx.tx_hash or "",
            confirmations=int(tx.num_of_confirmations or 0),
        )
        self.latest[external] = transfer
        for listener in list(self.listeners):
            listener(transfer)
        return transfer

    @staticmethod
    def _check_matches(transfer: FireblocksTransfer, withdrawal: WithdrawalRequest) -> FireblocksTransfer:
        if (transfer.asset, transfer.amount, transfer.destination) != (
            withdrawal.asset,
            withdrawal.amount,
            withdrawal.address,
        ):
            raise FireblocksError(
                f"{transfer.external_tx_id} already names Fireblocks transaction {transfer.tx_id}, which pays "
                f"{transfer.amount} {transfer.asset} to {transfer.destination}, not this withdrawal: hold it"
            )
        return transfer

    def send(self, withdrawal: WithdrawalRequest, *, memo: str = "") -> FireblocksTransfer:
        """Have Fireblocks pay an approved withdrawal, once; return its transaction as it stands.

        Safe to call again at any time: an existing transaction with the withdrawal's external id is returned
        (after checking it pays the same asset, amount and address) and nothing new is created. Raise
        :class:`FireblocksError` when Fireblocks cannot be asked or refuses: the caller holds and retries.
        """
        if withdrawal.amount <= 0:
            raise FireblocksError(f"withdrawal {withdrawal.withdrawal_id}: the amount must be positive")
        external = self.external_id(withdrawal.withdrawal_id)
        asset_id = self.asset_id(withdrawal.asset)
        amount = format_atomic(withdrawal.amount, self._decimals(withdrawal.asset), trim=True)
        existing = self.api.transaction_by_external_id(external)
        if existing is not None:
            return self._check_matches(self._transfer(existing, withdrawal.withdrawal_id), withdrawal)
        try:
            tx_id, _status = self.api.create_transfer(
                external_tx_id=external,
                asset_id=asset_id,
                amount=amount,
                source_vault_id=self.settings.vault_account_id,
                destination_address=withdrawal.address,
                destination_tag=memo,
                note=f"exchange withdrawal {withdrawal.withdrawal_id}",
            )
        except FireblocksError as exc:
            # The create may have happened although the answer was lost or refused as a duplicate: look again.
            try:
                again = self.api.transaction_by_external_id(external)
            except FireblocksError:
                raise exc from None
            if again is None:
                raise
            return self._check_matches(self._transfer(again, withdrawal.withdrawal_id), withdrawal)
        return self._check_matches(self._transfer(self.api.transaction(tx_id), withdrawal.withdrawal_id), withdrawal)

    def status(self, withdrawal_id: int) -> FireblocksTransfer | None:
        """Read a withdrawal's transaction from Fireblocks; None if Fireblocks has none (it was never sent)."""
        tx = self.api.transaction_by_external_id(self.external_id(withdrawal_id))
        return None if tx is None else self._transfer(tx, withdrawal_id)

    def refresh(self, tx_id: str) -> FireblocksTransfer | None:
        """Read one transaction by Fireblocks id (a webhook's notice); None if it is not one of our withdrawals."""
        tx = self.api.transaction(tx_id)
        if self.withdrawal_id(tx.external_tx_id or "") is None:
            return None
        return self._transfer(tx)

    def track(self, withdrawal_id: int, *, timeout_seconds: float) -> FireblocksTransfer:
        """Poll a withdrawal's transaction until it is final or ``timeout_seconds`` pass; return the last state.

        The caller acts only on a final state; a transaction still pending at the timeout stays held.
        """
        deadline = self.clock() + timeout_seconds
        while True:
            transfer = self.status(withdrawal_id)
            if transfer is None:
                raise FireblocksError(f"withdrawal {withdrawal_id} has no Fireblocks transaction")
            if transfer.final or self.clock() >= deadline:
                return transfer
            self.sleep(self.settings.poll_interval_seconds)

    # -- balances -----------------------------------------------------------------------------------------------

    def balances(self, assets: Sequence[str]) -> list[CustodyBalance]:
        """Return the ``total`` balance of every reported vault account in each configured asset of ``assets``.

        A vault without the asset reports 0. Raise if a configured vault is missing or a balance does not fit the
        asset's decimals: reconciliation then fails rather than pass on a guess.
        """
        wanted = [asset for asset in assets if asset in self.settings.assets]
        accounts = self.api.vault_accounts()
        if self.settings.balance_vault_ids:
            by_id = {account.id: account for account in accounts}
            missing = [vault for vault in self.settings.balance_vault_ids if vault not in by_id]
            if missing:
                raise FireblocksError(f"vault accounts {', '.join(missing)} are not in the Fireblocks workspace")
            accounts = [by_id[vault] for vault in self.settings.balance_vault_ids]
        reports: list[CustodyBalance] = []
        for account in accounts:
            held = {asset.id: asset.total for asset in account.assets or []}
            for symbol in wanted:
                fireblocks_id = self.settings.assets[symbol]
                amount = self._atomic(held.get(fireblocks_id), symbol, f"vault {account.id} {fireblocks_id} total")
                reports.append(CustodyBalance(source=SOURCE, asset=symbol, wallet=f"vault:{account.id}", amount=amount))
        return reports
