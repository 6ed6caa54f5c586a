"""The deposit lifecycle against a real development chain and engine: stages, screening, reorgs, faults, restarts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from exchange_devchain import DevChain, DevChainAdapter
from exchange_devchain.plugin import DEV_XPUB

from exchange_framework.funding import DepositStore, DepositTracker, Stage, deposit_reference
from exchange_framework.funding.deposits import (
    ALERT_CREDITED_REORGED,
    ALERT_REINCLUDED,
)
from exchange_framework.interfaces import Decision, DepositRequest, ScannedBlock, Transfer
from tests.funding.conftest import EngineSink

ACCOUNT = 1001
Make = Callable[..., DepositTracker]


def deposit(tracker: DepositTracker, node: DevChain, amount: int, account: int = ACCOUNT, asset: str = "DEV") -> str:
    return node.faucet(tracker.deposit_address(account).address, amount, asset)


def test_a_deposit_goes_seen_confirming_screening_credited(
    make_tracker: Make, node: DevChain, sink: EngineSink
) -> None:
    tracker = make_tracker()
    txid = deposit(tracker, node, 5_000)
    node.mine()
    tracker.poll()
    (dep,) = tracker.store.deposits(account=ACCOUNT)
    assert (dep.stage, dep.confirmations, dep.required_confirmations) == (Stage.CONFIRMING, 1, 3)
    assert (dep.txid, dep.index, dep.amount, dep.asset, dep.block_height) == (txid, 0, 5_000, "DEV", 1)
    node.mine()
    tracker.poll()
    assert tracker.store.deposit("devchain", txid, 0).confirmations == 2  # type: ignore[union-attr]
    assert sink.balance(ACCOUNT, "DEV") == 0
    node.mine()
    result = tracker.poll()
    assert result.credited == 1 and not result.paused
    dep = tracker.store.deposit("devchain", txid, 0)  # type: ignore[assignment]
    assert dep is not None and dep.stage is Stage.CREDITED and dep.confirmations == 3
    assert dep.reference == deposit_reference("devchain", txid, 0) == f"dep:devchain:{txid}:0"
    assert sink.balance(ACCOUNT, "DEV") == 5_000
    stages = [change.stage for change in tracker.store.history("devchain", txid, 0)]
    assert stages == [Stage.SEEN, Stage.CONFIRMING, Stage.SCREENING, Stage.CREDITED]
    for _ in range(3):
        node.mine()
        tracker.poll()
    assert len(sink.credits) == 1
    assert tracker.store.deposits(txid=txid) == [tracker.store.deposit("devchain", txid, 0)]


def test_tokens_and_several_accounts(make_tracker: Make, node: DevChain, sink: EngineSink) -> None:
    tracker = make_tracker()
    deposit(tracker, node, 10, account=1)
    deposit(tracker, node, 20, account=2, asset="DUSD")
    node.faucet(tracker.deposit_address(3).address, 1, "NOPE")  # an asset the adapter does not know: ignored
    node.mine(3)
    tracker.poll()
    assert (sink.balance(1, "DEV"), sink.balance(2, "DUSD"), sink.balance(3, "NOPE")) == (10, 20, 0)
    assert [d.account for d in tracker.store.deposits(stage=Stage.CREDITED)] in ([1, 2], [2, 1])


@pytest.mark.parametrize(
    ("screen", "stage", "reason"),
    [
        (lambda r: Decision.hold("pep match", provider="t"), Stage.HELD, "pep match"),
        (lambda r: Decision.reject("sanctioned source", provider="t"), Stage.REJECTED, "sanctioned source"),
        (lambda r: None, Stage.HELD, "gave no decision"),
        (lambda r: 1 / 0, Stage.HELD, "ZeroDivisionError"),
        (None, Stage.HELD, "no deposit screening is configured"),
    ],
)
def test_screening_holds_or_rejects_and_fails_closed(
    make_tracker: Make, node: DevChain, sink: EngineSink, screen: object, stage: Stage, reason: str
) -> None:
    tracker = make_tracker(screen=screen)
    txid = deposit(tracker, node, 700)
    node.mine(3)
    tracker.poll()
    dep = tracker.store.deposit("devchain", txid, 0)
    assert dep is not None and dep.stage is stage
    assert any(reason in r for r in dep.reasons)
    assert sink.credits == []


def test_screening_sees_the_deposit_and_its_source(make_tracker: Make, node: DevChain) -> None:
    seen: list[DepositRequest] = []
    tracker = make_tracker(screen=lambda r: seen.append(r) or Decision.allow())
    txid = deposit(tracker, node, 9)
    node.mine(3)
    tracker.poll()
    (request,) = seen
    assert (request.account, request.chain, request.asset, request.amount, request.txid) == (
        ACCOUNT,
        "devchain",
        "DEV",
        9,
        txid,
    )
    assert request.address == tracker.deposit_address(ACCOUNT).address


def test_an_operator_credits_a_held_deposit_once(make_tracker: Make, node: DevChain, sink: EngineSink) -> None:
    tracker = make_tracker(screen=lambda r: Decision.hold("manual review"))
    txid = deposit(tracker, node, 300)
    node.mine(3)
    tracker.poll()
    dep = tracker.resolve_held(txid, 0, approve=True, note="source checked")
    assert dep.stage is Stage.CREDITED and sink.balance(ACCOUNT, "DEV") == 300
    with pytest.raises(ValueError, match="not held"):
        tracker.resolve_held(txid, 0, approve=True, note="again")
    node.mine()
    tracker.poll()
    assert len(sink.credits) == 1


def test_an_operator_rejects_a_held_deposit(make_tracker: Make, node: DevChain, sink: EngineSink) -> None:
    tracker = make_tracker(screen=lambda r: Decision.hold("manual review"))
    txid = deposit(tracker, node, 300)
    node.mine(3)
    tracker.poll()
    dep = tracker.resolve_held(txid, 0, approve=False, note="stolen funds")
    assert dep.stage is Stage.REJECTED and dep.reasons == ("stolen funds",)
    assert sink.credits == []


def test_a_reorg_before_depth_orphans_the_deposit(make_tracker: Make, node: DevChain, sink: EngineSink) -> None:
    tracker = make_tracker()
    txid = deposit(tracker, node, 1_000)
    node.mine(2)
    tracker.poll()
    node.reorg(2, drop=[txid], new_blocks=4)
    result = tracker.poll()
    assert result.reorged_blocks == 2
    dep = tracker.store.deposit("devchain", txid, 0)
    assert dep is not None and dep.stage is Stage.ORPHANED and dep.confirmations == 0
    assert sink.credits == []


def test_a_reorged_deposit_that_is_mined_again_is_credited_once(
    make_tracker: Make, node: DevChain, sink: EngineSink
) -> None:
    tracker = make_tracker()
    txid = deposit(tracker, node, 1_000)
    node.mine(2)
    tracker.poll()
    node.reorg(2, new_blocks=3, include_mempool=False)  # the deposit waits in the mempool
    tracker.poll()
    assert tracker.store.deposit("devchain", txid, 0).stage is Stage.ORPHANED  # type: ignore[union-attr]
    node.mine(3)
    tracker.poll()
    dep = tracker.store.deposit("devchain", txid, 0)
    assert dep is not None and dep.stage is Stage.CREDITED and dep.block_height == 4
    assert len(sink.credits) == 1


def test_a_reorg_after_the_credit_raises_an_alert_and_uncredits_nothing(
    make_tracker: Make, node: DevChain, sink: EngineSink
) -> None:
    tracker = make_tracker()
    txid = deposit(tracker, node, 1_000)
    node.mine(3)
    tracker.poll()
    assert sink.balance(ACCOUNT, "DEV") == 1_000
    node.reorg(3, drop=[txid])
    tracker.poll()
    dep = tracker.store.deposit("devchain", txid, 0)
    assert dep is not None and dep.stage is Stage.CREDITED and dep.reorged_after_credit and dep.confirmations == 0
    (alert,) = tracker.store.alerts()
    assert (alert.kind, alert.txid, alert.chain) == (ALERT_CREDITED_REORGED, txid, "devchain")
    assert sink.balance(ACCOUNT, "DEV") == 1_000 and len(sink.credits) == 1


def test_a_credited_deposit_mined_again_clears_its_flag_and_keeps_the_alert(
    make_tracker: Make, node: DevChain, sink: EngineSink
) -> None:
    tracker = make_tracker()
    txid = deposit(tracker, node, 1_000)
    node.mine(3)
    tracker.poll()
    node.reorg(3)  # same transaction, new blocks
    tracker.poll()
    dep = tracker.store.deposit("devchain", txid, 0)
    assert dep is not None and not dep.reorged_after_credit and dep.stage is Stage.CREDITED
    assert [a.kind for a in tracker.store.alerts()] == [ALERT_REINCLUDED, ALERT_CREDITED_REORGED]
    assert len(sink.credits) == 1


def test_the_tracker_pauses_while_the_node_is_down_and_catches_up(
    make_tracker: Make, node: DevChain, sink: EngineSink
) -> None:
    tracker = make_tracker()
    tracker.poll()
    address = tracker.deposit_address(ACCOUNT).address
    node.set_reachable(False)
    node.faucet(address, 42)
    node.mine(3)
    result = tracker.poll()
    assert result.paused and "NodeUnavailable" in result.error
    status = tracker.status()
    assert status.paused and status.error_since_ns is not None and status.height == 0
    node.set_reachable(True)
    result = tracker.poll()
    assert not result.paused and result.credited == 1
    assert not tracker.status().paused
    assert sink.balance(ACCOUNT, "DEV") == 42


class GarbageAdapter(DevChainAdapter):
    """The development chain's adapter with a node that answers nonsense about one block."""

    bad_height = 2

    def scan(self, from_height: int, addresses: object, *, max_blocks: int = 100) -> list[ScannedBlock]:
        blocks = super().scan(from_height, addresses, max_blocks=max_blocks)  # type: ignore[arg-type]
        out = []
        for block in blocks:
            if block.header.height == self.bad_height:
                block = ScannedBlock(block.header, (Transfer("", -1, "DEV", -5, next(iter(addresses))),))  # type: ignore[call-overload]
            out.append(block)
        return out


