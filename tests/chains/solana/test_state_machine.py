"""A hypothesis state machine on LiteSVM: deposits (SOL and DUSD, memo and per-account) through the kernel's
tracker, withdrawals through the adapter, blocks, skipped slots and blockhash expiry.

Invariants after every step: each deposit is credited exactly once, to its account, and only at depth; the hot
wallet's token balance is its funding minus every withdrawal; its SOL balance lies between funding minus amounts
and decoded fee bounds, and funding minus amounts and the signature fees actually charged; every broadcast
withdrawal is confirmed once a block has sealed it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exchange_framework.engine.commands import Command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event, FundsCredited
from exchange_framework.engine.market import AssetSpec
from exchange_framework.funding.deposits import DepositTracker
from exchange_framework.funding.store import DepositStore
from exchange_framework.interfaces import Decision, TxState

from .conftest import HOT, OUTSIDE, SolanaChain

ACCOUNTS = (1, 2, 3, 40, 41)  # 1-3 have their own addresses, 40 and 41 share the memo address


class SolanaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = SolanaChain()
        self.adapter = self.chain.adapter()
        self.tmp = tempfile.TemporaryDirectory()
        self.engine = MatchingEngine({"SOL": AssetSpec("SOL", 0), "DUSD": AssetSpec("DUSD", 0)}, {})
        self.seq = 0
        self.credits: list[FundsCredited] = []
        self.store = DepositStore(Path(self.tmp.name) / "deposits.db")
        self.tracker = DepositTracker(
            self.adapter,
            self.store,
            submit=self._submit,
            screen=lambda request: Decision.allow(),
            start_height=self.adapter.tip_height() + 1,
        )
        self.deposits: dict[str, tuple[int, str, int]] = {}  # txid -> account, asset, amount
        self.withdrawals: dict[str, tuple[str, int, int]] = {}  # txid -> asset, amount, decoded fee bound
        self.hot = str(HOT.pubkey())
        self.hot_sol = self.chain.node.balance(self.hot)
        self.hot_token = self.chain.node.token_balance(str(self._hot_ata()))

    def _hot_ata(self) -> object:
        from .conftest import ata

        return ata(HOT.pubkey())

    def _submit(self, command: Command) -> Sequence[Event]:
        self.seq += 1
        self.engine.apply(self.seq, command)
        events, self.engine.events = self.engine.events, []
        self.credits += [e for e in events if isinstance(e, FundsCredited)]
        return events

    @rule(account=st.sampled_from(ACCOUNTS), asset=st.sampled_from(["SOL", "DUSD"]), amount=st.integers(1, 10**6))
    def deposit(self, account: int, asset: str, amount: int) -> None:
        amount = amount * 1000 if asset == "SOL" else amount  # SOL deposits above the rent-exempt minimum
        to = self.tracker.deposit_address(account)
        if asset == "SOL" and self.chain.node.balance(to.address) == 0:
            amount += self.chain.node.rent_exempt_minimum(0)
        txid = self.chain.deposit(to, asset, amount)
        self.deposits[txid] = (account, asset, amount)

    @rule(asset=st.sampled_from(["SOL", "DUSD"]), amount=st.integers(1_000_000, 50_000_000))
    def withdraw(self, asset: str, amount: int) -> None:
        unsigned = self.adapter.build_withdrawal(
            key_id="sol-hot", public_key=bytes(HOT.pubkey()), destination=str(OUTSIDE), asset=asset, amount=amount
        )
        decoded = self.adapter.decode(unsigned)
        signed = self.adapter.assemble(unsigned, [self.chain.sign("sol-hot", unsigned.payload)])
        txid = self.adapter.broadcast(signed)
        assert self.adapter.broadcast(signed) == txid
        self.withdrawals[txid] = (asset, amount, decoded.fee)

    @rule(blocks=st.integers(1, 3))
    def mine(self, blocks: int) -> None:
        self.chain.node.mine(blocks)

    @rule(slots=st.integers(1, 2))
    def skip(self, slots: int) -> None:
        self.chain.node.skip(slots)

    @rule()
    def expire_blockhash(self) -> None:
        self.chain.node.expire_blockhash()

    @rule()
    def poll(self) -> None:
        result = self.tracker.poll()
        assert not result.paused, result.error

    @precondition(lambda self: bool(self.deposits))
    @rule()
    def settle(self) -> None:
        """Mine to depth and poll: every deposit so far is credited."""
        self.chain.node.mine(self.adapter.required_confirmations)
        assert not self.tracker.poll().paused
        credited = {(c.reference) for c in self.credits}
        assert len(credited) == len(self.deposits)

    @invariant()
    def deposits_credited_once_at_depth(self) -> None:
        references = [c.reference for c in self.credits]
        assert len(references) == len(set(references)), "a deposit was credited twice"
        tip = self.adapter.tip_height()
        for credit in self.credits:
            txid = credit.reference.split(":")[2]
            account, asset, amount = self.deposits[txid]
            assert (credit.account, credit.asset, credit.amount) == (account, asset, amount)
            status = self.chain.node.signature_status(txid)
            assert status is not None and status.slot is not None
            assert tip - status.slot + 1 >= self.adapter.required_confirmations

    @invariant()
    def hot_wallet_balances_follow_the_withdrawals(self) -> None:
        node = self.chain.node
        tokens = sum(a for asset, a, _ in self.withdrawals.values() if asset == "DUSD")
        assert node.token_balance(str(self._hot_ata())) == self.hot_token - tokens
        sol = sum(a for asset, a, _ in self.withdrawals.values() if asset == "SOL")
        bounds = sum(fee for _, _, fee in self.withdrawals.values())
        signature_fees = 5000 * len(self.withdrawals)
        assert self.hot_sol - sol - bounds <= node.balance(self.hot) <= self.hot_sol - sol - signature_fees

    @invariant()
    def sealed_withdrawals_are_confirmed(self) -> None:
        for txid in self.withdrawals:
            status = self.adapter.transaction_status(txid)
            sealed = self.chain.node.signature_status(txid)
            assert sealed is not None
            expected = TxState.PENDING if sealed.slot is None else TxState.CONFIRMED
            assert status.state is expected

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()


SolanaMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestSolanaStateMachine = SolanaMachine.TestCase
