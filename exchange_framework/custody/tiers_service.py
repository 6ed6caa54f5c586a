"""Custody tiers in a running exchange: tier holdings from the ledger (or custody reports), a forecast and a plan
per asset and chain, and the scheduled job that re-plans every ``[custody.tiers] plan_minutes`` and only proposes.

Holdings come from the ledger's custody accounts ``omnibus:<tier>:<chain>``, which carry the negative of what
custody holds on chain (``docs/ledger.md``); ``deposit`` accounts (deposit addresses not yet swept) are shown but
take no part in the bands. With ``balances = "reports"`` they come from the ``custody_balances`` hook instead,
each report's ``wallet`` matched to a ``[[custody.wallets]]`` address (unmatched reports are listed, never guessed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import msgspec

from exchange_framework.custody.rules import Tier, Wallet
from exchange_framework.custody.tiers import TIERS, TierBands, TierConfig
from exchange_framework.custody.tiers_forecast import Forecast, forecast_for, wallet_history
from exchange_framework.custody.tiers_plan import Plan, TierHoldings, plan
from exchange_framework.custody.tiers_store import SweepStore
from exchange_framework.custody.tiers_sweeps import TierSweeper, node_recorder
from exchange_framework.interfaces import CustodyBalance
from exchange_framework.wallet.store import OPEN_STAGES, WithdrawalRow

if TYPE_CHECKING:
    import pluggy

    from exchange_framework.audit import AuditLog
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.interfaces import CustodySigner
    from exchange_framework.node import ExchangeNode
    from exchange_framework.wallet.service import Wallet as WalletService

__all__ = [
    "History",
    "TierPlanner",
    "TierStatus",
    "current_holdings",
    "history_from_rows",
    "holdings_from_ledger",
    "holdings_from_reports",
    "make_tier_planner",
    "pending_from_rows",
    "plan_all",
]

_log = logging.getLogger(__name__)

History = Callable[[str, str], list[tuple[int, int]]]
"""(asset, chain) -> the (requested ns, amount) of past withdrawals the forecaster reads."""


class TierStatus(msgspec.Struct, frozen=True):
    """One asset on one chain: what each tier holds, the bands, the demand forecast and the plan."""

    holdings: TierHoldings
    bands: TierBands
    forecast: Forecast
    plan: Plan
    pending: int = 0  # open withdrawals not yet final: known demand, added to the forecast's


def holdings_from_ledger(balances: Mapping[tuple[str, str], int]) -> list[TierHoldings]:
    """Tier holdings per asset and chain from ledger balances ``{(account, asset): amount}`` (custody accounts hold
    the negative of what custody holds); sorted by asset and chain."""
    held: dict[tuple[str, str], dict[Tier, int]] = defaultdict(lambda: dict.fromkeys(TIERS, 0))
    for (account, asset), amount in balances.items():
        parts = account.split(":")
        if len(parts) != 3 or parts[0] != "omnibus" or parts[1] not in {t.value for t in TIERS}:
            continue
        held[(asset, parts[2])][Tier(parts[1])] += -amount
    return [
        TierHoldings(asset, chain, max(0, t[Tier.HOT]), max(0, t[Tier.WARM]), max(0, t[Tier.COLD]))
        for (asset, chain), t in sorted(held.items())
    ]


def holdings_from_reports(
    reports: Iterable[CustodyBalance], wallets: Sequence[Wallet]
) -> tuple[list[TierHoldings], list[CustodyBalance]]:
    """Tier holdings from ``custody_balances`` reports whose ``wallet`` is a ``[[custody.wallets]]`` address, and
    the reports that match no configured wallet."""
    held: dict[tuple[str, str], dict[Tier, int]] = defaultdict(lambda: dict.fromkeys(TIERS, 0))
    unmatched = []
    for report in reports:
        found = [w for w in wallets if w.address == report.wallet]
        if len(found) != 1:
            unmatched.append(report)
            continue
        held[(report.asset, found[0].chain)][found[0].tier] += report.amount
    out = [
        TierHoldings(asset, chain, t[Tier.HOT], t[Tier.WARM], t[Tier.COLD])
        for (asset, chain), t in sorted(held.items())
    ]
    return out, unmatched


def plan_all(
    config: TierConfig,
    holdings: Iterable[TierHoldings],
    history: History,
    *,
    now_ns: int,
    pending: Mapping[tuple[str, str], int] | None = None,
) -> list[TierStatus]:
    """Forecast and plan every asset and chain of ``holdings``. ``pending`` is known demand per (asset, chain):
    withdrawals accepted but not yet final, which the hot wallet pays on top of the forecast."""
    out = []
    for h in holdings:
        bands = config.bands_of(h.asset)
        f = forecast_for(config, history(h.asset, h.chain), now_ns=now_ns)
        known = (pending or {}).get((h.asset, h.chain), 0)
        p = plan(h, bands, demand=f.demand + known, unit=config.unit_of(h.asset))
        out.append(TierStatus(h, bands, f, p, known))
    return out


def history_from_rows(rows: Sequence[WithdrawalRow]) -> History:
    """A :data:`History` over wallet store rows (read once by the caller)."""
    return lambda asset, chain: wallet_history(rows, asset=asset, chain=chain)


def pending_from_rows(rows: Iterable[WithdrawalRow]) -> dict[tuple[str, str], int]:
    """What open withdrawals (requested, held for screening or approval, approved, signed, broadcast) will still
    take out of the ledger's hot account, per (asset, chain)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        if row.stage in OPEN_STAGES:
            out[(row.asset, row.chain)] += row.amount
    return dict(out)


