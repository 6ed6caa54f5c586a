"""State is never lost on restart: orders, fills, balances and market data come back exactly from the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exchange_framework.api.app import create_app
from exchange_framework.config import ExchangeConfig
from exchange_framework.node import with_data_dir
from tests.api.client import Rest
from tests.api.conftest import make_user
from tests.api.server import serve


def snapshot_of(url: str, alice: Any, bob: Any) -> dict[str, Any]:
    public = Rest(url)
    a, b = Rest(url, alice.key), Rest(url, bob.key)
    try:
        return {
            "depth": public.public("GET", "/api/v3/depth", symbol="BTCUSDT").json(),
            "trades": public.public("GET", "/api/v3/trades", symbol="BTCUSDT").json(),
            # candles with trades (empty ones are filled up to the current minute, which moves on)
            "klines": [
                k for k in public.public("GET", "/api/v3/klines", symbol="BTCUSDT", interval="1m").json() if k[8]
            ],
            "alice_orders": a.signed("GET", "/api/v3/allOrders", symbol="BTCUSDT").json(),
            "bob_trades": b.signed("GET", "/api/v3/myTrades", symbol="BTCUSDT").json(),
            "alice_balances": a.signed("GET", "/api/v3/account").json()["balances"],
        }
    finally:
        for client in (public, a, b):
            client.close()


def test_everything_shown_before_a_restart_is_shown_after_it(demo_config: ExchangeConfig, tmp_path: Path) -> None:
    config = with_data_dir(demo_config, tmp_path / "data")
    with serve(create_app(config, settle_every=0.2)) as server:
        alice, bob = make_user(server, "alice@example.com"), make_user(server, "bob@example.com")
        a, b = Rest(server.url, alice.key), Rest(server.url, bob.key)
        for price in ("59000", "59500", "60000"):
            a.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                     quantity="0.2", price=price)  # fmt: skip
        b.signed("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.3")
        a.signed("DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId=a.signed(
            "GET", "/api/v3/openOrders", symbol="BTCUSDT").json()[0]["clientOrderId"])  # fmt: skip
        a.close()
        b.close()
        before = snapshot_of(server.url, alice, bob)
    assert len(before["trades"]) == 2 and len(before["alice_orders"]) == 3

    with serve(create_app(config, settle_every=0.2)) as server:
        after = snapshot_of(server.url, alice, bob)
    assert after == before
