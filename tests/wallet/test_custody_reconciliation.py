"""Custody end to end on the dev chain, wired as the running exchange wires it (``make_wallet`` from the config):
deposits credited into the deposit tier, swept into the hot wallet, a trade, a withdrawal paying a network fee;
then ``exchange ledger settle`` and ``exchange ledger check`` reconcile every omnibus account with the chain to
the atomic unit. A transfer out of the hot wallet behind the ledger's back is reported with its exact difference.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import coincurve
import pytest
from click.testing import CliRunner, Result
from exchange_devchain.adapter import DevChainAdapter
from exchange_devchain.node import DevChain
from exchange_devchain.tx import address_of

from exchange_framework.cli import main
from exchange_framework.config import DEMO_CONFIG, load_config
from exchange_framework.engine.commands import PlaceOrder
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import Decision, SigningRequest
from exchange_framework.node import ExchangeNode
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.types import OrderType, Side
from exchange_framework.wallet import WithdrawalStage
from exchange_framework.wallet.custody import SweepStage
from exchange_framework.wallet.service import Wallet
from exchange_framework.wallet.setup import make_wallet
from tests.wallet.screening import Screening

pytestmark = pytest.mark.anyio

ETH = 10**18
USDT = 10**6
FEE = 1_000  # the dev chain's network fee (ETH atomic units)


@dataclass
class Exchange:
    wallet: Wallet
    node: ExchangeNode
    chain: DevChain
    identity: IdentityStore
    alice: int
    bob: int


async def until(condition: Callable[[], bool], *, chain: DevChain | None = None, timeout: float = 30) -> None:
    """Wait for ``condition``, mining a block every round when ``chain`` is given."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        if chain is not None:
            chain.mine(1)
        await asyncio.sleep(0.05)


def write_config(directory: Path) -> Path:
    body = DEMO_CONFIG.read_text()
    body = body.replace('path = "var/demo/commands.journal"', 'path = "data/commands.journal"')
    body = body.replace('url = "sqlite:///var/demo/ledger.db"', f'url = "sqlite:///{directory / "ledger.db"}"')
    body = body.replace('data_dir = "var/demo/devchain"', 'data_dir = "chain"')
    body = body.replace("block_time = 2", "block_time = 0")
    body = body.replace('poll_seconds = "1"', 'poll_seconds = "0.05"')
    body = body.replace(
        'path = "var/demo/keystore"', 'path = "keystore"\nkdf_memory_kib = 64\nkdf_iterations = 1\nkdf_lanes = 1'
    )
    body += '\n[plugins]\nmodules = ["exchange_devchain.plugin"]  # the installed distributions are hidden from tests\n'
    path = directory / "exchange.toml"
    path.write_text(body)
    return path


@pytest.fixture
async def exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Exchange]:
    monkeypatch.setenv("EXCHANGE_KEYSTORE_PASSPHRASE", "a test passphrase")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXCHANGE_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = load_config(write_config(tmp_path))
    pm = make_plugin_manager(config)
    pm.register(Screening(Decision.allow(provider="test")), name="test-screening")
    node = ExchangeNode(config, pm=pm, settle_every=0)
    await node.start()
    identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    identity.create_schema()
    alice = identity.create_user("alice@example.com", "correct horse battery staple").id
    bob = identity.create_user("bob@example.com", "correct horse battery staple").id
    for user in (alice, bob):
        identity.set_kyc(user, tier=1, status="approved")
    wallet = make_wallet(config, pm, node, identity)
    assert wallet is not None and wallet.sweeper is not None and wallet.custody_store is not None
    wallet.sweeper.scan_seconds = 0  # look for deposits to sweep every round, not every 30 s
    await wallet.start()
    adapter = wallet.adapters["devchain"]
    assert isinstance(adapter, DevChainAdapter)
    try:
        yield Exchange(wallet, node, adapter.node, identity, alice, bob)
    finally:
        await wallet.close()
        await node.close()
        identity.close()


