"""Binance-format payloads: documented values and shapes, stream names, and ccxt's binance parsers reading them."""

from __future__ import annotations

import ccxt
import ccxt.pro
import msgspec
import pytest

from exchange_framework.engine.events import MarketStatusChanged
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.marketdata import MarketData, SymbolMap, UnknownSymbolError, binance, symbol_of
from exchange_framework.marketdata.intervals import INTERVALS, close_time, next_open, open_time, prev_open
from exchange_framework.marketdata.units import MarketUnits, percent_change
from exchange_framework.types import MarketStatus, Side
from tests.marketdata.helpers import FUNDING, T0_NS, Driver, feed, limit, new_market_data

# BNB-BTC as in Binance's documentation examples: 8-decimal prices (tick 0.00000001, lot 1 BNB)
BNB_BTC = MarketUnits(
    MarketSpec("BNB-BTC", "BNB", "BTC", base_per_lot=10**8, quote_per_tick_lot=1),
    AssetSpec("BNB", 8),
    AssetSpec("BTC", 8),
)


def test_symbols_map_both_ways_case_insensitively() -> None:
    assert symbol_of("BTC-USDT") == "BTCUSDT"
    symbols = SymbolMap(["BTC-USDT", "ETH-BTC"])
    assert symbols.symbol_of("ETH-BTC") == "ETHBTC"
    assert symbols.market_of("btcusdt") == symbols.market_of("BTCUSDT") == "BTC-USDT"
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'XRPUSDT': use one of BTCUSDT, ETHBTC"):
        symbols.market_of("XRPUSDT")
    with pytest.raises(ValueError, match="both have the symbol 'ABC'"):
        SymbolMap(["AB-C", "A-BC"])


def test_kline_boundaries_match_binance_examples() -> None:
    # the REST klines example: a weekly kline from Monday 2017-07-03 00:00 UTC
    assert open_time("1w", 1499040000000 + 123_456_789) == 1499040000000
    assert close_time("1w", 1499040000000) == 1499644799999
    # the kline stream example: event time 1672515782136 falls in the 1m kline 1672515780000..1672515839999
    assert open_time("1m", 1672515782136) == 1672515780000
    assert close_time("1m", 1672515780000) == 1672515839999
    # months: 2024 is a leap year; December rolls over to January
    feb = 1706745600000  # 2024-02-01
    assert open_time("1M", feb + 28 * 86_400_000) == feb  # 2024-02-29
    assert next_open("1M", feb) == 1709251200000  # 2024-03-01
    assert next_open("1M", 1701388800000) == 1704067200000  # 2023-12-01 -> 2024-01-01
    for interval in INTERVALS:
        start = open_time(interval, 1_700_000_000_123)
        assert start <= 1_700_000_000_123 < next_open(interval, start)
        assert next_open(interval, prev_open(interval, start)) == start


def test_decimal_strings_follow_the_tick_and_lot_sizes() -> None:
    assert BNB_BTC.price(9_900_000_000) == "99.00000000"
    assert BNB_BTC.price(400_000_200) == "4.00000200"
    assert BNB_BTC.price(400_000_200 - 9_900_000_000) == "-94.99999800"
    assert percent_change(9_900_000_000, 400_000_200) == "-95.960"  # Binance's 24hr ticker example
    assert percent_change(0, 5) == "0.000"
    assert percent_change(1000, 1000) == "0.000"
    assert percent_change(3, 4) == "33.333"
    assert percent_change(3, 2) == "-33.333"
    assert percent_change(200_000, 200_001) == "0.001"  # 0.0005 % rounds half away from zero
    data = new_market_data()
    btc = data.units("BTC-USDT")
    assert (btc.tick_size, btc.lot_size) == ("0.01", "0.0001")
    assert (btc.price(5_000_001), btc.qty(12_345), btc.quote(48_000_012)) == ("50000.01", "1.2345", "48.000012")
    assert btc.base(12_345 * 10_000) == "1.2345"
    assert btc.base(1) == "0.00000001"  # off the lot grid: all of BTC's decimals
    assert btc.average_price(300, 30_000) == "1.000000"  # 0.0003 USDT for 0.0003 BTC
    assert btc.average_price(1, 3) == "33.333333"  # 0.000001 USDT for 0.00000003 BTC
    assert btc.average_price(2, 3) == "66.666667"
    assert btc.average_price(5, 0) == "0.000000"
    eth = data.units("ETH-USDT")
    assert (eth.tick_size, eth.lot_size, eth.price(201), eth.qty(1_500)) == ("0.5", "0.001", "100.5", "1.500")