def test_garbage_from_the_node_pauses_without_recording_it(
    node: DevChain, store: DepositStore, sink: EngineSink
) -> None:
    adapter = GarbageAdapter(node, xpub=DEV_XPUB, required_confirmations=1)
    tracker = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow(), start_height=0)
    deposit(tracker, node, 10)
    node.mine(3)
    result = tracker.poll()
    assert result.paused and "malformed transfer" in result.error
    assert result.height == 1  # block 1 (the real deposit) was processed; block 2 was refused whole
    assert sink.balance(ACCOUNT, "DEV") == 0  # a paused round credits nothing
    adapter.bad_height = -1  # the node recovers
    assert not tracker.poll().paused
    assert store.tip("devchain").height == 3  # type: ignore[union-attr]
    assert sink.balance(ACCOUNT, "DEV") == 10


def test_engine_unavailable_keeps_the_credit_pending_and_sends_it_once_later(
    make_tracker: Make, node: DevChain, sink: EngineSink
) -> None:
    tracker = make_tracker()
    txid = deposit(tracker, node, 77)
    node.mine(3)
    sink.down = True
    result = tracker.poll()
    assert result.paused and "sequencer" in result.error
    dep = tracker.store.deposit("devchain", txid, 0)
    assert dep is not None and dep.stage is Stage.SCREENING
    sink.down = False
    assert tracker.poll().credited == 1
    assert len(sink.credits) == 1


