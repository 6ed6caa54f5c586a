"""A customer frozen by onboarding screening cannot withdraw through the real wallet; the funds stay held."""

from __future__ import annotations

import pytest

from exchange_framework.compliance.onboarding import Applicant, OnboardingGate, Standing
from exchange_framework.wallet import WalletError
from tests.compliance import test_wallet_e2e as e2e
from tests.compliance.test_wallet_e2e import ETH, SANCTIONED_DESTINATION, Setup, until

setup = e2e.setup  # the real wallet on the dev chain, screened by the built-in OFAC plugin
anyio_backend = e2e.anyio_backend


def applicant(account: int, name: str) -> Applicant:
    return Applicant(account=account, full_name=name, date_of_birth="1980-01-01", country="DE", source="manual")


@pytest.mark.anyio
async def test_a_frozen_account_cannot_withdraw_and_its_funds_stay_held(setup: Setup) -> None:
    s = setup
    address, _memo = s.wallet.deposit_address(s.alice, "ETH")
    s.chain.faucet(address, 5 * ETH)
    s.chain.mine(3)
    await until(lambda: any(d.stage == "credited" for d in s.wallet.deposits(s.alice)))
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=SANCTIONED_DESTINATION)
    gate = OnboardingGate(s.wallet.config, pm=s.wallet.pm)
    gate.screen(applicant(s.alice, "Test Sanctioned Party"), trigger="rescreen")
    assert gate.standing(s.alice) is Standing.FROZEN
    with pytest.raises(WalletError, match="frozen pending a compliance review, so it cannot withdraw"):
        await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=SANCTIONED_DESTINATION)
    assert s.wallet.withdrawals(s.alice) == []
    assert s.node.balances.available(s.alice, "ETH") == 5 * ETH  # nothing returned, nothing sent: still held here