def scenario() -> tuple[MarketData, Driver]:
    driver = Driver()
    driver.run(FUNDING)
    driver.run(
        [
            limit(1, "BTC-USDT", Side.BUY, 5_000_000, 20_000),  # 50000.00 x 2 BTC
            limit(1, "BTC-USDT", Side.BUY, 4_999_999, 5_000),
            limit(1, "BTC-USDT", Side.SELL, 5_000_100, 3_000),
            limit(2, "BTC-USDT", Side.SELL, 5_000_000, 2_500),  # sells 0.25 BTC at 50000.00 to the bid
        ]
    )
    data = new_market_data()
    feed(data, driver.batches)
    return data, driver


def test_rest_payloads_have_binance_shapes() -> None:
    data, driver = scenario()
    assert binance.depth(data, data.depth("BTC-USDT")) == {
        "lastUpdateId": 4,
        "bids": [["50000.00", "1.7500"], ["49999.99", "0.5000"]],
        "asks": [["50001.00", "0.3000"]],
    }
    trade_ms = driver.ts_ns // 1_000_000
    (trade,) = binance.trades(data, data.trades("BTC-USDT"))
    assert trade == {
        "id": 1,
        "price": "50000.00",
        "qty": "0.2500",
        "quoteQty": "12500.000000",
        "time": trade_ms,
        "isBuyerMaker": True,
        "isBestMatch": True,
    }
    assert binance.agg_trades(data, data.agg_trades("BTC-USDT")) == [
        {"a": 1, "p": "50000.00", "q": "0.2500", "f": 1, "l": 1, "T": trade_ms, "m": True, "M": True}
    ]
    start = open_time("1m", trade_ms)
    assert binance.klines(data, "BTC-USDT", "1m", data.klines("BTC-USDT", "1m")) == [
        [start, "50000.00", "50000.00", "50000.00", "50000.00", "0.2500", start + 59_999, "12500.000000", 1,
         "0.0000", "0.000000", "0"]
    ]  # fmt: skip
    ticker = binance.ticker_24h(data, data.ticker_24h("BTC-USDT", trade_ms + 5))
    assert ticker == {
        "symbol": "BTCUSDT",
        "priceChange": "0.00",
        "priceChangePercent": "0.000",
        "weightedAvgPrice": "50000.000000",
        "prevClosePrice": "0.00",
        "lastPrice": "50000.00",
        "lastQty": "0.2500",
        "bidPrice": "50000.00",
        "bidQty": "1.7500",
        "askPrice": "50001.00",
        "askQty": "0.3000",
        "openPrice": "50000.00",
        "highPrice": "50000.00",
        "lowPrice": "50000.00",
        "volume": "0.2500",
        "quoteVolume": "12500.000000",
        "openTime": open_time("1m", trade_ms + 5 - 86_400_000),
        "closeTime": trade_ms + 5,
        "firstId": 1,
        "lastId": 1,
        "count": 1,
    }
    assert binance.ticker_price(data, "BTC-USDT") == {"symbol": "BTCUSDT", "price": "50000.00"}
    assert binance.ticker_price(data, "ETH-USDT") == {"symbol": "ETHUSDT", "price": "0.0"}
    assert binance.book_ticker(data, data.book_ticker("BTC-USDT")) == {
        "symbol": "BTCUSDT",
        "bidPrice": "50000.00",
        "bidQty": "1.7500",
        "askPrice": "50001.00",
        "askQty": "0.3000",
    }


