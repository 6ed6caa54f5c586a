"""Admin pages about trading: markets (halt, resume, close) and the fee schedule with per-account overrides.

Both actions are sequenced engine commands (``SetMarketStatus``, ``SetAccountFees``), so they are in the journal
and every replay sees them.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from exchange_framework.admin.console import ActionRefused, AdminConsole
from exchange_framework.engine.commands import SetAccountFees, SetMarketStatus
from exchange_framework.engine.events import OrderRejected
from exchange_framework.engine.market import MAX_FEE_PPM, MIN_MAKER_FEE_PPM
from exchange_framework.fees import FeeSchedule
from exchange_framework.money import MoneyError, format_decimal, parse_decimal, ppm_to_rate, rate_to_ppm
from exchange_framework.types import MarketStatus
from exchange_framework.web import Form, FormError

__all__ = ["MarketPages"]

STATUS_WORDS = {"open": MarketStatus.OPEN, "halted": MarketStatus.HALTED, "closed": MarketStatus.CLOSED}


def _rate(ppm: int) -> str:
    """A ppm rate as a percentage for display (``1000`` -> ``0.1 %``)."""
    return f"{format_decimal(ppm_to_rate(ppm) * 100)} %"


class MarketPages:
    """Markets and fees."""

    def __init__(self, console: AdminConsole) -> None:
        self.console = console
        self.ctx = console.ctx
        self.web = console.web

    # -- markets
    async def markets(self, request: Request) -> Response:
        """Every market with its status and trading parameters."""
        config = self.ctx.node.config
        rows: list[dict[str, Any]] = []
        for symbol, spec in sorted(self.ctx.node.markets.items()):
            settings = config.markets[symbol]
            status: MarketStatus = self.ctx.market_data.status(symbol)
            rows.append(
                {
                    "symbol": symbol,
                    "status": status.name.lower(),
                    "base": spec.base,
                    "quote": spec.quote,
                    "tick_size": format_decimal(settings.tick_size),
                    "lot_size": format_decimal(settings.lot_size),
                    "min_notional": self.ctx.units.amount(spec.quote, spec.min_notional),
                    "maker": _rate(spec.maker_fee_ppm),
                    "taker": _rate(spec.taker_fee_ppm),
                }
            )
        return self.console.render(request, "admin/markets.html", {"markets": rows})

    async def market_status(self, request: Request) -> Response:
        """Open (resume), halt (no new orders; cancels allowed) or close (no orders, no cancels) a market."""
        market = str(request.path_params["market"])
        back = "/admin/markets"
        form = Form(await self.web.form(request))
        try:
            word = form.choice("status", tuple(STATUS_WORDS), label="status")
            note = form.text("note", label="reason", max_length=500)
        except FormError as exc:
            return self.console.refuse(request, back, str(exc))
        if market not in self.ctx.node.markets:
            return self.console.refuse(
                request, back, f"There is no market {market}: use one of {', '.join(sorted(self.ctx.node.markets))}."
            )
        before: MarketStatus = self.ctx.market_data.status(market)

        async def do() -> str:
            applied = await self.ctx.node.submit(SetMarketStatus(market, STATUS_WORDS[word]))
            rejected = next((e for e in applied.events if isinstance(e, OrderRejected)), None)
            if rejected is not None:
                raise ActionRefused(f"the engine refused the status change: {rejected.reason.name.lower()}")
            return f"{market} is now {word} (journal sequence {applied.seq})."

        verb = {"open": "resume", "halted": "halt", "closed": "close"}[word]
        details = {"from": before.name.lower(), "to": word, "note": note}
        return await self.console.perform(
            request, action=f"admin.market.{verb}", target=f"market:{market}", details=details, do=do, back=back
        )

    # -- fees
    async def fees(self, request: Request) -> Response:
        """The configured schedule (default rates, volume tiers, configured overrides) and accounts' own rates now."""
        config = self.ctx.node.config
        schedule = FeeSchedule.from_config(config)
        volume_asset = schedule.volume_asset
        tiers = [
            (self.ctx.units.amount(volume_asset, minimum) if volume_asset else str(minimum), _rate(m), _rate(t))
            for minimum, (m, t) in schedule.tiers
        ]
        configured = [(account, _rate(m), _rate(t)) for account, (m, t) in sorted(schedule.overrides.items())]
        current = [
            (acct.account_id, _rate(acct.maker_ppm), _rate(acct.taker_ppm or 0))
            for acct in sorted(self.ctx.node.engine.accounts.values(), key=lambda a: a.account_id)
            if acct.maker_ppm is not None
        ]
        values = {
            "default_maker": _rate(rate_to_ppm(config.fees.maker)),
            "default_taker": _rate(rate_to_ppm(config.fees.taker)),
            "volume_asset": volume_asset,
            "tiers": tiers,
            "configured": configured,
            "current": current,
            "min_maker": _rate(MIN_MAKER_FEE_PPM),
            "max_fee": _rate(MAX_FEE_PPM),
        }
        return self.console.render(request, "admin/fees.html", values)

    async def fee_override(self, request: Request) -> Response:
        """Set an account's own maker/taker rates (decimal rates such as 0.0005), or clear them."""
        back = "/admin/fees"
        form = Form(await self.web.form(request))
        try:
            account = form.integer("account", label="account")
            clear = form.choice("mode", ("set", "clear"), label="action", default="set") == "clear"
            maker = taker = None
            if not clear:
                maker = rate_to_ppm(parse_decimal(form.text("maker", label="maker rate", required=True), what="maker"))
                taker = rate_to_ppm(parse_decimal(form.text("taker", label="taker rate", required=True), what="taker"))
        except (FormError, MoneyError) as exc:
            return self.console.refuse(request, back, f"{exc}. Rates are decimals: 0.001 is 0.1 %.")
        if self.ctx.identity.user(account) is None:
            return self.console.refuse(request, back, f"There is no user with account {account}: check the number.")
        out_of_range = maker is not None and not MIN_MAKER_FEE_PPM <= maker <= MAX_FEE_PPM
        if out_of_range or (taker is not None and not 0 <= taker <= MAX_FEE_PPM):
            return self.console.refuse(
                request,
                back,
                f"The maker rate must be between {_rate(MIN_MAKER_FEE_PPM)} and {_rate(MAX_FEE_PPM)} and the "
                f"taker rate between 0 % and {_rate(MAX_FEE_PPM)}.",
            )

        async def do() -> str:
            applied = await self.ctx.node.submit(SetAccountFees(account, maker, taker))
            rejected = next((e for e in applied.events if isinstance(e, OrderRejected)), None)
            if rejected is not None:
                raise ActionRefused(f"the engine refused the fee rates: {rejected.reason.name.lower()}")
            if maker is None or taker is None:
                return f"Account {account} pays its markets' rates again."
            return f"Account {account} now pays maker {_rate(maker)}, taker {_rate(taker)}."

        details: dict[str, Any] = {"account": account, "maker_ppm": maker, "taker_ppm": taker}
        return await self.console.perform(
            request,
            action="admin.fees.clear" if clear else "admin.fees.set",
            target=f"account:{account}",
            details=details,
            do=do,
            back=back,
        )
