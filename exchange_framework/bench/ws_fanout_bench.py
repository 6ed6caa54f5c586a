"""WebSocket fan-out benchmark: L2 diff messages from market data to many in-process subscribers.

The engine benchmark's seeded order flow is turned into engine events first (not timed). The timed loop applies
them to :class:`~exchange_framework.marketdata.MarketData` one command at a time, encodes each book change once
as a Binance ``depthUpdate`` and publishes it on one stream of a :class:`~exchange_framework.marketdata.Hub`,
paced at ``rate`` messages per second. Every subscriber is an asyncio task that decodes each message, checks
that its ``U`` is the previous ``u + 1`` (a discontinuity is a gap) and samples the delivery latency. The lead
calls :func:`run` from ``exchange bench api``; timings are figures, never pass/fail.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import msgspec

from exchange_framework.bench.engine_bench import BENCH_ASSETS, BENCH_MARKET, build_stream, new_engine
from exchange_framework.bench.stats import summary
from exchange_framework.engine.events import Event
from exchange_framework.marketdata import Hub, MarketData, Subscriber, SubscriberClosedError, binance

STREAM = "btcusdt@depth@100ms"
_T0_NS = 1_700_000_000_000_000_000
_SAMPLE_EVERY = 16  # latency samples: one message in 16 per subscriber


class _Ids(msgspec.Struct):
    first: int = msgspec.field(name="U")
    last: int = msgspec.field(name="u")


def _event_batches(messages: int, seed: int) -> list[tuple[int, list[Event]]]:
    """Engine event batches (one per command, 1 ms apart) until ``messages`` of them changed the book."""
    fund, flow = build_stream(messages * 3 + 1_000, seed)
    engine = new_engine()
    seq = 0
    for command in fund:
        seq += 1
        engine.apply(seq, command)
    engine.events.clear()
    batches: list[tuple[int, list[Event]]] = []
    changes = 0
    for command in flow:
        seq += 1
        engine.apply(seq, command)
        events = engine.events
        engine.events = []
        if events:
            batches.append((_T0_NS + seq * 1_000_000, events))
            changes += any(type(e).__name__ == "BookDelta" for e in events)
            if changes >= messages:
                break
    return batches


class _Stats:
    __slots__ = ("gaps", "latencies", "received")

    def __init__(self) -> None:
        self.received = 0
        self.gaps = 0
        self.latencies: list[int] = []


async def _consume(subscriber: Subscriber, stats: _Stats, sent: dict[int, int]) -> None:
    decode = msgspec.json.Decoder(_Ids).decode
    previous = -1
    clock = time.perf_counter_ns
    try:
        while True:
            ids = decode(await subscriber.get())
            if previous >= 0 and ids.first != previous + 1:
                stats.gaps += 1
            previous = ids.last
            stats.received += 1
            if not stats.received % _SAMPLE_EVERY:
                stats.latencies.append(clock() - sent[ids.last])
    except SubscriberClosedError:
        return


async def _run(subscribers: int, rate: int, seconds: float, queue_size: int, seed: int) -> dict[str, Any]:
    total = max(1, int(rate * seconds))
    batches = _event_batches(total, seed)
    data = MarketData(BENCH_ASSETS, {BENCH_MARKET.symbol: BENCH_MARKET})
    hub = Hub(queue_size=queue_size)
    stats = [_Stats() for _ in range(subscribers)]
    sent: dict[int, int] = {}  # update id -> perf_counter_ns when published
    members = []
    for _ in range(subscribers):
        member = hub.subscriber()
        hub.subscribe(member, [STREAM])
        members.append(member)
    tasks = [asyncio.create_task(_consume(m, s, sent)) for m, s in zip(members, stats, strict=True)]
    gc.collect()
    clock = time.perf_counter_ns
    publish_ns = 0
    published = 0
    start = clock()
    index = 0
    while index < len(batches):
        due = (clock() - start) * rate // 1_000_000_000 + 1  # messages that should be out by now
        while published < due and index < len(batches):
            ts_ns, events = batches[index]
            index += 1
            t = clock()
            changes = data.apply(ts_ns, events)
            update = changes.books.get(BENCH_MARKET.symbol)
            if update is not None:
                sent[update.last_update_id] = t
                hub.publish(STREAM, binance.encode(binance.depth_update(data, update, ts_ns // 1_000_000)))
                published += 1
            publish_ns += clock() - t
        await asyncio.sleep(0.001)
    publishing = (clock() - start) / 1e9
    while any(len(m) for m in members):  # let the subscribers drain
        await asyncio.sleep(0.001)
    elapsed = (clock() - start) / 1e9
    for member in members:
        member.close()
    await asyncio.gather(*tasks)
    received = sum(s.received for s in stats)
    latencies = [ns for s in stats for ns in s.latencies]
    return summary(
        "ws_fanout",
        received,
        elapsed,
        latencies,
        subscribers=subscribers,
        target_rate_per_subscriber=rate,
        published=published,
        publish_rate_per_s=round(published / publishing) if publishing else 0,
        messages_per_subscriber_per_s=round(received / subscribers / elapsed, 1) if elapsed else 0,
        publish_us_per_message=round(publish_ns / published / 1_000, 1) if published else 0,
        gaps=sum(s.gaps for s in stats),
        skipped=sum(m.skipped for m in members),
        queue_size=queue_size,
    )


def run(
    subscribers: int = 1_000, rate: int = 100, seconds: float = 5.0, queue_size: int = 1_024, seed: int = 1
) -> dict[str, Any]:
    """Fan ``rate`` L2 messages/s for ``seconds`` out to ``subscribers``; return figures (``ops`` = deliveries).

    Reported: deliveries/s (``ops_per_s``), achieved publish rate, messages per subscriber per second, time per
    published message (apply + encode + fan-out), gaps (``U``/``u`` discontinuities seen by subscribers),
    messages skipped for full queues, and delivery latency percentiles (sampled).
    """
    return asyncio.run(_run(subscribers, rate, seconds, queue_size, seed))


if __name__ == "__main__":  # a quick look without the CLI: python -m exchange_framework.bench.ws_fanout_bench
    import json

    print(json.dumps(run(), indent=2))