async def current_holdings(
    config: ExchangeConfig, pm: pluggy.PluginManager, *, source: str = "ledger"
) -> tuple[list[TierHoldings], list[CustodyBalance]]:
    """Tier holdings now: from the configured ledger backend's custody accounts (``source="ledger"``) or from the
    ``custody_balances`` reports (``"reports"``), with the reports that match no configured wallet."""
    from exchange_framework.custody.policy_config import policy_config
    from exchange_framework.plugins import collect_registered

    if source == "reports":
        reports = [
            item
            for found in pm.hook.custody_balances(config=config, assets=sorted(config.assets))
            for item in found or ()
        ]
        wallets = policy_config(config).wallets if config.custody is not None else []
        return holdings_from_reports(reports, wallets)
    backends = collect_registered(pm, "register_ledger_stores", config=config)
    store = backends[config.backends.ledger].open(config)
    try:
        await store.create_schema()
        balances: dict[tuple[str, str], int] = await store.balances()
    finally:
        await store.close()
    return holdings_from_ledger(balances), []


class TierPlanner:
    """The scheduled job of a running exchange: read holdings, forecast, plan, store proposals (never executes
    them: execution needs approvals per policy), then let the sweeper move approved sweeps on.

    ``holdings`` reads the current holdings (a coroutine: the ledger is read asynchronously); ``withdrawals`` reads
    the wallet's withdrawals once per plan (history for the forecast, open ones as known demand); ``last`` keeps
    the latest statuses for the admin console.
    """

    def __init__(
        self,
        config: TierConfig,
        *,
        sweeper: TierSweeper,
        holdings: Callable[[], Awaitable[list[TierHoldings]]],
        withdrawals: Callable[[], Sequence[WithdrawalRow]],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.sweeper = sweeper
        self.holdings = holdings
        self.withdrawals = withdrawals
        self.clock = clock
        self.last: list[TierStatus] = []
        self.last_error = ""
        self.last_ns = 0

    async def plan_once(self) -> list[TierStatus]:
        """Plan every asset and chain now and store the proposals."""
        holdings = await self.holdings()
        now = self.clock()
        rows = await asyncio.to_thread(self.withdrawals)  # read once per plan
        statuses = await asyncio.to_thread(
            plan_all, self.config, holdings, history_from_rows(rows), now_ns=now, pending=pending_from_rows(rows)
        )
        self.sweeper.propose([s.plan for s in statuses])
        self.last, self.last_ns, self.last_error = statuses, now, ""
        return statuses

    async def run(self, *, sweep_seconds: float = 5.0) -> None:
        """Plan every ``plan_minutes`` (0: never plan, only execute approved sweeps) and execute approved sweeps
        every ``sweep_seconds``, until cancelled; errors are logged and shown, and the job goes on."""
        minutes = self.config.plan_minutes
        next_plan = 0.0
        while True:
            if minutes > 0 and time.monotonic() >= next_plan:
                try:
                    await self.plan_once()
                except Exception as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    _log.exception("custody tier planning failed; trying again later")
                next_plan = time.monotonic() + minutes * 60
            try:
                await self.sweeper.process_once()  # a sweep's own errors are stored on it
            except Exception:
                _log.exception("executing approved sweeps failed; trying again")
            await asyncio.sleep(sweep_seconds)


def make_tier_planner(
    config: ExchangeConfig,
    pm: pluggy.PluginManager,
    node: ExchangeNode,
    wallet: WalletService,
    *,
    audit: Callable[[], AuditLog | None],
) -> TierPlanner | None:
    """The running exchange's tier planner and sweeper over its wallet (``None`` without a ``[custody]`` policy).

    Hot-source sweeps sign with the wallet's hot signer, warm-source ones with the registered custody signer named
    by ``[custody.tiers] warm_signer`` (without one, warm sweeps are rejected with that reason); sweeps complete on
    the ledger through the engine's ``MoveCustody`` command.
    """
    from exchange_framework.custody.policy_config import policy_config
    from exchange_framework.custody.tiers import tier_config
    from exchange_framework.plugins import collect_registered

    if config.custody is None:
        return None
    tiers = tier_config(config)
    signers: dict[Tier, CustodySigner] = {}
    if wallet.signer is not None:
        signers[Tier.HOT] = wallet.signer
    if tiers.warm_signer is not None:
        registered = collect_registered(pm, "register_custody_signers", config=config)
        if tiers.warm_signer in registered:
            signers[Tier.WARM] = registered[tiers.warm_signer]
        else:
            _log.error("[custody.tiers] warm_signer %r is not a registered custody signer", tiers.warm_signer)
    sweeper = TierSweeper(
        store=SweepStore(config.resolve_path(tiers.state_path)),
        policy=lambda: wallet.policy,
        wallets=policy_config(config).wallets,
        adapters=wallet.adapters,
        signers=signers,
        record_move=node_recorder(node),
        audit=audit,
    )

    async def holdings() -> list[TierHoldings]:
        return (await current_holdings(config, pm, source=tiers.balances))[0]

    def withdrawals() -> list[WithdrawalRow]:
        return wallet.store.withdrawals(limit=1_000_000)

    return TierPlanner(tiers, sweeper=sweeper, holdings=holdings, withdrawals=withdrawals)
