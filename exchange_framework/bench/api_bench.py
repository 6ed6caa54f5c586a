"""REST API benchmark: signed ``POST /api/v3/order`` requests through one server worker, durable journal on.

The server is a separate process: the demo config in a temporary directory, one uvicorn worker, fsync on, rate
limits lifted, users funded and keyed at start. Load comes from wrk (C, one thread per ``clients``) keeping
``concurrency`` requests in flight on keep-alive connections; the requests are signed beforehand as a Binance
client signs them, so the load generator's own cost stays far below the server's (a Python client spent as much
CPU per request as the server did). Orders are limit buys and sells around one price, so about half of them
trade. Figures, never pass/fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import shutil
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


RECV_WINDOW_MS = 60_000  # Binance's largest: every pre-signed request must reach the server within it
WRK_SCRIPT = Path(__file__).with_name("wrk_orders.lua")


def signed_orders(keys: list[dict[str, Any]], count: int, seed: int) -> list[str]:
    """``count`` signed limit-order requests as ``api key<TAB>form body`` lines, signed as a Binance client signs.

    Buys and sells around one price, so about half trade. Signed beforehand, with the largest ``recvWindow``, so
    the load generator only sends; the server checks every signature exactly as it would a live client's.
    """
    rng = random.Random(seed)
    now_ms = time.time_ns() // 1_000_000
    lines = []
    for n in range(count):
        key = keys[n % len(keys)]
        query = urlencode(
            {
                "symbol": "BTCUSDT",
                "side": "BUY" if rng.random() < 0.5 else "SELL",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.001",
                "price": f"{60000 + rng.randint(-20, 20) / 10:.1f}",
                "newOrderRespType": "ACK",
                "recvWindow": RECV_WINDOW_MS,
                "timestamp": now_ms,
            }
        )
        signature = hmac.new(key["secret"].encode(), query.encode(), hashlib.sha256).hexdigest()
        lines.append(f"{key['key']}\t{query}&signature={signature}")
    return lines


def _wrk(base: str, requests_file: Path, seconds: float, threads: int, connections: int) -> dict[str, Any]:
    """Send the file's requests in a loop with wrk for ``seconds``; wrk's own figures."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("the REST benchmark needs wrk (Debian package wrk; scripts/setup installs it)")
    command = [wrk, f"-t{threads}", f"-c{max(connections, threads)}", f"-d{max(1, round(seconds))}s", "--latency",
               "-s", str(WRK_SCRIPT), base, "--", str(requests_file)]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        if line.startswith("WRK-RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("WRK-RESULT "))
            return result
    raise RuntimeError(f"wrk printed no result:\n{output}")


def run(
    orders: int = 20_000, *, seconds: float = 10.0, clients: int = 1, concurrency: int = 64, warmup: float = 2.0
) -> dict[str, Any]:
    """Start the server, warm it up, then send ``orders`` distinct signed order requests in a loop for ``seconds``
    with wrk (``clients`` threads, ``concurrency`` keep-alive connections in all)."""
    if warmup + seconds > RECV_WINDOW_MS / 1000 - 10:
        raise ValueError(f"warm-up and run must fit in {RECV_WINDOW_MS // 1000 - 10} s: requests are signed before")
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
            requests_file = Path(tmp) / "orders.txt"
            requests_file.write_text("\n".join(signed_orders(keys, orders, seed=0)) + "\n")
            _wrk(base, requests_file, warmup, clients, concurrency)
            measured = _wrk(base, requests_file, seconds, clients, concurrency)
        finally:
            _stop(server)
    return {
        **summary("api_rest_orders", measured["requests"], measured["duration_us"] / 1e6, []),
        "p50_us": float(measured["p50_us"]),
        "p99_us": float(measured["p99_us"]),
        "p999_us": float(measured["p999_us"]),
        "server_workers": 1,
        "load_generator": "wrk",
        "load_threads": clients,
        "distinct_requests": orders,
        "connections": max(concurrency, clients),
        "durable": True,
        "errors": measured["errors"],
        "socket_errors": measured["socket_errors"],
    }


class _DepthStamp(msgspec.Struct):
    """The fields of a ``depthUpdate`` the subscribers check: event time and the update-id range."""

    E: int
    U: int
    u: int


async def _subscribers(url: str, count: int, seconds: float, start: Any = None) -> dict[str, Any]:
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
    if start is not None:  # every client process connected: the window starts for all at once
        await asyncio.to_thread(start.wait)
    # The window starts once every connection is up: what arrived while later ones connected is not counted.
    received_before, gaps_before, latencies_before = stats["received"], stats["gaps"], len(latencies)
    await asyncio.sleep(seconds)
    received, gaps = stats["received"] - received_before, stats["gaps"] - gaps_before
    del latencies[:latencies_before]
    for transport, _listener in connections:
        transport.disconnect()  # no close handshakes: a server still busy sending would make each wait
    return {"received": received, "gaps": gaps, "latencies": latencies}


_window_start: Any = None  # the Barrier of run_fanout, in each subscriber process


def _set_window_start(barrier: Any) -> None:
    global _window_start
    _window_start = barrier


def _subscriber_process(args: tuple[str, int, float]) -> dict[str, Any]:
    import uvloop

    url, count, seconds = args
    result: dict[str, Any] = uvloop.run(_subscribers(url, count, seconds, _window_start))
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
            start = ctx.Barrier(clients + 1)
            with ctx.Pool(clients, initializer=_set_window_start, initargs=(start,)) as pool:
                pending = pool.map_async(_subscriber_process, [(url, per, seconds)] * clients)
                start.wait(timeout=120)
                cpu_before = _cpu_seconds(server.pid)
                time.sleep(seconds)
                server_cpu = _cpu_seconds(server.pid) - cpu_before
                results = pending.get(timeout=120)
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
        server_cpu_s=round(server_cpu, 2),
        server_cpu_us_per_message=round(server_cpu * 1e6 / received, 2) if received else None,
        transport="real WebSocket connections to one uvicorn worker",
    )
    return result
