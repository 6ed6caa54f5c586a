"""The travel rule through the REST API: what the customer declares (beneficiaryName, beneficiaryVasp) reaches the
travel rule provider, and the withdrawal history shows the ``travel_rule`` stage (Binance status 2)."""

from __future__ import annotations

import coincurve
from exchange_devchain.tx import address_of

from exchange_framework.interfaces import Decision, WithdrawalRequest
from tests.api.client import Rest
from tests.api.conftest import Exchange
from tests.api.test_wallet_api import chain_exchange, until

__all__ = ["chain_exchange"]


class Waiting:
    """A travel rule provider whose counterparty has not answered yet; it keeps what it was asked about."""

    name = "test-travel-rule"

    def __init__(self) -> None:
        self.seen: list[WithdrawalRequest] = []

    def required(self, withdrawal: WithdrawalRequest) -> bool:
        return True

    def send(self, withdrawal: WithdrawalRequest, originator: object) -> str:
        self.seen.append(withdrawal)
        return f"tr-{withdrawal.withdrawal_id}"

    def status(self, reference: str) -> Decision:
        return Decision.hold("Bob VASP has not answered yet", provider=self.name)


def test_the_declared_beneficiary_reaches_the_provider_and_the_stage_is_shown(chain_exchange: Exchange) -> None:
    ex = chain_exchange
    wallet = ex.server.ctx.extras["wallet"]
    provider = Waiting()
    wallet.travel_rule = (provider,)
    outside = address_of(coincurve.PrivateKey().public_key.format())
    wallet.add_to_whitelist(ex.alice.account, asset="ETH", address=outside)
    key = ex.server.ctx.identity.create_api_key(ex.alice.account, scopes=["read", "withdraw"])
    rest = Rest(ex.url, key)
    try:
        apply = {"coin": "ETH", "network": "devchain", "address": outside, "amount": "1"}
        declared = {"beneficiaryName": "Carol Clark", "beneficiaryVasp": "Bob VASP"}
        answer = rest.signed("POST", "/sapi/v1/capital/withdraw/apply", **apply, **declared).json()
        withdrawal_id = int(answer["id"])
        history = until(
            lambda: [
                w for w in rest.signed("GET", "/sapi/v1/capital/withdraw/history").json() if w["stage"] == "travel_rule"
            ]
        )
        assert history[0]["id"] == str(withdrawal_id) and history[0]["status"] == 2
        assert (provider.seen[0].beneficiary_name, provider.seen[0].beneficiary_vasp) == ("Carol Clark", "Bob VASP")
        too_long = rest.signed("POST", "/sapi/v1/capital/withdraw/apply", **apply, beneficiaryName="x" * 141).json()
        assert too_long["code"] == -4000 and "140 printable" in too_long["msg"]
    finally:
        rest.close()
