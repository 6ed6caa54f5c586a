"""``exchange bench settlement``: the engine's events, turned into balanced entries, applied to the ledger database.

The event stream is the engine benchmark's seeded order flow (after funding every account), run until the wanted
number of trades happened; each sequence number's events become one :class:`Entry` through the posting rules. That
part is set-up and is not timed. What is timed is :meth:`SqlLedgerStore.apply`, one database transaction per batch,
into a fresh database with durability on: SQLite in WAL mode with ``synchronous=FULL`` (as the store sets it),
PostgreSQL with ``fsync`` and ``synchronous_commit`` on. Latency is per batch, from the call to its commit.

Afterwards (untimed) the ledger's balances are checked against the engine's, account by account, and every asset
must sum to zero: a fast store that settles the wrong amounts is no use.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import text

from exchange_framework.bench.engine_bench import ACCOUNTS, BENCH_ASSETS, BENCH_MARKET, new_engine
from exchange_framework.bench.stats import summary
from exchange_framework.bench.workload import funding, order_flow
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import Trade
from exchange_framework.ledger.postings import EXTERNAL, FEES, Entry, PostingRules, available, held
from exchange_framework.ledger.store import SqlLedgerStore

BATCH = 10_000  # entries per transaction


def build_entries(trades: int, seed: int) -> tuple[list[Entry], list[Entry], int, MatchingEngine]:
    """(funding entries, order-flow entries holding at least ``trades`` trades, trades in them, the engine).

    Sequence numbers whose events move no money (rejections, book-only changes) give no entry: the consumer's
    high-water mark still passes them.
    """
    engine = new_engine()
    rules = PostingRules({BENCH_MARKET.symbol: BENCH_MARKET})
    events = engine.events

    def entry(seq: int) -> Entry | None:
        postings = rules.postings(events)
        events.clear()
        return Entry(seq, postings) if postings else None

    fund: list[Entry] = []
    seq = 0
    for command in funding(BENCH_MARKET, ACCOUNTS, base_amount=10**15, quote_amount=10**18):
        seq += 1
        engine.apply(seq, command)
        if (e := entry(seq)) is not None:
            fund.append(e)

    flow: list[Entry] = []
    done = 0
    for command in order_flow(BENCH_MARKET, seed=seed, first_seq=seq + 1):
        if done >= trades:
            break
        seq += 1
        engine.apply(seq, command)
        done += sum(1 for ev in events if type(ev) is Trade)
        if (e := entry(seq)) is not None:
            flow.append(e)
    return fund, flow, done, engine


def _batches(entries: list[Entry], size: int) -> Iterator[list[Entry]]:
    for begin in range(0, len(entries), size):
        yield entries[begin : begin + size]


def expected_balances(engine: MatchingEngine) -> dict[tuple[str, str], int]:
    """The engine's balances under the ledger's account codes (zeros left out)."""
    out: dict[tuple[str, str], int] = {}
    for account_id, account in engine.accounts.items():
        for asset in engine.assets:
            out[(available(account_id), asset)] = account.available.get(asset, 0)
            out[(held(account_id), asset)] = account.held.get(asset, 0)
    for asset, amount in engine.fees_collected.items():
        out[(FEES, asset)] = amount
    return {key: amount for key, amount in out.items() if amount}


async def _durability(store: SqlLedgerStore) -> dict[str, str]:
    """The settings that make a commit durable, as the benchmark's connection sees them."""
    async with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            modes = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            journal = str(await conn.scalar(text("PRAGMA journal_mode")))
            synchronous = int(await conn.scalar(text("PRAGMA synchronous")) or 0)
            return {"journal_mode": journal, "synchronous": modes.get(synchronous, str(synchronous))}
        return {
            name: str(await conn.scalar(text(f"SHOW {name}")))
            for name in ("fsync", "synchronous_commit", "wal_sync_method", "server_version")
        }


async def _run_on(url: str, fund: list[Entry], flow: list[Entry], batch: int) -> tuple[float, list[int], Any]:
    store = SqlLedgerStore(url)
    try:
        await store.create_schema()
        await store.ensure_assets(BENCH_ASSETS)
        durability = await _durability(store)
        for chunk in _batches(fund, batch):  # funding is set-up, not measured
            await store.apply(chunk)
        clock = time.perf_counter_ns
        latencies: list[int] = []
        gc.collect()
        gc.freeze()
        try:
            start = time.perf_counter()
            for chunk in _batches(flow, batch):
                t0 = clock()
                await store.apply(chunk)
                latencies.append(clock() - t0)
            seconds = time.perf_counter() - start
        finally:
            gc.unfreeze()
        if flow and await store.last_seq() != flow[-1].seq:
            raise RuntimeError("the ledger's high-water mark is not the last entry's sequence number")
        balances = await store.balances()
        return seconds, latencies, (durability, balances)
    finally:
        await store.close()


@contextlib.contextmanager
def _database(db: str, directory: Path | None) -> Iterator[str]:
    if db == "sqlite":
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            yield f"sqlite:///{Path(tmp) / 'ledger.db'}"
    elif db == "postgres":
        from exchange_framework.testing.postgres import postgres_for_tests

        with postgres_for_tests() as cluster:
            yield cluster.create_database()
    else:
        raise ValueError(f"unknown database {db!r}: sqlite or postgres")


def run(trades: int, seed: int, db: str, batch: int = BATCH, directory: Path | None = None) -> dict[str, Any]:
    fund, flow, done, engine = build_entries(trades, seed)
    with _database(db, directory) as url:
        seconds, latencies, (durability, balances) = asyncio.run(_run_on(url, fund, flow, batch))

    expected = expected_balances(engine)
    got = {key: amount for key, amount in balances.items() if amount and key[0] != EXTERNAL}
    wrong = {
        key: (got.get(key, 0), expected.get(key, 0))
        for key in expected.keys() | got.keys()
        if got.get(key, 0) != expected.get(key, 0)
    }
    if wrong:
        sample = dict(list(wrong.items())[:5])
        raise RuntimeError(f"{len(wrong)} ledger balances differ from the engine's (ledger, engine): {sample}")
    for asset in engine.assets:
        if sum(amount for (_, a), amount in balances.items() if a == asset):
            raise RuntimeError(f"{asset} does not sum to zero over all ledger accounts")

    postings = sum(len(e.postings) for e in flow)
    return summary(
        f"settlement-{db}",
        done,
        seconds,
        latencies,
        seed=seed,
        db=db,
        trades=done,
        entries=len(flow),
        postings=postings,
        entries_per_s=round(len(flow) / seconds) if seconds else 0,
        postings_per_s=round(postings / seconds) if seconds else 0,
        batch_entries=batch,
        transactions=len(latencies),
        latency="per transaction (batch), call to commit",
        durability=", ".join(f"{k}={v}" for k, v in durability.items()),
    )
