"""What the engine knows about assets and markets: integers only, derived from ``exchange.toml`` at the edge."""

from __future__ import annotations

import msgspec

from exchange_framework.types import MarketStatus

FEE_RATE_SCALE = 1_000_000  # fee rates are integers in millionths (ppm): 0.1 % == 1_000
MAX_FEE_PPM = 100_000  # 10 %: a fee can never eat what a trade delivers
MIN_MAKER_FEE_PPM = -10_000  # a maker rebate of at most 1 %


class AssetSpec(msgspec.Struct, frozen=True, gc=False):
    """An asset and its atomic unit: one whole coin is ``10 ** decimals`` atomic units."""

    symbol: str
    decimals: int


class MarketSpec(msgspec.Struct, frozen=True, gc=False):
    """A market's trading rules in engine units.

    Prices are integer ticks and quantities integer lots. One lot is ``base_per_lot`` atomic units of the base
    asset; one tick times one lot costs ``quote_per_tick_lot`` atomic units of the quote asset, so the notional of
    ``qty`` lots at ``price`` ticks is ``price * qty * quote_per_tick_lot``.
    """

    symbol: str
    base: str
    quote: str
    base_per_lot: int
    quote_per_tick_lot: int
    min_qty: int = 1
    max_qty: int = 10**12
    max_price: int = 10**15
    min_notional: int = 0  # quote atomic units
    maker_fee_ppm: int = 0  # may be negative: a maker rebate
    taker_fee_ppm: int = 0
    status: MarketStatus = MarketStatus.OPEN