def test_state_survives_a_restart(tmp_path: Path, node: DevChain, adapter: DevChainAdapter, sink: EngineSink) -> None:
    path = tmp_path / "restart.db"
    store = DepositStore(path)
    tracker = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow(), start_height=0)
    txid = deposit(tracker, node, 5)
    address = tracker.deposit_address(ACCOUNT)
    node.mine(1)
    tracker.poll()
    store.close()
    node.mine(5)
    store = DepositStore(path)
    again = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow())  # no start height
    again.poll()
    dep = store.deposit("devchain", txid, 0)
    assert dep is not None and dep.stage is Stage.CREDITED
    assert again.deposit_address(ACCOUNT) == address
    assert len(sink.credits) == 1
    store.close()


def test_the_first_poll_starts_at_the_tip_without_a_start_height(
    node: DevChain, adapter: DevChainAdapter, store: DepositStore, sink: EngineSink
) -> None:
    node.mine(5)
    tracker = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow())
    assert tracker.poll().height == 5


def test_an_address_handed_out_before_the_first_poll_is_watched_from_then(
    node: DevChain, adapter: DevChainAdapter, store: DepositStore, sink: EngineSink
) -> None:
    node.mine(5)
    tracker = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow())
    txid = deposit(tracker, node, 7_000)  # before the tracker ever polled
    node.mine(4)  # the payment is in block 6; the first poll sees tip 9
    tracker.poll()
    dep = tracker.store.deposit("devchain", txid, 0)
    assert dep is not None and dep.block_height == 6 and dep.stage is Stage.CREDITED
    assert sink.balance(ACCOUNT, "DEV") == 7_000


