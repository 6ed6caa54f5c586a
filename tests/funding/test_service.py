"""Wiring deposit trackers from the plugin manager: every registered chain, screened by the hooks, polled."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from exchange_devchain import DevChain

from exchange_framework.config import parse_config
from exchange_framework.engine.commands import Command
from exchange_framework.engine.events import Event
from exchange_framework.funding import DepositPoller, Stage, deposit_trackers, open_deposit_store
from exchange_framework.plugins import make_plugin_manager
from tests.funding.conftest import EngineSink

CONFIG = """
[brand]
name = "Wired"
[assets.DEV]
decimals = 8
[plugins]
modules = ["exchange_devchain.plugin", "tests.funding.allow_deposits"]
[plugins.settings.devchain]
data_dir = "chain"
confirmations = 2
"""


def test_trackers_for_every_chain_polled_in_the_background(tmp_path: Path) -> None:
    config = parse_config(CONFIG, root=tmp_path)
    config._source = tmp_path / "exchange.toml"
    pm = make_plugin_manager(config)
    sink = EngineSink()

    def submit(command: Command) -> Sequence[Event]:
        return sink(command)

    store = open_deposit_store(config)
    assert (tmp_path / "var" / "deposits" / "deposits.db").exists()
    trackers = deposit_trackers(pm, config, store, submit=submit)
    assert set(trackers) == {"devchain"}
    tracker = trackers["devchain"]
    poller = DepositPoller(trackers, interval=0.01)
    poller.poll_once()
    node = DevChain.open(tmp_path / "chain")
    txid = node.faucet(tracker.deposit_address(5).address, 1234)
    node.mine(2)
    poller.start()
    try:
        deadline = time.monotonic() + 30
        while (dep := store.deposit("devchain", txid, 0)) is None or dep.stage is not Stage.CREDITED:
            assert time.monotonic() < deadline, store.deposits()
            time.sleep(0.02)
    finally:
        poller.stop()
    assert sink.balance(5, "DEV") == 1234
    assert not poller.last["devchain"].paused
    store.close()
