"""REST API benchmark: signed ``POST /api/v3/order`` requests through one server worker, durable journal on.

The server is a separate process: the demo config in a temporary directory, one uvicorn worker, fsync on, rate
limits lifted, users funded and keyed at start. Load comes from ``clients`` other processes, each keeping
``concurrency`` requests in flight on keep-alive connections (aiohttp), signing every request as a Binance client
does. Orders are limit buys and sells around one price, so about half of them trade. Figures, never pass/fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec

from exchange_framework.bench.stats import summary

SERVER_MODULE = "exchange_framework.bench.api_server"


def _stop(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if server.stdout is not None:
        server.stdout.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _client(base: str, keys: list[dict[str, Any]], orders: int, concurrency: int, seed: int) -> dict[str, Any]:
    import aiohttp

    rng = random.Random(seed)
    latencies: list[int] = []
    errors: dict[str, int] = {}
    remaining = orders
    connector = aiohttp.TCPConnector(limit=concurrency)

    async with aiohttp.ClientSession(base_url=base, connector=connector) as session:

        async def worker(n: int) -> None:
            nonlocal remaining
            key = keys[n % len(keys)]
            secret = key["secret"].encode()
            headers = {"X-MBX-APIKEY": key["key"], "Content-Type": "application/x-www-form-urlencoded"}
            while remaining > 0:
                remaining -= 1
                side = "BUY" if rng.random() < 0.5 else "SELL"
                price = 60000 + rng.randint(-20, 20) / 10
                query = urlencode(
                    {
                        "symbol": "BTCUSDT",
                        "side": side,
                        "type": "LIMIT",
                        "timeInForce": "GTC",
                        "quantity": "0.001",
                        "price": f"{price:.1f}",
                        "newOrderRespType": "ACK",
                        "timestamp": time.time_ns() // 1_000_000,
                    }
                )
                body = f"{query}&signature={hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()}"
                start = time.perf_counter_ns()
                async with session.post("/api/v3/order", data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors[str(response.status)] = errors.get(str(response.status), 0) + 1
                latencies.append(time.perf_counter_ns() - start)

        began = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"latencies": latencies, "errors": errors, "seconds": elapsed}


def _client_process(args: tuple[str, list[dict[str, Any]], int, int, int]) -> dict[str, Any]:
    base, keys, orders, concurrency, seed = args
    return asyncio.run(_client(base, keys, orders, concurrency, seed))


def run(orders: int = 20_000, *, clients: int = 1, concurrency: int = 64, warmup: int = 1_000) -> dict[str, Any]:
    """Start the server, warm it up, then time ``orders`` signed order requests from ``clients`` processes."""
    with tempfile.TemporaryDirectory(prefix="exchange-bench-api-") as tmp:
        port = _free_port()
        keys_file = Path(tmp) / "keys.json"
        server = subprocess.Popen(
            [sys.executable, "-m", SERVER_MODULE, "--port", str(port), "--data-dir", tmp, "--keys", str(keys_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 60
            while not keys_file.exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read() if server.stdout else ""
                    raise RuntimeError(f"the benchmark server did not start:\n{output}")
                time.sleep(0.1)
            keys = json.loads(keys_file.read_text())
            base = f"http://127.0.0.1:{port}"
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(clients) as pool:
                pool.map(
                    _client_process, [(base, keys, warmup // clients, concurrency, 1000 + i) for i in range(clients)]
                )
                began = time.perf_counter()
                results = pool.map(
                    _client_process, [(base, keys, orders // clients, concurrency, i) for i in range(clients)]
                )
                seconds = time.perf_counter() - began
        finally:
            _stop(server)
    latencies = sorted(lat for r in results for lat in r["latencies"])
    errors: dict[str, int] = {}
    for r in results:
        for status, count in r["errors"].items():
            errors[status] = errors.get(status, 0) + count
    result = summary(
        "api_rest_orders",
        len(latencies),
        seconds,
        latencies,
        server_workers=1,
        client_processes=clients,
        concurrency_per_client=concurrency,
        durable=True,
        errors=errors,
    )
    return result


class _DepthStamp(msgspec.Struct):
    """The fields of a ``depthUpdate`` the subscribers check: event time and the update-id range."""

    E: int
    U: int
    u: int


async def _subscribers(url: str, count: int, seconds: float) -> dict[str, Any]:
    """``count`` WebSocket connections to ``url`` for ``seconds``, each counting messages and id gaps.

    The subscribers use picows (a Cython WebSocket client that hands each frame to a callback, no task per
    message): with aiohttp the load generator, not the server, was the bottleneck (about 400 us of client CPU per
    frame against 13 us here), and the figures measured the client.
    """
    import picows

    decode = msgspec.json.Decoder(_DepthStamp).decode
    text, close = picows.WSMsgType.TEXT, picows.WSMsgType.CLOSE
    stats = {"received": 0, "gaps": 0}
    latencies: list[int] = []

    class Subscriber(picows.WSListener):
        last: int | None = None

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is not text:
                if frame.msg_type is close:
                    transport.disconnect()
                return
            stamp = decode(frame.get_payload_as_memoryview())
            if self.last is not None and self.last + 1 != stamp.U:
                stats["gaps"] += 1
            self.last = stamp.u
            stats["received"] += 1
            if not stats["received"] & 63:
                latencies.append(time.time_ns() - stamp.E * 1_000_000)

    connections = [await picows.ws_connect(Subscriber, url) for _ in range(count)]
    await asyncio.sleep(seconds)
    received, gaps = stats["received"], stats["gaps"]  # what arrived within the window
    for transport, _listener in connections:
        transport.disconnect()  # no close handshakes: a server still busy sending would make each wait
    return {"received": received, "gaps": gaps, "latencies": latencies}


def _subscriber_process(args: tuple[str, int, float]) -> dict[str, Any]:
    import uvloop

    url, count, seconds = args
    result: dict[str, Any] = uvloop.run(_subscribers(url, count, seconds))
    return result


def run_fanout(subscribers: int = 1_000, rate: int = 100, seconds: float = 5.0, clients: int = 2) -> dict[str, Any]:
    """Real WebSocket connections to one server worker: ``rate`` depth messages/s fanned out to ``subscribers``."""
    with tempfile.TemporaryDirectory(prefix="exchange-bench-ws-") as tmp:
        port = _free_port()
        keys_file = Path(tmp) / "keys.json"
        server = subprocess.Popen(
            [sys.executable, "-m", SERVER_MODULE, "--port", str(port), "--data-dir", tmp, "--keys", str(keys_file),
             "--users", "1", "--depth-rate", str(rate)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not keys_file.exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start")
                time.sleep(0.1)
            ctx = multiprocessing.get_context("spawn")
            url = f"ws://127.0.0.1:{port}/ws/btcusdt@depth"
            per = subscribers // clients
            with ctx.Pool(clients) as pool:
                results = pool.map(_subscriber_process, [(url, per, seconds)] * clients)
        finally:
            _stop(server)
    received = sum(r["received"] for r in results)
    latencies = sorted(lat for r in results for lat in r["latencies"])
    result = summary(
        "api_ws_fanout",
        received,
        seconds,
        latencies,
        subscribers=per * clients,
        published_per_s=rate,
        messages_per_subscriber_per_s=round(received / (per * clients) / seconds, 1),
        gaps=sum(r["gaps"] for r in results),
        transport="real WebSocket connections to one uvicorn worker",
    )
    return result
