"""Building the running exchange's wallet from its config and plugins."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import pluggy

from exchange_framework.audit import AuditLog
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.policy import PolicyEngine
from exchange_framework.custody.policy_config import open_policy_engine
from exchange_framework.custody.signing import hot_wallet_signer
from exchange_framework.engine.commands import Command
from exchange_framework.engine.events import Event
from exchange_framework.funding.store import DepositStore
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import ChainAdapter, CustodySigner, TravelRuleProvider
from exchange_framework.node import ExchangeNode
from exchange_framework.plugins import collect_registered
from exchange_framework.wallet.custody import CustodyStore
from exchange_framework.wallet.deposit_keys import DepositKeys, deposit_roots_from_env
from exchange_framework.wallet.service import Wallet
from exchange_framework.wallet.store import WalletStore
from exchange_framework.wallet.sweeper import DepositSweeper

__all__ = ["make_wallet"]

_log = logging.getLogger(__name__)

SWEEP_SCAN_SECONDS = 30.0  # how often the running wallet reads every deposit address's balance to find sweeps


def make_wallet(
    config: ExchangeConfig,
    pm: pluggy.PluginManager,
    node: ExchangeNode,
    identity: IdentityStore,
    *,
    audit: Callable[[], AuditLog | None] | None = None,
) -> Wallet | None:
    """The wallet over every registered chain adapter, or ``None`` when no plugin registers a chain.

    Its stores live beside the journal (``deposits.db``, ``wallet.db``, ``custody.db``); the hot wallet signs with
    the custody signer named by ``[backends] keystore``; withdrawals go through every registered travel rule
    provider. Chains with a deposit key root (``EXCHANGE_DEPOSIT_XPRV_<CHAIN>``, or a development chain's published
    one) get their deposit addresses swept into the hot wallet (:class:`DepositSweeper`).
    """
    adapters: dict[str, ChainAdapter] = collect_registered(pm, "register_chain_adapters", config=config)
    if not adapters:
        return None
    signer: CustodySigner | None = None
    problem = ""
    try:
        signer = hot_wallet_signer(pm, config)
    except Exception as exc:  # deposits still work; withdrawals show why they wait
        problem = f"no usable custody signer: {exc}"
    settings = config.wallet
    travel_rule: dict[str, TravelRuleProvider] = collect_registered(pm, "register_travel_rule_providers", config=config)
    wallet = Wallet(
        config=config,
        pm=pm,
        node=node,
        identity=identity,
        adapters=adapters,
        deposit_store=DepositStore(node.data_dir / "deposits.db"),
        store=WalletStore(node.data_dir / "wallet.db"),
        signer=signer,
        hot_key_id=settings.hot_key_id,
        fallback_approvals=settings.fallback_approvals,
        cooling_off_ns=settings.whitelist_cooling_off_hours * 3600 * 10**9,
        poll_interval=float(settings.poll_seconds),
        travel_rule=list(travel_rule.values()),
        custody_store=CustodyStore(node.data_dir / "custody.db"),
    )
    if problem:
        wallet.signer_error = problem
    wallet.sweeper = _sweeper(wallet, adapters)
    if config.custody is not None:
        wallet.policy_factory = lambda: _policy_engine(config, audit)
    return wallet


def _sweeper(wallet: Wallet, adapters: dict[str, ChainAdapter]) -> DepositSweeper | None:
    """A sweeper for the chains whose deposit keys the exchange holds, or None (a bad root is logged, not fatal)."""
    try:
        roots = deposit_roots_from_env(adapters)
        if not roots:
            return None
        keys = DepositKeys(adapters, roots)
    except ValueError as exc:  # deposits and withdrawals still work; sweeping waits for a usable root
        _log.error("deposit sweeping is off: %s", exc)
        return None
    assert wallet.custody_store is not None

    async def submit(command: Command) -> Sequence[Event]:
        return (await wallet.node.submit(command)).events

    return DepositSweeper(
        adapters=adapters,
        deposit_store=wallet.deposit_store,
        custody_store=wallet.custody_store,
        signer=keys,
        submit=submit,
        assets=sorted(wallet.decimals),
        scan_seconds=SWEEP_SCAN_SECONDS,
    )


def _policy_engine(config: ExchangeConfig, audit: Callable[[], AuditLog | None] | None) -> PolicyEngine:
    """The ``[custody]`` policy engine, writing to the exchange's audit log (which must be open)."""
    log = audit() if audit is not None else None
    if log is None:
        raise RuntimeError("the audit log is not open, and every custody decision must be audited")
    return open_policy_engine(config, audit=log, clock=time.time_ns)
