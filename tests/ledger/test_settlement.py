"""Settlement: the journal, replayed through an engine replica, settles into the ledger exactly as the shard traded.

Every test runs on SQLite and on PostgreSQL (the ``ledger_url`` fixture). The journal comes from a real Shard on
the demo config (funding plus a generated order flow), and what the shard's live events say the ledger must hold
is computed independently of settlement, from the events the shard handed out while trading.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from exchange_framework.bench.workload import funding, order_flow
from exchange_framework.config import DEMO_CONFIG, ExchangeConfig, load_config
from exchange_framework.engine.commands import Command
from exchange_framework.engine.events import Event, FundsCredited, FundsDebited, Trade
from exchange_framework.engine.market import AssetSpec
from exchange_framework.engine.snapshot import state_hash
from exchange_framework.ledger.postings import EXTERNAL, FEES, Entry, Posting, PostingRules, available, held
from exchange_framework.ledger.settlement import EngineConfig, Settlement, SettlementError
from exchange_framework.ledger.store import ACCOUNTS, ENTRIES, POSTINGS, SqlLedgerStore
from exchange_framework.sequencer import FileJournal, SnapshotStore
from exchange_framework.shard import Shard
from exchange_framework.testing.postgres import ThrowawayPostgres

SYMBOL = "BTC-USDT"
TRADERS = 20
MID = 650_000  # 65000.0 USDT in ticks of 0.1
ORDERS = 3_000
SNAPSHOT_EVERY = 500

PostingRow = tuple[int, str, str, int]  # seq, account code, asset, amount


# -- helpers shared with the other ledger test modules -----------------------------------------------------------


def demo_config() -> ExchangeConfig:
    return load_config(DEMO_CONFIG)


def demo_commands(config: ExchangeConfig, orders: int, *, seed: int) -> list[Command]:
    """Funding for :data:`TRADERS` accounts, then ``orders`` generated orders on BTC-USDT."""
    spec = config.engine_markets()[SYMBOL]
    commands = funding(spec, TRADERS, 10 * 10**8, 1_000_000 * 10**6)
    flow = order_flow(spec, seed=seed, first_seq=len(commands) + 1, accounts=TRADERS, mid=MID, spread=325, max_lots=500)
    return commands + list(itertools.islice(flow, orders))


@dataclass
class Traded:
    """A journal written by a live Shard, and what its live events say the ledger must hold."""

    journal: Path
    snapshot_dir: Path
    last_seq: int
    state_hash: str
    postings: dict[int, list[Posting]]  # seq -> the postings of its events, from the live shard
    balances: dict[tuple[str, str], int]  # (account code, asset) -> balance, non-zero only
    trade_seqs: set[int] = field(default_factory=set)

    def posting_rows(self) -> list[PostingRow]:
        return [(seq, p.account, p.asset, p.amount) for seq in sorted(self.postings) for p in self.postings[seq]]


def trade(config: ExchangeConfig, directory: Path, commands: Sequence[Command], *, snapshot_every: int = 0) -> Traded:
    """Run ``commands`` through a Shard (in chunks, snapshotting as configured) and record its live events."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "commands.journal"
    snapshot_dir = directory / "snapshots"
    by_seq: dict[int, list[Event]] = defaultdict(list)
    with Shard(
        config,
        journal=FileJournal(path, fsync=False),
        snapshot_dir=snapshot_dir,
        snapshot_every=snapshot_every,
    ) as shard:
        for start in range(0, len(commands), 250):
            for event in shard.execute(commands[start : start + 250]):
                by_seq[event.seq].append(event)
        engine = shard.engine
        last_seq = shard.journal.last_seq
        digest = state_hash(engine)
        rules = PostingRules(config.engine_markets())
        postings = {seq: rules.postings(by_seq.get(seq, [])) for seq in range(1, last_seq + 1)}
        balances: dict[tuple[str, str], int] = {}
        for account_id, acct in engine.accounts.items():
            for asset in engine.assets:
                balances[(available(account_id), asset)] = acct.available[asset]
                balances[(held(account_id), asset)] = acct.held[asset]
        net_in: dict[str, int] = defaultdict(int)
        for events in by_seq.values():
            for event in events:
                if isinstance(event, FundsCredited):
                    net_in[event.asset] += event.amount
                elif isinstance(event, FundsDebited):
                    net_in[event.asset] -= event.amount
        for asset in engine.assets:
            balances[(FEES, asset)] = engine.fees_collected[asset]
            balances[(EXTERNAL, asset)] = -net_in[asset]
    trade_seqs = {seq for seq, events in by_seq.items() if any(isinstance(e, Trade) for e in events)}
    return Traded(
        path,
        snapshot_dir,
        last_seq,
        digest,
        postings,
        {k: v for k, v in balances.items() if v},
        trade_seqs,
    )


