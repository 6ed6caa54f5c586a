"""``exchange bench engine``: a seeded order flow straight into one market's engine, risk checks on."""

from __future__ import annotations

import gc
import itertools
import time
from typing import Any

from exchange_framework.bench.stats import summary
from exchange_framework.bench.workload import funding, order_flow
from exchange_framework.engine.commands import Command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.engine.snapshot import state_hash

BENCH_ASSETS = {"BTC": AssetSpec("BTC", 8), "USDT": AssetSpec("USDT", 6)}
BENCH_MARKET = MarketSpec(
    "BTC-USDT",
    "BTC",
    "USDT",
    base_per_lot=1_000,  # 0.00001 BTC
    quote_per_tick_lot=10,  # tick 0.01 USDT/BTC x lot 0.00001 BTC = 0.0000001 USDT... scaled to atomic units
    maker_fee_ppm=1_000,
    taker_fee_ppm=2_000,
)
ACCOUNTS = 1_000


def build_stream(ops: int, seed: int) -> tuple[list[Command], list[Command]]:
    """(funding commands, ``ops`` benchmark commands)."""
    fund = funding(BENCH_MARKET, ACCOUNTS, base_amount=10**15, quote_amount=10**18)
    flow = list(itertools.islice(order_flow(BENCH_MARKET, seed=seed, first_seq=len(fund) + 1), ops))
    return fund, flow


def new_engine() -> MatchingEngine:
    return MatchingEngine(BENCH_ASSETS, {BENCH_MARKET.symbol: BENCH_MARKET})


def run(ops: int, seed: int, warmup: int = 20_000) -> dict[str, Any]:
    """Throughput pass (no per-command timers) and latency pass (perf_counter_ns around each command)."""
    fund, flow = build_stream(ops + warmup, seed)

    def prepared() -> tuple[MatchingEngine, int]:
        engine = new_engine()
        seq = 0
        for command in fund:
            seq += 1
            engine.apply(seq, command)
        for command in flow[:warmup]:
            seq += 1
            engine.apply(seq, command)
        engine.events.clear()
        gc.collect()
        gc.freeze()  # everything built so far is long-lived: keep the collector off it
        return engine, seq

    timed = flow[warmup:]

    # Throughput: the engine's own loop, events drained every 1024 commands as a consumer would.
    engine, seq = prepared()
    apply = engine.apply
    events = engine.events
    trades_before = engine.next_trade_id
    start = time.perf_counter()
    for i, command in enumerate(timed, start=seq + 1):
        apply(i, command)
        if not i & 1023:
            events.clear()
    seconds = time.perf_counter() - start
    trades = engine.next_trade_id - trades_before
    book_hash = state_hash(engine)
    resting = len(engine.orders)
    gc.unfreeze()

    # Latency: the same stream on a fresh engine, timing each command.
    engine, seq = prepared()
    apply = engine.apply
    events = engine.events
    clock = time.perf_counter_ns
    latencies = [0] * len(timed)
    for n, command in enumerate(timed):
        seq += 1
        t0 = clock()
        apply(seq, command)
        latencies[n] = clock() - t0
        if not seq & 1023:
            events.clear()
    gc.unfreeze()
    if state_hash(engine) != book_hash:
        raise RuntimeError("the same stream gave two different states: the engine is not deterministic")

    return summary(
        "engine",
        len(timed),
        seconds,
        latencies,
        seed=seed,
        trades=trades,
        resting_orders=resting,
        state_hash=book_hash,
    )
