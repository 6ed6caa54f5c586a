"""Withdrawals through Fireblocks against the local workspace: created once, tracked, mapped fail-closed."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from exchange_fireblocks import FireblocksCustody, FireblocksError, TransferState, state_of
from exchange_fireblocks.custody import STATUS_STATES
from fireblocks.client import Fireblocks
from fireblocks.client_configuration import ClientConfiguration
from fireblocks.exceptions import ApiException
from fireblocks.models.transaction_request import TransactionRequest
from hypothesis import given
from hypothesis import strategies as st

from exchange_framework.interfaces import WithdrawalRequest
from exchange_framework.types import AccountId
from tests.custody.fireblocks.conftest import API_KEY
from tests.custody.fireblocks.server import FireblocksState

DESTINATION = "0x7a3b6f1c2d4e5f60718293a4b5c6d7e8f9012345"

# Fireblocks' documented primary transaction statuses.
DOCUMENTED = [
    "SUBMITTED",
    "PENDING_AML_SCREENING",
    "PENDING_ENRICHMENT",
    "PENDING_AUTHORIZATION",
    "QUEUED",
    "PENDING_SIGNATURE",
    "PENDING_3RD_PARTY_MANUAL_APPROVAL",
    "PENDING_3RD_PARTY",
    "BROADCASTING",
    "COMPLETED",
    "CONFIRMING",
    "CANCELLING",
    "CANCELLED",
    "BLOCKED",
    "REJECTED",
    "FAILED",
]


def withdrawal(
    number: int = 7, amount: int = 1_500_000_000_000_000_000, address: str = DESTINATION
) -> WithdrawalRequest:
    return WithdrawalRequest(
        withdrawal_id=number, account=AccountId(42), asset="ETH", chain="ethereum", amount=amount, address=address
    )


def posts(state: FireblocksState) -> int:
    return sum(1 for method, path in state.requests if (method, path) == ("POST", "/v1/transactions"))


def test_a_withdrawal_is_created_once_and_tracked_to_completed(
    custody: FireblocksCustody, fb_state: FireblocksState
) -> None:
    sent = custody.send(withdrawal())
    assert sent.external_tx_id == "withdrawal-7"
    assert sent.state is TransferState.PENDING and not sent.final and not sent.sent
    (tx,) = fb_state.transactions.values()
    assert tx["externalTxId"] == "withdrawal-7"
    assert tx["amountInfo"]["amount"] == "1.5"  # 1.5 ETH from 1.5e18 wei, as a decimal string
    assert tx["assetId"] == "ETH_TEST5" and tx["source"]["id"] == "0" and tx["destinationAddress"] == DESTINATION

    final = custody.track(7, timeout_seconds=10)
    assert final.status == "COMPLETED" and final.state is TransferState.COMPLETED
    assert final.sent and final.final
    assert final.amount == 1_500_000_000_000_000_000 and final.asset == "ETH"
    assert final.tx_hash.startswith("0x") and final.confirmations == fb_state.required_confirmations
    assert fb_state.vaults["0"]["assets"]["ETH_TEST5"] == Decimal("8.5")
    assert fb_state.auth_failures == []


def test_tracking_passes_through_the_documented_statuses(custody: FireblocksCustody, fb_state: FireblocksState) -> None:
    states: list[str] = []
    custody.listeners.append(lambda transfer: states.append(transfer.status))
    custody.send(withdrawal())
    custody.track(7, timeout_seconds=10)
    assert states[-1] == "COMPLETED"
    assert {"PENDING_SIGNATURE", "BROADCASTING", "CONFIRMING"} <= set(states)
    assert all(status in DOCUMENTED for status in states)


@pytest.mark.parametrize(
    ("list_name", "status", "sub_status", "expected"),
    [
        ("rejected", "REJECTED", "REJECTED_BY_USER", TransferState.REFUSED),
        ("blocked", "BLOCKED", "BLOCKED_BY_POLICY", TransferState.REFUSED),
    ],
)
def test_a_rejected_or_blocked_withdrawal_is_final_and_never_sent(
    custody: FireblocksCustody,
    fb_state: FireblocksState,
    list_name: str,
    status: str,
    sub_status: str,
    expected: TransferState,
) -> None:
    getattr(fb_state, list_name).add(DESTINATION)
    custody.send(withdrawal())
    final = custody.track(7, timeout_seconds=10)
    assert (final.status, final.sub_status, final.state) == (status, sub_status, expected)
    assert final.final and not final.sent
    assert fb_state.vaults["0"]["assets"]["ETH_TEST5"] == Decimal("10")


def test_a_vault_that_cannot_pay_fails_and_nothing_is_sent(
    custody: FireblocksCustody, fb_state: FireblocksState
) -> None:
    custody.send(withdrawal(amount=11 * 10**18))
    final = custody.track(7, timeout_seconds=10)
    assert (final.status, final.sub_status, final.state) == ("FAILED", "INSUFFICIENT_FUNDS", TransferState.FAILED)
    assert final.final and not final.sent
    assert fb_state.vaults["0"]["assets"]["ETH_TEST5"] == Decimal("10")


def test_sending_again_never_creates_a_second_transaction(
    custody: FireblocksCustody, fb_state: FireblocksState
) -> None:
    first = custody.send(withdrawal())
    again = custody.send(withdrawal())
    assert again.tx_id == first.tx_id
    assert len(fb_state.transactions) == 1 and posts(fb_state) == 1


def test_a_repeated_create_answers_with_the_first_transaction(
    custody: FireblocksCustody, fb_state: FireblocksState
) -> None:
    arguments = {
        "external_tx_id": "withdrawal-8",
        "asset_id": "ETH_TEST5",
        "amount": "1",
        "source_vault_id": "0",
        "destination_address": DESTINATION,
    }
    first = custody.api.create_transfer(**arguments)
    assert custody.api.create_transfer(**arguments) == first  # same Idempotency-Key: the first answer again
    assert len(fb_state.transactions) == 1


def test_fireblocks_refuses_a_second_transaction_with_the_same_external_id(
    fb_url: str, key_files: tuple[Path, Path], fb_state: FireblocksState
) -> None:
    sdk = Fireblocks(ClientConfiguration(api_key=API_KEY, secret_key=key_files[0].read_text(), base_path=fb_url))
    request = TransactionRequest.from_dict(
        {
            "assetId": "ETH_TEST5",
            "amount": "1",
            "source": {"type": "VAULT_ACCOUNT", "id": "0"},
            "destination": {"type": "ONE_TIME_ADDRESS", "oneTimeAddress": {"address": DESTINATION}},
            "externalTxId": "withdrawal-8",
        }
    )
    sdk.transactions.create_transaction(transaction_request=request).result()
    with pytest.raises(ApiException) as raised:  # no Idempotency-Key this time: the external id alone refuses it
        sdk.transactions.create_transaction(transaction_request=request).result()
    assert raised.value.status == 400 and "already exists" in str(raised.value.body)
    assert len(fb_state.transactions) == 1


def test_a_create_whose_answer_was_lost_is_found_not_repeated(
    make_custody: Callable[..., FireblocksCustody], fb_state: FireblocksState
) -> None:
    custody = make_custody(timeout_seconds=1)
    fb_state.delay_seconds = 2.5  # Fireblocks creates the transaction after the exchange stopped waiting
    fb_state.delay_methods = frozenset({"POST"})
    with pytest.raises(FireblocksError):
        custody.send(withdrawal())
    deadline = time.monotonic() + 10
    while not fb_state.transactions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fb_state.transactions) == 1
    fb_state.delay_seconds = 0
    found = custody.send(withdrawal())
    assert found.tx_id == next(iter(fb_state.transactions))
    assert len(fb_state.transactions) == 1


def test_an_external_id_naming_a_different_payment_is_refused(
    custody: FireblocksCustody, fb_state: FireblocksState
) -> None:
    custody.api.create_transfer(
        external_tx_id="withdrawal-9",
        asset_id="ETH_TEST5",
        amount="1",
        source_vault_id="0",
        destination_address="0x0000000000000000000000000000000000000bad",
    )
    with pytest.raises(FireblocksError, match="not this withdrawal"):
        custody.send(withdrawal(9))
    assert len(fb_state.transactions) == 1


def test_bad_requests_change_nothing(custody: FireblocksCustody, fb_state: FireblocksState) -> None:
    with pytest.raises(FireblocksError, match="positive"):
        custody.send(withdrawal(amount=0))
    with pytest.raises(FireblocksError, match="no Fireblocks asset id"):
        custody.send(WithdrawalRequest(1, AccountId(1), "BTC", "bitcoin", 5, "bc1q..."))
    assert fb_state.transactions == {} and posts(fb_state) == 0
    assert custody.status(123) is None


def test_every_documented_status_is_mapped_and_only_completed_is_sent() -> None:
    assert set(STATUS_STATES) == set(DOCUMENTED)
    for status in DOCUMENTED:
        assert (state_of(status) is TransferState.COMPLETED) == (status == "COMPLETED")
    for status in ("CANCELLED", "REJECTED", "BLOCKED"):
        assert state_of(status) is TransferState.REFUSED
    assert state_of("FAILED") is TransferState.FAILED
    assert state_of("CANCELLING") is TransferState.PENDING  # not final until CANCELLED


@given(st.text(max_size=40))
def test_any_status_but_completed_is_never_sent(status: str) -> None:
    state = state_of(status)
    assert (state is TransferState.COMPLETED) == (status == "COMPLETED")
    if status not in STATUS_STATES:
        assert state is TransferState.UNKNOWN


def test_a_pending_transaction_at_the_timeout_stays_held(custody: FireblocksCustody, fb_state: FireblocksState) -> None:
    fb_state.advance_on_read = False
    custody.send(withdrawal())
    last = custody.track(7, timeout_seconds=0.05)
    assert last.state is TransferState.PENDING and not last.final and not last.sent
