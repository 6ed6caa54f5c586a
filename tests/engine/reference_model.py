"""A deliberately simple reference model of the matching engine, for property tests.

No sorted containers, no lazy deletion, no cached quantities: every step re-sorts plain lists and recomputes.
It shares only the stateless order checks (``check_place``/``check_replace``) with the engine; matching, holds,
fees, stops, icebergs, self-trade prevention and replaces are written again here from the documented rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exchange_framework.engine.commands import (
    CancelAll,
    CancelOrder,
    Command,
    CreditFunds,
    DebitFunds,
    DebitHeldFunds,
    HoldFunds,
    PlaceOrder,
    ReleaseFunds,
    ReplaceOrder,
    SetAccountFees,
    SetMarketStatus,
)
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.engine.validation import check_place, check_replace
from exchange_framework.types import CancelReason, MarketStatus, OrderType, RejectReason, Side, StpMode, TimeInForce

BIG = 1 << 62


@dataclass
class RefOrder:
    oid: int
    account: int
    market: str
    side: Side
    type: OrderType
    price: int
    remaining: int
    visible: int
    display: int
    hold: int
    stop_price: int
    tif: TimeInForce
    stp: StpMode
    post_only: bool
    cid: str
    prio: int = 0


def fee(amount: int, ppm: int) -> int:
    """Fee on a received amount: rounded up when charged, rounded down (in size) when it is a rebate."""
    if ppm >= 0:
        return (amount * ppm + 999_999) // 1_000_000
    return -((amount * -ppm) // 1_000_000)


@dataclass
class RefEngine:
    assets: dict[str, AssetSpec]
    markets: dict[str, MarketSpec]
    status: dict[str, MarketStatus] = field(default_factory=dict)
    last_price: dict[str, int] = field(default_factory=dict)
    swept: dict[str, list[int]] = field(default_factory=dict)  # trade prices since stops were last checked
    resting: list[RefOrder] = field(default_factory=list)
    stops: list[RefOrder] = field(default_factory=list)
    available: dict[tuple[int, str], int] = field(default_factory=dict)
    held: dict[tuple[int, str], int] = field(default_factory=dict)
    accounts: set[int] = field(default_factory=set)
    fee_override: dict[int, tuple[int, int]] = field(default_factory=dict)  # account -> (maker ppm, taker ppm)
    fund_holds: dict[str, tuple[int, str, int]] = field(default_factory=dict)  # reference -> (account, asset, amount)
    fees: dict[str, int] = field(default_factory=dict)
    prio: int = 0
    # What happened, for comparison with the engine's events.
    log: list[tuple[object, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for symbol, spec in self.markets.items():
            self.status[symbol] = spec.status
            self.last_price[symbol] = 0
            self.swept[symbol] = []
        self.fees = dict.fromkeys(self.assets, 0)

    # -- helpers
    def bal(self, account: int, asset: str) -> int:
        return self.available.get((account, asset), 0)

    def move(self, account: int, asset: str, to_held: int) -> None:
        """Move ``to_held`` from available to held (negative: back)."""
        k = (account, asset)
        self.available[k] = self.available.get(k, 0) - to_held
        self.held[k] = self.held.get(k, 0) + to_held

    def hold_asset(self, o: RefOrder) -> str:
        spec = self.markets[o.market]
        return spec.quote if o.side is Side.BUY else spec.base

    def open_orders(self) -> list[RefOrder]:
        return self.resting + self.stops

    def next_prio(self) -> int:
        self.prio += 1
        return self.prio

    def reject(self, reason: int) -> None:
        self.log.append(("rejected", int(reason)))

    def close(self, o: RefOrder, reason: CancelReason | None) -> None:
        released = o.hold
        self.move(o.account, self.hold_asset(o), -released)
        o.hold = 0
        if o in self.resting:
            self.resting.remove(o)
        if o in self.stops:
            self.stops.remove(o)
        if reason is None:
            self.log.append(("filled", o.oid, released))
        else:
            remaining = 0 if o.remaining > BIG // 2 else o.remaining
            self.log.append(("cancelled", o.oid, int(reason), remaining, released))

    def crossing(self, market: str, side: Side, price: int | None) -> list[RefOrder]:
        """Opposite resting orders that an order at ``price`` (None: market) would trade with, best first."""
        opp = [o for o in self.resting if o.market == market and o.side is not side]
        if price is not None:
            opp = [o for o in opp if (o.price <= price if side is Side.BUY else o.price >= price)]
        opp.sort(key=lambda o: ((o.price if side is Side.BUY else -o.price), o.prio))
        return opp

    # -- commands
    def apply(self, seq: int, cmd: Command) -> None:
        if isinstance(cmd, PlaceOrder):
            self.place(seq, cmd)
        elif isinstance(cmd, CancelOrder):
            self.cancel(cmd)
        elif isinstance(cmd, CancelAll):
            self.cancel_all(cmd)
        elif isinstance(cmd, ReplaceOrder):
            self.replace(cmd)
        elif isinstance(cmd, CreditFunds):
            if cmd.asset not in self.assets:
                self.reject(RejectReason.UNKNOWN_ASSET)
            elif cmd.amount <= 0:
                self.reject(RejectReason.INVALID_AMOUNT)
            else:
                self.accounts.add(cmd.account)
                self.available[(cmd.account, cmd.asset)] = self.bal(cmd.account, cmd.asset) + cmd.amount
                self.log.append(("credited", cmd.account, cmd.asset, cmd.amount))
        elif isinstance(cmd, DebitFunds):
            if cmd.asset not in self.assets:
                self.reject(RejectReason.UNKNOWN_ASSET)
            elif cmd.amount <= 0:
                self.reject(RejectReason.INVALID_AMOUNT)
            elif self.bal(cmd.account, cmd.asset) < cmd.amount:
                self.reject(RejectReason.INSUFFICIENT_BALANCE)
            else:
                self.available[(cmd.account, cmd.asset)] -= cmd.amount
                self.log.append(("debited", cmd.account, cmd.asset, cmd.amount))
        elif isinstance(cmd, HoldFunds):
            if cmd.asset not in self.assets:
                self.reject(RejectReason.UNKNOWN_ASSET)
            elif cmd.amount <= 0:
                self.reject(RejectReason.INVALID_AMOUNT)
            elif not cmd.reference:
                self.reject(RejectReason.INVALID_ORDER_PARAMETERS)
            elif cmd.reference in self.fund_holds:
                self.reject(RejectReason.DUPLICATE_REFERENCE)
            elif self.bal(cmd.account, cmd.asset) < cmd.amount:
                self.reject(RejectReason.INSUFFICIENT_BALANCE)
            else:
                self.move(cmd.account, cmd.asset, cmd.amount)
                self.fund_holds[cmd.reference] = (cmd.account, cmd.asset, cmd.amount)
                self.log.append(("held", cmd.account, cmd.asset, cmd.amount, cmd.reference))
        elif isinstance(cmd, ReleaseFunds | DebitHeldFunds):
            hold = self.fund_holds.pop(cmd.reference, None)
            if hold is None:
                self.reject(RejectReason.UNKNOWN_REFERENCE)
                return
            account, asset, amount = hold
            if isinstance(cmd, ReleaseFunds):
                self.move(account, asset, -amount)
                self.log.append(("released", account, asset, amount, cmd.reference))
            else:
                self.held[(account, asset)] -= amount
                self.log.append(("debited_held", account, asset, amount, cmd.reference))
        elif isinstance(cmd, SetAccountFees):
            maker, taker = cmd.maker_ppm, cmd.taker_ppm
            if (maker is None) != (taker is None) or (
                maker is not None and not (-10_000 <= maker <= 100_000 and 0 <= taker <= 100_000)  # type: ignore[operator]
            ):
                self.reject(RejectReason.INVALID_FEE_RATE)
                return
            self.accounts.add(cmd.account)
            if maker is None:
                self.fee_override.pop(cmd.account, None)
            else:
                self.fee_override[cmd.account] = (maker, taker)  # type: ignore[assignment]
            self.log.append(("fees", cmd.account, maker, taker))
        elif isinstance(cmd, SetMarketStatus):
            self.status[cmd.market] = cmd.status
            self.log.append(("status", cmd.market, int(cmd.status)))
            if cmd.status is MarketStatus.CLOSED:
                for o in sorted(self.open_orders(), key=lambda o: o.oid):
                    if o.market == cmd.market:
                        self.close(o, CancelReason.MARKET_CLOSED)

    def place(self, seq: int, cmd: PlaceOrder) -> None:
        spec = self.markets.get(cmd.market)
        if spec is None:
            return self.reject(RejectReason.UNKNOWN_MARKET)
        if self.status[cmd.market] is not MarketStatus.OPEN:
            return self.reject(RejectReason.MARKET_NOT_OPEN)
        reason = check_place(cmd, spec, self.last_price[cmd.market])
        if reason:
            return self.reject(reason)
        if cmd.client_order_id and any(
            o.account == cmd.account and o.cid == cmd.client_order_id for o in self.open_orders()
        ):
            return self.reject(RejectReason.DUPLICATE_CLIENT_ORDER_ID)
        if cmd.account not in self.accounts:
            return self.reject(RejectReason.INSUFFICIENT_BALANCE)
        if cmd.side is Side.BUY:
            asset = spec.quote
            if cmd.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                hold = cmd.price * cmd.qty * spec.quote_per_tick_lot
            elif cmd.type is OrderType.MARKET:
                hold = cmd.quote_cap or self.bal(cmd.account, asset)
            else:
                hold = cmd.quote_cap
        else:
            asset = spec.base
            hold = cmd.qty * spec.base_per_lot
        if hold <= 0 or hold > self.bal(cmd.account, asset):
            return self.reject(RejectReason.INSUFFICIENT_BALANCE)
        if cmd.type is OrderType.LIMIT:
            if cmd.post_only and self.crossing(cmd.market, cmd.side, cmd.price):
                return self.reject(RejectReason.POST_ONLY_WOULD_CROSS)
            if cmd.tif is TimeInForce.FOK and not self.fok_ok(cmd):
                return self.reject(RejectReason.FOK_NOT_FILLABLE)
        self.move(cmd.account, asset, hold)
        remaining = cmd.qty or BIG
        o = RefOrder(
            seq,
            cmd.account,
            cmd.market,
            cmd.side,
            cmd.type,
            cmd.price,
            remaining,
            remaining,
            cmd.display_qty,
            hold,
            cmd.stop_price,
            cmd.tif,
            cmd.stp,
            cmd.post_only,
            cmd.client_order_id,
        )
        self.log.append(("accepted", seq, hold))
        if cmd.type in (OrderType.STOP_LIMIT, OrderType.STOP_MARKET):
            self.stops.append(o)
            return
        traded = self.execute(o)
        if traded:
            self.run_stops(cmd.market)

    def fok_ok(self, cmd: PlaceOrder) -> bool:
        """Dry-run the queue: icebergs offer a slice at a time, each refill re-queued behind everyone."""
        queue = [[o, o.visible, o.remaining, o.prio] for o in self.crossing(cmd.market, cmd.side, cmd.price)]
        prio = self.prio
        need = cmd.qty
        while queue:
            queue.sort(key=lambda e: ((e[0].price if cmd.side is Side.BUY else -e[0].price), e[3]))
            maker, shown, remaining, _ = queue.pop(0)
            if maker.account == cmd.account:
                if cmd.stp is StpMode.CANCEL_OLDEST:
                    continue
                return False
            need -= shown
            if need <= 0:
                return True
            if remaining - shown:
                prio += 1
                queue.append([maker, min(maker.display, remaining - shown), remaining - shown, prio])
        return False

    def execute(self, taker: RefOrder) -> bool:
        """Match, then fill/rest/cancel. Returns whether any trade happened."""
        spec = self.markets[taker.market]
        market = taker.type is OrderType.MARKET
        capped = market and taker.side is Side.BUY
        outcome: CancelReason | None = None
        traded = False
        while taker.remaining:
            book = self.crossing(taker.market, taker.side, None if market else taker.price)
            if not book:
                break
            maker = book[0]
            if maker.account == taker.account:
                if taker.stp is StpMode.CANCEL_NEWEST:
                    outcome = CancelReason.SELF_TRADE
                    break
                if taker.stp is StpMode.DECREMENT:
                    cut = min(taker.remaining, maker.remaining)
                    self.reduce(maker, cut, resting=True)
                    self.reduce(taker, cut, resting=False)
                    if not taker.remaining:
                        outcome = CancelReason.SELF_TRADE
                        break
                    continue
                self.close(maker, CancelReason.SELF_TRADE)
                if taker.stp is StpMode.CANCEL_BOTH:
                    outcome = CancelReason.SELF_TRADE
                    break
                continue
            qty = min(taker.remaining, maker.visible)
            price = maker.price
            if capped:
                qty = min(qty, taker.hold // (price * spec.quote_per_tick_lot))
                if qty == 0:
                    outcome = CancelReason.QUOTE_CAP_REACHED
                    break
            base_amount = qty * spec.base_per_lot
            quote_amount = price * qty * spec.quote_per_tick_lot
            buyer, seller = (taker, maker) if taker.side is Side.BUY else (maker, taker)
            buyer_ppm = self.rate(buyer, spec, taker=buyer is taker)
            seller_ppm = self.rate(seller, spec, taker=seller is taker)
            buyer_fee, seller_fee = fee(base_amount, buyer_ppm), fee(quote_amount, seller_ppm)
            released = 0
            if buyer is taker and not capped:
                released = (taker.price - price) * qty * spec.quote_per_tick_lot
            # buyer: pays quote out of its hold, gets base less fee
            buyer.hold -= quote_amount + released
            self.held[(buyer.account, spec.quote)] -= quote_amount + released
            self.available[(buyer.account, spec.quote)] += released
            self.available[(buyer.account, spec.base)] = self.bal(buyer.account, spec.base) + base_amount - buyer_fee
            # seller: delivers base out of its hold, gets quote less fee
            seller.hold -= base_amount
            self.held[(seller.account, spec.base)] -= base_amount
            self.available[(seller.account, spec.quote)] = (
                self.bal(seller.account, spec.quote) + quote_amount - seller_fee
            )
            self.fees[spec.base] += buyer_fee
            self.fees[spec.quote] += seller_fee
            maker_fee, taker_fee = (buyer_fee, seller_fee) if maker is buyer else (seller_fee, buyer_fee)
            self.log.append(
                ("trade", price, qty, maker.oid, taker.oid, base_amount, quote_amount, maker_fee, taker_fee, released)
            )
            self.last_price[taker.market] = price
            self.swept[taker.market].append(price)
            traded = True
            taker.remaining -= qty
            maker.remaining -= qty
            maker.visible -= qty
            if maker.visible == 0:
                if maker.remaining:
                    maker.visible = min(maker.display, maker.remaining)
                    maker.prio = self.next_prio()
                else:
                    self.close(maker, None)
        if outcome is CancelReason.QUOTE_CAP_REACHED and taker.remaining > BIG // 2:
            self.close(taker, None)
        elif outcome is not None:
            self.close(taker, outcome)
        elif not taker.remaining:
            self.close(taker, None)
        elif taker.type is OrderType.LIMIT and taker.tif is TimeInForce.GTC:
            taker.visible = min(taker.display, taker.remaining) if taker.display else taker.remaining
            taker.prio = self.next_prio()
            self.resting.append(taker)
        elif taker.type is OrderType.LIMIT:
            self.close(taker, CancelReason.IOC_REMAINDER)
        else:
            self.close(taker, CancelReason.NO_LIQUIDITY)
        return traded

    def rate(self, o: RefOrder, spec: MarketSpec, *, taker: bool) -> int:
        """The fee rate for ``o``'s side of a trade: its account's own rate if set, else the market's."""
        override = self.fee_override.get(o.account)
        if override is not None:
            return override[1] if taker else override[0]
        return spec.taker_fee_ppm if taker else spec.maker_fee_ppm

    def reduce(self, o: RefOrder, cut: int, *, resting: bool) -> None:
        spec = self.markets[o.market]
        if o.side is Side.SELL:
            released = cut * spec.base_per_lot
        elif o.type is OrderType.LIMIT:
            released = o.price * cut * spec.quote_per_tick_lot
        else:
            released = 0
        o.hold -= released
        self.move(o.account, self.hold_asset(o), -released)
        o.remaining -= cut
        if resting:
            o.visible = min(o.visible, o.remaining)
        self.log.append(("reduced", o.oid, cut, 0 if o.remaining > BIG // 2 else o.remaining, released))
        if resting and not o.remaining:
            self.close(o, CancelReason.SELF_TRADE)

    def run_stops(self, market: str) -> None:
        """A stop fires once any trade reaches its price and stays fired; fired stops run oldest first."""
        fired: list[RefOrder] = []
        while True:
            last = self.last_price[market]
            prices, self.swept[market] = self.swept[market], []
            for o in list(self.stops):
                if o.market == market and any(
                    (o.side is Side.BUY and o.stop_price <= p) or (o.side is Side.SELL and o.stop_price >= p)
                    for p in prices
                ):
                    self.stops.remove(o)
                    fired.append(o)
            if not fired:
                return
            o = min(fired, key=lambda o: o.oid)
            fired.remove(o)
            o.type = OrderType.LIMIT if o.type is OrderType.STOP_LIMIT else OrderType.MARKET
            self.log.append(("triggered", o.oid, last))
            self.execute(o)

    def find(self, account: int, market: str, oid: int, cid: str) -> RefOrder | None:
        if market not in self.markets:
            self.reject(RejectReason.UNKNOWN_MARKET)
            return None
        if self.status[market] is MarketStatus.CLOSED:
            self.reject(RejectReason.MARKET_NOT_OPEN)
            return None
        for o in self.open_orders():
            if (oid and o.oid == oid) or (not oid and cid and o.cid == cid and o.account == account):
                if o.market != market:
                    break
                if o.account != account:
                    self.reject(RejectReason.NOT_ORDER_OWNER)
                    return None
                return o
        self.reject(RejectReason.UNKNOWN_ORDER)
        return None

    def cancel(self, cmd: CancelOrder) -> None:
        o = self.find(cmd.account, cmd.market, cmd.order_id, cmd.client_order_id)
        if o is not None:
            self.close(o, CancelReason.USER)

    def cancel_all(self, cmd: CancelAll) -> None:
        if cmd.market and cmd.market not in self.markets:
            return self.reject(RejectReason.UNKNOWN_MARKET)
        for o in sorted(self.open_orders(), key=lambda o: o.oid):
            if o.account != cmd.account or (cmd.market and o.market != cmd.market):
                continue
            if self.status[o.market] is MarketStatus.CLOSED:
                continue
            self.close(o, CancelReason.USER)

    def replace(self, cmd: ReplaceOrder) -> None:
        o = self.find(cmd.account, cmd.market, cmd.order_id, "")
        if o is None:
            return
        spec = self.markets[o.market]
        if self.status[o.market] is not MarketStatus.OPEN:
            return self.reject(RejectReason.MARKET_NOT_OPEN)
        if o.type is not OrderType.LIMIT:
            return self.reject(RejectReason.REPLACE_NOT_SUPPORTED)
        reason = check_replace(cmd, spec)
        if reason:
            return self.reject(reason)
        if cmd.price == o.price and cmd.qty == o.remaining:
            return self.reject(RejectReason.REPLACE_NO_CHANGE)
        if o.display and o.display >= cmd.qty:
            return self.reject(RejectReason.INVALID_ORDER_PARAMETERS)
        if o.side is Side.BUY:
            new_hold = cmd.price * cmd.qty * spec.quote_per_tick_lot
        else:
            new_hold = cmd.qty * spec.base_per_lot
        delta = new_hold - o.hold
        if delta > self.bal(o.account, self.hold_asset(o)):
            return self.reject(RejectReason.INSUFFICIENT_BALANCE)
        keep = cmd.price == o.price and cmd.qty < o.remaining
        if not keep and o.post_only and self.crossing(o.market, o.side, cmd.price):
            return self.reject(RejectReason.POST_ONLY_WOULD_CROSS)
        self.move(o.account, self.hold_asset(o), delta)
        o.hold = new_hold
        self.log.append(("replaced", o.oid, cmd.price, cmd.qty, keep, delta))
        if keep:
            o.remaining = cmd.qty
            o.visible = min(o.visible, cmd.qty)
            return
        self.resting.remove(o)
        o.price = cmd.price
        o.remaining = o.visible = cmd.qty
        if self.execute(o):
            self.run_stops(o.market)
