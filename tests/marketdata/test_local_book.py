"""A client following Binance's "how to manage a local order book correctly" ends with the server's book.

The client below implements the documented procedure step by step, reading only the encoded JSON payloads:
buffer the diff stream, note the first ``U``, get a snapshot, retry if its ``lastUpdateId`` is below that ``U``,
drop buffered events with ``u <= lastUpdateId``, then apply events (ignore ``u`` below the book's update id,
restart on ``U`` above it + 1, set absolute quantities, remove zeros).
"""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.engine.commands import Command
from exchange_framework.marketdata import DepthBatcher, MarketData, binance
from exchange_framework.types import Side
from tests.marketdata.helpers import COMMANDS, FUNDING, Driver, feed, limit, new_market_data

MARKET = "BTC-USDT"


class GapError(Exception):
    """The client saw ``U`` above its update id + 1: it missed events and must start over."""


class LocalBook:
    """Binance's documented local order book procedure, from encoded payloads only."""

    def __init__(self) -> None:
        self.buffer: list[dict] = []
        self.first_u: int | None = None  # the U of the first event received (step 2)
        self.update_id: int | None = None  # None until the snapshot is set (step 6)
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.retries = 0
        self.applied = 0  # events applied since the snapshot
        self.straddling = 0  # applied events after the first that overlapped the book's update id

    @property
    def ready(self) -> bool:
        return self.update_id is not None

    def on_message(self, raw: bytes) -> None:
        event = msgspec.json.decode(raw)
        assert event["e"] == "depthUpdate" and event["s"] == "BTCUSDT"
        if not self.ready:  # step 2: buffer, and note the first U
            if self.first_u is None:
                self.first_u = event["U"]
            self.buffer.append(event)
            return
        self._apply(event)

    def on_snapshot(self, raw: bytes) -> bool:
        """Steps 4-7; False means "go back to step 3" (get another snapshot)."""
        snapshot = msgspec.json.decode(raw)
        last = snapshot["lastUpdateId"]
        assert self.first_u is not None, "the procedure gets the snapshot after the stream has started"
        if last < self.first_u:  # step 4
            self.retries += 1
            return False
        self.buffer = [event for event in self.buffer if event["u"] > last]  # step 5
        if self.buffer:
            first = self.buffer[0]
            assert first["U"] <= last + 1 <= first["u"]  # the first buffered event continues the snapshot
        self.bids = {price: qty for price, qty in snapshot["bids"]}  # step 6
        self.asks = {price: qty for price, qty in snapshot["asks"]}
        self.update_id = last
        buffered, self.buffer = self.buffer, []
        for event in buffered:  # step 7
            self._apply(event)
        return True

    def _apply(self, event: dict) -> None:
        assert self.update_id is not None
        if event["u"] < self.update_id:
            return
        if event["U"] > self.update_id + 1:
            raise GapError(f"missed updates {self.update_id + 1} to {event['U'] - 1}")
        if self.applied and event["U"] != self.update_id + 1:
            self.straddling += 1  # ccxt's binance client would resync here: it wants U == previous u + 1
        self.applied += 1
        for side, levels in ((self.bids, event["b"]), (self.asks, event["a"])):
            for price, qty in levels:
                if _is_zero(qty):
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.update_id = event["u"]


def _is_zero(qty: str) -> bool:
    return not qty.strip("0.")


class Server:
    """Market data and one diff depth stream, published whenever the test says so."""

    def __init__(self) -> None:
        self.driver = Driver()
        self.driver.run(FUNDING)
        self.data = new_market_data()
        feed(self.data, self.driver.batches)
        self.batcher = DepthBatcher()
        self.last_u = self.data.update_id(MARKET)

    def run(self, command: Command) -> None:
        for ts_ns, events in self.driver.run([command]):
            update = self.data.apply(ts_ns, events).books.get(MARKET)
            if update is not None:
                self.batcher.add(update)

    def flush(self) -> list[bytes]:
        messages = []
        for update in self.batcher.drain():
            if update.market == MARKET:
                assert update.first_update_id == self.last_u + 1  # the stream never skips an update id
                self.last_u = update.last_update_id
                messages.append(binance.encode(binance.depth_update(self.data, update, update.time_ms)))
        return messages

    def snapshot(self) -> bytes:
        return binance.encode(binance.depth(self.data, self.data.depth(MARKET, 5_000)))


def server_book(data: MarketData) -> tuple[dict[str, str], dict[str, str]]:
    payload = binance.depth(data, data.depth(MARKET, 5_000))
    return dict(map(tuple, payload["bids"])), dict(map(tuple, payload["asks"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    commands=COMMANDS,
    flushes=st.lists(st.booleans(), min_size=60, max_size=60),
    connect=st.integers(0, 59),
    snapshot_at=st.integers(0, 59),
)
def test_the_documented_procedure_rebuilds_the_servers_book(
    commands: list[Command], flushes: list[bool], connect: int, snapshot_at: int
) -> None:
    server = Server()
    client = LocalBook()
    stale: bytes | None = None  # a snapshot taken early (a slow REST answer) and delivered later
    for i, command in enumerate(commands):
        if i == snapshot_at:
            stale = server.snapshot()
        server.run(command)
        if flushes[i] and i >= connect:
            for message in server.flush():
                client.on_message(message)
        elif flushes[i]:
            server.flush()  # before the client connected: not seen
        if not client.ready and client.first_u is not None and i >= snapshot_at:
            if stale is None or not client.on_snapshot(stale):
                client.on_snapshot(server.snapshot())  # step 4's "go back to step 3"
            stale = None
    for message in server.flush():
        if len(commands) - 1 >= connect:
            client.on_message(message)
    if not client.ready:
        if client.first_u is None:  # no book change since the client connected: the snapshot alone is the book
            client.first_u = 0
        assert client.on_snapshot(server.snapshot())
    assert (client.bids, client.asks) == server_book(server.data)
    assert client.update_id == server.data.update_id(MARKET)
    assert client.straddling == 0  # only the first event after the snapshot may straddle it


def test_a_lost_message_is_detected_as_a_gap_and_a_restart_recovers() -> None:
    server = Server()
    client = LocalBook()
    server.run(limit(1, MARKET, Side.BUY, 100, 5))
    for message in server.flush():
        client.on_message(message)
    assert client.on_snapshot(server.snapshot())
    server.run(limit(1, MARKET, Side.BUY, 99, 5))
    server.flush()  # lost on the way
    server.run(limit(2, MARKET, Side.SELL, 101, 5))
    (message,) = server.flush()
    try:
        client.on_message(message)
    except GapError as exc:
        assert "missed updates 2 to 2" in str(exc)
    else:
        raise AssertionError("the gap went unnoticed")
    client = LocalBook()  # start over
    server.run(limit(2, MARKET, Side.SELL, 102, 1))
    for message in server.flush():
        client.on_message(message)
    assert client.on_snapshot(server.snapshot())
    assert (
        (client.bids, client.asks)
        == server_book(server.data)
        == ({"1.00": "0.0005", "0.99": "0.0005"}, {"1.01": "0.0005", "1.02": "0.0001"})
    )


def test_a_snapshot_older_than_the_first_buffered_event_is_retried() -> None:
    server = Server()
    client = LocalBook()
    early = server.snapshot()
    server.run(limit(1, MARKET, Side.BUY, 100, 5))
    for message in server.flush():
        client.on_message(message)
    assert not client.on_snapshot(early)
    assert client.retries == 1
    assert client.on_snapshot(server.snapshot())
    assert (client.bids, client.asks) == server_book(server.data)