def test_a_restart_before_the_first_poll_still_sees_the_payment(
    node: DevChain, adapter: DevChainAdapter, store: DepositStore, sink: EngineSink
) -> None:
    node.mine(5)
    first = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow())
    txid = deposit(first, node, 3_000)  # handed out, paid, and the process stops before it ever polled
    node.mine(4)
    restarted = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow())
    restarted.poll()
    dep = restarted.store.deposit("devchain", txid, 0)
    assert dep is not None and dep.block_height == 6 and dep.stage is Stage.CREDITED
    assert sink.balance(ACCOUNT, "DEV") == 3_000


def test_no_address_is_handed_out_before_the_first_poll_while_the_node_is_down(
    node: DevChain, adapter: DevChainAdapter, store: DepositStore, sink: EngineSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exchange_framework.funding.deposits import NodeFault

    tracker = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow())

    def down() -> int:
        raise NodeFault("connection refused")

    monkeypatch.setattr(adapter, "tip_height", down)
    with pytest.raises(NodeFault):
        tracker.deposit_address(ACCOUNT)
    assert store.deposit_address("devchain", ACCOUNT) is None


def test_query_api_filters(make_tracker: Make, node: DevChain) -> None:
    tracker = make_tracker(screen=lambda r: Decision.hold("review") if r.amount > 100 else Decision.allow())
    deposit(tracker, node, 50, account=1)
    big = deposit(tracker, node, 500, account=1)
    deposit(tracker, node, 60, account=2)
    node.mine(3)
    tracker.poll()
    store = tracker.store
    assert {d.amount for d in store.deposits(account=1)} == {50, 500}
    assert [d.txid for d in store.deposits(stage="held")] == [big]
    assert [d.amount for d in store.deposits(account=2, chain="devchain")] == [60]
    assert store.deposits(chain="otherchain") == []
    assert len(store.deposits(limit=2)) == 2
    with pytest.raises(ValueError, match="limit"):
        store.deposits(limit=0)
    with pytest.raises(ValueError):
        store.deposits(stage="lost")


class Crash(BaseException):
    """The process dies here (not an error the tracker could catch)."""


def test_a_crash_before_the_credit_is_sent_credits_once_after_restart(
    make_tracker: Make, node: DevChain, sink: EngineSink, store: DepositStore
) -> None:
    def crash(command: object) -> list[object]:
        raise Crash

    tracker = make_tracker(submit=crash)
    txid = deposit(tracker, node, 64)
    node.mine(3)
    with pytest.raises(Crash):
        tracker.poll()
    assert store.deposit("devchain", txid, 0).stage is Stage.SCREENING  # type: ignore[union-attr]
    restarted = make_tracker()
    assert restarted.poll().credited == 1
    assert sink.balance(ACCOUNT, "DEV") == 64 and len(sink.credits) == 1


