"""Sweeps end to end on the dev chain: planned, approved by operators through the custody policy engine (whitelist,
rules, k of n), signed by the source tier's keystore, broadcast, confirmed and recorded as a custody move; and every
refusal changing nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coincurve
import pytest
from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.node import DevChain
from exchange_devchain.plugin import DEV_XPUB
from exchange_devchain.tx import address_of

from exchange_framework.audit import AuditLog
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.keystore import KdfCost, SoftwareKeystore
from exchange_framework.custody.policy import PolicyEngine
from exchange_framework.custody.rules import Network, PolicyConfig, Rule, RuleAction, Tier, Wallet
from exchange_framework.custody.tiers import DEFAULT_BANDS
from exchange_framework.custody.tiers_plan import TierHoldings, plan
from exchange_framework.custody.tiers_service import holdings_from_ledger
from exchange_framework.custody.tiers_store import SweepStage, SweepStore
from exchange_framework.custody.tiers_sweeps import REQUESTER, LedgerMove, SweepError, TierSweeper, node_recorder
from exchange_framework.engine.commands import CreditFunds, MoveCustody
from exchange_framework.engine.commands import custody_account as ledger_custody
from exchange_framework.engine.events import FundsRejected
from exchange_framework.interfaces import KeyScheme, SigningError
from exchange_framework.ledger.store import SqlLedgerStore
from exchange_framework.node import ExchangeNode, with_data_dir
from exchange_framework.plugins import make_plugin_manager
from tests.custody.test_whitelist import approvers, private_key

pytestmark = pytest.mark.anyio
ETH = 10**18
FEE = 1_000
CHAIN = "devchain"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Env:
    chain: DevChain
    adapter: DevChainAdapter
    policy: PolicyEngine
    audit: AuditLog
    store: SweepStore
    sweeper: TierSweeper
    addresses: dict[Tier, str]
    moves: list[LedgerMove] = field(default_factory=list)

    def held(self) -> dict[Tier, int]:
        return {t: self.chain.balance(a, "ETH") for t, a in self.addresses.items()}

    def holdings(self) -> TierHoldings:
        h = self.held()
        return TierHoldings("ETH", CHAIN, h[Tier.HOT], h[Tier.WARM], h[Tier.COLD])

    def actions(self) -> list[str]:
        return [e.action for e in self.audit.entries()]


def whitelist(engine: PolicyEngine, address: str) -> None:
    change = engine.propose_whitelist_change(op="add", chain=CHAIN, address=address, asset="ETH", proposer="ops")
    for name in ("alice", "bob", "carol"):
        engine.approve_whitelist_change(
            change.change_id, approver=name, signature=private_key(name).sign(change.message())
        )


def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, listed: tuple[Tier, ...]) -> Env:
    monkeypatch.setenv("EXCHANGE_KEYSTORE_PASSPHRASE", "a test passphrase")
    kdf = KdfCost(memory_kib=64, iterations=1, lanes=1)
    hot_keys = SoftwareKeystore(tmp_path / "hot-keys", kdf=kdf)
    warm_keys = SoftwareKeystore(tmp_path / "warm-keys", kdf=kdf)  # stands in for the threshold signers
    addresses = {
        Tier.HOT: address_of(hot_keys.create_key("hot-1", KeyScheme.SECP256K1)),
        Tier.WARM: address_of(warm_keys.create_key("warm-1", KeyScheme.SECP256K1)),
        Tier.COLD: address_of(coincurve.PrivateKey().public_key.format()),  # offline: no signer here
    }
    chain = DevChain(tmp_path / "chain", chain_id="devchain-1", native_asset="ETH", min_fee=FEE)
    adapter = DevChainAdapter(chain, xpub=DEV_XPUB, native_asset="ETH", assets=("ETH",))
    wallets = [
        Wallet(CHAIN, addresses[Tier.HOT], Tier.HOT, key_id="hot-1"),
        Wallet(CHAIN, addresses[Tier.WARM], Tier.WARM, key_id="warm-1"),
        Wallet(CHAIN, addresses[Tier.COLD], Tier.COLD),
    ]
    config = PolicyConfig(
        networks=[Network(CHAIN, "devchain-1", max_fee=10 * FEE)],
        wallets=wallets,
        groups={"treasury": frozenset({"alice", "bob", "carol"})},
        rules=[
            Rule("hot sweeps", RuleAction.APPROVE, chain=CHAIN, tier=Tier.HOT, approvals=1, group="treasury"),
            Rule("warm sweeps", RuleAction.APPROVE, chain=CHAIN, tier=Tier.WARM, approvals=2, group="treasury"),
        ],
    )
    audit = AuditLog.open(tmp_path / "audit.log", fsync=False)
    policy = PolicyEngine(config, whitelist_approvers=approvers(), audit=audit, clock=time.time_ns, fsync=False)
    for tier in listed:
        whitelist(policy, addresses[tier])
    store = SweepStore(tmp_path / "tiers.db")
    moves: list[LedgerMove] = []

    async def record(move: LedgerMove) -> None:
        moves.append(move)

    sweeper = TierSweeper(
        store=store,
        policy=lambda: policy,
        wallets=wallets,
        adapters={CHAIN: adapter},
        signers={Tier.HOT: hot_keys, Tier.WARM: warm_keys},
        record_move=record,
        audit=lambda: audit,
    )
    return Env(chain, adapter, policy, audit, store, sweeper, addresses, moves)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    e = make_env(tmp_path, monkeypatch, listed=(Tier.HOT, Tier.WARM, Tier.COLD))
    yield e
    e.policy.close()
    e.store.close()
    e.audit.close()


def fund(e: Env, hot: int, warm: int, cold: int) -> None:
    for tier, amount in ((Tier.HOT, hot), (Tier.WARM, warm), (Tier.COLD, cold)):
        if amount:
            e.chain.faucet(e.addresses[tier], amount)
    e.chain.mine()


async def test_an_approved_hot_sweep_goes_through_the_policy_engine_to_the_chain_and_the_ledger(env: Env) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (sweep,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS, unit=ETH // 100)])
    assert (sweep.source, sweep.destination, sweep.amount, sweep.stage) == (
        Tier.HOT,
        Tier.COLD,
        65 * ETH // 10,
        SweepStage.PROPOSED,
    )
    await env.sweeper.process_once()  # nothing happens without an approval
    assert env.store.sweep(sweep.id).stage is SweepStage.PROPOSED  # type: ignore[union-attr]
    assert env.policy.requests() == []

    env.sweeper.record_decision(sweep.id, operator="alice", approve=True)
    await env.sweeper.process_once()
    row = env.store.sweep(sweep.id)
    assert row is not None and row.stage is SweepStage.BROADCAST and row.txid
    decision = env.policy.status(row.request_id)  # the same policy engine withdrawals go through
    assert decision.rule == "hot sweeps" and decision.approvals == ("alice",) and decision.requester == REQUESTER
    env.chain.mine(3)
    await env.sweeper.process_once()
    row = env.store.sweep(sweep.id)
    assert row is not None and row.stage is SweepStage.COMPLETED and row.confirmations >= 3
    assert env.held() == {Tier.HOT: 10 * ETH - 65 * ETH // 10 - FEE, Tier.WARM: 10 * ETH, Tier.COLD: 865 * ETH // 10}
    assert env.moves == [
        LedgerMove("ETH", "omnibus:hot:devchain", "omnibus:cold:devchain", 65 * ETH // 10, FEE, f"sweep:{sweep.id}")
    ]
    actions = env.actions()
    assert actions.index("custody.tiers.propose") < actions.index("custody.tiers.approve")
    assert actions.index("custody.tiers.approve") < actions.index("custody.withdrawal.submit")
    assert "custody.withdrawal.release" in actions
    # the bands are met now: the next plan proposes nothing
    assert plan(env.holdings(), DEFAULT_BANDS, unit=ETH // 100).sweeps == ()


async def test_a_warm_sweep_needs_two_approvals_and_signs_with_the_warm_signer(env: Env) -> None:
    fund(env, 1 * ETH, 14 * ETH, 83 * ETH)
    p = plan(env.holdings(), DEFAULT_BANDS, demand=4 * ETH, unit=ETH // 100)
    sweep, ceremony = env.sweeper.propose([p])  # warm ends below its band: the ceremony is proposed too
    assert (sweep.source, sweep.destination, ceremony.stage) == (Tier.WARM, Tier.HOT, SweepStage.CEREMONY)
    env.sweeper.record_decision(sweep.id, operator="alice", approve=True)
    await env.sweeper.process_once()
    assert env.store.sweep(sweep.id).stage is SweepStage.AWAITING_APPROVAL  # type: ignore[union-attr]
    env.sweeper.record_decision(sweep.id, operator="bob", approve=True)
    await env.sweeper.process_once()
    env.chain.mine(3)
    await env.sweeper.process_once()
    assert env.store.sweep(sweep.id).stage is SweepStage.COMPLETED  # type: ignore[union-attr]
    assert env.held()[Tier.HOT] == 1 * ETH + sweep.amount


async def test_a_destination_off_the_whitelist_is_blocked_by_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = make_env(tmp_path, monkeypatch, listed=(Tier.HOT, Tier.WARM))  # cold is not whitelisted
    try:
        fund(e, 10 * ETH, 10 * ETH, 80 * ETH)
        (sweep,) = e.sweeper.propose([plan(e.holdings(), DEFAULT_BANDS)])
        assert sweep.destination is Tier.COLD
        e.sweeper.record_decision(sweep.id, operator="alice", approve=True)
        await e.sweeper.process_once()
        row = e.store.sweep(sweep.id)
        assert row is not None and row.stage is SweepStage.REJECTED
        assert "not whitelisted" in row.reasons[-1]
        assert e.held()[Tier.HOT] == 10 * ETH and e.moves == []
    finally:
        e.policy.close()
        e.store.close()
        e.audit.close()


async def test_a_ceremony_proposal_cannot_be_approved_here(env: Env) -> None:
    fund(env, 3 * ETH, 5 * ETH, 92 * ETH)
    (ceremony,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS, unit=ETH)])
    assert ceremony.stage is SweepStage.CEREMONY and ceremony.source is Tier.COLD
    with pytest.raises(SweepError, match="cold-vault ceremony"):
        env.sweeper.record_decision(ceremony.id, operator="alice", approve=True)
    await env.sweeper.process_once()
    assert env.store.sweep(ceremony.id).stage is SweepStage.CEREMONY  # type: ignore[union-attr]
    assert env.policy.requests() == []


async def test_refusals_change_nothing(env: Env) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (sweep,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS)])
    with pytest.raises(SweepError, match="no sweep 999"):
        env.sweeper.record_decision(999, operator="alice", approve=True)
    with pytest.raises(SweepError, match="say why"):
        env.sweeper.record_decision(sweep.id, operator="alice", approve=False)
    with pytest.raises(SweepError, match="name the operator"):
        env.sweeper.record_decision(sweep.id, operator=REQUESTER, approve=True)
    assert env.store.approvals(sweep.id) == []
    env.sweeper.record_decision(sweep.id, operator="alice", approve=True)
    with pytest.raises(SweepError, match="already decided"):
        env.sweeper.record_decision(sweep.id, operator="alice", approve=True)


async def test_an_approver_outside_the_group_is_refused_by_the_policy(env: Env) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (sweep,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS)])
    env.sweeper.record_decision(sweep.id, operator="mallory", approve=True)
    await env.sweeper.process_once()
    (approval,) = env.store.approvals(sweep.id)
    assert approval.handled and approval.outcome.startswith("refused: mallory is not in approver group treasury")
    assert env.store.sweep(sweep.id).stage is SweepStage.AWAITING_APPROVAL  # type: ignore[union-attr]
    assert env.held()[Tier.HOT] == 10 * ETH


async def test_a_denial_rejects_the_proposal(env: Env) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (sweep,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS)])
    env.sweeper.record_decision(sweep.id, operator="bob", approve=False, note="market is moving")
    await env.sweeper.process_once()
    row = env.store.sweep(sweep.id)
    assert row is not None and row.stage is SweepStage.REJECTED and row.reasons == ["denied by bob: market is moving"]
    assert "custody.tiers.deny" in env.actions() and env.policy.requests() == []


async def test_replanning_keeps_the_same_proposal_supersedes_others_and_waits_for_sweeps_on_their_way(
    env: Env,
) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (first,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS)])
    (again,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS)])
    assert again.id == first.id
    (other,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS, unit=ETH)])  # another amount
    assert other.id != first.id
    assert env.store.sweep(first.id).stage is SweepStage.SUPERSEDED  # type: ignore[union-attr]
    env.sweeper.record_decision(other.id, operator="alice", approve=True)
    await env.sweeper.process_once()
    assert env.sweeper.busy("ETH", CHAIN)
    assert env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS, demand=ETH)]) == []  # on its way: left alone


async def test_without_an_audit_log_no_decision_is_recorded(env: Env) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (sweep,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS)])
    env.sweeper.audit = lambda: None
    with pytest.raises(SweepError, match="audit log is not open"):
        env.sweeper.record_decision(sweep.id, operator="alice", approve=True)
    assert env.store.approvals(sweep.id) == []


async def test_without_a_policy_engine_approvals_wait(env: Env) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (sweep,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS)])
    env.sweeper.record_decision(sweep.id, operator="alice", approve=True)
    env.sweeper.policy = lambda: None
    await env.sweeper.process_once()
    row = env.store.sweep(sweep.id)
    assert row is not None and row.stage is SweepStage.PROPOSED and "policy engine is not running" in row.error
    assert not env.store.approvals(sweep.id)[0].handled
    env.sweeper.policy = lambda: env.policy
    await env.sweeper.process_once()
    assert env.store.sweep(sweep.id).stage is SweepStage.BROADCAST  # type: ignore[union-attr]


async def test_a_completed_sweep_lands_in_the_ledgers_custody_accounts(
    env: Env, demo_config: ExchangeConfig, tmp_path: Path
) -> None:
    config = with_data_dir(demo_config, tmp_path / "node")
    node = ExchangeNode(config, pm=make_plugin_manager(config), settle_every=0.05)
    await node.start()
    try:
        deposit = CreditFunds(1, "ETH", 10 * ETH, reference="dep:1", custody=ledger_custody("hot", CHAIN))
        assert not any(isinstance(e, FundsRejected) for e in (await node.submit(deposit)).events)
        env.sweeper.record_move = node_recorder(node)
        fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
        (sweep,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS, unit=ETH // 100)])
        env.sweeper.record_decision(sweep.id, operator="alice", approve=True)
        await env.sweeper.process_once()
        env.chain.mine(3)
        await env.sweeper.process_once()
        assert env.store.sweep(sweep.id).stage is SweepStage.COMPLETED  # type: ignore[union-attr]
        await node.submit(
            MoveCustody("ETH", "omnibus:hot:devchain", "omnibus:cold:devchain", 1, 0, f"sweep:{sweep.id}")
        )
    finally:
        await node.close()  # settles what is journalled
    store = SqlLedgerStore(config.ledger_url())
    try:
        balances = await store.balances()
    finally:
        await store.close()
    moved = 65 * ETH // 10
    assert balances[("omnibus:hot:devchain", "ETH")] == -(10 * ETH) + moved + FEE
    assert balances[("omnibus:cold:devchain", "ETH")] == -moved  # the repeated reference above changed nothing
    assert balances[("network_fees", "ETH")] == -FEE
    (held,) = holdings_from_ledger(balances)
    assert held == TierHoldings("ETH", CHAIN, 10 * ETH - moved - FEE, 0, moved)


class SignerDown:
    """The hot signer reachable for its public key but failing every signature (an HSM session dropped mid-way)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.name = real.name

    def public_key(self, key_id: str) -> bytes:
        return bytes(self.real.public_key(key_id))

    def sign(self, request: Any) -> bytes:
        raise SigningError("the signer is unavailable")


