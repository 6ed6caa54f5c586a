"""The kernel's conformance kit, offline stories only: no Cosmos node can run here.

Addresses, build -> decode round trips and the refusals run as the kit wrote them. The stories that need a chain
(scanning, deposits to depth, reorgs, broadcasting to confirmation) are skipped: the adapter's node methods raise
``NodeRequired`` and are not claimed as working.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import coincurve
import pytest
from exchange_cosmos import AccountState, CosmosAdapter

from exchange_framework.chains.conformance import ChainAdapterConformance
from exchange_framework.interfaces import DepositAddress

from .test_cosmos import _ROOT, FAUCET_PRIVATE, FAUCET_PUBLIC, TO, _adapter, address_of_public_key


def _published(account: int) -> DepositAddress:
    private = bytes(_ROOT.DerivePath(f"m/44'/118'/0'/0/{account}").PrivateKey().Raw().ToBytes())
    return DepositAddress(address_of_public_key(coincurve.PrivateKey(private).public_key.format()))


class OfflineHarness:
    """The kit's view: the adapter and a signer; no chain to move."""

    hot_key_id = "cosmos-hot"
    hot_public_key = FAUCET_PUBLIC
    withdrawal_destination = TO
    amounts = {"COSM": 1_234_567, "STAKE": 10**20}
    address_vectors = {1: _published(1), 2: _published(2)}

    def __init__(self) -> None:
        self.adapter: CosmosAdapter = _adapter(accounts=lambda address: AccountState(1, 0))

    def deposit(self, to: DepositAddress, asset: str, amount: int) -> str:
        pytest.skip("no Cosmos node runs here: deposits need a chain")

    def mine(self, blocks: int = 1) -> None:
        pytest.skip("no Cosmos node runs here")

    def reorg(self, depth: int, *, drop: Collection[str]) -> None:
        pytest.skip("no Cosmos node runs here")

    def sign(self, key_id: str, digest: bytes) -> bytes:
        return coincurve.PrivateKey(FAUCET_PRIVATE).sign_recoverable(digest, hasher=None)


_NEEDS_A_NODE = "needs a Cosmos node (CometBFT RPC), which this adapter does not talk to yet"


class TestCosmosOfflineConformance(ChainAdapterConformance):
    @pytest.fixture
    def chain_harness(self) -> OfflineHarness:
        return OfflineHarness()

    def test_scan_returns_linked_headers_and_the_transfer(self, chain_harness: Any) -> None:
        pytest.skip(_NEEDS_A_NODE)

    def test_deposit_is_seen_then_credited_at_depth(self, chain_harness: Any, tmp_path: Path) -> None:
        pytest.skip(_NEEDS_A_NODE)

    def test_reorg_before_depth_orphans_the_deposit(self, chain_harness: Any, tmp_path: Path) -> None:
        pytest.skip(_NEEDS_A_NODE)

    def test_withdrawal_is_broadcast_once_and_confirmed(self, chain_harness: Any) -> None:
        pytest.skip(_NEEDS_A_NODE)

    def test_withdrawals_built_together_both_confirm(self, chain_harness: Any) -> None:
        pytest.skip(_NEEDS_A_NODE)
