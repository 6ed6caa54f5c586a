"""The fan-out hub and the stream publisher: shared bytes, bounded queues, slow consumers never hold others up."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from exchange_framework.marketdata import (
    SLOW_CONSUMER,
    BookUpdate,
    DepthBatcher,
    Hub,
    SlowConsumerError,
    StreamPublisher,
    Subscriber,
    SubscriberClosedError,
    binance,
)
from exchange_framework.types import Side
from tests.marketdata.helpers import FUNDING, Driver, feed, limit, new_market_data
from tests.marketdata.test_local_book import GapError, LocalBook


def drain(subscriber: Subscriber) -> list[bytes]:
    messages = []
    while (message := subscriber.get_nowait()) is not None:
        messages.append(message)
    return messages


def test_one_encoded_message_is_shared_by_every_subscriber() -> None:
    async def body() -> None:
        hub = Hub()
        raw = [hub.subscriber() for _ in range(3)]
        wrapped = [hub.subscriber(combined=True) for _ in range(2)]
        for subscriber in raw + wrapped:
            hub.subscribe(subscriber, ["btcusdt@trade"])
        payload = b'{"e":"trade","t":1}'
        assert hub.publish("btcusdt@trade", payload) == 5
        assert hub.publish("ethusdt@trade", b"{}") == 0  # nobody listens: nothing queued
        got = [await subscriber.get() for subscriber in raw]
        assert all(message is payload for message in got)
        first, second = [await subscriber.get() for subscriber in wrapped]
        assert first is second  # the combined wrapper is built once per message
        assert msgspec.json.decode(first) == {"stream": "btcusdt@trade", "data": {"e": "trade", "t": 1}}
        assert (hub.published, hub.delivered) == (1, 5)

    asyncio.run(body())


def test_a_stalled_subscriber_does_not_delay_others_and_is_dropped_from_the_stream() -> None:
    async def body() -> None:
        hub = Hub(queue_size=8)
        stalled = hub.subscriber()
        hub.subscribe(stalled, ["btcusdt@trade", "btcusdt@ticker"])
        fast = [hub.subscriber() for _ in range(4)]
        received: list[list[bytes]] = [[] for _ in fast]

        async def consume(index: int, subscriber: Subscriber) -> None:
            while len(received[index]) < 100:
                received[index].append(await subscriber.get())

        for subscriber in fast:
            hub.subscribe(subscriber, ["btcusdt@trade"])
        tasks = [asyncio.create_task(consume(i, s)) for i, s in enumerate(fast)]
        messages = [b'{"t":%d}' % i for i in range(100)]
        for message in messages:
            hub.publish("btcusdt@trade", message)  # synchronous: it cannot wait for anyone
            await asyncio.sleep(0)  # let the consumers run
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        assert all(got == messages for got in received)  # everyone else got everything, in order
        assert hub.subscribers("btcusdt@trade") == 4
        assert stalled.streams == {"btcusdt@ticker"}  # dropped from the stream that overflowed only
        with pytest.raises(SlowConsumerError) as caught:
            await stalled.get()
        assert (caught.value.stream, caught.value.reason) == ("btcusdt@trade", SLOW_CONSUMER)
        assert str(caught.value) == "btcusdt@trade: slow consumer: resync with a new snapshot"
        assert drain(stalled) == messages[:8]  # what fitted in its queue is still delivered

    asyncio.run(body())


def test_a_stalled_depth_subscriber_is_flagged_and_its_client_sees_the_gap_and_resyncs() -> None:
    async def body() -> None:
        data = new_market_data()
        driver = Driver()
        driver.run(FUNDING)
        feed(data, driver.batches)
        hub = Hub(queue_size=3)
        publisher = StreamPublisher(data, hub)
        stream = "btcusdt@depth@100ms"
        slow, steady = hub.subscriber(), hub.subscriber()
        for subscriber in (slow, steady):
            hub.subscribe(subscriber, [stream])  # recognised as a diff depth stream by its name
        slow_book, steady_book = LocalBook(), LocalBook()
        now = 1_000

        def step(price: int) -> None:
            nonlocal now
            for batch in driver.run([limit(1, "BTC-USDT", Side.BUY, price, 1)]):
                publisher.on_events(*batch)
            now += 100
            publisher.tick(now)
            for message in drain(steady):
                steady_book.on_message(message)

        def snapshot() -> bytes:
            return binance.encode(binance.depth(data, data.depth("BTC-USDT")))

        step(100)
        for client, subscriber in ((steady_book, steady), (slow_book, slow)):
            for message in drain(subscriber):
                client.on_message(message)
            assert client.on_snapshot(snapshot())
        for i in range(1, 8):  # the slow client stops reading
            step(100 + i)
        assert slow.resync == {stream} and slow.skipped == 4  # updates 2-4 fitted its queue; 5-8 were skipped
        assert slow.streams == {stream}  # a depth subscriber stays on the stream
        for message in drain(slow):
            slow_book.on_message(message)
        assert slow_book.update_id == 4
        step(200)
        (message,) = drain(slow)
        with pytest.raises(GapError, match="missed updates 5 to 8"):
            slow_book.on_message(message)
        assert steady_book.update_id == data.update_id("BTC-USDT") == 9
        restarted = LocalBook()  # the documented restart: buffer, snapshot, apply
        step(201)
        for message in drain(slow):
            restarted.on_message(message)
        assert restarted.on_snapshot(snapshot())
        assert (restarted.bids, restarted.asks) == (steady_book.bids, steady_book.asks)
        assert len(steady_book.bids) == 10

    asyncio.run(body())


def test_closing_ends_get_and_leaves_every_stream() -> None:
    async def body() -> None:
        hub = Hub()
        subscriber = hub.subscriber()
        hub.subscribe(subscriber, ["a", "b"])
        waiter = asyncio.create_task(subscriber.get())
        await asyncio.sleep(0)
        hub.publish("a", b"1")
        assert await waiter == b"1"
        hub.publish("b", b"2")
        subscriber.close()
        assert not hub.has_subscribers("a") and hub.streams() == []
        assert await subscriber.get() == b"2"  # drained first
        with pytest.raises(SubscriberClosedError):
            await subscriber.get()
        with pytest.raises(SubscriberClosedError):
            hub.subscribe(subscriber, ["a"])
        with pytest.raises(ValueError, match="queue_size must be at least 1"):
            Hub(queue_size=0)

    asyncio.run(body())


def test_the_publisher_sends_each_stream_on_its_schedule() -> None:
    async def body() -> None:
        data = new_market_data()
        driver = Driver()
        driver.run(FUNDING)
        feed(data, driver.batches)
        hub = Hub()
        publisher = StreamPublisher(data, hub)
        names = [
            "btcusdt@trade",
            "btcusdt@aggTrade",
            "btcusdt@depth",
            "btcusdt@depth@100ms",
            "btcusdt@depth5",
            "btcusdt@depth5@100ms",
            "btcusdt@kline_1m",
            "btcusdt@ticker",
            "btcusdt@miniTicker",
            "!miniTicker@arr",
            "btcusdt@bookTicker",
        ]
        subscribers = {name: hub.subscriber() for name in names}
        for name, subscriber in subscribers.items():
            hub.subscribe(subscriber, [name])
        everything = hub.subscriber(combined=True)
        hub.subscribe(everything, names)

        def got(name: str) -> list[dict]:
            return [msgspec.json.decode(message) for message in drain(subscribers[name])]

        t0 = driver.ts_ns // 1_000_000 // 1_000 * 1_000 + 1_000  # on a second
        publisher.tick(t0)  # nothing has happened yet: only the periodic streams that have something
        assert got("btcusdt@depth") == got("btcusdt@depth@100ms") == []
        assert got("btcusdt@kline_1m") == []  # no kline before the first trade
        (ticker,) = got("btcusdt@ticker")
        assert (ticker["e"], ticker["n"]) == ("24hrTicker", 0)
        assert [m["e"] for m in got("btcusdt@miniTicker")] == ["24hrMiniTicker"]
        assert got("!miniTicker@arr") == []  # only markets that traded in the last second: none
        assert got("btcusdt@depth5") == got("btcusdt@depth5@100ms") == [{"lastUpdateId": 0, "bids": [], "asks": []}]
        driver.ts_ns = t0 * 1_000_000
        for batch in driver.run([limit(1, "BTC-USDT", Side.BUY, 100, 5), limit(2, "BTC-USDT", Side.SELL, 100, 2)]):
            publisher.on_events(*batch)
        (trade,) = got("btcusdt@trade")  # at once, before any tick
        assert (trade["e"], trade["p"], trade["q"], trade["m"]) == ("trade", "1.00", "0.0002", True)
        (agg,) = got("btcusdt@aggTrade")
        assert (agg["e"], agg["a"], agg["f"], agg["l"]) == ("aggTrade", 1, 1, 1)
        assert [m["u"] for m in got("btcusdt@bookTicker")] == [1, 2]
        publisher.tick(t0 + 150)  # 100 ms streams only
        (fast,) = got("btcusdt@depth@100ms")
        assert (fast["U"], fast["u"], fast["b"], fast["E"]) == (1, 2, [["1.00", "0.0003"]], t0 + 150)
        assert got("btcusdt@depth") == [] and got("btcusdt@kline_1m") == [] and got("btcusdt@ticker") == []
        assert got("btcusdt@depth5@100ms") == [{"lastUpdateId": 2, "bids": [["1.00", "0.0003"]], "asks": []}]
        publisher.tick(t0 + 1_000)  # and the 1 s ones
        (slow,) = got("btcusdt@depth")
        assert (slow["U"], slow["u"]) == (1, 2)
        (kline,) = got("btcusdt@kline_1m")
        assert (kline["k"]["n"], kline["k"]["c"], kline["k"]["x"]) == (1, "1.00", False)
        (ticker,) = got("btcusdt@ticker")
        assert (ticker["n"], ticker["c"], ticker["b"]) == (1, "1.00", "1.00")
        (mini,) = got("btcusdt@miniTicker")
        assert (mini["c"], mini["v"]) == ("1.00", "0.0002")
        ((listed,),) = got("!miniTicker@arr")
        assert listed == mini
        assert len(got("btcusdt@depth5")) == 1
        combined = [msgspec.json.decode(message) for message in drain(everything)]
        assert {m["stream"] for m in combined} == set(names)
        assert all(set(m) == {"stream", "data"} for m in combined)
        publisher.tick(t0 + 2_000)
        assert got("!miniTicker@arr") == []  # nothing traded since the last second
        assert len(got("btcusdt@miniTicker")) == 1  # the per-symbol stream goes on every second

    asyncio.run(body())


def test_a_closing_kline_is_sent_once_more_with_x_true_before_the_next() -> None:
    data = new_market_data()
    driver = Driver()
    driver.run(FUNDING)
    feed(data, driver.batches)
    hub = Hub()
    publisher = StreamPublisher(data, hub)
    subscriber = hub.subscriber()
    hub.subscribe(subscriber, ["btcusdt@kline_1m"])
    minute = (driver.ts_ns // 1_000_000 // 60_000 + 1) * 60_000
    driver.ts_ns = minute * 1_000_000
    for batch in driver.run([limit(1, "BTC-USDT", Side.BUY, 100, 5), limit(2, "BTC-USDT", Side.SELL, 100, 1)]):
        publisher.on_events(*batch)
    publisher.tick(minute + 1_000)
    publisher.tick(minute + 2_000)
    publisher.tick(minute + 61_000)  # the next minute: nothing traded in it yet
    klines = [msgspec.json.decode(m)["k"] for m in drain(subscriber)]
    assert [(k["t"] - minute, k["x"], k["n"]) for k in klines] == [
        (0, False, 1),
        (0, False, 1),
        (0, True, 1),  # the closed kline's final state
        (60_000, False, 0),  # the new, empty kline at the last close
    ]
    assert klines[-1]["o"] == klines[-1]["c"] == "1.00"


def test_only_diff_depth_streams_skip_on_overflow_others_drop() -> None:
    hub = Hub(queue_size=1)
    names = ["btcusdt@depth", "btcusdt@depth@100ms", "btcusdt@depth5", "btcusdt@depth20@100ms", "x@trade", "y"]
    subscribers = {}
    for name in names:
        subscribers[name] = hub.subscriber()
        hub.subscribe(subscribers[name], [name])
        hub.publish(name, b"1")
        hub.publish(name, b"2")  # the queue of 1 is full
    skipped = {name for name, s in subscribers.items() if s.resync}
    dropped = {name for name, s in subscribers.items() if s.dropped}
    assert skipped == {"btcusdt@depth", "btcusdt@depth@100ms"}
    assert dropped == {"btcusdt@depth5", "btcusdt@depth20@100ms", "x@trade", "y"}
    explicit = hub.subscriber()
    hub.subscribe(explicit, ["z"], depth=["z"])  # the caller may say which streams are diff depth streams
    hub.publish("z", b"1")
    hub.publish("z", b"2")
    assert explicit.resync == {"z"} and explicit.skipped == 1


def test_the_combined_wrapper_is_valid_json_for_any_stream_name() -> None:
    hub = Hub()
    subscriber = hub.subscriber(combined=True)
    hub.subscribe(subscriber, ['odd"name\\'])
    hub.publish('odd"name\\', b"[1]")
    assert msgspec.json.decode(drain(subscriber)[0]) == {"stream": 'odd"name\\', "data": [1]}


def test_the_depth_batcher_merges_and_restarts_on_a_discontinuity() -> None:
    batcher = DepthBatcher()
    batcher.add(BookUpdate("BTC-USDT", 1, 1, 10, {100: 5}, {}))
    batcher.add(BookUpdate("BTC-USDT", 2, 3, 20, {100: 0, 99: 1}, {101: 2}))
    batcher.add(BookUpdate("ETH-USDT", 7, 7, 20, {}, {5: 1}))
    merged = {u.market: u for u in batcher.drain()}
    assert merged["BTC-USDT"] == BookUpdate("BTC-USDT", 1, 3, 20, {100: 0, 99: 1}, {101: 2})
    assert merged["ETH-USDT"] == BookUpdate("ETH-USDT", 7, 7, 20, {}, {5: 1})
    assert batcher.drain() == []
    batcher.add(BookUpdate("BTC-USDT", 4, 4, 30, {98: 1}, {}))
    batcher.add(BookUpdate("BTC-USDT", 9, 9, 40, {97: 1}, {}))  # 5-8 never reached the batcher
    (restarted,) = batcher.drain()
    assert restarted == BookUpdate("BTC-USDT", 9, 9, 40, {97: 1}, {})  # clients see U=9 after u=3 and resync
