"""A withdrawal's custody side on the dev chain: the final debit names the hot wallet's custody account, the
network fee paid is recorded once, and a crash after both were sequenced records nothing twice."""

from __future__ import annotations

import pytest

from exchange_framework.engine.commands import decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import CustodyMoved, Event, HeldFundsDebited
from exchange_framework.sequencer import FileJournal
from exchange_framework.wallet import WithdrawalStage
from tests.wallet.test_wallet import ETH, Setup, deposit, setup, until

__all__ = ["setup"]

pytestmark = pytest.mark.anyio


def replayed_events(s: Setup) -> list[Event]:
    """Every event the journal gives when replayed through a fresh engine (what the ledger settles)."""
    config = s.node.config
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    with FileJournal(config.journal_path(), read_only=True) as journal:
        for record in journal.read():
            engine.apply(record.seq, decode_command(record.payload))
    return engine.events


async def test_final_debit_and_network_fee_are_recorded_once_even_after_a_crash(setup: Setup) -> None:
    s = setup
    await deposit(s, 5 * ETH)
    s.wallet.add_to_whitelist(s.alice, asset="ETH", address=s.outside)
    requested = await s.wallet.request_withdrawal(s.alice, asset="ETH", amount="1", address=s.outside)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.AWAITING_APPROVAL)
    await s.wallet.approve_withdrawal(requested.id, operator="ops@example.com", approve=True)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.BROADCAST)
    s.chain.mine(3)
    await until(lambda: s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.COMPLETED)

    # the crash came after the debit and the fee were sequenced, before "completed" was written: the next round
    # sends both again, and the engine's references turn the repeats away
    row = s.wallet.store.withdrawal(requested.id)
    assert row is not None
    row.stage = WithdrawalStage.BROADCAST
    s.wallet.store.save(row, 0)
    await s.wallet.process_once()
    assert s.wallet.withdrawals(s.alice)[0].stage is WithdrawalStage.COMPLETED

    events = replayed_events(s)
    debits = [e for e in events if isinstance(e, HeldFundsDebited)]
    fees = [e for e in events if isinstance(e, CustodyMoved)]
    reference = f"wd:{requested.id}"
    assert [(e.reference, e.amount, e.custody) for e in debits] == [(reference, ETH, "omnibus:hot:devchain")]
    assert [(e.asset, e.from_account, e.to_account, e.amount, e.fee, e.reference) for e in fees] == [
        ("ETH", "omnibus:hot:devchain", "", 0, 1_000, f"{reference}:fee")
    ]
    assert s.node.balances.balances(s.alice)["ETH"] == (4 * ETH, 0)
