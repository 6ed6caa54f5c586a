"""The development chain's adapter passes the kernel's chain adapter conformance kit."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path

import coincurve
import pytest
from exchange_devchain import DevChain, DevChainAdapter, address_of, sign_digest
from exchange_devchain.plugin import DEV_XPUB

from exchange_framework.chains.conformance import ChainAdapterConformance
from exchange_framework.interfaces import DepositAddress

HOT_KEY = hashlib.sha256(b"conformance hot wallet").digest()
PAYER_KEY = hashlib.sha256(b"conformance depositor").digest()


class DevchainHarness:
    """A fresh development chain with a funded hot wallet and a funded depositor."""

    hot_key_id = "hot-1"
    amounts = {"DEV": 250_000, "DUSD": 4_000}
    # Golden values: BIP32 test vector 1's master xpub (the devchain default), children 0/1, 0/2 and 0/1001,
    # as dev-prefixed bech32 over sha256(pubkey)[:20]. A change in path or address format breaks these.
    address_vectors = {
        1: DepositAddress("dev1y05jlmssg576586nkxp2qmhrxvp5q0affauuyg"),
        2: DepositAddress("dev1js0hmmpzfdae30qclyzr5sz0gk6mvkneusljjd"),
        1001: DepositAddress("dev15eryyluedcvntpp4h0jyc6nvdq6ntqthftrzrk"),
    }

    def __init__(self, directory: Path) -> None:
        self.node = DevChain(directory)
        self.adapter = DevChainAdapter(self.node, xpub=DEV_XPUB, required_confirmations=3)
        self.hot_public_key = coincurve.PrivateKey(HOT_KEY).public_key.format()
        self.payer_public_key = coincurve.PrivateKey(PAYER_KEY).public_key.format()
        outside = coincurve.PrivateKey(hashlib.sha256(b"an outside wallet").digest()).public_key.format()
        self.withdrawal_destination = address_of(outside)
        for key in (self.hot_public_key, self.payer_public_key):
            self.node.faucet(address_of(key), 10**9, "DEV")
            self.node.faucet(address_of(key), 10**9, "DUSD")
        self.node.mine()

    def deposit(self, to: DepositAddress, asset: str, amount: int) -> str:
        unsigned = self.adapter.build_withdrawal(
            key_id="payer", public_key=self.payer_public_key, destination=to.address, asset=asset, amount=amount
        )
        return self.adapter.broadcast(self.adapter.assemble(unsigned, [sign_digest(PAYER_KEY, unsigned.digests[0])]))

    def mine(self, blocks: int = 1) -> None:
        self.node.mine(blocks)

    def reorg(self, depth: int, *, drop: Collection[str]) -> None:
        self.node.reorg(depth, drop=drop)

    def sign(self, key_id: str, digest: bytes) -> bytes:
        assert key_id == self.hot_key_id
        return sign_digest(HOT_KEY, digest)


class TestDevchainConformance(ChainAdapterConformance):
    @pytest.fixture
    def chain_harness(self, tmp_path: Path) -> DevchainHarness:
        return DevchainHarness(tmp_path / "chain")
