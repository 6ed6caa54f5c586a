"""The wallet enforces the KYC tier's daily withdrawal limit on the dev chain: over the limit is refused and changes
nothing; cancelled withdrawals give the room back; the window rolls over 24 hours."""

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

from exchange_framework.config import DEMO_CONFIG, parse_config
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
HOUR = 3600 * 10**9
pytestmark = pytest.mark.anyio

LIMITS = """
[compliance.kyc.tiers.1.daily_withdrawal]
ETH = "1"

[compliance.kyc.tiers.2.daily_withdrawal]
ETH = "3"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Setup:
    wallet: Wallet
    node: ExchangeNode
    identity: IdentityStore
    alice: int
    outside: str
    now: list[int]


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.setenv("EXCHANGE_KEYSTORE_PASSPHRASE", "a test passphrase")
    text = DEMO_CONFIG.read_text(encoding="utf-8") + LIMITS
    config = with_data_dir(parse_config(text, root=DEMO_CONFIG.parent), tmp_path / "data")
    pm = make_plugin_manager(config)
    screening = Screening(Decision.allow(provider="test"))
    pm.register(screening, name="test-screening")
    node = ExchangeNode(config, pm=pm, settle_every=0)
    await node.start()
    chain = DevChain.open(tmp_path / "chain", chain_id="devchain-1", native_asset="ETH", min_fee=1000)
    adapter = DevChainAdapter(
        chain, xpub=DEV_XPUB, chain_id="devchain-1", required_confirmations=1, native_asset="ETH", assets=("ETH",)
    )
    identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    identity.create_schema()
    alice = identity.create_user("alice@example.com", "correct horse battery staple").id
    identity.set_kyc(alice, tier=1, status="approved")
    now = [time.time_ns()]
    wallet = Wallet(
        config=config,
        pm=pm,
        node=node,
        identity=identity,
        adapters={adapter.name: adapter},
        deposit_store=DepositStore(tmp_path / "deposits.db"),
        store=WalletStore(tmp_path / "wallet.db"),
        signer=SoftwareKeystore(tmp_path / "keys", kdf=KdfCost(memory_kib=64, iterations=1, lanes=1)),
        cooling_off_ns=0,
        poll_interval=0.02,
        clock=lambda: now[0],
    )
    await wallet.start()
    outside = address_of(coincurve.PrivateKey().public_key.format())
    address, _memo = wallet.deposit_address(alice, "ETH")
    chain.faucet(address, 10 * ETH)
    chain.mine(1)
    await until(lambda: any(d.stage == "credited" for d in wallet.deposits(alice)))
    wallet.add_to_whitelist(alice, asset="ETH", address=outside)
    screening.decision = Decision.hold("withdrawals wait for an operator here", provider="test")
    try:
        yield Setup(wallet, node, identity, alice, outside, now)
    finally:
        await wallet.close()
        await node.close()
        identity.close()


async def withdraw(s: Setup, amount: str) -> int:
    view = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount=amount, address=s.outside)
    return view.id


async def test_over_the_tier_limit_is_refused_and_changes_nothing(setup: Setup) -> None:
    s = setup
    await withdraw(s, "0.6")
    # let the processor put it on hold for an operator first, so the stage cannot move between the two snapshots
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.SCREENING)
    before = (s.node.balances.balances(s.alice), [(w.id, w.stage) for w in s.wallet.withdrawals(s.alice)])
    with pytest.raises(WalletError, match=r"daily ETH limit at KYC tier 1 \(1 ETH in any 24 hours; 0\.4 ETH avail"):
        await withdraw(s, "0.5")
    after = (s.node.balances.balances(s.alice), [(w.id, w.stage) for w in s.wallet.withdrawals(s.alice)])
    assert after == before  # no row, no hold
    await withdraw(s, "0.4")  # exactly up to the limit
    assert s.node.balances.balances(s.alice)["ETH"] == (9 * ETH, 1 * ETH)


async def test_a_higher_tier_has_a_higher_limit_and_tier_zero_none(setup: Setup) -> None:
    s = setup
    s.identity.set_kyc(s.alice, tier=2, status="approved")
    await withdraw(s, "2.5")
    with pytest.raises(WalletError, match="daily ETH limit at KYC tier 2"):
        await withdraw(s, "0.6")
    s.identity.set_kyc(s.alice, tier=0, status="pending")
    with pytest.raises(WalletError, match=r"verified identity \(KYC tier 1\)"):
        await withdraw(s, "0.1")


async def test_cancelled_withdrawals_give_the_room_back(setup: Setup) -> None:
    s = setup
    first = await withdraw(s, "1")
    with pytest.raises(WalletError, match="0 ETH available"):
        await withdraw(s, "0.1")
    await s.wallet.cancel_withdrawal(s.alice, first)
    await withdraw(s, "1")


async def test_the_limit_rolls_over_24_hours(setup: Setup) -> None:
    s = setup
    await withdraw(s, "0.7")
    s.now[0] += 20 * HOUR
    await withdraw(s, "0.3")
    s.now[0] += 3 * HOUR  # 23 hours after the first
    with pytest.raises(WalletError, match="daily ETH limit"):
        await withdraw(s, "0.1")
    s.now[0] += 1 * HOUR + 1  # the first is now older than 24 hours: 0.7 ETH free again
    await withdraw(s, "0.7")
    with pytest.raises(WalletError, match="0 ETH available"):
        await withdraw(s, "0.000000000000000001")
    stages = [w.stage for w in s.wallet.withdrawals(s.alice)]
    assert len(stages) == 3 and WithdrawalStage.REJECTED not in stages
