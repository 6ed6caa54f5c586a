"""Seeding the demo exchange once: demo users and logins, balances, the market maker's funds, the hot wallet."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from exchange_framework.api.context import ApiContext
from exchange_framework.demo.marketmaker import MAKER_ACCOUNT, TAKER_ACCOUNT, Quote
from exchange_framework.engine.commands import CreditFunds
from exchange_framework.identity import ApiKeyInfo, Scope
from exchange_framework.money import price_to_ticks

__all__ = ["DEMO_PASSWORD", "DEMO_USERS", "DemoLogin", "quotes_for", "seed"]

DEMO_PASSWORD = "demo-password-1"  # printed by `exchange demo`; a demo exchange only
DEMO_USERS = (
    ("admin@demo.exchange", "administrator"),
    ("compliance@demo.exchange", "compliance"),
    ("custody@demo.exchange", "custody"),
    ("support@demo.exchange", "support"),
    ("alice@demo.exchange", "user"),
    ("bob@demo.exchange", "user"),
)
STABLE = frozenset({"USDT", "USDC", "USD", "EUR", "DAI"})  # quoted as about one dollar
USD_PRICES = {"BTC": "65000", "ETH": "3500", "LTC": "80", "SOL": "150"}  # demo prices; others trade near 1
CUSTOMER_USD = Decimal(100_000)  # each demo customer gets about this much of every asset, in dollars
BOT_FUNDS = Decimal(10**7)  # of every asset, in whole units, for the market maker and the taker


def usd_price(asset: str) -> Decimal:
    """The demo's price of one ``asset`` in dollars."""
    return Decimal(1) if asset in STABLE else Decimal(USD_PRICES.get(asset, "1"))


def customer_funds(asset: str) -> Decimal:
    """How much of ``asset`` a demo customer starts with (BTC: 2; ETH: about 28; a stablecoin: 100,000)."""
    if asset == "BTC":
        return Decimal(2)
    return (CUSTOMER_USD / usd_price(asset)).quantize(Decimal(1))


@dataclass(frozen=True)
class DemoLogin:
    """A demo login to print: e-mail, role, and (for customers) an API key."""

    email: str
    role: str
    key: ApiKeyInfo | None


async def seed(ctx: ApiContext) -> list[DemoLogin]:
    """Create the demo users with balances and keys on first start; afterwards only list them."""
    identity = ctx.identity
    node = ctx.node
    logins: list[DemoLogin] = []
    fresh = identity.user_by_email(DEMO_USERS[0][0]) is None
    for email, role in DEMO_USERS:
        user = identity.user_by_email(email)
        if user is None:
            user = identity.create_user(email, DEMO_PASSWORD, role=role, country="DE")
        key = None
        if role == "user":
            if fresh:
                identity.set_kyc(user.id, tier=1, status="approved")
                key = identity.create_api_key(user.id, label="demo", scopes=[Scope.READ, Scope.TRADE])
                for asset, decimals in ctx.units.asset_decimals.items():
                    units = int(customer_funds(asset) * 10**decimals)
                    await node.submit(CreditFunds(user.id, asset, units, f"demo:{user.id}:{asset}"))
            else:
                keys = [k for k in identity.api_keys(user.id) if not k.revoked and k.label == "demo"]
                key = keys[0] if keys else None
        logins.append(DemoLogin(email, role, key))
    if fresh:
        for account in (MAKER_ACCOUNT, TAKER_ACCOUNT):
            for asset, decimals in ctx.units.asset_decimals.items():
                units = int(BOT_FUNDS * 10**decimals)
                await node.submit(CreditFunds(account, asset, units, f"demo:{account}:{asset}"))
    return logins


def quotes_for(ctx: ApiContext) -> dict[str, Quote]:
    """How the market maker quotes each market: around the demo's price of base in quote, ladders well above the
    minimum notional."""
    quotes = {}
    for market, u in ctx.units.by_market.items():
        spec = u.spec
        price = usd_price(spec.base) / usd_price(spec.quote)
        mid = max(1, price_to_ticks(price.quantize(u.tick_size), u.tick_size))
        spread = max(1, mid // 4000)
        per_lot = mid * spec.quote_per_tick_lot
        lots = max(spec.min_qty, -(-max(spec.min_notional, 1) // per_lot) * 100)
        quotes[market] = Quote(mid=mid, spread=spread, levels=6, lots=lots)
    return quotes