async def cli(*args: str) -> Result:
    """Run the ``exchange`` CLI (it runs its own event loop, so on a thread of its own)."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


def sweeps_done(ex: Exchange, count: int) -> bool:
    assert ex.wallet.custody_store is not None
    done = ex.wallet.custody_store.sweeps(stages=[SweepStage.COMPLETED])
    return len(done) >= count and not ex.wallet.custody_store.sweeps(stages=SweepStage.OPEN)


async def test_deposits_sweeps_trades_and_withdrawals_reconcile_to_the_atomic_unit(exchange: Exchange) -> None:
    ex = exchange
    wallet, chain = ex.wallet, ex.chain
    hot = address_of(wallet.hot_public_key)
    assert chain.balance(hot, "ETH") == 0  # the hot wallet is funded by sweeps only

    # deposits: alice 5 ETH, bob 3000 USDT and 0.01 ETH (his address pays the USDT sweep's fee)
    alice_address, _ = wallet.deposit_address(ex.alice, "ETH")
    bob_address, _ = wallet.deposit_address(ex.bob, "USDT")
    chain.faucet(alice_address, 5 * ETH, "ETH")
    chain.faucet(bob_address, 3_000 * USDT, "USDT")
    chain.faucet(bob_address, ETH // 100, "ETH")
    await until(lambda: sum(d.stage == "credited" for d in wallet.deposits(ex.bob)) == 2, chain=chain)
    await until(lambda: any(d.stage == "credited" for d in wallet.deposits(ex.alice)), chain=chain)

    # sweeps: alice's ETH, bob's USDT (fee from his ETH), then bob's ETH; each at depth, then on the ledger
    await until(lambda: sweeps_done(ex, 3), chain=chain)
    assert chain.balance(alice_address, "ETH") == 0
    assert chain.balance(bob_address, "USDT") == 0 and chain.balance(bob_address, "ETH") == 0
    assert chain.balance(hot, "ETH") == 5 * ETH + ETH // 100 - 3 * FEE
    assert chain.balance(hot, "USDT") == 3_000 * USDT

    # a trade: alice sells 1 ETH to bob at 2000 USDT
    for account, side in ((ex.alice, Side.SELL), (ex.bob, Side.BUY)):
        applied = await ex.node.submit(PlaceOrder(account, "ETH-USDT", side, OrderType.LIMIT, 10_000, price=200_000))
        assert applied.events, "the order was not applied"
    assert ex.node.balances.available(ex.bob, "ETH") > 0

    # a withdrawal out of the hot wallet: alice takes 1.5 ETH out, the network takes its fee
    outside = address_of(coincurve.PrivateKey().public_key.format())
    wallet.add_to_whitelist(ex.alice, asset="ETH", address=outside)
    requested = await wallet.request_withdrawal(ex.alice, asset="ETH", amount="1.5", address=outside)
    await until(lambda: wallet.withdrawals(ex.alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL)
    await wallet.approve_withdrawal(requested.id, operator="ops@example.com", approve=True)
    await until(lambda: wallet.withdrawals(ex.alice)[0].stage is WithdrawalStage.COMPLETED, chain=chain)
    assert chain.balance(outside, "ETH") == 3 * ETH // 2
    assert chain.balance(hot, "ETH") == 5 * ETH + ETH // 100 - 3 * ETH // 2 - 4 * FEE

    # the ledger, settled from the journal alone, reconciles with the chain
    assert (await cli("ledger", "settle")).exit_code == 0
    report = await cli("ledger", "check")
    assert report.exit_code == 0, report.output
    assert "custody vs omnibus: ok" in report.output and "ledger check passed" in report.output
    hot_eth = 5 * ETH + ETH // 100 - 3 * ETH // 2 - 4 * FEE
    assert f"omnibus:hot:devchain      ETH    {hot_eth}" in report.output
    balances = (await cli("ledger", "balances", "--account", "network_fees")).output
    assert f"network_fees  ETH    -{4 * FEE}" in balances

    # a withdrawal on its way: on chain at 1 confirmation, on the ledger at 3; the check says so
    second = await wallet.request_withdrawal(ex.alice, asset="ETH", amount="0.5", address=outside)
    await until(lambda: wallet.withdrawals(ex.alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL)
    await wallet.approve_withdrawal(second.id, operator="ops@example.com", approve=True)
    await until(lambda: wallet.withdrawals(ex.alice)[0].stage is WithdrawalStage.BROADCAST)
    chain.mine(1)
    await until(lambda: wallet.withdrawals(ex.alice)[0].confirmations == 1)
    assert (await cli("ledger", "settle")).exit_code == 0
    moving = await cli("ledger", "check")
    assert moving.exit_code == 1
    on_the_way = ETH // 2 + FEE
    assert f"difference -{on_the_way}" in moving.output
    assert (
        f"withdrawal {second.id} on devchain: {ETH // 2} ETH (fee up to {FEE}) out of the hot wallet" in moving.output
    )
    chain.mine(2)
    await until(lambda: wallet.withdrawals(ex.alice)[0].stage is WithdrawalStage.COMPLETED, chain=chain)
    assert (await cli("ledger", "settle")).exit_code == 0
    settled = await cli("ledger", "check")
    assert settled.exit_code == 0 and "in flight" not in settled.output, settled.output
    hot_eth -= on_the_way

    # behind the ledger's back: 0.25 ETH leaves the hot wallet, signed with the hot key
    adapter = wallet.adapters["devchain"]
    assert wallet.signer is not None
    unsigned = adapter.build_withdrawal(
        key_id=wallet.hot_key_id, public_key=wallet.hot_public_key, destination=outside, asset="ETH", amount=ETH // 4
    )
    request = SigningRequest("tamper/0", wallet.hot_key_id, "devchain", unsigned.digests[0])
    adapter.broadcast(adapter.assemble(unsigned, [wallet.signer.sign(request)]))
    chain.mine(1)
    broken = await cli("ledger", "check")
    assert broken.exit_code == 1, broken.output
    missing = ETH // 4 + FEE
    assert (
        f"BREAK: omnibus:hot:devchain ETH: ledger {hot_eth}, custody {hot_eth - missing}, difference -{missing}"
        in broken.output
    )
    assert "omnibus:deposit:devchain" not in "".join(line for line in broken.output.splitlines() if "BREAK" in line)
