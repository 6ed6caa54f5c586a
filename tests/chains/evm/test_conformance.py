"""The EVM adapter passes the kernel's chain adapter conformance kit on a real anvil node."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from exchange_evm import EvmAdapter, NonceBook
from exchange_evm.anvil import AnvilNode

from exchange_framework.chains.conformance import ChainAdapterConformance
from exchange_framework.interfaces import DepositAddress

from .conftest import HOT_PUBLIC, OUTSIDE, PUBLISHED, TOKEN_SYMBOL, AnvilChain, network


class AnvilHarness:
    """The kit's view of anvil: the adapter, a funded hot wallet, deposits, mining and snapshot reorgs."""

    hot_key_id = "hot-1"
    hot_public_key = HOT_PUBLIC
    withdrawal_destination = OUTSIDE
    amounts = {"ETH": 25 * 10**16, TOKEN_SYMBOL: 4_000_000}
    address_vectors = {i: DepositAddress(a) for i, a in PUBLISHED.items() if i > 0}  # accounts start at 1

    def __init__(self, chain: AnvilChain, adapter: EvmAdapter) -> None:
        self.chain = chain
        self.adapter = adapter

    def deposit(self, to: DepositAddress, asset: str, amount: int) -> str:
        return self.chain.deposit(to, asset, amount)

    def mine(self, blocks: int = 1) -> None:
        self.chain.mine(blocks)

    def reorg(self, depth: int, *, drop: Collection[str]) -> None:
        self.chain.reorg(depth, drop=drop)

    def sign(self, key_id: str, digest: bytes) -> bytes:
        return self.chain.sign(key_id, digest)


class TestEvmConformance(ChainAdapterConformance):
    @pytest.fixture
    def chain_harness(self, anvil: AnvilNode, chain: AnvilChain, tmp_path: Path) -> Iterator[AnvilHarness]:
        book = NonceBook(tmp_path / "nonces.sqlite")
        adapter = EvmAdapter(network(anvil.url), nonce_book=book)
        yield AnvilHarness(chain, adapter)
        adapter.close()
        book.close()
