"""Start-up and live feeding with a real Shard: rebuild from the journal, then follow the shard's batches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from exchange_framework.config import load_config
from exchange_framework.engine.commands import Command, CreditFunds
from exchange_framework.marketdata import Hub, StreamPublisher, rebuild_from_journal
from exchange_framework.sequencer import FileJournal, JournalRecord
from exchange_framework.shard import AppliedSink, Shard
from exchange_framework.types import Side
from tests.marketdata.helpers import FUNDING, T0_NS, Driver, feed, limit, new_market_data


def orders(start: int, count: int) -> list[Command]:
    return [
        limit(1 + i % 2, "BTC-USDT", Side.BUY if (start + i) % 3 else Side.SELL, 100 + (start + i) % 5, 1 + i % 4)
        for i in range(count)
    ]


def test_rebuild_then_follow_the_shard_gives_what_a_full_rebuild_gives(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = load_config(write_config("[plugins]\nenabled = []\n"))  # built-in plugins only, whatever is installed
    path = tmp_path / "commands.journal"

    def open_shard(on_applied: AppliedSink | None = None) -> Shard:
        journal = FileJournal(path, fsync=False)
        return Shard(config, journal=journal, snapshot_dir=tmp_path / "snap", on_applied=on_applied)

    first = open_shard()
    first.execute([CreditFunds(a, asset, 10**15) for a in (1, 2) for asset in ("BTC", "USDT")])
    first.execute(orders(0, 40))
    first.close()

    async def body() -> str:
        loop = asyncio.get_running_loop()
        data = rebuild_from_journal(config, path)  # read-only, beside the shard that holds the journal
        publisher = StreamPublisher(data, Hub())
        shard = open_shard(on_applied=publisher.applied_sink(loop))
        assert data.last_seq == shard.engine.last_seq
        shard.start()
        try:
            tickets = await loop.run_in_executor(None, lambda: [shard.submit(c) for c in orders(40, 60)])
            last = await loop.run_in_executor(None, lambda: [t.wait(10) for t in tickets][-1].seq)
            for _ in range(1000):
                if data.last_seq == last:
                    break
                await asyncio.sleep(0.01)
            assert data.last_seq == last
        finally:
            await loop.run_in_executor(None, shard.close)
        return data.digest()

    live = asyncio.run(body())
    assert live == rebuild_from_journal(config, path).digest()


def test_a_batch_with_several_timestamps_is_applied_with_each_records_own() -> None:
    driver = Driver()
    driver.run(FUNDING)
    data = new_market_data()
    feed(data, driver.batches)
    batches = driver.run([limit(1, "BTC-USDT", Side.BUY, 100, 5), limit(2, "BTC-USDT", Side.SELL, 100, 1)])
    batches += driver.run([limit(2, "BTC-USDT", Side.SELL, 100, 1)], step_ns=60 * 10**9)
    records = [JournalRecord(events[0].seq, ts, b"") for ts, events in batches]
    events = [event for _, batch in batches for event in batch]

    async def body() -> None:
        publisher = StreamPublisher(data, Hub())
        sink = publisher.applied_sink(asyncio.get_running_loop())
        sink(records, [], events)
        sink(records[:1], [], [])  # no events: nothing to do
        await asyncio.sleep(0)

    asyncio.run(body())
    assert [t.time_ms for t in data.trades("BTC-USDT")] == [ts // 1_000_000 for ts, _ in batches[1:]]
    assert batches[2][0] - batches[1][0] == 60 * 10**9 and batches[0][0] > T0_NS
