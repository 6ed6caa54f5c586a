"""WebSocket streams: Binance's names, payloads and control messages; user data streams; slow consumers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import websockets

from exchange_framework.marketdata import SLOW_CONSUMER
from tests.api.client import Rest
from tests.api.conftest import Exchange


@pytest.fixture
def alice(exchange: Exchange) -> Iterator[Rest]:
    rest = Rest(exchange.url, exchange.alice.key)
    yield rest
    rest.close()


@pytest.fixture
def bob(exchange: Exchange) -> Iterator[Rest]:
    rest = Rest(exchange.url, exchange.bob.key)
    yield rest
    rest.close()


def ws_url(exchange: Exchange, path: str) -> str:
    return exchange.url.replace("http://", "ws://") + path


def order(rest: Rest, side: str, qty: str, price: str | None = None) -> dict[str, Any]:
    params: dict[str, str] = {"symbol": "BTCUSDT", "side": side, "quantity": qty}
    if price is None:
        params["type"] = "MARKET"
    else:
        params.update(type="LIMIT", timeInForce="GTC", price=price)
    response = rest.signed("POST", "/api/v3/order", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def receive(ws: Any, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    async def loop() -> dict[str, Any]:
        while True:
            message = json.loads(await ws.recv())
            if predicate(message):
                return message  # type: ignore[no-any-return]

    return await asyncio.wait_for(loop(), timeout)


def test_combined_trade_and_depth_streams_keep_a_local_book_exact(exchange: Exchange, alice: Rest, bob: Rest) -> None:
    """Binance's documented procedure: buffer diffs, fetch a snapshot, drop diffs with u <= lastUpdateId, apply."""

    async def run() -> None:
        url = ws_url(exchange, "/stream?streams=btcusdt@trade/btcusdt@depth@100ms")
        async with websockets.connect(url) as ws:
            await asyncio.to_thread(order, alice, "BUY", "1", "59000")
            await asyncio.to_thread(order, alice, "BUY", "0.5", "59500")
            first = await receive(ws, lambda m: m["stream"] == "btcusdt@depth@100ms")
            buffered = [first["data"]]
            snapshot = (await asyncio.to_thread(alice.public, "GET", "/api/v3/depth", symbol="BTCUSDT")).json()
            await asyncio.to_thread(order, bob, "SELL", "0.3", "61000")
            await asyncio.to_thread(order, bob, "SELL", "0.25")  # trades 0.25 at 59,500
            trade = await receive(ws, lambda m: m["stream"] == "btcusdt@trade")
            assert trade["data"]["e"] == "trade" and trade["data"]["s"] == "BTCUSDT"
            assert Decimal(trade["data"]["p"]) == 59500 and Decimal(trade["data"]["q"]) == Decimal("0.25")
            assert trade["data"]["m"] is True  # the buyer was the maker

            book = {"bids": {}, "asks": {}}
            for side in ("bids", "asks"):
                for price, qty in snapshot[side]:
                    book[side][Decimal(price)] = Decimal(qty)
            last = snapshot["lastUpdateId"]

            def apply(diff: dict[str, Any]) -> None:
                nonlocal last
                if diff["u"] <= last:
                    return
                assert diff["U"] <= last + 1 <= diff["u"], "a gap: resync needed"
                for side, key in (("bids", "b"), ("asks", "a")):
                    for price, qty in diff[key]:
                        if Decimal(qty) == 0:
                            book[side].pop(Decimal(price), None)
                        else:
                            book[side][Decimal(price)] = Decimal(qty)
                last = diff["u"]

            for diff in buffered:
                apply(diff)
            server = (await asyncio.to_thread(alice.public, "GET", "/api/v3/depth", symbol="BTCUSDT")).json()
            while last < server["lastUpdateId"]:
                apply((await receive(ws, lambda m: m["stream"] == "btcusdt@depth@100ms"))["data"])
            expected = {side: {Decimal(p): Decimal(q) for p, q in server[side]} for side in ("bids", "asks")}
            assert book == expected
            assert book["bids"] == {Decimal(59500): Decimal("0.25"), Decimal(59000): Decimal(1)}

    asyncio.run(run())


