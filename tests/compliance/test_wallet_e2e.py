"""The compliance gateway with the real wallet on the dev chain, screened by the built-in OFAC plugin alone:
a deposit from a sanctioned source is frozen with a case and never credited; a withdrawal to a sanctioned
destination stays held with a case; everything else goes through."""

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
from exchange_devchain.tx import (
    SignedTransfer,
    TransferBody,
    address_of,
    digest_of,
    encode_body,
    encode_tx,
    sign_digest,
)

from exchange_framework.compliance import CaseStatus, CaseStore, Subject
from exchange_framework.compliance.cases import FROZEN_REASON
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.keystore import KdfCost, SoftwareKeystore
from exchange_framework.funding.store import DepositStore
from exchange_framework.identity import IdentityStore
from exchange_framework.node import ExchangeNode, with_data_dir
from exchange_framework.plugins import make_plugin_manager
from exchange_framework.wallet import WithdrawalStage
from exchange_framework.wallet.service import Wallet
from exchange_framework.wallet.store import WalletStore

ETH = 10**18
pytestmark = pytest.mark.anyio

SANCTIONED_KEY = coincurve.PrivateKey(b"\x07" * 32)
SANCTIONED = address_of(SANCTIONED_KEY.public_key.format())  # a dev-chain address the test can spend from
SANCTIONED_DESTINATION = address_of(coincurve.PrivateKey(b"\x09" * 32).public_key.format())


def sdn_list(directory: Path) -> Path:
    """An SDN list in OFAC's published CSV layout listing the two dev-chain addresses above."""
    directory.mkdir()
    remarks = (
        f"Digital Currency Address - ETH {SANCTIONED}; alt. Digital Currency Address - ETH {SANCTIONED_DESTINATION}."
    )
    row = f'90001,"TEST SANCTIONED PARTY",-0- ,"CYBER2",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,"{remarks}"\r\n'
    (directory / "sdn.csv").write_text(row, encoding="utf-8")
    return directory


@dataclass
class Setup:
    wallet: Wallet
    node: ExchangeNode
    chain: DevChain
    alice: int
    cases: CaseStore


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def setup(demo_config: ExchangeConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.setenv("EXCHANGE_KEYSTORE_PASSPHRASE", "a test passphrase")
    config = with_data_dir(demo_config, tmp_path / "data")
    ofac = config.compliance.model_copy(
        update={"ofac": config.compliance.ofac.model_copy(update={"source": str(sdn_list(tmp_path / "sdn"))})}
    )
    config = config.model_copy(update={"compliance": ofac})
    config._source = demo_config._source
    pm = make_plugin_manager(config)  # the built-in plugins only screen: no test screening plugin
    node = ExchangeNode(config, pm=pm, settle_every=0)
    await node.start()
    chain = DevChain.open(tmp_path / "chain", chain_id="devchain-1", native_asset="ETH", min_fee=1000)
    adapter = DevChainAdapter(
        chain, xpub=DEV_XPUB, chain_id="devchain-1", required_confirmations=3, native_asset="ETH", assets=("ETH",)
    )
    identity = IdentityStore(f"sqlite:///{tmp_path / 'identity.db'}")
    identity.create_schema()
    alice = identity.create_user("alice@example.com", "correct horse battery staple").id
    identity.set_kyc(alice, tier=1, status="approved")
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
    )
    await wallet.start()
    chain.faucet(address_of(wallet.hot_public_key), 100 * ETH)
    chain.mine()
    try:
        yield Setup(wallet, node, chain, alice, CaseStore.for_config(config))
    finally:
        await wallet.close()
        await node.close()
        identity.close()


def pay_from_sanctioned(chain: DevChain, to: str, amount: int) -> str:
    body = TransferBody(
        "devchain-1", chain.next_nonce(SANCTIONED), SANCTIONED_KEY.public_key.format(), to, "ETH", amount, 1000
    )
    signature = sign_digest(SANCTIONED_KEY.secret, digest_of(encode_body(body)))
    return chain.submit(encode_tx(SignedTransfer(body, signature[:64])))


async def test_a_deposit_from_a_sanctioned_source_is_frozen_with_a_case_and_never_credited(setup: Setup) -> None:
    s = setup
    s.chain.faucet(SANCTIONED, 10 * ETH)
    s.chain.mine()
    address, _memo = s.wallet.deposit_address(s.alice, "ETH")
    txid = pay_from_sanctioned(s.chain, address, 4 * ETH)
    s.chain.faucet(address, 1 * ETH)  # a clean deposit beside it (a mint: no source to screen)
    s.chain.mine(3)
    await until(lambda: {d.stage for d in s.wallet.deposits(s.alice)} == {"held", "credited"})
    (held,) = [d for d in s.wallet.deposits(s.alice) if d.stage == "held"]
    assert held.txid == txid and FROZEN_REASON in held.reasons
    (case,) = s.cases.open_cases()
    assert case.subject is Subject.DEPOSIT and case.frozen and case.status is CaseStatus.OPEN
    assert case.reference == f"devchain:{txid}:{address}" and case.account == s.alice
    assert case.details["source_addresses"] == SANCTIONED and case.details["amount"] == str(4 * ETH)
    assert any("SDN entry 90001" in r for d in case.decisions for r in d.reasons)
    s.chain.mine(5)  # more blocks: it stays held, uncredited, with one case
    await asyncio.sleep(0.3)
    assert s.node.balances.available(s.alice, "ETH") == 1 * ETH
    assert [d.stage for d in s.wallet.deposits(s.alice) if d.txid == txid] == ["held"]
    assert len(s.cases.list_cases()) == 1


async def test_a_withdrawal_to_a_sanctioned_address_stays_held_with_a_case(setup: Setup) -> None:
    s = setup
    address, _memo = s.wallet.deposit_address(s.alice, "ETH")
    s.chain.faucet(address, 5 * ETH)
    s.chain.mine(3)
    await until(lambda: any(d.stage == "credited" for d in s.wallet.deposits(s.alice)))
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=SANCTIONED_DESTINATION)
    requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="2", address=SANCTIONED_DESTINATION)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.SCREENING)
    await asyncio.sleep(0.3)  # more rounds of the wallet: still held, nothing sent
    view = s.wallet.withdrawals(s.alice)[0]
    assert view.stage is WithdrawalStage.SCREENING and FROZEN_REASON in " ".join(view.reasons)
    assert s.node.balances.balances(s.alice)["ETH"] == (3 * ETH, 2 * ETH)  # the funds stay held
    assert s.chain.balance(SANCTIONED_DESTINATION, "ETH") == 0
    (case,) = s.cases.find(Subject.WITHDRAWAL, str(requested.id))
    assert case.frozen and case.outcome == "hold" and case.details["address"] == SANCTIONED_DESTINATION