async def test_a_signer_failure_after_release_resumes_after_a_restart_without_a_second_release(env: Env) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (sweep,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS, unit=ETH // 100)])
    env.sweeper.record_decision(sweep.id, operator="alice", approve=True)
    good = env.sweeper.signers[Tier.HOT]
    env.sweeper.signers = {Tier.HOT: SignerDown(good)}  # type: ignore[dict-item]
    await env.sweeper.process_once()
    row = env.store.sweep(sweep.id)
    assert row is not None and row.stage is SweepStage.APPROVED and "signer is unavailable" in row.error
    assert env.policy.status(row.request_id).status.value == "released"
    # a restarted exchange: a new sweeper over the same store and policy state, with a working signer
    restarted = TierSweeper(
        store=env.store,
        policy=lambda: env.policy,
        wallets=env.sweeper.wallets,
        adapters=env.sweeper.adapters,
        signers={Tier.HOT: good},
        record_move=env.sweeper.record_move,
        audit=lambda: env.audit,
    )
    env.chain.set_reachable(False)  # signed, stored, but the node is down: broadcast waits
    await restarted.process_once()
    row = env.store.sweep(sweep.id)
    assert row is not None and row.stage is SweepStage.SIGNED and row.error
    env.chain.set_reachable(True)
    await restarted.process_once()
    await restarted.process_once()  # broadcasting the same bytes again sends nothing new
    env.chain.mine(3)
    await restarted.process_once()
    assert env.store.sweep(sweep.id).stage is SweepStage.COMPLETED  # type: ignore[union-attr]
    assert env.held()[Tier.HOT] == 10 * ETH - sweep.amount - FEE  # paid once
    assert env.actions().count("custody.withdrawal.release") == 1
    assert len(env.moves) == 1


async def test_a_plan_within_band_supersedes_what_was_proposed(env: Env) -> None:
    fund(env, 10 * ETH, 10 * ETH, 80 * ETH)
    (old,) = env.sweeper.propose([plan(env.holdings(), DEFAULT_BANDS)])
    calm = plan(TierHoldings("ETH", CHAIN, 4 * ETH, 12 * ETH, 84 * ETH), DEFAULT_BANDS)  # funds moved by hand
    assert calm.sweeps == () and env.sweeper.propose([calm]) == []
    row = env.store.sweep(old.id)
    assert row is not None and row.stage is SweepStage.SUPERSEDED and row.reasons == ["a newer plan replaced it"]
    with pytest.raises(SweepError, match="superseded: there is nothing to decide"):
        env.sweeper.record_decision(old.id, operator="alice", approve=True)