def test_subscribe_unsubscribe_and_list(exchange: Exchange) -> None:
    async def run() -> None:
        async with websockets.connect(ws_url(exchange, "/ws")) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["BTCUSDT@trade", "ethusdt@kline_1m"], "id": 1}))
            assert json.loads(await ws.recv()) == {"result": None, "id": 1}
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
            assert json.loads(await ws.recv()) == {"result": ["btcusdt@trade", "ethusdt@kline_1m"], "id": 2}
            await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}))
            assert json.loads(await ws.recv()) == {"result": None, "id": 3}
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["dogeusdt@trade"], "id": 4}))
            error = json.loads(await ws.recv())
            assert error["error"]["code"] == 2 and "DOGEUSDT" in error["error"]["msg"].upper()
            await ws.send("not json")
            assert json.loads(await ws.recv())["error"]["code"] == 2

    asyncio.run(run())


def test_unknown_stream_is_refused_with_a_reason(exchange: Exchange) -> None:
    async def run() -> None:
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(ws_url(exchange, "/ws/btcusdt@nonsense")):
                pass

    asyncio.run(run())


def test_kline_and_ticker_streams(exchange: Exchange, alice: Rest, bob: Rest) -> None:
    async def run() -> None:
        async with websockets.connect(ws_url(exchange, "/ws/btcusdt@kline_1m/btcusdt@ticker")) as ws:
            await asyncio.to_thread(order, alice, "BUY", "0.5", "60000")
            await asyncio.to_thread(order, bob, "SELL", "0.5")
            kline = await receive(ws, lambda m: m.get("e") == "kline" and m["k"]["n"] > 0)
            assert kline["s"] == "BTCUSDT" and kline["k"]["i"] == "1m"
            assert Decimal(kline["k"]["c"]) == 60000 and Decimal(kline["k"]["v"]) == Decimal("0.5")
            ticker = await receive(ws, lambda m: m.get("e") == "24hrTicker" and m["n"] > 0)
            assert Decimal(ticker["c"]) == 60000

    asyncio.run(run())


def test_user_data_stream(exchange: Exchange, alice: Rest, bob: Rest) -> None:
    key = alice.http.post("/api/v3/userDataStream", headers={"X-MBX-APIKEY": exchange.alice.key.key}).json()
    listen_key = key["listenKey"]
    assert (
        alice.http.put(
            "/api/v3/userDataStream", params={"listenKey": listen_key}, headers={"X-MBX-APIKEY": exchange.alice.key.key}
        ).json()
        == {}
    )
    assert (
        bob.http.put(
            "/api/v3/userDataStream", params={"listenKey": listen_key}, headers={"X-MBX-APIKEY": exchange.bob.key.key}
        ).json()["code"]
        == -1125
    )  # not bob's

    async def run() -> None:
        async with websockets.connect(ws_url(exchange, f"/ws/{listen_key}")) as ws:
            placed = await asyncio.to_thread(order, alice, "BUY", "0.5", "60000")
            new = await receive(ws, lambda m: m["e"] == "executionReport")
            assert (new["x"], new["X"], new["i"], new["S"]) == ("NEW", "NEW", placed["orderId"], "BUY")
            position = await receive(ws, lambda m: m["e"] == "outboundAccountPosition")
            usdt = next(b for b in position["B"] if b["a"] == "USDT")
            assert Decimal(usdt["l"]) == 30000
            await asyncio.to_thread(order, bob, "SELL", "0.2")
            fill = await receive(ws, lambda m: m["e"] == "executionReport" and m["x"] == "TRADE")
            assert fill["X"] == "PARTIALLY_FILLED" and Decimal(fill["l"]) == Decimal("0.2") and fill["m"] is True
            assert Decimal(fill["z"]) == Decimal("0.2") and fill["N"] == "BTC"
            await asyncio.to_thread(order, bob, "SELL", "0.3")
            done = await receive(ws, lambda m: m["e"] == "executionReport" and m["x"] == "TRADE")
            assert done["X"] == "FILLED" and Decimal(done["z"]) == Decimal("0.5")

    asyncio.run(run())


def test_slow_consumer_is_disconnected_with_a_reason(exchange: Exchange) -> None:
    hub = exchange.server.ctx.extras["hub"]
    hub.queue_size = 4

    async def run() -> None:
        async with websockets.connect(ws_url(exchange, "/ws/btcusdt@trade")) as ws:
            # A burst larger than the connection's queue, published in one go on the server's loop.
            async def burst() -> None:
                for n in range(50):
                    hub.publish("btcusdt@trade", json.dumps({"e": "trade", "n": n}).encode())

            await asyncio.to_thread(exchange.server.call, burst)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason == SLOW_CONSUMER

    asyncio.run(run())
