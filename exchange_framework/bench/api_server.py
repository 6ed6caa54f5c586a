"""The server side of ``exchange bench api``: one uvicorn worker on the demo config in a scratch directory.

``python -m exchange_framework.bench.api_server --port P --data-dir D --keys FILE`` funds ``--users`` accounts,
writes their API keys to FILE (the signal that it is ready) and serves until SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import msgspec
import uvicorn

from exchange_framework.api.app import create_app
from exchange_framework.api.context import ApiContext
from exchange_framework.api.loop import tune_for_serving
from exchange_framework.api.ratelimit import Limits
from exchange_framework.config import DEMO_CONFIG, load_config
from exchange_framework.engine.commands import CreditFunds
from exchange_framework.identity import Scope
from exchange_framework.node import with_data_dir


async def _synthetic_depth(ctx: ApiContext, rate: int) -> None:
    """Publish ``rate`` depthUpdate messages per second with consecutive update ids, through the real hub."""
    hub = ctx.extras["hub"]
    update = 0
    period = 1 / rate
    next_at = time.perf_counter()
    while True:
        update += 1
        now_ms = time.time_ns() // 1_000_000
        payload = msgspec.json.encode(
            {"e": "depthUpdate", "E": now_ms, "s": "BTCUSDT", "U": update, "u": update,
             "b": [[f"{60000 + update % 50}.0", "0.5"]], "a": []}
        )  # fmt: skip
        hub.publish("btcusdt@depth", payload)
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--keys", type=Path, required=True)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument(
        "--depth-rate",
        type=int,
        default=0,
        help="Also publish this many synthetic depthUpdate messages/s on btcusdt@depth.",
    )
    args = parser.parse_args()
    config = with_data_dir(load_config(DEMO_CONFIG), args.data_dir / "data")
    unlimited = Limits(weight_per_minute=10**12, orders_per_10s=10**12, orders_per_day=10**12)

    async def started(ctx: ApiContext) -> None:
        keys = []
        for n in range(args.users):
            user = ctx.identity.create_user(f"bench{n}@example.com", "benchmark password")
            key = ctx.identity.create_api_key(user.id, scopes=[Scope.READ, Scope.TRADE])
            await ctx.node.submit(CreditFunds(user.id, "BTC", 10**15, f"bench:{user.id}:BTC"))
            await ctx.node.submit(CreditFunds(user.id, "USDT", 10**18, f"bench:{user.id}:USDT"))
            keys.append({"key": key.key, "secret": key.secret})
        if args.depth_rate:
            asyncio.get_running_loop().create_task(_synthetic_depth(ctx, args.depth_rate))
        scratch = args.keys.with_suffix(".tmp")
        scratch.write_text(json.dumps(keys))
        scratch.rename(args.keys)

    app = create_app(config, limits=unlimited, settle_every=1.0, with_wallet=False, on_started=started)
    tune_for_serving()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
