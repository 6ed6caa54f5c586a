"""The wallet end to end on the dev chain: deposit to credit, withdrawal through screening, approval, signing
(software keystore), broadcast and confirmation to the final debit; and every refusal changing nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import coincurve
import pytest
from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.node import DevChain
from exchange_devchain.plugin import DEV_XPUB
from exchange_devchain.tx import address_of

from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.keystore import KdfCost, SoftwareKeystore
from exchange_framework.funding.store import DepositStore
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Decision
from exchange_framework.node import ExchangeNode, with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.wallet import WalletError, WithdrawalStage
from exchange_framework.wallet.service import Wallet
from exchange_framework.wallet.store import WalletStore
from tests.wallet.screening import Screening

ETH = 10**18
pytestmark = pytest.mark.anyio


@dataclass
class Setup:
    wallet: Wallet
    node: ExchangeNode
    chain: DevChain
    identity: IdentityStore
    screening: Screening
    alice: int
    outside: str  # an address outside the exchange


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def setup(demo_config: ExchangeConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.setenv("EXCHANGE_KEYSTORE_PASSPHRASE", "a test passphrase")
    config = with_data_dir(demo_config, tmp_path / "data")
    screening = Screening(Decision.allow(provider="test"))
    pm = make_plugin_manager(config)
    pm.register(screening, name="test-screening")
    node = ExchangeNode(config, pm=pm, settle_every=0)
    await node.start()
    chain = DevChain.open(tmp_path / "chain", chain_id="devchain-1", native_asset="ETH", min_fee=1000)
    adapter = DevChainAdapter(
        chain,
        xpub=DEV_XPUB,
        chain_id="devchain-1",
        required_confirmations=3,
        native_asset="ETH",
        assets=("ETH", "USDT"),
    )
    identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    identity.create_schema()
    alice = identity.create_user("alice@example.com", "correct horse battery staple").id
    identity.set_kyc(alice, tier=1, status="approved")
    signer = SoftwareKeystore(tmp_path / "keys", kdf=KdfCost(memory_kib=64, iterations=1, lanes=1))
    wallet = Wallet(
        config=config,
        pm=pm,
        node=node,
        identity=identity,
        adapters={adapter.name: adapter},
        deposit_store=DepositStore(tmp_path / "deposits.db"),
        store=WalletStore(tmp_path / "wallet.db"),
        signer=signer,
        cooling_off_ns=0,
        poll_interval=0.02,
    )
    await wallet.start()
    chain.faucet(address_of(wallet.hot_public_key), 100 * ETH)
    chain.mine()
    outside = address_of(coincurve.PrivateKey().public_key.format())
    try:
        yield Setup(wallet, node, chain, identity, screening, alice, outside)
    finally:
        await wallet.close()
        await node.close()
        identity.close()


async def deposit(s: Setup, amount: int) -> None:
    address, _memo = s.wallet.deposit_address(s.alice, "ETH")
    s.chain.faucet(address, amount)
    s.chain.mine(3)
    await until(lambda: any(d.stage == "credited" for d in s.wallet.deposits(s.alice)))


async def test_deposit_is_credited_at_depth_with_visible_stages(setup: Setup) -> None:
    s = setup
    address, memo = s.wallet.deposit_address(s.alice, "ETH")
    assert s.wallet.deposit_address(s.alice, "ETH") == (address, memo)  # stable
    s.chain.faucet(address, 5 * ETH)
    s.chain.mine(1)
    await until(lambda: bool(s.wallet.deposits(s.alice)))
    seen = s.wallet.deposits(s.alice)[0]
    assert seen.stage == "confirming" and seen.confirmations == 1 and seen.required_confirmations == 3
    assert s.node.balances.available(s.alice, "ETH") == 0
    s.chain.mine(2)
    await until(lambda: s.wallet.deposits(s.alice)[0].stage == "credited")
    assert s.node.balances.available(s.alice, "ETH") == 5 * ETH
    assert s.wallet.deposits(s.alice)[0].amount == "5"


async def test_withdrawal_goes_through_every_stage_to_the_final_debit(setup: Setup) -> None:
    s = setup
    await deposit(s, 5 * ETH)
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=s.outside, label="my cold wallet")
    requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1.5", address=s.outside)
    assert requested.stage is WithdrawalStage.REQUESTED
    assert s.node.balances.balances(s.alice)["ETH"] == (int(3.5 * ETH), int(1.5 * ETH))
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL)
    with pytest.raises(WalletError, match="cannot approve"):
        await s.wallet.approve_withdrawal(requested.id, operator="alice@example.com", approve=True)
    await s.wallet.approve_withdrawal(requested.id, operator="ops@example.com", approve=True)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.BROADCAST)
    view = s.wallet.withdrawals(s.alice)[0]
    assert view.txid and view.approvals == ("ops@example.com",)
    assert s.node.balances.balances(s.alice)["ETH"] == (int(3.5 * ETH), int(1.5 * ETH))  # still held until final
    s.chain.mine(3)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.COMPLETED)
    assert s.node.balances.balances(s.alice)["ETH"] == (int(3.5 * ETH), 0)
    assert s.chain.balance(s.outside, "ETH") == int(1.5 * ETH)
    assert [w.withdrawal_id for w in s.screening.withdrawals] == [requested.id]


async def test_refusals_change_nothing(setup: Setup) -> None:
    s = setup
    await deposit(s, 2 * ETH)
    before = s.node.balances.balances(s.alice)
    with pytest.raises(WalletError, match="whitelist"):
        await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=s.outside)
    with pytest.raises(WalletError, match="not a valid"):
        s.wallet.add_to_whitelist(s.alice, asset="ETH", address="0xnot-an-address")
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=s.outside)
    with pytest.raises(WalletError, match="insufficient"):
        await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="3", address=s.outside)
    with pytest.raises(WalletError, match="decimal places"):
        await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="0.0000000000000000001", address=s.outside)
    with pytest.raises(WalletError, match="cannot be deposited or withdrawn"):
        await s.wallet.request_withdrawal(s.alice, asset="BTC", amount="1", address=s.outside)
    bob = s.identity.create_user("bob@example.com", "another long password").id
    with pytest.raises(WalletError, match="KYC"):
        await s.wallet.request_withdrawal(bob, asset="ETH", amount="1", address=s.outside)
    assert s.node.balances.balances(s.alice) == before
    assert all(w.stage is WithdrawalStage.REJECTED for w in s.wallet.withdrawals(s.alice))


async def test_cooling_off_period_blocks_new_addresses(setup: Setup) -> None:
    s = setup
    await deposit(s, 2 * ETH)
    s.wallet.cooling_off_ns = 3600 * 10**9
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=s.outside)
    with pytest.raises(WalletError, match="cooling-off"):
        await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=s.outside)


async def test_screening_hold_then_operator_denial_releases_the_funds(setup: Setup) -> None:
    s = setup
    await deposit(s, 2 * ETH)
    s.screening.decision = Decision.hold("needs a look", provider="test")
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=s.outside)
    w = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=s.outside)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.SCREENING)
    assert "needs a look" in " ".join(s.wallet.withdrawals(s.alice)[0].reasons)
    await s.wallet.approve_withdrawal(w.id, operator="compliance@example.com", approve=False, note="unclear source")
    assert s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.REJECTED
    assert s.node.balances.balances(s.alice)["ETH"] == (2 * ETH, 0)
    assert s.chain.balance(s.outside, "ETH") == 0


async def test_rejected_by_screening_and_cancelled_withdrawals_release(setup: Setup) -> None:
    s = setup
    await deposit(s, 2 * ETH)
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=s.outside)
    s.screening.decision = Decision.reject("sanctioned destination", provider="test")
    await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=s.outside)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.REJECTED)
    s.screening.decision = Decision.allow(provider="test")
    w = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=s.outside)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL)
    await s.wallet.cancel_withdrawal(s.alice, w.id)
    assert s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.CANCELLED
    assert s.node.balances.balances(s.alice)["ETH"] == (2 * ETH, 0)
    with pytest.raises(WalletError, match="no longer be cancelled"):
        await s.wallet.cancel_withdrawal(s.alice, w.id)


async def test_node_fault_pauses_and_nothing_is_sent_twice(setup: Setup) -> None:
    s = setup
    await deposit(s, 3 * ETH)
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=s.outside)
    w = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=s.outside)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL)
    s.chain.set_reachable(False)
    await s.wallet.approve_withdrawal(w.id, operator="ops@example.com", approve=True)
    await until(lambda: "unreachable" in " ".join(s.wallet.withdrawals(s.alice)[0].reasons).lower()
                or s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.SIGNED)  # fmt: skip
    for _ in range(5):
        await s.wallet.process_once()
    assert s.wallet.withdrawals(s.alice)[0].stage in (WithdrawalStage.APPROVED, WithdrawalStage.SIGNED)
    s.chain.set_reachable(True)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.BROADCAST)
    s.chain.mine(3)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.COMPLETED)
    assert s.chain.balance(s.outside, "ETH") == ETH  # sent exactly once
    assert s.node.balances.balances(s.alice)["ETH"] == (2 * ETH, 0)


async def test_withdrawals_go_through_the_custody_policy_engine(setup: Setup, tmp_path: Path) -> None:
    """With a [custody] policy, the kernel's policy engine decides: small amounts pass by rule, larger ones need an
    approval from the custody group, and only a released request reaches the signer."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from exchange_framework.audit import AuditLog
    from exchange_framework.custody.policy import PolicyEngine, RequestStatus
    from exchange_framework.custody.rules import Network, PolicyConfig, Rule, RuleAction, Tier
    from exchange_framework.custody.rules import Wallet as Source
    from exchange_framework.custody.whitelist import WhitelistApprovers

    s = setup
    hot = address_of(s.wallet.hot_public_key)
    config = PolicyConfig(
        networks=[Network("devchain", "devchain-1")],
        wallets=[Source("devchain", hot, Tier.HOT, key_id="hot-1")],
        rules=[
            Rule("small", RuleAction.ALLOW, asset="ETH", max_amount=ETH // 2, destination="unlisted"),
            Rule("larger", RuleAction.APPROVE, asset="ETH", approvals=1, group="custody", destination="unlisted"),
        ],
        groups={"custody": frozenset({"custody@example.com"})},
    )
    approvers = {
        name: Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        for name in ("a", "b", "c")
    }
    audit = AuditLog.open(tmp_path / "audit.log")
    engine = PolicyEngine(
        config, whitelist_approvers=WhitelistApprovers(approvers), audit=audit, clock=time.time_ns,
        state_path=tmp_path / "policy.db",
    )  # fmt: skip
    s.wallet.policy = engine
    await deposit(s, 3 * ETH)
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=s.outside)

    small = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="0.25", address=s.outside)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.BROADCAST)
    assert engine.status(f"w{small.id}").status is RequestStatus.RELEASED

    large = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=s.outside)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL)
    assert s.wallet.withdrawals(s.alice)[0].required_approvals == 1
    with pytest.raises(WalletError):
        await s.wallet.approve_withdrawal(large.id, operator="support@example.com", approve=True)  # not in the group
    await s.wallet.approve_withdrawal(large.id, operator="custody@example.com", approve=True)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.BROADCAST)
    s.chain.mine(3)
    await until(lambda: all(w.stage is WithdrawalStage.COMPLETED for w in s.wallet.withdrawals(s.alice)))
    assert s.chain.balance(s.outside, "ETH") == ETH + ETH // 4
    assert any(e.action == "custody.withdrawal.release" for e in audit.entries())
    engine.close()
    audit.close()
