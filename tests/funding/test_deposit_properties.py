"""Property tests: random deposits, blocks, reorgs, node and engine faults and restarts never double-credit; after
every successful poll each credit is deep on the best chain or alerted; once the chain settles, every deep deposit
is credited to its account."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exchange_devchain import DevChain, DevChainAdapter
from exchange_devchain.plugin import DEV_XPUB
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from exchange_framework.funding import DepositStore, DepositTracker, Stage, deposit_reference
from exchange_framework.interfaces import Decision
from tests.funding.conftest import EngineSink

REQUIRED = 2
ACCOUNTS = (1, 2, 3)


class DepositMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # A RAM disk when there is one: the store fsyncs every write, and this test makes thousands.
        shm = Path("/dev/shm")
        self.dir = Path(tempfile.mkdtemp(prefix="deposits-", dir=shm if shm.is_dir() else None))
        self.node = DevChain(None)
        self.adapter = DevChainAdapter(self.node, xpub=DEV_XPUB, required_confirmations=REQUIRED)
        self.sink = EngineSink()
        self.store = DepositStore(self.dir / "deposits.db")
        self.tracker = self._tracker()
        self.addresses = {a: self.tracker.deposit_address(a).address for a in ACCOUNTS}
        self.deposits: dict[str, int] = {}  # txid -> account

    def _tracker(self) -> DepositTracker:
        return DepositTracker(
            self.adapter, self.store, submit=self.sink, screen=lambda r: Decision.allow(), start_height=0
        )

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _check_credits_deep_or_alerted(self) -> None:
        """After a successful poll, every credit is deep on the node's best chain, or an alert says why not."""
        alerted = {alert.txid for alert in self.store.alerts()}
        with self.network():
            for credit in self.sink.credits:
                txid = credit.reference.split(":")[2]
                assert credit.reference == deposit_reference("devchain", txid, 0)
                status = self.node.status(txid)
                assert status.confirmations >= REQUIRED or txid in alerted, (txid, status)

    @contextmanager
    def network(self) -> Iterator[None]:
        """Look at the node as the network does (the tracker's connection may be down)."""
        reachable = self.node._reachable
        self.node.set_reachable(True)
        try:
            yield
        finally:
            self.node.set_reachable(reachable)

    @rule(account=st.sampled_from(ACCOUNTS), amount=st.one_of(st.integers(1, 10**6), st.integers(2**64, 10**30)))
    def deposit(self, account: int, amount: int) -> None:
        self.deposits[self.node.faucet(self.addresses[account], amount)] = account

    @rule(n=st.integers(1, 3))
    def mine(self, n: int) -> None:
        self.node.mine(n)

    @rule(depth=st.integers(1, 4), extra=st.integers(0, 2), drop=st.booleans(), include=st.booleans())
    def reorg(self, depth: int, extra: int, drop: bool, include: bool) -> None:
        with self.network():
            tip = self.node.height()
            if tip < 1:
                return
            depth = min(depth, tip)
            removed = [txid for b in self.node.blocks(tip - depth + 1, depth) for txid in b.txids]
        self.node.reorg(depth, new_blocks=depth + extra, drop=removed[::2] if drop else (), include_mempool=include)

    @rule()
    def poll(self) -> None:
        if not self.tracker.poll().paused:
            self._check_credits_deep_or_alerted()

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = DepositStore(self.dir / "deposits.db")
        self.tracker = self._tracker()

    @rule(up=st.booleans())
    def node_reachable(self, up: bool) -> None:
        self.node.set_reachable(up)

    @rule(down=st.booleans())
    def engine_down(self, down: bool) -> None:
        self.sink.down = down

    @rule()
    def settle(self) -> None:
        self.node.set_reachable(True)
        self.sink.down = False
        self.node.mine(REQUIRED + 1)
        result = self.tracker.poll()
        assert not result.paused, result.error
        self._check_credits_deep_or_alerted()
        for txid, account in self.deposits.items():
            status = self.node.status(txid)
            if status.confirmations >= REQUIRED:
                dep = self.store.deposit("devchain", txid, 0)
                assert dep is not None and dep.stage is Stage.CREDITED, (txid, dep)
                assert dep.account == account

    @invariant()
    def never_a_double_credit(self) -> None:
        counts = Counter(credit.reference for credit in self.sink.credits)
        assert all(n == 1 for n in counts.values()), counts

    @invariant()
    def the_store_agrees_with_the_engine(self) -> None:
        credited = Counter[int]()
        for dep in self.store.deposits(stage=Stage.CREDITED, limit=1000):
            credited[dep.account] += dep.amount
        engine = Counter({a: self.sink.balance(a, "DEV") for a in ACCOUNTS})
        assert +credited == +engine


DepositMachine.TestCase.settings = settings(
    max_examples=250, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestDeposits = DepositMachine.TestCase
