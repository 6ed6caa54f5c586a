"""Sweeping an EVM deposit address into the hot wallet on a real anvil node: the deposit key (derived from the
BIP44 root behind the configured xpub) signs, the hot wallet receives the amount, and the ledger move carries the
fee the receipt says was paid; a token waits for native coin to pay its gas."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from bip_utils import Bip32Slip10Secp256k1, Bip39SeedGenerator
from exchange_evm import EvmAdapter, NetworkSettings, NonceBook

from exchange_framework.engine.commands import Command
from exchange_framework.engine.events import CustodyMoved, Event
from exchange_framework.funding import DepositStore, DepositTracker, Stage
from exchange_framework.interfaces import Decision
from exchange_framework.wallet.custody import CustodyStore, SweepStage
from exchange_framework.wallet.deposit_keys import DepositKeys
from exchange_framework.wallet.sweeper import DepositSweeper
from tests.chains.evm.conftest import HOT_ADDRESS, MNEMONIC, OUTSIDE, TOKEN_SYMBOL, AnvilChain, Engine, network

pytestmark = pytest.mark.anyio

ROOT = str(
    Bip32Slip10Secp256k1.FromSeed(Bip39SeedGenerator(MNEMONIC).Generate())
    .DerivePath("m/44'/60'/0'/0")
    .PrivateKey()
    .ToExtended()
)


def settings(chain: AnvilChain, **overrides: object) -> NetworkSettings:
    return network(chain.node.url, **overrides)


async def test_a_credited_eth_deposit_is_swept_into_the_hot_wallet_with_the_fee_paid(
    chain: AnvilChain, tmp_path: Path
) -> None:
    book = NonceBook(tmp_path / "nonces.sqlite")
    adapter = EvmAdapter(settings(chain, hot_wallet_address=HOT_ADDRESS), nonce_book=book)
    engine = Engine(["ETH", TOKEN_SYMBOL])
    deposits = DepositStore(tmp_path / "deposits.db")
    custody = CustodyStore(tmp_path / "custody.db")
    custody.add_address("anvil", "hot", HOT_ADDRESS)
    tracker = DepositTracker(
        adapter, deposits, submit=engine, screen=lambda r: Decision.allow(), start_height=chain.tip() + 1
    )

    moved: list[CustodyMoved] = []

    async def submit(command: Command) -> Sequence[Event]:
        events = engine(command)
        moved.extend(e for e in events if isinstance(e, CustodyMoved))
        return events

    sweeper = DepositSweeper(
        adapters={"anvil": adapter},
        deposit_store=deposits,
        custody_store=custody,
        signer=DepositKeys({"anvil": adapter}, {"anvil": ROOT}),
        submit=submit,
        assets=["ETH", TOKEN_SYMBOL],
    )
    try:
        address = tracker.deposit_address(7)
        chain.deposit(address, TOKEN_SYMBOL, 4_500)
        chain.mine(3)
        tracker.poll()
        assert [d.stage for d in deposits.deposits()] == [Stage.CREDITED]
        assert await sweeper.process_once() == []  # a token, but no ETH at the address for its gas: it waits

        chain.deposit(address, "ETH", 10**16)
        chain.mine(3)
        tracker.poll()
        hot_before = adapter.balance(HOT_ADDRESS, "ETH")
        (token,) = await sweeper.process_once()  # tokens first; the address's ETH pays the gas
        assert (token.asset, token.amount, token.destination) == (TOKEN_SYMBOL, 4_500, HOT_ADDRESS)
        chain.mine(3)
        tracker.poll()
        (native,) = await sweeper.process_once()  # the token sweep recorded, then the ETH left goes
        chain.mine(3)
        tracker.poll()
        await sweeper.process_once()
        rows = custody.sweeps()
        assert [r.stage for r in rows] == [SweepStage.COMPLETED, SweepStage.COMPLETED]
        token_fee, native_fee = (adapter.paid_fee(r.txid) for r in rows)
        assert [r.fee for r in rows] == [token_fee, native_fee]  # what the receipts say was paid, not the caps
        assert adapter.balance(address.address, TOKEN_SYMBOL) == 0
        assert adapter.balance(HOT_ADDRESS, "ETH") - hot_before == native.amount
        left = adapter.balance(address.address, "ETH")  # the unused part of the fee cap stays (dust)
        assert left == 10**16 - token_fee - native.amount - native_fee and 0 <= left < native.fee
        assert [(m.asset, m.from_account, m.to_account, m.amount, m.fee) for m in moved] == [
            (TOKEN_SYMBOL, "omnibus:deposit:anvil", "omnibus:hot:anvil", 4_500, 0),
            ("ETH", "omnibus:deposit:anvil", "", 0, token_fee),
            ("ETH", "omnibus:deposit:anvil", "omnibus:hot:anvil", native.amount, native_fee),
        ]
    finally:
        adapter.close()
        book.close()
        deposits.close()
        custody.close()


def test_a_deposit_key_only_pays_from_its_own_address_to_the_configured_hot_wallet(
    chain: AnvilChain, tmp_path: Path
) -> None:
    book = NonceBook(tmp_path / "nonces.sqlite")
    adapter = EvmAdapter(settings(chain, hot_wallet_address=HOT_ADDRESS), nonce_book=book)
    mine = adapter.deposit_address(7).address
    other = adapter.deposit_address(8).address
    with pytest.raises(ValueError, match="does not pay from"):
        adapter._check_request("deposit/anvil/7", HOT_ADDRESS, "ETH", 1, other)
    with pytest.raises(ValueError, match="only to the configured hot wallet"):
        adapter._check_request("deposit/anvil/7", OUTSIDE, "ETH", 1, mine)
    adapter._check_request("deposit/anvil/7", HOT_ADDRESS, "ETH", 1, mine)  # a sweep
    with pytest.raises(ValueError, match="is not the configured hot wallet"):
        adapter._check_request("hot-1", OUTSIDE, "ETH", 1, mine)
    adapter.close()
    book.close()


async def test_a_sweep_refused_before_signing_gives_its_nonce_back(chain: AnvilChain, tmp_path: Path) -> None:
    book = NonceBook(tmp_path / "nonces.sqlite")
    adapter = EvmAdapter(settings(chain), nonce_book=book)
    engine = Engine(["ETH", TOKEN_SYMBOL])
    deposits = DepositStore(tmp_path / "deposits.db")
    custody = CustodyStore(tmp_path / "custody.db")
    custody.add_address("anvil", "hot", HOT_ADDRESS)
    tracker = DepositTracker(
        adapter, deposits, submit=engine, screen=lambda r: Decision.allow(), start_height=chain.tip() + 1
    )

    async def submit(command: Command) -> Sequence[Event]:
        return engine(command)

    sweeper = DepositSweeper(
        adapters={"anvil": adapter},
        deposit_store=deposits,
        custody_store=custody,
        signer=DepositKeys({"anvil": adapter}, {"anvil": ROOT}),
        submit=submit,
        assets=["ETH"],
        max_fee_factor=0,  # any fee is above the cap: every sweep is refused after it is built
    )
    try:
        address = tracker.deposit_address(7)
        chain.deposit(address, "ETH", 10**16)
        chain.mine(3)
        tracker.poll()
        assert await sweeper.process_once() == []
        assert custody.sweeps() == [] and book.reserved(address.address) == {}
    finally:
        adapter.close()
        book.close()
        deposits.close()
        custody.close()
