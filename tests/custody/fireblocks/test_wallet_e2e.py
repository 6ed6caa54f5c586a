"""The kernel's wallet with Fireblocks as its hot-wallet signer: a dev-chain withdrawal signed by a Fireblocks key.

The wallet creates its hot key (a Fireblocks vault account), the chain adapter builds the withdrawal, the operator
approves, the digest goes to Fireblocks as a raw signing request, and the signature Fireblocks returns is verified
by the signer and again by the dev chain before the withdrawal confirms and the held funds are debited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import coincurve
import pytest
from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.node import DevChain
from exchange_devchain.plugin import DEV_XPUB
from exchange_devchain.tx import address_of
from exchange_fireblocks import FireblocksApi, Settings
from exchange_fireblocks.signer import FireblocksSigner

from exchange_framework.config import ExchangeConfig
from exchange_framework.funding.store import DepositStore
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Decision
from exchange_framework.node import ExchangeNode, with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.wallet import WithdrawalStage
from exchange_framework.wallet.service import Wallet
from exchange_framework.wallet.store import WalletStore
from tests.custody.fireblocks.conftest import API_KEY
from tests.custody.fireblocks.server import FireblocksState
from tests.wallet.screening import Screening

ETH = 10**18
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def running(
    demo_config: ExchangeConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Wallet, ExchangeNode, DevChain, IdentityStore, FireblocksSigner]]:
    monkeypatch.setenv("FIREBLOCKS_API_KEY", API_KEY)
    settings = make_settings(signing_assets={"secp256k1": "ETH_TEST5"}, sign_timeout_seconds=20)
    api = FireblocksApi(
        base_url=settings.base_url,
        api_key=settings.api_key(),
        secret_key=settings.secret_key(),
        timeout_seconds=settings.timeout_seconds,
    )
    signer = FireblocksSigner(settings, api_factory=lambda: api)
    config = with_data_dir(demo_config, tmp_path / "data")
    pm = make_plugin_manager(config)
    pm.register(Screening(Decision.allow(provider="test")), name="test-screening")
    node = ExchangeNode(config, pm=pm, settle_every=0)
    await node.start()
    chain = DevChain.open(tmp_path / "chain", chain_id="devchain-1", native_asset="ETH", min_fee=1000)
    adapter = DevChainAdapter(
        chain, xpub=DEV_XPUB, chain_id="devchain-1", required_confirmations=3, native_asset="ETH", assets=("ETH",)
    )
    identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    identity.create_schema()
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
    try:
        yield wallet, node, chain, identity, signer
    finally:
        await wallet.close()
        await node.close()
        identity.close()
        api.close()


async def test_a_withdrawal_is_signed_by_a_fireblocks_key_and_confirms(
    running: tuple[Wallet, ExchangeNode, DevChain, IdentityStore, FireblocksSigner], fb_state: FireblocksState
) -> None:
    wallet, node, chain, identity, signer = running
    assert wallet.signer_error == ""
    (vault_id,) = [i for i, v in fb_state.vaults.items() if v["name"] == "hot-1"]  # the hot key is a vault account
    assert fb_state.public_key(vault_id, "ETH_TEST5")[1] == wallet.hot_public_key == signer.public_key("hot-1")
    chain.faucet(address_of(wallet.hot_public_key), 10 * ETH)
    chain.mine()

    alice = identity.create_user("alice@example.com", "correct horse battery staple").id
    identity.set_kyc(alice, tier=1, status="approved")
    address, _memo = wallet.deposit_address(alice, "ETH")
    chain.faucet(address, 5 * ETH)
    chain.mine(3)
    await until(lambda: any(d.stage == "credited" for d in wallet.deposits(alice)))

    outside = address_of(coincurve.PrivateKey().public_key.format())
    wallet.add_to_whitelist(alice, asset="ETH", address=outside)
    requested = await wallet.request_withdrawal(alice, asset="ETH", amount="1.5", address=outside)
    await until(lambda: wallet.withdrawals(alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL)
    assert fb_state.signatures == 0  # nothing reaches Fireblocks before the approval
    await wallet.approve_withdrawal(requested.id, operator="ops@example.com", approve=True)
    await until(lambda: wallet.withdrawals(alice)[0].stage is WithdrawalStage.BROADCAST)
    raw = [tx for tx in fb_state.transactions.values() if tx["operation"] == "RAW"]
    assert raw and all(tx["status"] == "COMPLETED" and tx["source"]["id"] == vault_id for tx in raw)
    chain.mine(3)
    await until(lambda: wallet.withdrawals(alice)[0].stage is WithdrawalStage.COMPLETED)
    assert chain.balance(outside, "ETH") == int(1.5 * ETH)
    assert node.balances.balances(alice)["ETH"] == (int(3.5 * ETH), 0)
