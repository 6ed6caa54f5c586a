"""Property test of the development chain: random faucets, transfers, blocks, reorgs and restarts keep the chain
linked, every confirmed transaction in it once, balances non-negative, and supply = mints - fees burnt."""

from __future__ import annotations

import hashlib
import itertools
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import coincurve
from exchange_devchain import DevChain, DevChainAdapter, address_of, sign_digest
from exchange_devchain.plugin import DEV_XPUB
from exchange_devchain.tx import Mint, SignedTransfer
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

KEYS = [hashlib.sha256(f"wallet {i}".encode()).digest() for i in range(3)]
PUBS = [coincurve.PrivateKey(k).public_key.format() for k in KEYS]
ADDRESSES = [address_of(p) for p in PUBS]
ASSETS = ("DEV", "DUSD")


class DevchainMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        shm = Path("/dev/shm")
        self.dir = Path(tempfile.mkdtemp(prefix="devchain-", dir=shm if shm.is_dir() else None))
        self.node = DevChain(self.dir)
        self.adapter = DevChainAdapter(self.node, xpub=DEV_XPUB)

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(who=st.integers(0, 2), asset=st.sampled_from(ASSETS), amount=st.integers(1, 10**6))
    def faucet(self, who: int, asset: str, amount: int) -> None:
        self.node.faucet(ADDRESSES[who], amount, asset)

    @rule(payer=st.integers(0, 2), payee=st.integers(0, 2), asset=st.sampled_from(ASSETS), amount=st.integers(1, 10**6))
    def transfer(self, payer: int, payee: int, asset: str, amount: int) -> None:
        try:
            unsigned = self.adapter.build_withdrawal(
                key_id=str(payer), public_key=PUBS[payer], destination=ADDRESSES[payee], asset=asset, amount=amount
            )
            self.adapter.broadcast(self.adapter.assemble(unsigned, [sign_digest(KEYS[payer], unsigned.digests[0])]))
        except ValueError:
            pass  # cannot pay, or the node refused it: nothing may change

    @rule(n=st.integers(1, 3))
    def mine(self, n: int) -> None:
        self.node.mine(n)

    @rule(depth=st.integers(1, 3), extra=st.integers(0, 2), drop=st.booleans(), include=st.booleans())
    def reorg(self, depth: int, extra: int, drop: bool, include: bool) -> None:
        tip = self.node.height()
        if tip == 0:
            return
        depth = min(depth, tip)
        removed = [t for b in self.node.blocks(tip - depth + 1, depth) for t in b.txids]
        self.node.reorg(depth, new_blocks=depth + extra, drop=removed[:1] if drop else (), include_mempool=include)

    @rule()
    def restart(self) -> None:
        before = (
            self.node.blocks(0, 10**6),
            [self.node.status(t) for b in self.node.blocks(0, 10**6) for t in b.txids],
        )
        self.node = DevChain(self.dir)
        self.adapter = DevChainAdapter(self.node, xpub=DEV_XPUB)
        after = (self.node.blocks(0, 10**6), [self.node.status(t) for b in self.node.blocks(0, 10**6) for t in b.txids])
        assert before == after

    @invariant()
    def chain_is_linked_and_each_transaction_is_in_it_once(self) -> None:
        blocks = self.node.blocks(0, 10**6)
        assert [b.height for b in blocks] == list(range(len(blocks)))
        assert all(child.parent_hash == parent.hash for parent, child in itertools.pairwise(blocks))
        txids = [t for b in blocks for t in b.txids]
        assert len(txids) == len(set(txids))

    @invariant()
    def supply_is_mints_minus_fees_and_no_balance_is_negative(self) -> None:
        supply = Counter[str]()
        for block in self.node.blocks(0, 10**6):
            for txid in block.txids:
                tx = self.node.transaction(txid)
                if isinstance(tx, Mint):
                    supply[tx.asset] += tx.amount
                elif isinstance(tx, SignedTransfer):
                    supply["DEV"] -= tx.body.fee
        holders = set(ADDRESSES)
        for asset in ASSETS:
            balances = [self.node.balance(a, asset) for a in holders]
            assert all(b >= 0 for b in balances)
            assert sum(balances) == supply[asset]


DevchainMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestDevchain = DevchainMachine.TestCase