def another_ledger_url(ledger_url: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    """A second empty database next to ``ledger_url``: another SQLite file, or another PostgreSQL database."""
    if ledger_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    cluster: ThrowawayPostgres = request.getfixturevalue("postgres")
    return cluster.create_database()


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[SqlLedgerStore]:
    store = SqlLedgerStore(url)
    try:
        await store.create_schema()
        yield store
    finally:
        await store.close()


@dataclass
class Ledger:
    """Everything a ledger holds, in a form two ledgers can be compared by."""

    mark: int
    entries: list[int]
    postings: list[PostingRow]  # in seq order, then in the order they were written
    balances: dict[tuple[str, str], int]  # non-zero balances


async def read_ledger(store: SqlLedgerStore, consumer: str = "settlement") -> Ledger:
    async with store.engine.connect() as conn:
        entries = [row.seq for row in await conn.execute(select(ENTRIES.c.seq).order_by(ENTRIES.c.seq))]
        query = (
            select(POSTINGS.c.seq, ACCOUNTS.c.code, POSTINGS.c.asset, POSTINGS.c.amount)
            .join(ACCOUNTS, ACCOUNTS.c.id == POSTINGS.c.account_id)
            .order_by(POSTINGS.c.seq, POSTINGS.c.id)
        )
        postings = [(r.seq, r.code, r.asset, r.amount) for r in await conn.execute(query)]
    # A balance that came back to zero may or may not have a row, depending on where batches were cut.
    balances = {key: amount for key, amount in (await store.balances()).items() if amount}
    return Ledger(await store.last_seq(consumer), entries, postings, balances)


def settle(
    config: EngineConfig,
    url: str,
    journal_path: Path,
    runs: Sequence[tuple[int | None, int]] = ((None, 2_000),),
    *,
    snapshot_dir: Path | None = None,
    one_instance: bool = False,
    restored: list[int] | None = None,
) -> Ledger:
    """Settle the journal into ``url`` in ``runs`` of (until_seq, batch_size); return what the ledger holds.

    Each run uses a new Settlement (so each rebuilds its replica from the ledger's mark), unless ``one_instance``.
    ``restored`` collects the snapshot seq each run's replica started from.
    """

    async def go() -> Ledger:
        async with open_store(url) as store:
            with FileJournal(journal_path, read_only=True) as journal:
                snapshots = SnapshotStore(snapshot_dir) if snapshot_dir is not None else None
                settlement: Settlement | None = None
                for until, batch_size in runs:
                    if settlement is None or not one_instance:
                        settlement = Settlement(config, store, journal, snapshots=snapshots, batch_size=batch_size)
                    settlement.batch_size = batch_size
                    mark = await settlement.run(until_seq=until)
                    assert mark == min(until if until is not None else journal.last_seq, journal.last_seq)
                    assert settlement.engine.last_seq == mark, "the replica is at the returned mark"
                    if restored is not None:
                        restored.append(settlement.restored_from)
            return await read_ledger(store)

    return asyncio.run(go())


def check_matches_trading(ledger: Ledger, traded: Traded) -> None:
    """The ledger holds exactly what the shard's live events say, seq by seq."""
    assert ledger.mark == traded.last_seq
    assert ledger.entries == list(range(1, traded.last_seq + 1)), "one entry per seq, none missing or doubled"
    assert ledger.postings == traded.posting_rows()
    assert ledger.balances == traded.balances


def check_zero_sum(balances: dict[tuple[str, str], int], assets: Sequence[str]) -> None:
    totals: dict[str, int] = defaultdict(int)
    for (code, asset), amount in balances.items():
        totals[asset] += amount
        if code.startswith("customer:"):
            assert amount >= 0, (code, asset, amount)
    assert set(totals) <= set(assets)
    assert all(total == 0 for total in totals.values()), totals


# -- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> Traded:
    """A shard that traded funding plus 3,000 generated orders (no snapshots)."""
    config = demo_config()
    return trade(config, tmp_path_factory.mktemp("traded"), demo_commands(config, ORDERS, seed=11))


@pytest.fixture(scope="module")
def traded_with_snapshots(tmp_path_factory: pytest.TempPathFactory) -> Traded:
    """The same kind of trading, with the shard snapshotting every 500 commands (it keeps the newest three)."""
    config = demo_config()
    return trade(
        config,
        tmp_path_factory.mktemp("snapshotted"),
        demo_commands(config, ORDERS, seed=12),
        snapshot_every=SNAPSHOT_EVERY,
    )


# -- settling ------------------------------------------------------------------------------------------------------


def test_settlement_books_what_the_engine_did(ledger_url: str, traded: Traded) -> None:
    config = demo_config()
    calls: list[tuple[int, int]] = []

    async def go() -> tuple[Ledger, Settlement]:
        async with open_store(ledger_url) as store:
            with FileJournal(traded.journal, read_only=True) as journal:
                settlement = Settlement(config, store, journal, batch_size=700)
                mark = await settlement.run(progress=lambda done, total: calls.append((done, total)))
                assert mark == journal.last_seq == traded.last_seq
                return await read_ledger(store), settlement

    ledger, settlement = asyncio.run(go())
    total = traded.last_seq
    assert calls == [(700, total), (1400, total), (2100, total), (2800, total), (total, total)]
    check_zero_sum(ledger.balances, list(config.assets))

    engine = settlement.engine
    assert state_hash(engine) == traded.state_hash, "the replica reached the live engine's state"
    assert len(engine.accounts) == TRADERS
    for account_id, acct in engine.accounts.items():
        for asset in engine.assets:
            assert ledger.balances.get((available(account_id), asset), 0) == acct.available[asset]
            assert ledger.balances.get((held(account_id), asset), 0) == acct.held[asset]
    for asset in engine.assets:
        assert ledger.balances.get((FEES, asset), 0) == engine.fees_collected[asset]
    assert engine.fees_collected["BTC"] > 0 and engine.fees_collected["USDT"] > 0
    assert ledger.mark == traded.last_seq
    check_matches_trading(ledger, traded)


def test_both_legs_and_both_fees_of_a_trade_settle_in_one_entry(ledger_url: str, traded: Traded) -> None:
    config = demo_config()
    settle(config, ledger_url, traded.journal, [(None, 97)])  # batches cut all over the place
    assert len(traded.trade_seqs) > 100

    async def entries_of_trades() -> dict[int, list[tuple[str, str, int]]]:
        async with open_store(ledger_url) as store, store.engine.connect() as conn:
            query = (
                select(POSTINGS.c.seq, ACCOUNTS.c.code, POSTINGS.c.asset, POSTINGS.c.amount)
                .join(ACCOUNTS, ACCOUNTS.c.id == POSTINGS.c.account_id)
                .where(POSTINGS.c.seq.in_(sorted(traded.trade_seqs)))
            )
            found: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
            for row in await conn.execute(query):
                found[row.seq].append((row.code, row.asset, row.amount))
            return found

    found = asyncio.run(entries_of_trades())
    assert set(found) == traded.trade_seqs
    for seq, rows in found.items():
        expected = [(p.account, p.asset, p.amount) for p in traded.postings[seq]]
        assert sorted(rows) == sorted(expected), f"seq {seq}: the entry is the whole of the seq's events"
        codes = {code for code, _, _ in rows}
        assert FEES in codes, f"seq {seq}: the trade's fees are in its entry"
        for asset in ("BTC", "USDT"):
            legs = [amount for code, a, amount in rows if a == asset]
            assert any(amount > 0 for amount in legs) and any(amount < 0 for amount in legs), (seq, asset)
            assert sum(legs) == 0, f"seq {seq}: the {asset} leg balances within the entry"

    async def one_history() -> list[tuple[int, int, int]]:
        async with open_store(ledger_url) as store:
            return await store.history(FEES, "USDT", limit=100_000)

    fee_seqs = {seq for _, seq, _ in asyncio.run(one_history())}
    assert fee_seqs and fee_seqs <= traded.trade_seqs


def test_running_again_settles_nothing_and_changes_nothing(ledger_url: str, traded: Traded) -> None:
    config = demo_config()

    async def go() -> None:
        async with open_store(ledger_url) as store:
            with FileJournal(traded.journal, read_only=True) as journal:
                settlement = Settlement(config, store, journal)
                assert await settlement.run() == traded.last_seq
                before = await read_ledger(store)
                calls: list[tuple[int, int]] = []
                assert await settlement.run(progress=lambda *args: calls.append(args)) == traded.last_seq
                assert calls == [], "nothing was left to settle"
                again = Settlement(config, store, journal, batch_size=3)  # a restart: replays to the mark
                assert await again.run() == traded.last_seq
                assert await again.run(until_seq=10) == traded.last_seq, "a mark never goes back"
                assert state_hash(again.engine) == traded.state_hash
                assert await read_ledger(store) == before

    asyncio.run(go())


def test_settling_in_several_runs_equals_one_run(
    ledger_url: str, traded: Traded, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = demo_config()
    last = traded.last_seq
    one_run = settle(config, another_ledger_url(ledger_url, request, tmp_path, "one"), traded.journal)
    rng = random.Random(7)
    cuts = sorted(rng.sample(range(2, last - 1), 5))
    runs: list[tuple[int | None, int]] = [(0, 5), (1, 1), (40, 7)]
    runs += [(cut, rng.choice([9, 64, 500, 5_000])) for cut in cuts] + [(last - 1, 2), (None, 333)]
    several = settle(config, ledger_url, traded.journal, runs)
    assert several == one_run
    check_matches_trading(several, traded)

    same_instance = settle(
        config,
        another_ledger_url(ledger_url, request, tmp_path, "same"),
        traded.journal,
        [(100, 9), (1_700, 400), (1_701, 1), (None, 1_000)],
        one_instance=True,
    )
    assert same_instance == one_run


def test_engine_snapshots_give_the_same_ledger(
    ledger_url: str, traded_with_snapshots: Traded, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = demo_config()
    traded = traded_with_snapshots
    seqs = SnapshotStore(traded.snapshot_dir).seqs()
    assert len(seqs) == 3, "the shard kept its newest three snapshots"
    oldest, middle, newest = seqs
    without = settle(config, another_ledger_url(ledger_url, request, tmp_path, "plain"), traded.journal)
    restored: list[int] = []
    runs: list[tuple[int | None, int]] = [
        (oldest - 1, 400),  # no snapshot at or below 0: replay from seq 1
        (oldest + 5, 50),  # mark oldest - 1: every kept snapshot is beyond it, so again from seq 1
        (middle + 3, 100),  # mark oldest + 5: from the oldest snapshot
        (newest - 1, 2_000),  # mark middle + 3: from the middle one, though a newer exists
        (newest, 1),  # mark newest - 1: still from the middle one
        (None, 250),  # mark newest: from the newest
        (None, 250),  # nothing left, from the newest again
    ]
    with_snapshots = settle(
        config, ledger_url, traded.journal, runs, snapshot_dir=traded.snapshot_dir, restored=restored
    )
    assert restored == [0, 0, oldest, middle, middle, newest, newest]
    assert with_snapshots == without
    check_matches_trading(with_snapshots, traded)


def test_a_damaged_snapshot_falls_back_to_an_older_one_or_the_journal(
    ledger_url: str, traded_with_snapshots: Traded, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = demo_config()
    traded = traded_with_snapshots
    snapshot_dir = tmp_path / "snapshots"
    shutil.copytree(traded.snapshot_dir, snapshot_dir)
    store = SnapshotStore(snapshot_dir)
    oldest, middle, newest = store.seqs()
    damaged = bytearray(store.path_for(middle).read_bytes())
    damaged[-1] ^= 0xFF
    store.path_for(middle).write_bytes(bytes(damaged))
    store.path_for(oldest).write_bytes(store.path_for(oldest).read_bytes()[:20])  # shorter than its header
    restored: list[int] = []
    ledger = settle(
        config,
        ledger_url,
        traded.journal,
        [(middle + 10, 2_000), (newest + 1, 2_000), (None, 2_000)],
        snapshot_dir=snapshot_dir,
        restored=restored,
    )
    assert restored == [0, 0, newest]
    check_matches_trading(ledger, traded)


def test_a_failed_batch_leaves_nothing_and_the_next_run_carries_on(
    ledger_url: str, traded: Traded, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = demo_config()

    async def go() -> Ledger:
        async with open_store(ledger_url) as store:
            with FileJournal(traded.journal, read_only=True) as journal:
                settlement = Settlement(config, store, journal, batch_size=300)
                real_apply = store.apply
                calls = 0

                async def failing_apply(entries: Sequence[Entry], consumer: str = "settlement") -> int:
                    nonlocal calls
                    calls += 1
                    if calls == 4:
                        raise ConnectionError("database went away")
                    return await real_apply(entries, consumer)

                monkeypatch.setattr(store, "apply", failing_apply)
                with pytest.raises(ConnectionError):
                    await settlement.run()
                assert await store.last_seq() == 900, "three batches committed, the fourth not at all"
                assert settlement.engine.last_seq == 1_200, "the replica ran ahead of the ledger"
                assert await settlement.run() == traded.last_seq  # the same instance rebuilds its replica
                assert state_hash(settlement.engine) == traded.state_hash
                return await read_ledger(store)

    check_matches_trading(asyncio.run(go()), traded)


def test_until_seq_and_batch_size(ledger_url: str, traded: Traded) -> None:
    config = demo_config()

    async def go() -> None:
        async with open_store(ledger_url) as store:
            with FileJournal(traded.journal, read_only=True) as journal:
                with pytest.raises(ValueError, match="batch_size"):
                    Settlement(config, store, journal, batch_size=0)
                settlement = Settlement(config, store, journal)
                with pytest.raises(ValueError, match="until_seq"):
                    await settlement.run(until_seq=-1)
                assert await settlement.run(until_seq=0) == 0
                assert await store.last_seq() == 0
                assert await settlement.run(until_seq=40) == 40  # the funding
                ledger = await read_ledger(store)
                assert ledger.entries == list(range(1, 41))
                assert ledger.balances[(available(TRADERS), "BTC")] == 10 * 10**8
                assert await settlement.run(until_seq=traded.last_seq + 1_000) == traded.last_seq, "capped"

    asyncio.run(go())


def test_a_ledger_ahead_of_its_journal_is_refused(ledger_url: str, traded: Traded, tmp_path: Path) -> None:
    config = demo_config()
    shorter = tmp_path / "shorter.journal"
    with FileJournal(traded.journal, read_only=True) as source, FileJournal(shorter, fsync=False) as target:
        target.append(list(itertools.islice(source.read(), 100)))

    async def go() -> None:
        async with open_store(ledger_url) as store:
            with FileJournal(traded.journal, read_only=True) as journal:
                assert await Settlement(config, store, journal).run(until_seq=200) == 200
            with (
                FileJournal(shorter, read_only=True) as journal,
                pytest.raises(SettlementError, match="journal ends at seq 100"),
            ):
                await Settlement(config, store, journal).run()
            assert await store.last_seq() == 200

    asyncio.run(go())


def test_a_separate_consumer_has_its_own_mark(ledger_url: str, traded: Traded) -> None:
    """Two consumers' marks are independent (a second ledger view, e.g. a shadow run, on its own cursor)."""
    config = demo_config()

    async def go() -> None:
        async with open_store(ledger_url) as store:
            with FileJournal(traded.journal, read_only=True) as journal:
                await Settlement(config, store, journal).run(until_seq=40)
                assert await store.last_seq("settlement") == 40
                assert await store.last_seq("other") == 0

    asyncio.run(go())


# -- start-up after a crash during the migration -------------------------------------------------------------------


class Crash(Exception):
    pass


def test_an_interrupted_schema_migration_can_be_run_again(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash half-way through ``create_schema`` leaves no half-made schema behind: settlement can start again.

    (On SQLite this needs the migration's DDL inside a real transaction: pysqlite autocommits DDL by default.)
    """
    from alembic.operations import Operations

    real_create_table = Operations.create_table
    made: list[str] = []

    def crash_on_the_third_table(self: Operations, name: str, *columns: object, **kw: object) -> object:
        if len(made) == 2:
            raise Crash("killed while migrating")
        made.append(name)
        return real_create_table(self, name, *columns, **kw)  # type: ignore[arg-type]

    async def go() -> None:
        store = SqlLedgerStore(ledger_url)
        try:
            with monkeypatch.context() as patch:
                patch.setattr(Operations, "create_table", crash_on_the_third_table)
                with pytest.raises(Crash):
                    await store.create_schema()
        finally:
            await store.close()
        async with open_store(ledger_url) as store:  # the restart
            await store.ensure_assets({"BTC": AssetSpec("BTC", 8)})
            entry = Entry(1, [Posting(available(1), "BTC", 5), Posting(EXTERNAL, "BTC", -5)])
            assert await store.apply([entry]) == 1

    asyncio.run(go())


def test_each_entry_carries_its_command_timestamp_from_the_journal(ledger_url: str, traded: Traded) -> None:
    settle(demo_config(), ledger_url, traded.journal, [(None, 333)])
    with FileJournal(traded.journal, read_only=True) as journal:
        stamps = {record.seq: record.ts_ns for record in journal.read()}

    async def stored() -> dict[int, int]:
        async with open_store(ledger_url) as store, store.engine.connect() as conn:
            return {row.seq: row.ts_ns for row in await conn.execute(select(ENTRIES.c.seq, ENTRIES.c.ts_ns))}

    found = asyncio.run(stored())
    assert found == stamps
    assert all(ts > 0 for ts in found.values())
