"""``exchange demo`` end to end: a real process serving the branded exchange, with the market maker trading,
stopped with Ctrl-C and started again on the same data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.server import free_port

EXCHANGE = Path(sys.executable).parent / "exchange"


def start(work: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EXCHANGE_CONFIG", "EXCHANGE_KEYSTORE_PASSPHRASE")}
    return subprocess.Popen(
        [str(EXCHANGE), "demo", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the demo exited early:\n{process.stdout.read() if process.stdout else ''}"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


@pytest.mark.slow
def test_demo_serves_a_trading_exchange_and_carries_on_after_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start(tmp_path, port)
    try:
        wait_for(f"{base}/api/v3/ping", process)
        deadline = time.monotonic() + 30
        while not httpx.get(f"{base}/api/v3/trades", params={"symbol": "BTCUSDT"}).json():
            assert time.monotonic() < deadline, "the market maker made no trade"
            time.sleep(0.5)
        book = httpx.get(f"{base}/api/v3/depth", params={"symbol": "BTCUSDT"}).json()
        assert book["bids"] and book["asks"]
        info = httpx.get(f"{base}/api/v3/exchangeInfo").json()
        assert {s["symbol"] for s in info["symbols"]} == {"BTCUSDT", "ETHUSDT"}
    finally:
        output = stop(process)
    assert "Demo Exchange is running at" in output
    assert "alice@demo.exchange" in output and "demo-password-1" in output
    assert (tmp_path / "var/demo/commands.journal").exists()

    again = start(tmp_path, port)
    try:
        wait_for(f"{base}/api/v3/ping", again)
        trades = httpx.get(f"{base}/api/v3/trades", params={"symbol": "BTCUSDT", "limit": 1000}).json()
        assert trades and trades[0]["id"] == 1, "the trades of the first run are still there"
    finally:
        second = stop(again)
    assert "API key" in second  # the demo logins' keys are shown again, not made anew


@pytest.mark.slow
def test_run_serves_the_exchange_without_demo_data(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "EXCHANGE_CONFIG"}
    process = subprocess.Popen(
        [str(EXCHANGE), "run", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v3/ping", process)
        time.sleep(1.5)  # a demo's market maker would have traded by now
        trades = httpx.get(f"http://127.0.0.1:{port}/api/v3/trades", params={"symbol": "BTCUSDT"}).json()
        assert trades == []
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    finally:
        output = stop(process)
    assert "serving on" in output
    assert (tmp_path / "data" / "commands.journal").exists()
