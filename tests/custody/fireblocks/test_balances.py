"""Vault balances reported for ledger reconciliation, in atomic units, every vault and asset included."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from exchange_fireblocks import FireblocksCustody, FireblocksError

from exchange_framework.interfaces import CustodyBalance, WithdrawalRequest
from exchange_framework.types import AccountId
from tests.custody.fireblocks.server import FireblocksState


def test_every_vault_reports_every_configured_asset_in_atomic_units(
    custody: FireblocksCustody, fb_state: FireblocksState
) -> None:
    fb_state.add_vault("Cold", {"ETH_TEST5": "0.000000000000000001"})
    fb_state.add_vault("Empty", {})
    reports = custody.balances(["ETH", "USDC", "BTC"])  # BTC is not held at Fireblocks: not reported
    assert sorted(reports, key=lambda r: (r.wallet, r.asset)) == [
        CustodyBalance("fireblocks", "ETH", "vault:0", 10 * 10**18),
        CustodyBalance("fireblocks", "USDC", "vault:0", 2_500_500_000),
        CustodyBalance("fireblocks", "ETH", "vault:1", 1),
        CustodyBalance("fireblocks", "USDC", "vault:1", 0),
        CustodyBalance("fireblocks", "ETH", "vault:2", 0),
        CustodyBalance("fireblocks", "USDC", "vault:2", 0),
    ]


def test_balances_follow_the_pages_and_a_completed_withdrawal(
    custody: FireblocksCustody, fb_state: FireblocksState
) -> None:
    for number in range(4):
        fb_state.add_vault(f"Customer {number}", {"USDC_ETH_TEST5_0GER": str(number)})
    accounts = custody.api.vault_accounts(page_size=2)
    assert [account.id for account in accounts] == ["0", "1", "2", "3", "4"]
    assert sum(r.amount for r in custody.balances(["USDC"])) == 2_500_500_000 + 6_000_000
    custody.send(WithdrawalRequest(5, AccountId(1), "USDC", "ethereum", 500_000_000, "0xdef"))
    assert custody.track(5, timeout_seconds=10).sent
    assert sum(r.amount for r in custody.balances(["USDC"])) == 2_000_500_000 + 6_000_000


def test_only_the_configured_vaults_are_reported_and_a_missing_one_fails(
    make_custody: Callable[..., FireblocksCustody], fb_state: FireblocksState
) -> None:
    fb_state.add_vault("Other", {"ETH_TEST5": "3"})
    only = make_custody(balance_vault_ids=["1"])
    assert [(r.wallet, r.amount) for r in only.balances(["ETH"])] == [("vault:1", 3 * 10**18)]
    missing = make_custody(balance_vault_ids=["0", "9"])
    with pytest.raises(FireblocksError, match="vault accounts 9 are not"):
        missing.balances(["ETH"])


def test_a_balance_finer_than_the_asset_fails_rather_than_rounds(
    custody: FireblocksCustody, fb_state: FireblocksState
) -> None:
    fb_state.add_vault("Odd", {"USDC_ETH_TEST5_0GER": "0.0000001"})  # seven places; USDC has six
    with pytest.raises(FireblocksError, match="more than 6 decimal places"):
        custody.balances(["USDC"])
