"""Deposits on a memo chain: one shared address, accounts told apart by the memo the depositor attaches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import coincurve
import pytest
from exchange_devchain import DevChain, DevChainAdapter, address_of, sign_digest
from exchange_devchain.plugin import DEV_XPUB

from exchange_framework.funding import DepositStore, DepositTracker, Stage
from exchange_framework.interfaces import Decision
from tests.funding.conftest import PAYER_KEY, EngineSink

PAYER_PUB = coincurve.PrivateKey(PAYER_KEY).public_key.format()


class MemoChain:
    def __init__(self, directory: Path, sink: EngineSink) -> None:
        self.node = DevChain(directory / "chain")
        self.adapter = DevChainAdapter(self.node, xpub=DEV_XPUB, required_confirmations=1, memo_deposits=True)
        self.node.faucet(address_of(PAYER_PUB), 10**9)
        self.node.mine()
        self.store = DepositStore(directory / "deposits.db")
        self.tracker = DepositTracker(
            self.adapter, self.store, submit=sink, screen=lambda r: Decision.allow(), start_height=0
        )

    def send(self, amount: int, memo: str) -> str:
        to = self.tracker.deposit_address(1).address  # the shared address
        unsigned = self.adapter.build_withdrawal(
            key_id="payer", public_key=PAYER_PUB, destination=to, asset="DEV", amount=amount, memo=memo
        )
        signature = sign_digest(PAYER_KEY, unsigned.digests[0])
        return self.adapter.broadcast(self.adapter.assemble(unsigned, [signature]))


@pytest.fixture
def chain(tmp_path: Path, sink: EngineSink) -> Iterator[MemoChain]:
    memo_chain = MemoChain(tmp_path, sink)
    yield memo_chain
    memo_chain.store.close()


def test_accounts_share_an_address_and_differ_by_memo(chain: MemoChain) -> None:
    first, second = chain.tracker.deposit_address(1), chain.tracker.deposit_address(2)
    assert first.address == second.address and (first.memo, second.memo) == ("1", "2")


def test_the_memo_picks_the_account(chain: MemoChain, sink: EngineSink) -> None:
    chain.tracker.deposit_address(2)
    chain.send(500, "2")
    chain.node.mine()
    chain.tracker.poll()
    assert sink.balance(2, "DEV") == 500 and sink.balance(1, "DEV") == 0


def test_an_unknown_memo_is_held_until_an_operator_attributes_it(chain: MemoChain, sink: EngineSink) -> None:
    txid = chain.send(300, "no-such-account")
    chain.node.mine()
    chain.tracker.poll()
    held = chain.store.deposit("devchain", txid, 0)
    assert held is not None and held.stage is Stage.HELD and held.account == 0
    assert "memo" in held.reasons[0]
    assert sink.credits == []
    with pytest.raises(ValueError, match="no account"):
        chain.tracker.resolve_held(txid, 0, approve=True, note="customer wrote in")
    credited = chain.tracker.resolve_held(txid, 0, approve=True, note="customer 1 wrote in", account=1)
    assert credited.stage is Stage.CREDITED and credited.account == 1
    assert sink.balance(1, "DEV") == 300
