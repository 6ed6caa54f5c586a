"""Deposits credited through a real shard: journalled CreditFunds commands, replayed after a restart."""

from __future__ import annotations

from pathlib import Path

from exchange_devchain import DevChain, DevChainAdapter
from exchange_devchain.plugin import DEV_XPUB

from exchange_framework.config import parse_config
from exchange_framework.engine.commands import CreditFunds, decode_command
from exchange_framework.funding import DepositStore, DepositTracker, Stage
from exchange_framework.interfaces import Decision
from exchange_framework.sequencer import FileJournal
from exchange_framework.shard import Shard

CONFIG = """
[brand]
name = "Deposits"
[assets.DEV]
decimals = 8
[assets.DUSD]
decimals = 6
"""


def test_deposits_are_journalled_credits_that_survive_a_shard_restart(tmp_path: Path) -> None:
    config = parse_config(CONFIG, root=tmp_path)
    node = DevChain(tmp_path / "chain")
    adapter = DevChainAdapter(node, xpub=DEV_XPUB, required_confirmations=2)
    journal_path = tmp_path / "commands.journal"
    store = DepositStore(tmp_path / "deposits.db")
    with Shard(config, journal=FileJournal(journal_path, fsync=False), snapshot_dir=tmp_path / "snap") as shard:
        tracker = DepositTracker(
            adapter, store, submit=lambda c: shard.execute([c]), screen=lambda r: Decision.allow(), start_height=0
        )
        first = node.faucet(tracker.deposit_address(7).address, 12_345)
        second = node.faucet(tracker.deposit_address(8).address, 999, "DUSD")
        node.mine(2)
        assert tracker.poll().credited == 2
    with FileJournal(journal_path, fsync=False) as journal:
        commands = [decode_command(record.payload) for record in journal.read()]
    assert sorted(commands, key=lambda c: c.account) == [  # type: ignore[union-attr]
        CreditFunds(7, "DEV", 12_345, f"dep:devchain:{first}:0", custody="omnibus:deposit:devchain"),
        CreditFunds(8, "DUSD", 999, f"dep:devchain:{second}:0", custody="omnibus:deposit:devchain"),
    ]
    with Shard(config, journal=FileJournal(journal_path, fsync=False), snapshot_dir=tmp_path / "snap") as shard:
        assert shard.engine.accounts[7].available["DEV"] == 12_345
        tracker = DepositTracker(adapter, store, submit=lambda c: shard.execute([c]), screen=lambda r: Decision.allow())
        node.mine(3)
        assert tracker.poll().credited == 0
    assert {d.stage for d in store.deposits()} == {Stage.CREDITED}
    store.close()
