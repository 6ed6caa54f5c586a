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


async def _subscribers(url: str, count: int, seconds: float) -> dict[str, Any]:
    import aiohttp

    received = 0
    gaps = 0
    latencies: list[int] = []
    # limit=0: a WebSocket keeps its connection for good, and aiohttp's default pool stops at 100 connections.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = [await session.ws_connect(url, max_msg_size=0) for _ in range(count)]
        stop_at = time.monotonic() + seconds

        async def read(ws: Any) -> None:
            nonlocal received, gaps
            last = None
            while True:
                remaining = stop_at - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    message = await asyncio.wait_for(ws.receive(), remaining)
                except TimeoutError:
                    return
                if message.type != aiohttp.WSMsgType.TEXT:
                    return
                data = json.loads(message.data)
                if last is not None and data["U"] != last + 1:
                    gaps += 1
                last = data["u"]
                received += 1
                if received % 64 == 0:
                    latencies.append(time.time_ns() - data["E"] * 1_000_000)

        await asyncio.gather(*(read(ws) for ws in sockets))
        # No close handshakes: a server still busy sending would make each wait; closing the session aborts them.
    return {"received": received, "gaps": gaps, "latencies": latencies}


def _subscriber_process(args: tuple[str, int, float]) -> dict[str, Any]:
    url, count, seconds = args
    return asyncio.run(_subscribers(url, count, seconds))


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