def test_a_crash_after_the_credit_is_sent_credits_once_after_restart(
    make_tracker: Make, node: DevChain, sink: EngineSink, store: DepositStore
) -> None:
    def credit_then_crash(command: object) -> list[object]:
        sink(command)  # type: ignore[arg-type]
        raise Crash

    tracker = make_tracker(submit=credit_then_crash)
    txid = deposit(tracker, node, 64)
    node.mine(3)
    with pytest.raises(Crash):
        tracker.poll()
    make_tracker().poll()
    dep = store.deposit("devchain", txid, 0)
    assert dep is not None and dep.stage is Stage.CREDITED
    assert sink.balance(ACCOUNT, "DEV") == 64 and len(sink.credits) == 1


def test_the_screen_deposit_hooks_screen_deposits(make_tracker: Make, node: DevChain, sink: EngineSink) -> None:
    from exchange_framework.config import parse_config
    from exchange_framework.funding import hook_screener
    from exchange_framework.plugins import make_plugin_manager

    config = parse_config('[brand]\nname = "T"\n[plugins]\nmodules = ["tests.plugins.fake_everything"]\n')
    fake = make_plugin_manager(config)
    tracker = make_tracker(screen=hook_screener(fake, config))
    small = deposit(tracker, node, 10)
    large = deposit(tracker, node, 2_000_000)  # the fake plugin holds deposits of 1,000,000 and more
    node.mine(3)
    tracker.poll()
    assert tracker.store.deposit("devchain", small, 0).stage is Stage.HELD  # type: ignore[union-attr]
    held = tracker.store.deposit("devchain", large, 0)
    assert held is not None and held.stage is Stage.HELD and "large deposit" in held.reasons
    bare = parse_config('[brand]\nname = "T"\n')
    assert hook_screener(make_plugin_manager(bare), bare)(
        DepositRequest(1, "DEV", "devchain", 1, "a", "t")
    ).outcome == (Decision.hold().outcome)


class AddressDuringScan(DevChainAdapter):
    """A node where, while a scan call is in flight, a customer is handed an address and pays to it at once."""

    on_scan: Callable[[], None] | None = None

    def scan(self, from_height: int, addresses: object, *, max_blocks: int = 100) -> list[ScannedBlock]:
        blocks = super().scan(from_height, addresses, max_blocks=max_blocks)  # type: ignore[arg-type]
        if self.on_scan is not None:
            hook, self.on_scan = self.on_scan, None
            hook()
        return blocks


def test_an_address_handed_out_during_a_scan_is_not_missed(
    node: DevChain, store: DepositStore, sink: EngineSink
) -> None:
    adapter = AddressDuringScan(node, xpub=DEV_XPUB, required_confirmations=1)
    tracker = DepositTracker(adapter, store, submit=sink, screen=lambda r: Decision.allow(), start_height=0)
    node.faucet(adapter.deposit_address(ACCOUNT).address, 5)  # paid before the exchange watches it
    node.mine()
    adapter.on_scan = lambda: tracker.deposit_address(ACCOUNT)
    tracker.poll()
    assert sink.balance(ACCOUNT, "DEV") == 5


def test_stage_counts_show_what_is_stuck(make_tracker: Make, node: DevChain) -> None:
    clock = iter(range(1, 10**6)).__next__
    tracker = make_tracker(screen=lambda r: Decision.hold("review"), clock=clock)
    deposit(tracker, node, 1, account=1)
    node.mine(3)
    tracker.poll()
    deposit(tracker, node, 2, account=2)
    node.mine()
    tracker.poll()
    counts = tracker.store.stage_counts(chain="devchain")
    assert (counts[Stage.HELD], counts[Stage.CONFIRMING], counts[Stage.CREDITED]) == (1, 1, 0)
    held = tracker.store.deposits(stage=Stage.HELD)[0]
    assert tracker.store.stage_counts(updated_before_ns=held.updated_ns + 1)[Stage.HELD] == 1
    assert tracker.store.stage_counts(updated_before_ns=held.updated_ns)[Stage.HELD] == 0
