"""A hypothesis state machine over the real regtest node: deposits, withdrawals, mining and tip reorgs interleaved.

Invariants after every step: the hot wallet holds exactly what was funded minus every withdrawal's amount and fee
(decoded from the PSBT, equal to the node's view); no withdrawal is ever dropped or unknown; no deposit is credited
twice, none before its depth. At the end, once everything is deep enough, every deposit is credited exactly once.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from exchange_bitcoin.regtest import RegtestNode
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from exchange_framework.funding.store import Stage
from exchange_framework.interfaces import TxState

from .conftest import LitecoinHarness, sink, start_node
from .test_regtest import tracker_for, withdraw

FUNDING = (40_000_000,) * 4
examples = itertools.count(1)


@pytest.fixture
def own_node(tmp_path: Path) -> Iterator[RegtestNode]:
    # its own node: the examples mine a couple of hundred blocks, and a chain must stay below MWEB's activation
    node = start_node(tmp_path / "node")
    yield node
    node.stop()


@pytest.mark.slow
def test_chain_state_machine(own_node: RegtestNode) -> None:
    ltc_node = own_node

    class ChainMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.h = LitecoinHarness(ltc_node, funding=FUNDING, confirmations=2)
            assert self.h.adapter.hot_wallet_balance(self.h.hot_public_key) == sum(FUNDING)
            self.tmp = tempfile.TemporaryDirectory()
            self.tracker, self.credits = tracker_for(self.h.adapter, Path(self.tmp.name))
            self.spent = 0  # amount + fee of every withdrawal broadcast
            self.withdrawals: list[str] = []
            self.deposits: dict[str, int] = {}  # txid -> amount
            self.accounts = 1000 * next(examples)
            self.unmined = 0  # withdrawals since the last block
            self.unmined_deposits = 0
            self.payer = LitecoinHarness(ltc_node, funding=(40_000_000,) * 5)
            self.blocks = 0  # mined by rules: a node's chain must stay below MWEB's activation height

        # deposits come from another key through the adapter itself (locktime 0, one confirmed input each): the node
        # wallet's sends between repeated tip reorgs sometimes stayed unmined (its anti-fee-sniping locktime, likely)
        @precondition(lambda self: self.unmined_deposits < 4)
        @rule(account=st.integers(1, 5), amount=st.integers(10_000, 3_000_000))
        def deposit(self, account: int, amount: int) -> None:
            # accounts of this example only: a deposit of an earlier one may still be mined now
            address = self.tracker.deposit_address(self.accounts + account)
            _, _, txid = withdraw(self.payer, amount, destination=address.address)
            self.deposits[txid] = amount
            self.unmined_deposits += 1

        # each withdrawal spends one confirmed 0.4 LTC output (four are funded): at most three between blocks
        @precondition(lambda self: len(self.withdrawals) < 6 and self.unmined < 3)
        @rule(amount=st.integers(10_000, 5_000_000))
        def withdrawal(self, amount: int) -> None:
            unsigned, _, txid = withdraw(self.h, amount)
            fee = self.h.adapter.decode(unsigned).fee
            entry = ltc_node.rpc.call("getmempoolentry", txid)
            assert int(Decimal(entry["fees"]["base"]) * 10**8) == fee
            self.spent += amount + fee
            self.withdrawals.append(txid)
            self.unmined += 1

        @precondition(lambda self: self.blocks < 14)
        @rule(blocks=st.integers(1, 2))
        def mine(self, blocks: int) -> None:
            self.h.mine(blocks)
            self.blocks += blocks
            self.unmined = self.unmined_deposits = 0

        @precondition(lambda self: self.blocks < 14)
        @rule()
        def reorg_tip(self) -> None:
            # the tip's transactions go back to the mempool and are mined again in a longer branch
            rpc = ltc_node.rpc
            rpc.call("invalidateblock", rpc.call("getbestblockhash"))
            ltc_node.mine(1, sink())  # a coinbase of its own: never the same block as the one replaced
            ltc_node.mine(1)
            self.blocks += 1
            self.unmined = self.unmined_deposits = 0

        @rule()
        def poll(self) -> None:
            result = self.tracker.poll()
            assert not result.paused, result.error

        @invariant()
        def hot_wallet_balance_is_funding_minus_withdrawals(self) -> None:
            held = self.h.adapter.hot_wallet_balance(self.h.hot_public_key, min_confirmations=0)
            assert held == sum(FUNDING) - self.spent

        @invariant()
        def withdrawals_are_pending_or_confirmed(self) -> None:
            for txid in self.withdrawals:
                assert self.h.adapter.transaction_status(txid).state in (TxState.PENDING, TxState.CONFIRMED)

        @invariant()
        def deposits_are_credited_at_most_once_and_only_at_depth(self) -> None:
            references = [c.reference for c in self.credits.credits]
            assert len(references) == len(set(references))
            for deposit in self.tracker.store.deposits(chain="litecoin"):
                if deposit.stage is Stage.CREDITED:
                    assert deposit.txid in self.deposits and deposit.amount == self.deposits[deposit.txid]
                    assert deposit.confirmations >= self.h.adapter.required_confirmations

        def teardown(self) -> None:
            self.h.mine(3)
            result = self.tracker.poll()
            assert not result.paused, result.error
            stages = {d.txid: (d.stage, d.confirmations) for d in self.tracker.store.deposits(chain="litecoin")}
            assert set(stages) == set(self.deposits), (stages, self.deposits, result)
            credited = sorted(c.amount for c in self.credits.credits)
            assert credited == sorted(self.deposits.values())
            self.tracker.store.close()
            self.h.adapter.close()
            self.payer.adapter.close()
            self.tmp.cleanup()

    run_state_machine_as_test(
        ChainMachine,
        # a real node cannot be rewound between examples: generate only (no replay or shrinking, which would meet
        # a different chain), and few enough blocks in all to stay below height 432 (see exchange_bitcoin.regtest)
        settings=settings(
            max_examples=6,
            stateful_step_count=15,
            deadline=None,
            phases=[Phase.generate],
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
