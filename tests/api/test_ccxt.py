"""The real ccxt client (its ``binance`` class) against the local exchange, unchanged but for the URLs."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import pytest

from tests.api.conftest import Exchange, User

API_NAMES = ("public", "private", "v1", "v3", "sapi", "sapiV2", "sapiV3", "sapiV4")


def client(exchange: Exchange, user: User | None = None) -> Any:
    options: dict[str, Any] = {
        "enableRateLimit": False,
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchMargins": False,
            "fetchCurrencies": False,
            "defaultType": "spot",
        },
    }
    if user is not None:
        options.update(apiKey=user.key.key, secret=user.key.secret)
    ex = ccxt.binance(options)
    for name in API_NAMES:
        if name in ex.urls["api"]:
            path = ex.urls["api"][name].split("binance.com", 1)[1]
            ex.urls["api"][name] = exchange.url + path
    return ex


def test_load_markets(exchange: Exchange) -> None:
    ex = client(exchange)
    markets = ex.load_markets()
    assert set(markets) == {"BTC/USDT", "ETH/USDT"}
    btc = markets["BTC/USDT"]
    assert btc["id"] == "BTCUSDT"
    assert btc["precision"]["price"] == pytest.approx(0.1)
    assert btc["precision"]["amount"] == pytest.approx(0.00001)
    assert btc["limits"]["amount"]["min"] == pytest.approx(0.00001)
    assert btc["active"] is True


def test_balance_orders_and_fills(exchange: Exchange) -> None:
    alice, bob = client(exchange, exchange.alice), client(exchange, exchange.bob)
    balance = alice.fetch_balance()
    assert balance["USDT"]["free"] == 1_000_000
    assert balance["BTC"]["total"] == 10

    order = alice.create_order("BTC/USDT", "limit", "buy", 0.5, 60000)
    assert order["status"] == "open"
    fetched = alice.fetch_order(order["id"], "BTC/USDT")
    assert fetched["amount"] == 0.5 and fetched["price"] == 60000
    assert [o["id"] for o in alice.fetch_open_orders("BTC/USDT")] == [order["id"]]
    balance = alice.fetch_balance()
    assert balance["USDT"]["used"] == 30000  # 0.5 BTC at 60,000 is held

    sell = bob.create_order("BTC/USDT", "market", "sell", 0.2)
    assert sell["status"] == "closed"
    assert sell["filled"] == 0.2
    assert sell["average"] == 60000

    trades = alice.fetch_my_trades("BTC/USDT")
    assert len(trades) == 1
    assert trades[0]["side"] == "buy" and trades[0]["amount"] == 0.2 and trades[0]["price"] == 60000
    assert trades[0]["takerOrMaker"] == "maker"

    cancelled = alice.cancel_order(order["id"], "BTC/USDT")
    assert cancelled["status"] == "canceled"
    assert alice.fetch_open_orders("BTC/USDT") == []
    closed = alice.fetch_order(order["id"], "BTC/USDT")
    assert closed["filled"] == 0.2 and closed["status"] == "canceled"
    balance = alice.fetch_balance()
    assert balance["USDT"]["used"] == 0
    assert balance["BTC"]["total"] == pytest.approx(10.2 - 0.2 * 0.001)  # maker fee 0.1 % in the bought asset


def test_errors_map_to_ccxt_exceptions(exchange: Exchange) -> None:
    alice = client(exchange, exchange.alice)
    with pytest.raises(ccxt.InsufficientFunds):
        alice.create_order("BTC/USDT", "limit", "buy", 100, 60000)
    with pytest.raises(ccxt.OrderNotFound):
        alice.fetch_order("999999", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        alice.cancel_order("999999", "BTC/USDT")
    wrong = client(exchange, exchange.alice)
    wrong.secret = "0" * 64
    with pytest.raises(ccxt.AuthenticationError):
        wrong.fetch_balance()


def test_public_market_data(exchange: Exchange) -> None:
    alice, bob = client(exchange, exchange.alice), client(exchange, exchange.bob)
    alice.create_order("BTC/USDT", "limit", "buy", 1, 59000)
    alice.create_order("BTC/USDT", "limit", "buy", 0.5, 59500)
    bob.create_order("BTC/USDT", "limit", "sell", 0.3, 61000)
    bob.create_order("BTC/USDT", "market", "sell", 0.25)  # trades 0.25 at 59,500

    public = client(exchange)
    book = public.fetch_order_book("BTC/USDT")
    assert book["bids"] == [[59500, 0.25], [59000, 1]]
    assert book["asks"] == [[61000, 0.3]]
    assert book["nonce"] > 0

    trades = public.fetch_trades("BTC/USDT")
    assert [(t["price"], t["amount"], t["side"]) for t in trades] == [(59500, 0.25, "sell")]

    candles = public.fetch_ohlcv("BTC/USDT", "1m")
    assert candles[-1][1:] == [59500, 59500, 59500, 59500, 0.25]

    ticker = public.fetch_ticker("BTC/USDT")
    assert ticker["last"] == 59500
    assert ticker["bid"] == 59500 and ticker["ask"] == 61000
    assert ticker["baseVolume"] == 0.25


def pro_client(exchange: Exchange, user: User) -> Any:
    import ccxt.pro

    ex = ccxt.pro.binance(
        {
            "apiKey": user.key.key,
            "secret": user.key.secret,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False},
        }
    )
    for name, url in list(ex.urls["api"].items()):
        if isinstance(url, str) and "binance.com" in url:
            ex.urls["api"][name] = exchange.url + url.split("binance.com", 1)[1]
    ws = exchange.url.replace("http://", "ws://")
    ex.urls["api"]["ws"]["spot"] = ws + "/ws"
    ex.urls["api"]["ws"]["ws-api"]["spot"] = ws + "/ws-api/v3"
    return ex


def test_ccxt_pro_streams(exchange: Exchange) -> None:
    """ccxt's WebSocket client: public order book, trades, candles and ticker; private orders, fills, balance."""
    bob = client(exchange, exchange.bob)

    async def run() -> None:
        ex = pro_client(exchange, exchange.alice)
        try:
            await ex.load_markets()
            watches = {
                "book": asyncio.create_task(ex.watch_order_book("BTC/USDT")),
                "orders": asyncio.create_task(ex.watch_orders("BTC/USDT")),
                "balance": asyncio.create_task(ex.watch_balance()),
            }
            await asyncio.sleep(0.5)
            await ex.create_order("BTC/USDT", "limit", "buy", 0.5, 60000)
            book = await asyncio.wait_for(watches["book"], 10)
            while not book["bids"]:  # the first update may predate the order
                book = await asyncio.wait_for(ex.watch_order_book("BTC/USDT"), 10)
            assert book["bids"][0][:2] == [60000, 0.5]
            orders = await asyncio.wait_for(watches["orders"], 10)
            assert orders[-1]["status"] == "open" and orders[-1]["amount"] == 0.5
            balance = await asyncio.wait_for(watches["balance"], 10)
            assert balance["USDT"]["used"] == 30000

            trades = asyncio.create_task(ex.watch_trades("BTC/USDT"))
            mine = asyncio.create_task(ex.watch_my_trades("BTC/USDT"))
            candles = asyncio.create_task(ex.watch_ohlcv("BTC/USDT", "1m"))
            ticker = asyncio.create_task(ex.watch_ticker("BTC/USDT"))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(bob.create_order, "BTC/USDT", "market", "sell", 0.2)
            public = await asyncio.wait_for(trades, 10)
            assert (public[-1]["price"], public[-1]["amount"]) == (60000, 0.2)
            fills = await asyncio.wait_for(mine, 10)
            assert fills[-1]["side"] == "buy" and fills[-1]["amount"] == 0.2
            ohlcv = await asyncio.wait_for(candles, 10)
            assert ohlcv[-1][4] == 60000
            last = await asyncio.wait_for(ticker, 10)
            while last["last"] != 60000:  # the first mini ticker may predate the trade
                last = await asyncio.wait_for(ex.watch_ticker("BTC/USDT"), 10)
        finally:
            await ex.close()

    asyncio.run(run())
