"""The running exchange calls the plugins' startup hook before anything runs, and shutdown after it stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from exchange_framework.api.app import create_app
from exchange_framework.config import ExchangeConfig
from exchange_framework.hookspecs import hookimpl
from exchange_framework.node import with_data_dir
from exchange_framework.plugins import make_plugin_manager
from tests.api.server import serve


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, ExchangeConfig]] = []
        self.fail = fail

    @hookimpl
    def startup(self, config: ExchangeConfig) -> None:
        self.calls.append(("startup", config))
        if self.fail:
            raise ValueError("[plugins.settings.recorder] token: not set")

    @hookimpl
    def shutdown(self, config: ExchangeConfig) -> None:
        self.calls.append(("shutdown", config))


def test_startup_then_shutdown_once_each(demo_config: ExchangeConfig, tmp_path: Path) -> None:
    config = with_data_dir(demo_config, tmp_path / "data")
    pm = make_plugin_manager(config)
    recorder = Recorder()
    pm.register(recorder, name="recorder")
    app = create_app(config, pm=pm)
    assert recorder.calls == []
    with serve(app):
        assert recorder.calls == [("startup", config)]
    assert recorder.calls == [("startup", config), ("shutdown", config)]


def test_a_failing_startup_stops_the_start(demo_config: ExchangeConfig, tmp_path: Path) -> None:
    config = with_data_dir(demo_config, tmp_path / "data")
    pm = make_plugin_manager(config)
    recorder = Recorder(fail=True)
    pm.register(recorder, name="recorder")
    app = create_app(config, pm=pm)

    async def start() -> dict[str, Any]:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        task = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
        )
        answer = await outbox.get()
        task.cancel()
        return answer

    answer = asyncio.run(start())
    assert answer["type"] == "lifespan.startup.failed"
    assert "[plugins.settings.recorder] token: not set" in answer["message"]
    assert recorder.calls == [("startup", config)]
    assert not (tmp_path / "data" / "identity.db").exists()  # nothing else ran