def test_stream_payloads_have_binance_shapes() -> None:
    data = new_market_data()
    driver = Driver()
    driver.run(FUNDING)
    feed(data, driver.batches)
    (batch,) = driver.run([limit(1, "BTC-USDT", Side.BUY, 5_000_000, 20_000)])
    data.apply(*batch)
    ((ts, events),) = driver.run([limit(2, "BTC-USDT", Side.SELL, 4_000_000, 2_500)])
    changes = data.apply(ts, events)
    ms = ts // 1_000_000
    assert binance.depth_update(data, changes.books["BTC-USDT"], ms + 7) == {
        "e": "depthUpdate",
        "E": ms + 7,
        "s": "BTCUSDT",
        "U": 2,
        "u": 2,
        "b": [["50000.00", "1.7500"]],
        "a": [],
    }
    (record,) = changes.trades["BTC-USDT"]
    assert binance.trade_event(data, record) == {
        "e": "trade",
        "E": ms,
        "s": "BTCUSDT",
        "t": 1,
        "p": "50000.00",
        "q": "0.2500",
        "T": ms,
        "m": True,
        "M": True,
    }
    (agg,) = changes.agg_trades["BTC-USDT"]
    assert binance.agg_trade_event(data, agg) == {
        "e": "aggTrade",
        "E": ms,
        "s": "BTCUSDT",
        "a": 1,
        "p": "50000.00",
        "q": "0.2500",
        "f": 1,
        "l": 1,
        "T": ms,
        "m": True,
        "M": True,
    }
    kline = data.kline("BTC-USDT", "1m", ms)
    assert kline is not None
    event = binance.kline_event(data, "BTC-USDT", "1m", kline, ms)
    start = open_time("1m", ms)
    assert event == {
        "e": "kline",
        "E": ms,
        "s": "BTCUSDT",
        "k": {
            "t": start,
            "T": start + 59_999,
            "s": "BTCUSDT",
            "i": "1m",
            "f": 1,
            "L": 1,
            "o": "50000.00",
            "c": "50000.00",
            "h": "50000.00",
            "l": "50000.00",
            "v": "0.2500",
            "n": 1,
            "x": False,
            "q": "12500.000000",
            "V": "0.0000",
            "Q": "0.000000",
            "B": "0",
        },
    }
    assert binance.kline_event(data, "BTC-USDT", "1m", kline, start + 60_000)["k"]["x"] is True
    ticker = binance.ticker_event(data, data.ticker_24h("BTC-USDT", ms), ms)
    assert list(ticker) == list("eEspPwxcQbBaAohlvqOCFLn")
    assert (ticker["e"], ticker["c"], ticker["Q"], ticker["n"], ticker["F"], ticker["L"]) == (
        "24hrTicker", "50000.00", "0.2500", 1, 1, 1
    )  # fmt: skip
    assert binance.mini_ticker_event(data, data.ticker_24h("BTC-USDT", ms), ms) == {
        "e": "24hrMiniTicker",
        "E": ms,
        "s": "BTCUSDT",
        "c": "50000.00",
        "o": "50000.00",
        "h": "50000.00",
        "l": "50000.00",
        "v": "0.2500",
        "q": "12500.000000",
    }
    assert binance.book_ticker_event(data, data.book_ticker("BTC-USDT")) == {
        "u": 2,
        "s": "BTCUSDT",
        "b": "50000.00",
        "B": "1.7500",
        "a": "0.00",
        "A": "0.0000",
    }
    raw = binance.encode({"e": "trade", "p": "1.5"})
    assert raw == b'{"e":"trade","p":"1.5"}'
    assert msgspec.json.decode(binance.combined("btcusdt@trade", raw)) == {
        "stream": "btcusdt@trade",
        "data": {"e": "trade", "p": "1.5"},
    }


