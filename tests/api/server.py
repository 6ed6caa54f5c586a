"""Run the exchange app on a real HTTP server (uvicorn on 127.0.0.1, a free port) in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn

from exchange_framework.api.app import ExchangeApp
from exchange_framework.api.context import ApiContext

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningServer:
    app: ExchangeApp
    url: str
    loop: asyncio.AbstractEventLoop

    @property
    def ctx(self) -> ApiContext:
        return self.app.ctx

    def call(self, coro_fn: Callable[[], Any]) -> Any:
        """Run a coroutine on the server's event loop (where the node lives) and return its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro_fn(), self.loop)
        return future.result(timeout=30)


@contextmanager
def serve(app: ExchangeApp) -> Iterator[RunningServer]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the exchange server did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(app, f"http://127.0.0.1:{port}", loops[0])
    finally:
        server.should_exit = True
        thread.join(timeout=30)
