"""Tier holdings from the ledger's custody accounts and from custody reports, planning every asset and chain, and
the planner job storing proposals."""

from __future__ import annotations

import pytest

from exchange_framework.custody.rules import Tier, Wallet
from exchange_framework.custody.tiers import Band, TierBands, TierConfig
from exchange_framework.custody.tiers_forecast import DAY_NS
from exchange_framework.custody.tiers_plan import TierHoldings
from exchange_framework.custody.tiers_service import (
    TierPlanner,
    history_from_rows,
    holdings_from_ledger,
    holdings_from_reports,
    pending_from_rows,
    plan_all,
)
from exchange_framework.custody.tiers_store import SweepStage, SweepStore
from exchange_framework.custody.tiers_sweeps import LedgerMove, TierSweeper
from exchange_framework.interfaces import CustodyBalance
from exchange_framework.wallet.store import WalletStore
from exchange_framework.wallet.types import WithdrawalStage

pytestmark = pytest.mark.anyio
NOW = 20_000 * DAY_NS


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_ledger_custody_accounts_carry_minus_what_custody_holds() -> None:
    balances = {
        ("omnibus:hot:bitcoin", "BTC"): -5,
        ("omnibus:warm:bitcoin", "BTC"): -15,
        ("omnibus:cold:bitcoin", "BTC"): -80,
        ("omnibus:deposit:bitcoin", "BTC"): -7,  # deposit addresses take no part in the bands
        ("omnibus:hot:ethereum", "ETH"): -3,
        ("customer:1:available", "BTC"): 107,
        ("fees", "BTC"): 0,
    }
    assert holdings_from_ledger(balances) == [
        TierHoldings("BTC", "bitcoin", 5, 15, 80),
        TierHoldings("ETH", "ethereum", 3, 0, 0),
    ]


def test_reports_are_matched_to_configured_wallets_and_the_rest_listed() -> None:
    wallets = [Wallet("bitcoin", "bc1hot", Tier.HOT), Wallet("bitcoin", "bc1cold", Tier.COLD)]
    stray = CustodyBalance(source="vault", asset="BTC", wallet="somewhere", amount=9)
    reports = [
        CustodyBalance(source="hsm", asset="BTC", wallet="bc1hot", amount=4),
        CustodyBalance(source="vault", asset="BTC", wallet="bc1cold", amount=96),
        stray,
    ]
    holdings, unmatched = holdings_from_reports(reports, wallets)
    assert holdings == [TierHoldings("BTC", "bitcoin", 4, 0, 96)]
    assert unmatched == [stray]


def test_plan_all_uses_each_assets_bands_and_history() -> None:
    config = TierConfig(
        bands={"ETH": TierBands(hot=Band(1_000, 2_000), warm=Band(0, 2_000), cold=Band(6_000, 9_000))},
        min_history_days=1,
        quantile_bp=10_000,
        margin_bp=0,
    )
    history = {("BTC", "bitcoin"): [(NOW - d * DAY_NS, 10) for d in range(1, 8)]}
    statuses = plan_all(
        config,
        [TierHoldings("BTC", "bitcoin", 4, 12, 84), TierHoldings("ETH", "ethereum", 15, 5, 80)],
        lambda asset, chain: history.get((asset, chain), []),
        now_ns=NOW,
    )
    btc, eth = statuses
    assert btc.forecast.demand == 10 and btc.plan.bands[Tier.HOT] == (12, 15)  # 2-5 % of 100, raised by 10
    sweep = btc.plan.sweeps[0]
    assert (sweep.source, sweep.destination, sweep.ceremony) == (Tier.WARM, Tier.HOT, False)
    assert btc.plan.after[Tier.HOT] >= 12  # hot can pay the forecast and keep its low band
    assert eth.bands.hot == Band(1_000, 2_000) and eth.plan.sweeps == ()  # ETH's own bands: within


async def test_the_planner_job_stores_proposals_and_keeps_the_latest_statuses() -> None:
    store = SweepStore(":memory:")

    async def never(_move: LedgerMove) -> None:
        raise AssertionError("nothing is executed without an approval")

    sweeper = TierSweeper(
        store=store,
        policy=lambda: None,
        wallets=[],
        adapters={},
        signers={},
        record_move=never,
        audit=lambda: None,
        clock=lambda: NOW,
    )

    async def holdings() -> list[TierHoldings]:
        return [TierHoldings("BTC", "bitcoin", 10, 10, 80)]

    planner = TierPlanner(TierConfig(), sweeper=sweeper, holdings=holdings, withdrawals=lambda: [], clock=lambda: NOW)
    (status,) = await planner.plan_once()
    assert planner.last == [status] and planner.last_ns == NOW
    (row,) = store.sweeps()
    assert (row.source, row.destination, row.amount, row.stage) == (Tier.HOT, Tier.COLD, 7, SweepStage.PROPOSED)
    await sweeper.process_once()
    assert store.sweep(row.id).stage is SweepStage.PROPOSED  # type: ignore[union-attr]
    store.close()


def test_open_withdrawals_are_known_demand_on_top_of_the_forecast() -> None:
    store = WalletStore(":memory:")
    try:
        paid = store.insert_withdrawal(
            account=1, chain="bitcoin", asset="BTC", amount=5, address="a", memo="", now_ns=1
        )
        paid.stage = WithdrawalStage.COMPLETED
        store.save(paid, 2)
        rejected = store.insert_withdrawal(
            account=1, chain="bitcoin", asset="BTC", amount=7, address="a", memo="", now_ns=3
        )
        rejected.stage = WithdrawalStage.REJECTED
        store.save(rejected, 4)
        store.insert_withdrawal(account=1, chain="bitcoin", asset="BTC", amount=4, address="a", memo="", now_ns=5)
        broadcast = store.insert_withdrawal(
            account=2, chain="bitcoin", asset="BTC", amount=2, address="b", memo="", now_ns=6
        )
        broadcast.stage = WithdrawalStage.BROADCAST
        store.save(broadcast, 7)
        rows = store.withdrawals(limit=100)
    finally:
        store.close()
    pending = pending_from_rows(rows)
    assert pending == {("BTC", "bitcoin"): 6}  # requested 4 + broadcast 2; completed and rejected are not
    (status,) = plan_all(
        TierConfig(), [TierHoldings("BTC", "bitcoin", 4, 12, 84)], history_from_rows(rows), now_ns=NOW, pending=pending
    )
    assert status.pending == 6 and status.forecast.demand == 0  # too little history for a forecast
    assert status.plan.demand == 6 and status.plan.bands[Tier.HOT] == (8, 11)  # 2-5 of 100, raised by 6
    assert status.plan.sweeps[0].source is Tier.WARM and status.plan.after[Tier.HOT] >= 8
