"""Property: whatever mix of sends, retries, lost answers, outages and status changes, each withdrawal is one
Fireblocks transaction paying exactly what was asked, and nothing is reported sent unless Fireblocks completed it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from exchange_fireblocks import FireblocksApi, FireblocksCustody, FireblocksError, Settings
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from exchange_framework.interfaces import WithdrawalRequest
from exchange_framework.money import format_atomic
from exchange_framework.types import AccountId
from tests.custody.fireblocks.conftest import API_KEY, ASSETS, DECIMALS, pem
from tests.custody.fireblocks.server import FireblocksState, running

API_USER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
WEBHOOK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_DIR = Path(tempfile.mkdtemp(prefix="fireblocks-properties-"))
(KEY_DIR / "secret.key").write_bytes(pem(API_USER_KEY))

ADDRESSES = ("0x" + "a1" * 20, "0x" + "b2" * 20)
WITHDRAWALS = st.integers(min_value=1, max_value=3)


def withdrawal(number: int) -> WithdrawalRequest:
    # one fixed request per withdrawal id, as the kernel's ledger holds it
    return WithdrawalRequest(
        number, AccountId(number), "ETH", "ethereum", number * 10**17, ADDRESSES[number % len(ADDRESSES)]
    )


class SendingWithdrawals(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = FireblocksState(api_key=API_KEY, api_public_key=API_USER_KEY.public_key(), webhook_key=WEBHOOK_KEY)
        self.state.advance_on_read = False
        self.state.add_vault("Withdrawals", {"ETH_TEST5": "100"})
        self._server = running(self.state)
        url = self._server.__enter__() + "/v1"
        settings = Settings.parse(
            {
                "vault_account_id": "0",
                "assets": dict(ASSETS),
                "base_url": url,
                "secret_key_file": str(KEY_DIR / "secret.key"),
                "webhook_public_key": "",
                "timeout_seconds": 2,
                "poll_interval_seconds": 0.01,
            }
        )
        self.api = FireblocksApi(
            base_url=url, api_key=API_KEY, secret_key=settings.secret_key(), timeout_seconds=settings.timeout_seconds
        )
        self.custody = FireblocksCustody(settings, decimals=DECIMALS, api_factory=lambda: self.api)
        self.returned: dict[int, str] = {}  # withdrawal -> the transaction id send returned

    def teardown(self) -> None:
        self.api.close()
        self._server.__exit__(None, None, None)

    def _tx_of(self, number: int) -> dict[str, object] | None:
        tx_id = self.state.external_ids.get(f"withdrawal-{number}")
        return None if tx_id is None else self.state.transactions[tx_id]

    @rule(number=WITHDRAWALS)
    def send(self, number: int) -> None:
        try:
            transfer = self.custody.send(withdrawal(number))
        except FireblocksError:
            return
        tx = self._tx_of(number)
        assert tx is not None and transfer.tx_id == tx["id"]
        assert (transfer.asset, transfer.amount, transfer.destination) == (
            "ETH",
            number * 10**17,
            tx["destinationAddress"],
        )
        assert transfer.sent == (tx["status"] == "COMPLETED")
        self.returned.setdefault(number, transfer.tx_id)
        assert self.returned[number] == transfer.tx_id

    @rule(number=WITHDRAWALS)
    def track_once(self, number: int) -> None:
        try:
            transfer = self.custody.status(number)
        except FireblocksError:
            return
        tx = self._tx_of(number)
        assert (transfer is None) == (tx is None)
        if transfer is not None and tx is not None:
            assert transfer.sent == (tx["status"] == "COMPLETED") and transfer.status == tx["status"]

    @rule(count=st.integers(min_value=1, max_value=3))
    def outage(self, count: int) -> None:
        self.state.fail_requests = count

    @rule()
    def lose_the_next_create_answer(self) -> None:
        self.state.lose_create_answers = 1

    @rule(number=WITHDRAWALS, steps=st.integers(min_value=1, max_value=7))
    def fireblocks_moves_on(self, number: int, steps: int) -> None:
        tx = self._tx_of(number)
        if tx is not None:
            for _ in range(steps):
                self.state.advance(str(tx["id"]))

    @rule(number=WITHDRAWALS)
    def policy_rejects_the_destination(self, number: int) -> None:
        self.state.rejected.add(withdrawal(number).address)

    @invariant()
    def one_transaction_per_withdrawal_paying_what_was_asked(self) -> None:
        per_withdrawal: dict[int, int] = {}
        for tx in self.state.transactions.values():
            number = int(str(tx["externalTxId"]).split("-")[1])
            per_withdrawal[number] = per_withdrawal.get(number, 0) + 1
            asked = withdrawal(number)
            assert tx["destinationAddress"] == asked.address
            decimal = format_atomic(asked.amount, DECIMALS["ETH"], trim=True)
            assert tx["amountInfo"] == {"amount": decimal, "requestedAmount": decimal, "netAmount": decimal}
        assert all(count == 1 for count in per_withdrawal.values()), per_withdrawal
        for number, tx_id in self.returned.items():
            assert self.state.external_ids[f"withdrawal-{number}"] == tx_id


TestSendingWithdrawals = SendingWithdrawals.TestCase
TestSendingWithdrawals.settings = hypothesis_settings(max_examples=25, stateful_step_count=15, deadline=None)
