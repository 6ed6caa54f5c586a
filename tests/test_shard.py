"""The Shard: journal + sequencer + engine + snapshots, and recovery on start-up."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from exchange_framework.bench.workload import funding, order_flow
from exchange_framework.config import ExchangeConfig, load_config
from exchange_framework.engine.commands import Command, CreditFunds, PlaceOrder, decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Event, FundsCredited, OrderAccepted, Trade
from exchange_framework.engine.market import MarketSpec
from exchange_framework.engine.snapshot import snapshot, state_hash
from exchange_framework.plugins import PluginError, make_plugin_manager
from exchange_framework.sequencer import FileJournal, JournalError, SequencerError, SnapshotStore
from exchange_framework.shard import Shard, open_journal
from exchange_framework.types import OrderType, Side

SYMBOL = "BTC-USDT"
ACCOUNTS = 20
MID = 650_000  # 65000.0 USDT in ticks of 0.1


# -- helpers -------------------------------------------------------------------------------------------------------


def spec_of(config: ExchangeConfig) -> MarketSpec:
    return config.engine_markets()[SYMBOL]


def fund_commands(config: ExchangeConfig) -> list[Command]:
    return funding(spec_of(config), ACCOUNTS, 10 * 10**8, 1_000_000 * 10**6)


def flow(config: ExchangeConfig, first_seq: int, count: int, seed: int = 3) -> list[Command]:
    spec = spec_of(config)
    orders = order_flow(spec, seed=seed, first_seq=first_seq, accounts=ACCOUNTS, mid=MID, spread=325, max_lots=500)
    return list(itertools.islice(orders, count))


def journal_path(directory: Path) -> Path:
    return directory / "commands.journal"


def open_shard(
    config: ExchangeConfig,
    directory: Path,
    *,
    on_events: Callable[[Sequence[Event]], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Shard:
    """A Shard on ``directory/commands.journal`` with its snapshots in ``directory/snapshots``."""
    journal = FileJournal(journal_path(directory), fsync=False)
    try:
        return Shard(
            config, journal=journal, snapshot_dir=directory / "snapshots", on_events=on_events, progress=progress
        )
    except BaseException:
        journal.close()
        raise


def new_engine(config: ExchangeConfig) -> MatchingEngine:
    return MatchingEngine(config.engine_assets(), config.engine_markets())


def replay(config: ExchangeConfig, path: Path) -> tuple[MatchingEngine, list[Event]]:
    """A fresh engine fed every record of the (closed) journal at ``path``, and the events it made."""
    engine = new_engine(config)
    with FileJournal(path, fsync=False) as journal:
        expected = 1
        for record in journal.read():
            assert record.seq == expected
            assert engine.apply(record.seq, decode_command(record.payload))
            expected += 1
        assert expected == journal.last_seq + 1
    return engine, list(engine.events)


def run_group_commit(shard: Shard, commands: Sequence[Command], chunk: int = 97) -> list[int]:
    """Submit ``commands`` in chunks and wait for every ticket; return the acknowledged seqs."""
    tickets = []
    for start in range(0, len(commands), chunk):
        tickets.extend(shard.submit_many(commands[start : start + chunk]))
    return [ticket.wait(timeout=30).seq for ticket in tickets]


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "shard"
    directory.mkdir()
    return directory


@pytest.fixture
def shard(demo_config: ExchangeConfig, shard_dir: Path) -> Iterator[Shard]:
    with open_shard(demo_config, shard_dir) as opened:
        yield opened


# -- synchronous execute -------------------------------------------------------------------------------------------


def test_execute_journals_applies_and_returns_events(demo_config: ExchangeConfig, shard_dir: Path) -> None:
    seen: list[Event] = []
    with open_shard(demo_config, shard_dir, on_events=seen.extend) as shard:
        assert shard.recovered_seq == 0
        fund = fund_commands(demo_config)
        fund_events = shard.execute(fund)
        assert [type(e) for e in fund_events] == [FundsCredited] * len(fund)
        assert [e.seq for e in fund_events] == list(range(1, len(fund) + 1))
        assert shard.engine.balance(1, "USDT") == (1_000_000 * 10**6, 0)

        sell = PlaceOrder(1, SYMBOL, Side.SELL, OrderType.LIMIT, 10, MID)
        buy = PlaceOrder(2, SYMBOL, Side.BUY, OrderType.LIMIT, 4, MID + 5)
        events = shard.execute([sell, buy])
        sell_seq, buy_seq = len(fund) + 1, len(fund) + 2
        accepted = [e for e in events if isinstance(e, OrderAccepted)]
        assert [(e.seq, e.order_id) for e in accepted] == [(sell_seq, sell_seq), (buy_seq, buy_seq)]
        trades = [e for e in events if isinstance(e, Trade)]
        assert len(trades) == 1
        assert (trades[0].price, trades[0].qty) == (MID, 4)  # at the maker's price
        assert (trades[0].maker_order_id, trades[0].taker_order_id) == (sell_seq, buy_seq)
        assert shard.engine.orders[sell_seq].remaining == 6
        assert shard.engine.events == [], "execute hands the events over and clears the engine's list"
        assert shard.sequencer.last_seq == shard.engine.last_seq == buy_seq
        assert shard.execute([]) == []
        assert seen == fund_events + events, "on_events got every batch"
        final = state_hash(shard.engine)

    engine, replay_events = replay(demo_config, journal_path(shard_dir))
    assert state_hash(engine) == final
    assert replay_events == seen, "the journal replays to the very events execute returned"


def test_execute_is_refused_while_the_writer_runs(shard: Shard, demo_config: ExchangeConfig) -> None:
    shard.start()
    with pytest.raises(RuntimeError, match="append_batch cannot be used while the group-commit writer runs"):
        shard.execute(fund_commands(demo_config))


# -- group commit --------------------------------------------------------------------------------------------------


def test_group_commit_applies_in_submission_order(demo_config: ExchangeConfig, shard_dir: Path) -> None:
    batches: list[list[Event]] = []
    threads: set[str] = set()

    def on_events(events: Sequence[Event]) -> None:
        batches.append(list(events))
        threads.add(threading.current_thread().name)

    with open_shard(demo_config, shard_dir, on_events=on_events) as shard:
        shard.execute(fund_commands(demo_config))
        first = shard.sequencer.last_seq + 1
        commands = flow(demo_config, first, 3_000)
        shard.start()
        seqs = run_group_commit(shard, commands)
        assert seqs == list(range(first, first + len(commands))), "one seq each, contiguous, in submission order"
        assert shard.engine.last_seq == seqs[-1]
        live_hash = state_hash(shard.engine)

    assert threads == {"MainThread", "sequencer-writer"}  # execute's batch, then the writer's
    received = [e for batch in batches for e in batch]
    assert all(batch for batch in batches), "no empty batch is handed on"
    event_seqs = [e.seq for e in received]
    assert event_seqs == sorted(event_seqs), "events arrive in seq order"
    assert set(event_seqs) == set(range(1, seqs[-1] + 1)), "every command made at least one event"

    # The same commands applied one by one to a fresh engine give the same events and state.
    reference = new_engine(demo_config)
    for seq, command in enumerate([*fund_commands(demo_config), *commands], start=1):
        reference.apply(seq, command)
    assert received == reference.events
    assert state_hash(reference) == live_hash
    engine, replay_events = replay(demo_config, journal_path(shard_dir))
    assert state_hash(engine) == live_hash
    assert replay_events == received


def test_group_commit_from_several_threads_matches_the_journal(demo_config: ExchangeConfig, shard_dir: Path) -> None:
    with open_shard(demo_config, shard_dir) as shard:
        shard.execute(fund_commands(demo_config))
        shard.start()
        errors: list[BaseException] = []

        def producer(account: int) -> None:
            try:
                for i in range(200):
                    side = Side.BUY if i % 2 else Side.SELL
                    price = MID - 1 - i % 7 if side is Side.BUY else MID + 1 + i % 7
                    shard.submit(PlaceOrder(account, SYMBOL, side, OrderType.LIMIT, 3, price)).wait(timeout=30)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=producer, args=(n,)) for n in range(1, 5)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not errors
        assert shard.sequencer.last_seq == shard.engine.last_seq == len(fund_commands(demo_config)) + 800
        live_hash = state_hash(shard.engine)
    engine, _ = replay(demo_config, journal_path(shard_dir))
    assert state_hash(engine) == live_hash, "the engine applied each journal record's own command"


def test_submit_after_close_is_refused(shard: Shard) -> None:
    shard.start()
    shard.close()
    with pytest.raises(SequencerError, match="stopped"):
        shard.submit(CreditFunds(1, "USDT", 1))
    shard.close()  # closing twice is harmless


# -- recovery ------------------------------------------------------------------------------------------------------


def test_reopening_recovers_the_same_state(demo_config: ExchangeConfig, shard_dir: Path) -> None:
    with open_shard(demo_config, shard_dir) as shard:
        shard.execute(fund_commands(demo_config))
        shard.start()
        seqs = run_group_commit(shard, flow(demo_config, shard.sequencer.last_seq + 1, 2_000))
        before = state_hash(shard.engine)
        open_orders = len(shard.engine.orders)

    progress: list[tuple[int, int]] = []
    seen: list[Event] = []
    with open_shard(
        demo_config, shard_dir, on_events=seen.extend, progress=lambda d, t: progress.append((d, t))
    ) as again:
        assert again.recovered_seq == seqs[-1] == again.engine.last_seq == again.sequencer.last_seq
        assert state_hash(again.engine) == before
        assert len(again.engine.orders) == open_orders
        assert open_orders > 0, "the flow leaves resting orders, so recovery had a book to rebuild"
        assert again.engine.events == [] and seen == [], "recovery does not re-publish old events"
        assert progress[-1] == (seqs[-1], seqs[-1]), "no snapshot: the whole journal was replayed"
        # It continues where it stopped.
        events = again.execute([CreditFunds(3, "BTC", 5, "top-up")])
        assert [e.seq for e in events] == [seqs[-1] + 1]
        after = state_hash(again.engine)
    engine, _ = replay(demo_config, journal_path(shard_dir))
    assert state_hash(engine) == after


def test_snapshot_plus_tail_equals_a_full_replay(demo_config: ExchangeConfig, shard_dir: Path) -> None:
    with open_shard(demo_config, shard_dir) as shard:
        shard.execute(fund_commands(demo_config))
        shard.start()
        run_group_commit(shard, flow(demo_config, shard.sequencer.last_seq + 1, 1_500, seed=11))
        # The last ticket resolved and nothing else is queued: the writer is idle, so the engine is quiescent.
        snap_seq = shard.engine.last_seq
        path = shard.take_snapshot()
        assert path == SnapshotStore(shard_dir / "snapshots").path_for(snap_seq) and path.exists()
        snap_hash = state_hash(shard.engine)
        seqs = run_group_commit(shard, flow(demo_config, shard.sequencer.last_seq + 1, 700, seed=12))
        before = state_hash(shard.engine)

    progress: list[tuple[int, int]] = []
    with open_shard(demo_config, shard_dir, progress=lambda d, t: progress.append((d, t))) as again:
        assert again.recovered_seq == seqs[-1] == again.engine.last_seq
        assert progress[-1] == (700, 700), "only the tail after the snapshot was replayed"
        recovered = state_hash(again.engine)

    engine, _ = replay(demo_config, journal_path(shard_dir))
    assert recovered == before == state_hash(engine)

    # The snapshot itself is the state a replay reaches at its seq.
    partial = new_engine(demo_config)
    with FileJournal(journal_path(shard_dir), fsync=False) as journal:
        for record in itertools.islice(journal.read(), snap_seq):
            partial.apply(record.seq, decode_command(record.payload))
    assert state_hash(partial) == snap_hash
    latest = SnapshotStore(shard_dir / "snapshots").latest()
    assert latest is not None and latest == (snap_seq, snapshot(partial))


def test_snapshot_only_no_tail(demo_config: ExchangeConfig, shard_dir: Path) -> None:
    with open_shard(demo_config, shard_dir) as shard:
        shard.execute([*fund_commands(demo_config), *flow(demo_config, 41, 300)])
        shard.take_snapshot()
        before = state_hash(shard.engine)
    with open_shard(demo_config, shard_dir) as again:
        assert again.recovered_seq == 340
        assert state_hash(again.engine) == before


def test_snapshot_from_another_journal_is_refused(demo_config: ExchangeConfig, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with open_shard(demo_config, first) as shard:
        shard.execute([*fund_commands(demo_config), *flow(demo_config, 41, 60)])
        shard.take_snapshot()  # at seq 100
    with open_shard(demo_config, second) as shard:
        shard.execute(fund_commands(demo_config)[:10])  # a journal that ends at seq 10

    journal = FileJournal(journal_path(second), fsync=False)
    try:
        with pytest.raises(
            JournalError, match=r"snapshot is at seq 100 but the journal ends at seq 10.*another journal"
        ):
            Shard(demo_config, journal=journal, snapshot_dir=first / "snapshots")
    finally:
        journal.close()


# -- the journal backend -------------------------------------------------------------------------------------------


def test_unknown_journal_backend_names_it_and_the_registered_ones(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = load_config(write_config('[backends]\njournal = "nope"\n'))
    with pytest.raises(PluginError) as info:
        Shard(config, snapshot_dir=tmp_path / "snapshots")
    message = str(info.value)
    assert "[backends] journal = 'nope'" in message
    assert "(registered: file)" in message


# -- known bugs ----------------------------------------------------------------------------------------------------


def test_journal_backend_hook_gets_the_config(write_config: Callable[..., Path]) -> None:
    config = load_config(
        write_config('[backends]\njournal = "fake-journal"\n[plugins]\nmodules = ["tests.plugins.fake_everything"]\n')
    )
    journal: object = open_journal(config, make_plugin_manager(config))  # the fake backend returns a dict
    assert journal == {"opened": "Test Exchange"}


def test_a_refused_submit_does_not_desynchronise_the_engine(demo_config: ExchangeConfig, shard_dir: Path) -> None:
    with open_shard(demo_config, shard_dir) as shard:
        shard.execute(fund_commands(demo_config))
        with pytest.raises(RuntimeError, match="before submitting"):
            shard.submit(PlaceOrder(1, SYMBOL, Side.BUY, OrderType.LIMIT, 10, MID - 10))
        shard.start()
        shard.submit(PlaceOrder(2, SYMBOL, Side.SELL, OrderType.LIMIT, 10, MID + 10)).wait(timeout=30)
        live = state_hash(shard.engine)
    engine, _ = replay(demo_config, journal_path(shard_dir))
    assert state_hash(engine) == live


def test_on_events_batches_stay_intact_after_the_call(demo_config: ExchangeConfig, shard_dir: Path) -> None:
    batches: list[Sequence[Event]] = []
    with open_shard(demo_config, shard_dir, on_events=batches.append) as shard:
        shard.start()
        shard.submit_many(fund_commands(demo_config))[-1].wait(timeout=30)
    assert sum(len(batch) for batch in batches) == len(fund_commands(demo_config))


@pytest.mark.filterwarnings(r"ignore:Argument\(s\) 'config' which are declared in the hookspec:UserWarning")
def test_failed_recovery_releases_the_journal_it_opened(
    demo_config: ExchangeConfig, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = load_config(write_config('[journal]\npath = "data/commands.journal"\nfsync = false\n'))
    snapshots = SnapshotStore(tmp_path / "snapshots")
    snapshots.save(5, snapshot(MatchingEngine(config.engine_assets(), config.engine_markets())))
    with pytest.raises(JournalError, match="belongs to another journal"):
        Shard(config, snapshot_dir=snapshots.directory)
    FileJournal(config.journal_path()).close()  # JournalError: "already open in another process or FileJournal"
