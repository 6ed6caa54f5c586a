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
CUSTOMER_FUNDS = {"BTC": "2", "ETH": "20", "USDT": "100000"}
BOT_FUNDS = Decimal(10**7)  # of every asset, in whole units, for the market maker and the taker
MID_PRICES = {"BTC-USDT": "65000", "ETH-USDT": "3500"}


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
                for asset, amount in CUSTOMER_FUNDS.items():
                    if asset in ctx.units.asset_decimals:
                        units = int(Decimal(amount) * 10 ** ctx.units.asset_decimals[asset])
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
    """How the market maker quotes each open market: around a demo mid price, ladders worth the minimum notional."""
    quotes = {}
    for market, u in ctx.units.by_market.items():
        spec = u.spec
        mid = price_to_ticks(Decimal(MID_PRICES.get(market, "100")), u.tick_size) if market in MID_PRICES else 1000
        spread = max(1, mid // 4000)
        per_lot = mid * spec.quote_per_tick_lot
        lots = max(spec.min_qty, -(-max(spec.min_notional, 1) // per_lot) * 100)
        quotes[market] = Quote(mid=mid, spread=spread, levels=6, lots=lots)
    return quotes