def test_stream_names_parse_with_a_case_insensitive_symbol() -> None:
    data = new_market_data()
    parse = binance.parse_stream
    assert parse(data, "btcusdt@depth") == binance.StreamName("btcusdt@depth", "depth", "BTC-USDT", speed_ms=1000)
    assert parse(data, "BTCUSDT@depth@100ms").name == "btcusdt@depth@100ms"
    assert parse(data, "btcusdt@depth@1000ms").name == "btcusdt@depth"
    assert parse(data, "ethusdt@depth10@100ms") == binance.StreamName(
        "ethusdt@depth10@100ms", "partialDepth", "ETH-USDT", speed_ms=100, levels=10
    )
    assert parse(data, "ethusdt@trade").kind == "trade"
    assert parse(data, "ethusdt@aggTrade").kind == "aggTrade"
    assert parse(data, "ethusdt@kline_1M").interval == "1M"
    assert parse(data, "ethusdt@kline_1m").interval == "1m"
    assert parse(data, "ethusdt@ticker").kind == "ticker"
    assert parse(data, "ethusdt@bookTicker").kind == "bookTicker"
    assert parse(data, "ETHUSDT@miniTicker") == binance.StreamName("ethusdt@miniTicker", "miniTicker", "ETH-USDT")
    assert parse(data, "!miniTicker@arr") == binance.StreamName("!miniTicker@arr", "allMiniTickers", "")
    with pytest.raises(binance.StreamNameError, match="unknown symbol 'xrpusdt'"):
        parse(data, "xrpusdt@trade")
    with pytest.raises(binance.StreamNameError, match="unknown kline interval '2m'"):
        parse(data, "btcusdt@kline_2m")
    for bad in ("btcusdt@depth7", "btcusdt@avgPrice", "btcusdt", "btcusdt@TRADE", "@trade"):
        with pytest.raises(binance.StreamNameError, match="unsupported stream"):
            parse(data, bad)
    assert binance.stream_name(data, "ETH-USDT", "kline_1h") == "ethusdt@kline_1h"


def test_ccxt_binance_parsers_read_the_payloads() -> None:
    """The payloads parse with ccxt's own binance class (offline: its parsers, no network)."""
    data, driver = scenario()
    exchange = ccxt.binance()
    book = exchange.parse_order_book(binance.depth(data, data.depth("BTC-USDT")), "BTC/USDT", None, "bids", "asks")
    assert book["bids"] == [[50000.0, 1.75], [49999.99, 0.5]]
    assert book["asks"] == [[50001.0, 0.3]]
    (raw_trade,) = binance.trades(data, data.trades("BTC-USDT"))
    trade = exchange.parse_trade(raw_trade)
    assert (trade["id"], trade["price"], trade["amount"], trade["cost"], trade["side"]) == (
        "1",
        50000.0,
        0.25,
        12500.0,
        "sell",
    )
    (raw_agg,) = binance.agg_trades(data, data.agg_trades("BTC-USDT"))
    agg = exchange.parse_trade(raw_agg)  # fetchTrades' default endpoint for spot is aggTrades
    assert (agg["id"], agg["price"], agg["amount"], agg["side"], agg["timestamp"]) == (
        "1", 50000.0, 0.25, "sell", raw_trade["time"]
    )  # fmt: skip
    (row,) = binance.klines(data, "BTC-USDT", "1m", data.klines("BTC-USDT", "1m"))
    assert exchange.parse_ohlcv(row)[1:] == [50000.0, 50000.0, 50000.0, 50000.0, 0.25]
    now = driver.ts_ns // 1_000_000
    ticker = exchange.parse_ticker(binance.ticker_24h(data, data.ticker_24h("BTC-USDT", now)))
    assert (ticker["last"], ticker["bid"], ticker["ask"], ticker["baseVolume"], ticker["quoteVolume"]) == (
        50000.0, 50000.0, 50001.0, 0.25, 12500.0
    )  # fmt: skip
    assert (ticker["timestamp"], ticker["percentage"], ticker["vwap"]) == (now, 0.0, 50000.0)
    assert exchange.parse_ticker(binance.book_ticker(data, data.book_ticker("BTC-USDT")))["bidVolume"] == 1.75
    assert exchange.parse_last_price(binance.ticker_price(data, "BTC-USDT"))["price"] == 50000.0
    streams = ccxt.pro.binance()
    stream_trade = streams.parse_ws_trade(binance.trade_event(data, data.trades("BTC-USDT")[0]))
    assert (stream_trade["price"], stream_trade["amount"], stream_trade["side"]) == (50000.0, 0.25, "sell")
    stream_ticker = streams.parse_ws_ticker(binance.ticker_event(data, data.ticker_24h("BTC-USDT", now), now), "spot")
    assert (stream_ticker["last"], stream_ticker["bid"], stream_ticker["baseVolume"]) == (50000.0, 50000.0, 0.25)
    mini = streams.parse_ws_ticker(binance.mini_ticker_event(data, data.ticker_24h("BTC-USDT", now), now), "spot")
    assert (mini["last"], mini["open"], mini["quoteVolume"]) == (50000.0, 50000.0, 12500.0)


