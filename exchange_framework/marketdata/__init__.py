"""Market data: L2 books, trades, klines and 24-hour tickers from engine events, Binance-format payloads, and a
WebSocket fan-out hub.

- :class:`MarketData` (``state``): the state, fed ``apply(ts_ns, events)``, idempotent by ``seq``.
- :func:`rebuild_from_journal` (``rebuild``): the state rebuilt at start-up from the command journal.
- ``binance``: REST and stream payloads, stream-name parsing.
- :class:`Hub` (``hub``) and :class:`StreamPublisher` (``publisher``): encoded messages to subscribers.
"""

from __future__ import annotations

from exchange_framework.marketdata.hub import SLOW_CONSUMER, Hub, SlowConsumerError, Subscriber, SubscriberClosedError
from exchange_framework.marketdata.intervals import INTERVALS
from exchange_framework.marketdata.publisher import DepthBatcher, StreamPublisher
from exchange_framework.marketdata.rebuild import rebuild, rebuild_from_journal
from exchange_framework.marketdata.records import (
    AggTrade,
    BookTicker,
    BookUpdate,
    Changes,
    DepthSnapshot,
    Kline,
    Ticker24h,
    TradeRecord,
)
from exchange_framework.marketdata.state import MarketData, UnknownMarketError
from exchange_framework.marketdata.symbols import SymbolMap, UnknownSymbolError, symbol_of

__all__ = [
    "INTERVALS",
    "SLOW_CONSUMER",
    "AggTrade",
    "BookTicker",
    "BookUpdate",
    "Changes",
    "DepthBatcher",
    "DepthSnapshot",
    "Hub",
    "Kline",
    "MarketData",
    "SlowConsumerError",
    "StreamPublisher",
    "Subscriber",
    "SubscriberClosedError",
    "SymbolMap",
    "Ticker24h",
    "TradeRecord",
    "UnknownMarketError",
    "UnknownSymbolError",
    "rebuild",
    "rebuild_from_journal",
    "symbol_of",
]
