"""Engine state as canonical bytes: snapshots for fast start-up, and a hash that proves two states equal.

The encoding lists everything that can influence future events (balances, resting orders in queue order with
their iceberg slices, waiting stops, last prices, market status, counters) in a fixed order, so equal states
give equal bytes and the same hash, however they were reached.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any

import msgspec

from exchange_framework.engine.book import Level, Order
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.types import MarketStatus, OrderType, Side, StpMode, TimeInForce

SNAPSHOT_VERSION = 4  # 2: per-account fee rates; 3: funds holds; 4: credit/debit references

_encoder = msgspec.msgpack.Encoder()


def _order_row(o: Order) -> list[Any]:
    return [
        o.order_id,
        o.account,
        int(o.side),
        int(o.type),
        o.price,
        o.remaining,
        o.visible,
        o.display,
        o.hold,
        o.stop_price,
        int(o.tif),
        int(o.stp),
        o.post_only,
        o.client_order_id,
    ]


def engine_state(engine: MatchingEngine) -> dict[str, Any]:
    """A plain, canonical description of the engine's state."""
    markets = []
    for symbol in sorted(engine.books):
        book = engine.books[symbol]
        stops = sorted(
            (
                o
                for o in engine.orders.values()
                if o.market == symbol and o.type in (OrderType.STOP_LIMIT, OrderType.STOP_MARKET)
            ),
            key=lambda o: o.order_id,
        )
        markets.append(
            [
                symbol,
                int(book.status),
                book.last_price,
                [_order_row(o) for o in book.iter_orders(Side.BUY)],
                [_order_row(o) for o in book.iter_orders(Side.SELL)],
                [_order_row(o) for o in stops],
            ]
        )
    accounts = []
    for account_id in sorted(engine.accounts):
        acct = engine.accounts[account_id]
        balances = [
            [a, acct.available[a], acct.held[a]] for a in sorted(acct.available) if acct.available[a] or acct.held[a]
        ]
        accounts.append([account_id, balances, acct.maker_ppm, acct.taker_ppm])
    return {
        "version": SNAPSHOT_VERSION,
        "last_seq": engine.last_seq,
        "next_trade_id": engine.next_trade_id,
        "fees": [[a, engine.fees_collected[a]] for a in sorted(engine.fees_collected)],
        "accounts": accounts,
        "fund_holds": [[ref, *engine.fund_holds[ref]] for ref in sorted(engine.fund_holds)],
        "transfer_refs": sorted(engine.transfer_refs),
        "markets": markets,
    }


def snapshot(engine: MatchingEngine) -> bytes:
    """Serialise the engine's state: msgpack, or JSON when a balance exceeds msgpack's 64-bit integers."""
    state = engine_state(engine)
    try:
        return _encoder.encode(state)
    except OverflowError:
        return msgspec.json.encode(state)


def state_hash(engine: MatchingEngine) -> str:
    """SHA-256 of the canonical state, hex."""
    return hashlib.sha256(snapshot(engine)).hexdigest()


def _order_from_row(engine: MatchingEngine, row: list[Any], market: str) -> Order:
    (oid, account, side, otype, price, remaining, visible, display, hold, stop_price, tif, stp, post_only, cid) = row
    spec = engine.books[market].spec
    return Order(
        oid,
        account,
        market,
        spec.quote if side == Side.BUY else spec.base,
        Side(side),
        OrderType(otype),
        price,
        remaining,
        visible,
        display,
        hold,
        stop_price,
        TimeInForce(tif),
        StpMode(stp),
        post_only,
        cid,
    )


def restore(engine: MatchingEngine, data: bytes) -> None:
    """Load a snapshot into a freshly built engine (same assets and markets as the one that took it)."""
    if engine.last_seq or engine.orders or engine.accounts:
        raise ValueError("restore needs a fresh engine")
    state = msgspec.json.decode(data) if data[:1] == b"{" else msgspec.msgpack.decode(data)
    if state.get("version") not in (3, SNAPSHOT_VERSION):
        raise ValueError(f"snapshot version {state.get('version')!r} is not supported (expected {SNAPSHOT_VERSION})")
    engine.last_seq = state["last_seq"]
    engine.next_trade_id = state["next_trade_id"]
    for asset, amount in state["fees"]:
        engine.fees_collected[asset] = amount
    for account_id, balances, maker_ppm, taker_ppm in state["accounts"]:
        acct = engine._new_account(account_id)
        acct.maker_ppm = maker_ppm
        acct.taker_ppm = taker_ppm
        for asset, available, held in balances:
            acct.available[asset] = available
            acct.held[asset] = held
    for reference, account_id, asset, amount in state["fund_holds"]:
        engine.fund_holds[reference] = (account_id, asset, amount)
    # Version 3 snapshots predate the once-only references: the references before them are not known.
    engine.transfer_refs.update(state.get("transfer_refs", ()))
    for symbol, status, last_price, bids, asks, stops in state["markets"]:
        book = engine.books.get(symbol)
        if book is None:
            raise ValueError(f"snapshot has market {symbol!r}, which this exchange's config does not define")
        book.status = MarketStatus(status)
        book.last_price = last_price
        for rows, levels, sign in ((bids, book.bids, -1), (asks, book.asks, 1)):
            for row in rows:
                order = _order_from_row(engine, row, symbol)
                key = sign * order.price
                level = levels.get(key)
                if level is None:
                    level = levels[key] = Level(order.side, order.price, deque(), symbol)
                level.orders.append(order)
                level.qty += order.visible
                level.count += 1
                engine._index(order, engine.accounts[order.account])
        book.refresh_best()
        for row in stops:
            order = _order_from_row(engine, row, symbol)
            (book.stops_buy if order.side is Side.BUY else book.stops_sell).add((order.stop_price, order.order_id))
            engine._index(order, engine.accounts[order.account])