def test_encoders_refuse_unknown_intervals() -> None:
    data, _ = scenario()
    with pytest.raises(ValueError, match="unknown kline interval"):
        binance.klines(data, "BTC-USDT", "7m", [])


def test_market_data_start_time_is_from_the_journal_not_the_clock() -> None:
    data, driver = scenario()
    assert data.trades("BTC-USDT")[0].time_ms == driver.ts_ns // 1_000_000
    assert driver.ts_ns > T0_NS


def test_exchange_info_filters_come_from_the_market_spec_and_ccxt_reads_them() -> None:
    data = MarketData(
        {"BTC": AssetSpec("BTC", 8), "USDT": AssetSpec("USDT", 6)},
        {
            "BTC-USDT": MarketSpec(
                "BTC-USDT", "BTC", "USDT", 10_000, 1, min_qty=5, max_qty=1_000_000, max_price=10**9, min_notional=10**7
            )
        },
    )
    filters = binance.symbol_filters(data, "BTC-USDT")
    assert filters == [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "10000000.00", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.0005", "maxQty": "100.0000", "stepSize": "0.0001"},
        {
            "filterType": "NOTIONAL",
            "minNotional": "10.000000",
            "applyMinToMarket": False,
            "maxNotional": "1000000000.000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 0,
        },
    ]
    assert binance.symbol_status(data, "BTC-USDT") == "TRADING"
    data.apply(T0_NS, [MarketStatusChanged(1, "BTC-USDT", MarketStatus.HALTED)])
    assert binance.symbol_status(data, "BTC-USDT") == "HALT"
    exchange = ccxt.binance()
    exchange.options["crossMarginPairsData"] = exchange.options["isolatedMarginPairsData"] = []  # no margin here
    market = exchange.parse_market(
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "quoteAsset": "USDT",
            "baseAssetPrecision": 8,
            "quoteAssetPrecision": 6,
            "isSpotTradingAllowed": True,
            "permissionSets": [["SPOT"]],
            "filters": filters,
        }
    )
    assert (market["symbol"], market["active"], market["spot"]) == ("BTC/USDT", True, True)
    assert (market["precision"]["price"], market["precision"]["amount"]) == (0.01, 0.0001)
    assert market["limits"]["amount"] == {"min": 0.0005, "max": 100.0}
    assert market["limits"]["cost"]["min"] == 10.0
