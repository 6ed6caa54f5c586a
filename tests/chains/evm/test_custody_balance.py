"""The EVM adapter's custody methods on a real anvil node: what an address holds (native coin and ERC-20 token)
and the hot wallet's address, and the wallet's custody report built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from exchange_evm import EvmAdapter

from exchange_framework.funding import DepositStore, DepositTracker
from exchange_framework.interfaces import CustodyBalance, Decision
from exchange_framework.wallet.custody import CustodyStore, custody_report
from tests.chains.evm.conftest import HOT_ADDRESS, HOT_KEY, HOT_PUBLIC, OUTSIDE, TOKEN_SYMBOL, AnvilChain, Engine


def test_balances_follow_the_chain_and_the_custody_report_names_each_account(
    chain: AnvilChain, adapter: EvmAdapter, tmp_path: Path
) -> None:
    assert adapter.address_of_key(HOT_PUBLIC) == HOT_ADDRESS
    assert adapter.balance(HOT_ADDRESS, "ETH") == 10**21 and adapter.balance(HOT_ADDRESS, TOKEN_SYMBOL) == 10**12
    with pytest.raises(ValueError, match="unknown asset"):
        adapter.balance(HOT_ADDRESS, "DOGE")
    with pytest.raises(ValueError, match="EIP-55"):
        adapter.balance(HOT_ADDRESS.lower(), "ETH")

    deposits = DepositStore(tmp_path / "deposits.db")
    custody = CustodyStore(tmp_path / "custody.db")
    tracker = DepositTracker(adapter, deposits, submit=Engine(["ETH", TOKEN_SYMBOL]), screen=lambda r: Decision.allow())
    address = tracker.deposit_address(7)
    chain.deposit(address, "ETH", 3 * 10**15)
    chain.deposit(address, TOKEN_SYMBOL, 4_500)
    chain.mine(1)
    assert adapter.balance(address.address, "ETH") == 3 * 10**15
    assert adapter.balance(address.address, TOKEN_SYMBOL) == 4_500
    custody.add_address("anvil", "hot", HOT_ADDRESS)
    report = custody_report(
        {"anvil": adapter}, deposit_store=deposits, custody_store=custody, assets=["ETH", TOKEN_SYMBOL, "BTC"]
    )
    tracker.poll()  # seen, not yet credited: not the ledger's, left out of the deposit tier
    pending = custody_report(
        {"anvil": adapter}, deposit_store=deposits, custody_store=custody, assets=["ETH", TOKEN_SYMBOL, "BTC"]
    )
    deposits.close()
    custody.close()
    assert report == [
        CustodyBalance("wallet", "DUSD", HOT_ADDRESS, 10**12, "omnibus:hot:anvil"),
        CustodyBalance("wallet", "DUSD", "1 deposit addresses on anvil", 4_500, "omnibus:deposit:anvil"),
        CustodyBalance("wallet", "ETH", HOT_ADDRESS, 10**21, "omnibus:hot:anvil"),
        CustodyBalance("wallet", "ETH", "1 deposit addresses on anvil", 3 * 10**15, "omnibus:deposit:anvil"),
    ]
    assert [r.amount for r in pending if r.account == "omnibus:deposit:anvil"] == [0, 0]


def test_paid_fee_is_what_the_hot_wallet_lost_beyond_the_amount(chain: AnvilChain, adapter: EvmAdapter) -> None:
    before = adapter.balance(HOT_ADDRESS, "ETH")
    txid = chain.send(HOT_KEY, OUTSIDE, "ETH", 10**15)
    with pytest.raises(ValueError, match="not mined"):
        adapter.paid_fee(txid)
    chain.mine(1)
    fee = adapter.paid_fee(txid)
    assert fee > 0 and before - adapter.balance(HOT_ADDRESS, "ETH") == 10**15 + fee


def test_batched_balances_equal_the_single_reads(chain: AnvilChain, adapter: EvmAdapter) -> None:
    addresses = [HOT_ADDRESS, OUTSIDE, *(adapter.deposit_address(a).address for a in range(1, 600))]
    chain.send(HOT_KEY, OUTSIDE, TOKEN_SYMBOL, 777)
    chain.mine(1)
    for asset in ("ETH", TOKEN_SYMBOL):
        batched = adapter.balances(addresses, asset)
        assert len(batched) == len(addresses)  # two batches of at most 500
        assert batched[:2] == [adapter.balance(HOT_ADDRESS, asset), adapter.balance(OUTSIDE, asset)]
        assert batched[2:] == [0] * 599
    assert adapter.balances([OUTSIDE], TOKEN_SYMBOL) == [777]
    with pytest.raises(ValueError, match="EIP-55"):
        adapter.balances([OUTSIDE.lower()], "ETH")
    with pytest.raises(ValueError, match="unknown asset"):
        adapter.balances([OUTSIDE], "DOGE")
