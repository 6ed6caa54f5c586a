"""The matching engine: a deterministic state machine from sequenced commands to events.

One engine owns a set of markets (a shard) and the balances of every account trading in them. It is single-
threaded and pure: no wall clock, no randomness, no I/O. The same snapshot plus the same commands in the same
order give the same events and the same state, byte for byte.

Pre-trade risk is part of matching: an order is accepted only if the account's available balance covers it, and
that amount is held until the order fills or leaves the book. Fees are taken from what each side receives (the
buyer pays in base, the seller in quote), so holds never need to cover fees.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from exchange_framework.engine.accounts import Account
from exchange_framework.engine.book import NO_ASK, Book, Level, Order
from exchange_framework.engine.commands import (
    CancelAll,
    CancelOrder,
    Command,
    CreditFunds,
    DebitFunds,
    DebitHeldFunds,
    HoldFunds,
    MoveCustody,
    PlaceOrder,
    ReleaseFunds,
    ReplaceOrder,
    SetAccountFees,
    SetMarketStatus,
    is_custody_account,
)
from exchange_framework.engine.events import (
    AccountFeesChanged,
    BookDelta,
    CustodyMoved,
    Event,
    FundsCredited,
    FundsDebited,
    FundsHeld,
    FundsRejected,
    FundsReleased,
    HeldFundsDebited,
    MarketStatusChanged,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderReduced,
    OrderRejected,
    OrderReplaced,
    StopTriggered,
    Trade,
)
from exchange_framework.engine.market import FEE_RATE_SCALE, MAX_FEE_PPM, MIN_MAKER_FEE_PPM, AssetSpec, MarketSpec
from exchange_framework.engine.validation import check_place, check_replace
from exchange_framework.types import (
    CancelReason,
    MarketStatus,
    OrderType,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
)

_NO_LIMIT = 1 << 120  # a key beyond any price: market orders cross every level
_QUOTE_ONLY = 1 << 62  # open quantity of a market buy sized by its quote cap alone (fits a msgpack int64)
_QUOTE_ONLY_FLOOR = 1 << 61  # anything above this is such an order (self-trade decrements may shave it)
_BUY = Side.BUY
_SELL = Side.SELL
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT
_STOP_MARKET = OrderType.STOP_MARKET
_GTC = TimeInForce.GTC
_FOK = TimeInForce.FOK
_CANCEL_BOTH = StpMode.CANCEL_BOTH
_CANCEL_NEWEST = StpMode.CANCEL_NEWEST
_CANCEL_OLDEST = StpMode.CANCEL_OLDEST
_CLOSED = MarketStatus.CLOSED
_DECREMENT = StpMode.DECREMENT
_IOC_REMAINDER = CancelReason.IOC_REMAINDER
_MARKET_CLOSED = CancelReason.MARKET_CLOSED
_NO_LIQUIDITY = CancelReason.NO_LIQUIDITY
_OPEN = MarketStatus.OPEN
_QUOTE_CAP_REACHED = CancelReason.QUOTE_CAP_REACHED
_SELF_TRADE = CancelReason.SELF_TRADE
_USER = CancelReason.USER


class MatchingEngine:
    """Price-time priority matching with pre-trade risk, stops, icebergs and self-trade prevention.

    Feed it with :meth:`apply`; read what happened from :attr:`events` (cleared by the caller). Every event
    carries the sequence number of the command that caused it.
    """

    def __init__(self, assets: Mapping[str, AssetSpec], markets: Mapping[str, MarketSpec]) -> None:
        for spec in markets.values():
            if spec.base not in assets or spec.quote not in assets:
                raise ValueError(f"market {spec.symbol}: base and quote must be known assets")
        self.assets: dict[str, AssetSpec] = dict(assets)
        self.books: dict[str, Book] = {symbol: Book(spec) for symbol, spec in markets.items()}
        self.accounts: dict[int, Account] = {}
        self.orders: dict[int, Order] = {}  # open orders (resting or waiting stops) by id
        self.client_ids: dict[tuple[int, str], int] = {}  # (account, client order id) -> order id
        self.fees_collected: dict[str, int] = dict.fromkeys(assets, 0)
        self.fund_holds: dict[str, tuple[int, str, int]] = {}  # reference -> (account, asset, amount)
        self.transfer_refs: set[str] = set()  # references of every credit, debit and custody move: each is used once
        self.next_trade_id = 1
        self.last_seq = 0
        self.events: list[Event] = []
        self._touched: list[Level] = []
        self._handlers: dict[type[Command], Callable[[int, Any], None]] = {
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            CancelAll: self._cancel_all,
            ReplaceOrder: self._replace,
            CreditFunds: self._credit,
            DebitFunds: self._debit,
            HoldFunds: self._hold_funds,
            ReleaseFunds: self._end_hold,
            DebitHeldFunds: self._end_hold,
            SetAccountFees: self._set_account_fees,
            SetMarketStatus: self._set_status,
            MoveCustody: self._move_custody,
        }

    # ------------------------------------------------------------------ entry point

    def apply(self, seq: int, command: Command) -> bool:
        """Apply one sequenced command; False (and no effect) if ``seq`` was already applied."""
        if seq <= self.last_seq:
            return False
        self.last_seq = seq
        self._handlers[type(command)](seq, command)
        return True

    def apply_all(self, commands: Iterable[tuple[int, Command]]) -> None:
        """Apply ``(seq, command)`` pairs in order."""
        apply = self.apply
        for seq, command in commands:
            apply(seq, command)

    # ------------------------------------------------------------------ queries

    def balance(self, account_id: int, asset: str) -> tuple[int, int]:
        """(available, held) atomic units of ``asset`` for ``account_id``."""
        acct = self.accounts.get(account_id)
        return (0, 0) if acct is None else acct.balance(asset)

    # ------------------------------------------------------------------ funds

    def _new_account(self, account_id: int) -> Account:
        acct = Account(account_id)
        acct.available = dict.fromkeys(self.assets, 0)
        acct.held = dict.fromkeys(self.assets, 0)
        self.accounts[account_id] = acct
        return acct

    def _hold_funds(self, seq: int, cmd: HoldFunds) -> None:
        reason = self._funds_reject(cmd)
        acct = self.accounts.get(cmd.account)
        if not reason:
            if type(cmd.reference) is not str or not cmd.reference:
                reason = RejectReason.INVALID_ORDER_PARAMETERS
            elif cmd.reference in self.fund_holds:
                reason = RejectReason.DUPLICATE_REFERENCE
            elif acct is None or acct.available[cmd.asset] < cmd.amount:
                reason = RejectReason.INSUFFICIENT_BALANCE
        if reason or acct is None:
            self.events.append(FundsRejected(seq, cmd.account, cmd.asset, RejectReason(reason), cmd.reference))
            return
        acct.available[cmd.asset] -= cmd.amount
        acct.held[cmd.asset] += cmd.amount
        self.fund_holds[cmd.reference] = (cmd.account, cmd.asset, cmd.amount)
        self.events.append(FundsHeld(seq, cmd.account, cmd.asset, cmd.amount, cmd.reference))

    def _end_hold(self, seq: int, cmd: ReleaseFunds | DebitHeldFunds) -> None:
        custody = ""
        if type(cmd) is DebitHeldFunds:
            custody = cmd.custody
            if custody != "" and not is_custody_account(custody):
                reference = str(cmd.reference)
                self.events.append(FundsRejected(seq, 0, "", RejectReason.INVALID_CUSTODY_ACCOUNT, reference))
                return
        hold = self.fund_holds.pop(cmd.reference, None) if type(cmd.reference) is str else None
        if hold is None:
            self.events.append(FundsRejected(seq, 0, "", RejectReason.UNKNOWN_REFERENCE, str(cmd.reference)))
            return
        account_id, asset, amount = hold
        acct = self.accounts[account_id]
        acct.held[asset] -= amount
        if type(cmd) is ReleaseFunds:
            acct.available[asset] += amount
            self.events.append(FundsReleased(seq, account_id, asset, amount, cmd.reference))
        else:
            self.events.append(HeldFundsDebited(seq, account_id, asset, amount, cmd.reference, custody))

    def _funds_reject(self, cmd: CreditFunds | DebitFunds | HoldFunds) -> int:
        """0 if a credit/debit is well formed, else the reject reason."""
        if cmd.asset not in self.assets:
            return RejectReason.UNKNOWN_ASSET
        if type(cmd.amount) is not int or cmd.amount <= 0:
            return RejectReason.INVALID_AMOUNT
        if type(cmd.account) is not int or cmd.account <= 0:
            return RejectReason.UNKNOWN_ACCOUNT
        return 0

    def _transfer_reject(self, cmd: CreditFunds | DebitFunds) -> int:
        """0 if a credit/debit may apply, else the reject reason; a non-empty reference is accepted only once."""
        reason = self._funds_reject(cmd)
        if not reason:
            if type(cmd.reference) is not str:
                reason = RejectReason.INVALID_ORDER_PARAMETERS
            elif cmd.reference and cmd.reference in self.transfer_refs:
                reason = RejectReason.DUPLICATE_REFERENCE
        return reason

    def _credit(self, seq: int, cmd: CreditFunds) -> None:
        reason = self._transfer_reject(cmd)
        if not reason and cmd.custody != "" and not is_custody_account(cmd.custody):
            reason = RejectReason.INVALID_CUSTODY_ACCOUNT
        if reason:
            self.events.append(FundsRejected(seq, cmd.account, cmd.asset, RejectReason(reason), str(cmd.reference)))
            return
        acct = self.accounts.get(cmd.account) or self._new_account(cmd.account)
        acct.available[cmd.asset] += cmd.amount
        if cmd.reference:
            self.transfer_refs.add(cmd.reference)
        self.events.append(FundsCredited(seq, cmd.account, cmd.asset, cmd.amount, cmd.reference, cmd.custody))

    def _debit(self, seq: int, cmd: DebitFunds) -> None:
        reason = self._transfer_reject(cmd)
        acct = self.accounts.get(cmd.account)
        if not reason and (acct is None or acct.available[cmd.asset] < cmd.amount):
            reason = RejectReason.INSUFFICIENT_BALANCE
        if reason or acct is None:
            self.events.append(FundsRejected(seq, cmd.account, cmd.asset, RejectReason(reason), str(cmd.reference)))
            return
        acct.available[cmd.asset] -= cmd.amount
        if cmd.reference:
            self.transfer_refs.add(cmd.reference)
        self.events.append(FundsDebited(seq, cmd.account, cmd.asset, cmd.amount, cmd.reference))

    def _move_custody(self, seq: int, cmd: MoveCustody) -> None:
        """Check a custody move's form and reference (the engine keeps no custody balances) and announce it."""
        amount, fee, to_account = cmd.amount, cmd.fee, cmd.to_account
        reason = 0
        if type(cmd.reference) is not str or not cmd.reference:
            reason = RejectReason.INVALID_ORDER_PARAMETERS
        elif cmd.asset not in self.assets:
            reason = RejectReason.UNKNOWN_ASSET
        elif type(amount) is not int or type(fee) is not int or amount < 0 or fee < 0 or amount + fee <= 0:
            reason = RejectReason.INVALID_AMOUNT
        elif (
            not is_custody_account(cmd.from_account)
            or (to_account != "" if amount == 0 else not is_custody_account(to_account))
            or to_account == cmd.from_account
        ):
            reason = RejectReason.INVALID_CUSTODY_ACCOUNT
        elif cmd.reference in self.transfer_refs:
            reason = RejectReason.DUPLICATE_REFERENCE
        if reason:
            asset = cmd.asset if type(cmd.asset) is str else ""
            self.events.append(FundsRejected(seq, 0, asset, RejectReason(reason), str(cmd.reference)))
            return
        self.transfer_refs.add(cmd.reference)
        self.events.append(CustodyMoved(seq, cmd.asset, cmd.from_account, to_account, amount, fee, cmd.reference))

    # ------------------------------------------------------------------ new orders

    def _reject(self, seq: int, cmd: PlaceOrder, reason: RejectReason | int) -> None:
        self.events.append(OrderRejected(seq, cmd.account, cmd.market, RejectReason(reason), cmd.client_order_id))

    def _place(self, seq: int, cmd: PlaceOrder) -> None:
        book = self.books.get(cmd.market)
        if book is None:
            return self._reject(seq, cmd, RejectReason.UNKNOWN_MARKET)
        if book.status is not _OPEN:
            return self._reject(seq, cmd, RejectReason.MARKET_NOT_OPEN)
        spec = book.spec
        reason = check_place(cmd, spec, book.last_price)
        if reason:
            return self._reject(seq, cmd, reason)
        account_id = cmd.account
        cid = cmd.client_order_id
        if cid and (account_id, cid) in self.client_ids:
            return self._reject(seq, cmd, RejectReason.DUPLICATE_CLIENT_ORDER_ID)
        acct = self.accounts.get(account_id)
        if acct is None:
            return self._reject(seq, cmd, RejectReason.INSUFFICIENT_BALANCE)
        side = cmd.side
        otype = cmd.type
        qty = cmd.qty
        if side is _BUY:
            hold_asset = spec.quote
            if otype is _LIMIT or otype is _STOP_LIMIT:
                hold = cmd.price * qty * spec.quote_per_tick_lot
            elif otype is _MARKET:
                hold = cmd.quote_cap or acct.available[hold_asset]
            else:
                hold = cmd.quote_cap
        else:
            hold_asset = spec.base
            hold = qty * spec.base_per_lot
        available = acct.available
        if hold <= 0 or hold > available[hold_asset]:
            return self._reject(seq, cmd, RejectReason.INSUFFICIENT_BALANCE)
        price = cmd.price
        crosses = True
        if otype is _LIMIT:
            crosses = book.best_ask <= price if side is _BUY else book.best_bid >= price
            if crosses and cmd.post_only:
                return self._reject(seq, cmd, RejectReason.POST_ONLY_WOULD_CROSS)
            if cmd.tif is _FOK and not self._fok_fillable(book, side, price, qty, account_id, cmd.stp):
                return self._reject(seq, cmd, RejectReason.FOK_NOT_FILLABLE)

        # Accepted: hold the funds, then work the order.
        available[hold_asset] -= hold
        acct.held[hold_asset] += hold
        display = cmd.display_qty
        remaining = qty if qty else _QUOTE_ONLY
        symbol = book.symbol
        order = Order(
            seq,
            account_id,
            symbol,
            hold_asset,
            side,
            otype,
            cmd.price,
            remaining,
            display if display else remaining,
            display,
            hold,
            cmd.stop_price,
            cmd.tif,
            cmd.stp,
            cmd.post_only,
            cid,
        )
        events = self.events
        events.append(OrderAccepted(seq, seq, account_id, symbol, side, otype, price, qty, cmd.stop_price, hold, cid))
        if not crosses:  # the common passive order: nothing to match
            if cmd.tif is _GTC:
                level = self._rest(book, order, acct, touch=False)
                events.append(BookDelta(seq, symbol, side, price, level.qty))
            else:
                self._close(seq, order, acct, _IOC_REMAINDER)
            return
        if otype is _STOP_LIMIT or otype is _STOP_MARKET:
            self._index(order, acct)
            stops = book.stops_buy if side is _BUY else book.stops_sell
            stops.add((cmd.stop_price, seq))
            return
        trades_before = self.next_trade_id
        self._execute(seq, book, order, acct)
        if self.next_trade_id != trades_before:
            self._run_stops(seq, book)
        self._flush_deltas(seq)

    @staticmethod
    def _crosses(book: Book, side: Side, price: int) -> bool:
        """Would a limit order at ``price`` trade with the opposite side right now?"""
        return book.best_ask <= price if side is _BUY else book.best_bid >= price

    def _fok_fillable(self, book: Book, side: Side, price: int, qty: int, account_id: int, stp: StpMode) -> bool:
        """Could ``qty`` lots fill completely against other accounts' orders at ``price`` or better?

        Walks each level's queue as matching would: an iceberg offers its shown slice, and each refill joins the
        back of the queue. An own order in the way ends the walk unless self-trade prevention cancels the
        resting order and carries on (CANCEL_OLDEST).
        """
        levels = book.asks if side is _BUY else book.bids
        limit_key = price if side is _BUY else -price
        need = qty
        for key in levels.irange(maximum=limit_key):
            queue = deque((o, o.visible, o.remaining) for o in levels[key].orders if o.live)
            while queue:
                maker, shown, remaining = queue.popleft()
                if maker.account == account_id:
                    if stp is _CANCEL_OLDEST:
                        continue
                    return False
                need -= shown
                if need <= 0:
                    return True
                remaining -= shown
                if remaining:
                    queue.append((maker, min(maker.display, remaining), remaining))
        return False

    def _index(self, order: Order, acct: Account) -> None:
        self.orders[order.order_id] = order
        acct.open_orders[order.order_id] = order
        if order.client_order_id:
            self.client_ids[(order.account, order.client_order_id)] = order.order_id

    def _close(self, seq: int, order: Order, acct: Account, reason: CancelReason | None) -> None:
        """Take a finished order out of the engine, return its unused hold and say why it ended."""
        released = order.hold
        if released:
            asset = order.asset
            acct.held[asset] -= released
            acct.available[asset] += released
            order.hold = 0
        order_id = order.order_id
        if self.orders.pop(order_id, None) is not None:  # takers that never rested were never indexed
            del acct.open_orders[order_id]
            if order.client_order_id:
                del self.client_ids[(order.account, order.client_order_id)]
        if reason is None:
            self.events.append(OrderFilled(seq, order.order_id, order.account, order.market, released))
        else:
            remaining = 0 if order.remaining > _QUOTE_ONLY_FLOOR else order.remaining
            self.events.append(
                OrderCancelled(seq, order.order_id, order.account, order.market, reason, remaining, released)
            )

    # ------------------------------------------------------------------ matching

    def _execute(self, seq: int, book: Book, order: Order, acct: Account) -> None:
        """Match ``order`` as the taker, then rest, fill or cancel what is left."""
        outcome = self._match(seq, book, order, acct)
        if outcome is _QUOTE_CAP_REACHED and order.remaining > _QUOTE_ONLY_FLOOR:
            self._close(seq, order, acct, None)  # a market buy sized by quote alone spent its cap: done
        elif outcome is not None:
            self._close(seq, order, acct, outcome)
        elif not order.remaining:
            self._close(seq, order, acct, None)
        elif order.type is _LIMIT and order.tif is _GTC:
            self._rest(book, order, acct)
        elif order.type is _LIMIT:
            self._close(seq, order, acct, _IOC_REMAINDER)
        else:
            self._close(seq, order, acct, _NO_LIQUIDITY)

    def _match(self, seq: int, book: Book, taker: Order, acct: Account) -> CancelReason | None:
        """Trade ``taker`` against the opposite side. Returns a reason if the taker must be cancelled."""
        spec = book.spec
        base_per_lot = spec.base_per_lot
        quote_per_tick_lot = spec.quote_per_tick_lot
        base = spec.base
        quote = spec.quote
        market_maker_ppm = spec.maker_fee_ppm
        taker_ppm = spec.taker_fee_ppm if acct.taker_ppm is None else acct.taker_ppm
        buy = taker.side is _BUY
        levels = book.asks if buy else book.bids
        market_order = taker.type is _MARKET
        limit_key = _NO_LIMIT if market_order else taker.price if buy else -taker.price
        capped = buy and market_order  # a market buy is bounded by its held quote
        taker_price = taker.price
        events = self.events
        touched = self._touched
        fees = self.fees_collected
        accounts = self.accounts
        symbol = book.symbol
        t_avail = acct.available
        t_held = acct.held
        taker_account = taker.account
        outcome: CancelReason | None = None
        first_price = 0

        while taker.remaining and levels:
            key, level = levels.peekitem(0)
            if key > limit_key:
                break
            price = level.price
            if not level.touched:
                level.touched = True
                touched.append(level)
            orders = level.orders
            while taker.remaining and level.count:
                maker = orders[0]
                if not maker.live:
                    orders.popleft()
                    continue
                if maker.account == taker_account:
                    outcome = self._self_trade(seq, book, level, taker, maker, acct)
                    if outcome is not None:
                        break
                    continue
                qty = taker.remaining if taker.remaining < maker.visible else maker.visible
                if capped:
                    affordable = taker.hold // (price * quote_per_tick_lot)
                    if affordable < qty:
                        qty = affordable
                        if not qty:
                            outcome = _QUOTE_CAP_REACHED
                            break
                base_amount = qty * base_per_lot
                quote_amount = price * qty * quote_per_tick_lot
                m_acct = accounts[maker.account]
                maker_ppm = market_maker_ppm if m_acct.maker_ppm is None else m_acct.maker_ppm
                released = 0
                if buy:
                    taker_fee = -((-base_amount * taker_ppm) // FEE_RATE_SCALE)
                    maker_fee = -((-quote_amount * maker_ppm) // FEE_RATE_SCALE)
                    if not capped and taker_price != price:
                        released = (taker_price - price) * qty * quote_per_tick_lot
                        t_avail[quote] += released
                    taker.hold -= quote_amount + released
                    t_held[quote] -= quote_amount + released
                    t_avail[base] += base_amount - taker_fee
                    fees[base] += taker_fee
                    maker.hold -= base_amount
                    m_acct.held[base] -= base_amount
                    m_acct.available[quote] += quote_amount - maker_fee
                    fees[quote] += maker_fee
                else:
                    taker_fee = -((-quote_amount * taker_ppm) // FEE_RATE_SCALE)
                    maker_fee = -((-base_amount * maker_ppm) // FEE_RATE_SCALE)
                    taker.hold -= base_amount
                    t_held[base] -= base_amount
                    t_avail[quote] += quote_amount - taker_fee
                    fees[quote] += taker_fee
                    maker.hold -= quote_amount
                    m_acct.held[quote] -= quote_amount
                    m_acct.available[base] += base_amount - maker_fee
                    fees[base] += maker_fee
                trade_id = self.next_trade_id
                self.next_trade_id = trade_id + 1
                events.append(
                    Trade(
                        seq,
                        symbol,
                        trade_id,
                        price,
                        qty,
                        taker.side,
                        maker.order_id,
                        maker.account,
                        taker.order_id,
                        taker_account,
                        base_amount,
                        quote_amount,
                        maker_fee,
                        taker_fee,
                        released,
                    )
                )
                book.last_price = price
                if not first_price:
                    first_price = price
                taker.remaining -= qty
                maker.remaining -= qty
                maker.visible -= qty
                level.qty -= qty
                if not maker.visible:
                    orders.popleft()
                    if maker.remaining:  # iceberg: refill a slice at the back of the queue
                        refill = maker.display if maker.display < maker.remaining else maker.remaining
                        maker.visible = refill
                        level.qty += refill
                        orders.append(maker)
                    else:
                        maker.live = False
                        level.count -= 1
                        self._close(seq, maker, m_acct, None)
            if not level.count:
                del levels[key]
                if buy:
                    book.best_ask = levels.peekitem(0)[0] if levels else NO_ASK
                else:
                    book.best_bid = -levels.peekitem(0)[0] if levels else 0
            if outcome is not None:
                break
        if first_price:  # prices move one way in a sweep: the first and last trades bound it
            last_price = book.last_price
            low, high = (first_price, last_price) if first_price < last_price else (last_price, first_price)
            if low < book.range_low:
                book.range_low = low
            if high > book.range_high:
                book.range_high = high
        return outcome

    def _self_trade(
        self, seq: int, book: Book, level: Level, taker: Order, maker: Order, acct: Account
    ) -> CancelReason | None:
        """Apply the taker's self-trade prevention to ``maker``, its own resting order at the head of ``level``.

        Returns SELF_TRADE when the taker must stop and be cancelled, None to keep matching.
        """
        mode = taker.stp
        if mode is _CANCEL_NEWEST:
            return _SELF_TRADE
        if mode is _DECREMENT:
            cut = taker.remaining if taker.remaining < maker.remaining else maker.remaining
            self._reduce(seq, book, maker, cut, acct, level)  # may close maker, not the level
            self._reduce(seq, book, taker, cut, acct, None)
            if not taker.remaining:
                return _SELF_TRADE
            return None
        self._remove_resting(book, maker, level, in_match=True)
        self._close(seq, maker, acct, _SELF_TRADE)
        return _SELF_TRADE if mode is _CANCEL_BOTH else None

    def _reduce(self, seq: int, book: Book, order: Order, cut: int, acct: Account, level: Level | None) -> None:
        """Take ``cut`` lots off ``order`` without a trade and release their hold (self-trade DECREMENT)."""
        spec = book.spec
        if order.side is _SELL:
            released = cut * spec.base_per_lot
        elif order.type is _LIMIT:
            released = order.price * cut * spec.quote_per_tick_lot
        else:
            released = 0  # a market buy keeps its quote cap held until it finishes
        asset = order.asset
        order.hold -= released
        acct.held[asset] -= released
        acct.available[asset] += released
        order.remaining -= cut
        if level is not None and order.remaining:
            shown = order.visible if order.visible < order.remaining else order.remaining
            level.qty -= order.visible - shown
            order.visible = shown
        remaining = 0 if order.remaining > _QUOTE_ONLY_FLOOR else order.remaining
        self.events.append(OrderReduced(seq, order.order_id, order.account, order.market, cut, remaining, released))
        if level is not None and not order.remaining:
            self._remove_resting(book, order, level, in_match=True)
            self._close(seq, order, acct, _SELF_TRADE)

    def _rest(self, book: Book, order: Order, acct: Account, *, touch: bool = True) -> Level:
        """Put the remainder of a GTC limit order on the book at the back of its price level.

        With ``touch`` the level is marked for a book delta at the end of the command; without, the caller
        reports it.
        """
        price = order.price
        if order.side is _BUY:
            levels = book.bids
            key = -price
            if price > book.best_bid:
                book.best_bid = price
        else:
            levels = book.asks
            key = price
            if price < book.best_ask:
                book.best_ask = price
        level: Level | None = levels.get(key)
        if level is None:
            level = Level(order.side, price, deque(), book.symbol)
            levels[key] = level
        if order.display:
            order.visible = order.display if order.display < order.remaining else order.remaining
        else:
            order.visible = order.remaining
        level.orders.append(order)
        level.qty += order.visible
        level.count += 1
        if touch and not level.touched:
            level.touched = True
            self._touched.append(level)
        order_id = order.order_id
        self.orders[order_id] = order
        acct.open_orders[order_id] = order
        if order.client_order_id:
            self.client_ids[(order.account, order.client_order_id)] = order_id
        return level

    def _remove_resting(
        self, book: Book, order: Order, level: Level | None = None, *, in_match: bool = False, touch: bool = True
    ) -> Level:
        """Take a resting order off its level (marked dead in place; O(1)) and return the level.

        During matching (``in_match``) the level is left for the matching loop to drop when it empties.
        Without ``touch`` the caller reports the book delta itself.
        """
        if order.side is _BUY:
            levels = book.bids
            key = -order.price
        else:
            levels = book.asks
            key = order.price
        if level is None:
            level = levels[key]
        order.live = False
        level.qty -= order.visible
        level.count -= 1
        if touch and not level.touched:
            level.touched = True
            self._touched.append(level)
        if in_match:
            return level
        if not level.count:
            del levels[key]
            book.refresh_best()
        elif len(level.orders) > 2 * level.count + 32:
            level.compact()
        return level

    def _flush_deltas(self, seq: int) -> None:
        """One book delta per price level the command changed, with the level's quantity after the command."""
        touched = self._touched
        if not touched:
            return
        events = self.events
        if len(touched) == 1:
            level = touched[0]
            level.touched = False
            events.append(BookDelta(seq, level.market, level.side, level.price, level.qty))
        else:
            latest: dict[tuple[str, Side, int], Level] = {}
            for level in touched:  # a level removed and re-created in one command appears twice: keep the last
                level.touched = False
                latest[(level.market, level.side, level.price)] = level
            for level in latest.values():
                events.append(BookDelta(seq, level.market, level.side, level.price, level.qty))
        touched.clear()

    # ------------------------------------------------------------------ stops

    def _run_stops(self, seq: int, book: Book) -> None:
        """Trigger the stops that trades reached, oldest order first, until none is left.

        A stop fires when any trade since the last check reached its price (a buy stop at or below the highest
        trade price, a sell stop at or above the lowest), even if the price moved away again by the end.
        """
        pending: list[int] = []
        self._collect_triggered(book, pending)
        while pending:
            order_id = heapq.heappop(pending)
            order = self.orders[order_id]
            acct = self.accounts[order.account]
            order.type = _LIMIT if order.type is _STOP_LIMIT else _MARKET
            self.events.append(StopTriggered(seq, order_id, order.account, book.symbol, book.last_price))
            trades_before = self.next_trade_id
            self._execute(seq, book, order, acct)
            if self.next_trade_id != trades_before:
                self._collect_triggered(book, pending)

    @staticmethod
    def _collect_triggered(book: Book, pending: list[int]) -> None:
        high = book.range_high
        low = book.range_low
        book.range_high = 0
        book.range_low = NO_ASK
        buys = book.stops_buy
        while buys and buys[0][0] <= high:
            heapq.heappush(pending, buys.pop(0)[1])
        sells = book.stops_sell
        while sells and sells[-1][0] >= low:
            heapq.heappush(pending, sells.pop()[1])

    # ------------------------------------------------------------------ cancels and replaces

    def _find_order(self, seq: int, cmd: CancelOrder | ReplaceOrder, client_order_id: str) -> Order | None:
        """The order a cancel/replace names, or None after emitting the reject."""
        reason: RejectReason | None = None
        order: Order | None = None
        book = self.books.get(cmd.market)
        if book is None:
            reason = RejectReason.UNKNOWN_MARKET
        elif book.status is _CLOSED:
            reason = RejectReason.MARKET_NOT_OPEN
        else:
            order_id = cmd.order_id
            if not order_id and client_order_id:
                order_id = self.client_ids.get((cmd.account, client_order_id), 0)
            order = self.orders.get(order_id) if order_id else None
            if order is None or order.market != cmd.market:
                reason = RejectReason.UNKNOWN_ORDER
                order = None
            elif order.account != cmd.account:
                reason = RejectReason.NOT_ORDER_OWNER
                order = None
        if reason is not None:
            self.events.append(OrderRejected(seq, cmd.account, cmd.market, reason, client_order_id, cmd.order_id))
        return order

    def _cancel(self, seq: int, cmd: CancelOrder) -> None:
        order = self._find_order(seq, cmd, cmd.client_order_id)
        if order is None:
            return
        book = self.books[order.market]
        if order.type is _LIMIT:
            level = self._remove_resting(book, order, touch=False)
            self._close(seq, order, self.accounts[order.account], _USER)
            self.events.append(BookDelta(seq, order.market, order.side, order.price, level.qty))
        else:
            self._cancel_open(seq, book, order, _USER)

    def _cancel_open(self, seq: int, book: Book, order: Order, reason: CancelReason) -> None:
        """Cancel an open order, resting or waiting stop."""
        if order.type is _STOP_LIMIT or order.type is _STOP_MARKET:
            stops = book.stops_buy if order.side is _BUY else book.stops_sell
            stops.remove((order.stop_price, order.order_id))
        else:
            self._remove_resting(book, order)
        self._close(seq, order, self.accounts[order.account], reason)

    def _cancel_all(self, seq: int, cmd: CancelAll) -> None:
        if cmd.market and cmd.market not in self.books:
            self.events.append(OrderRejected(seq, cmd.account, cmd.market, RejectReason.UNKNOWN_MARKET))
            return
        acct = self.accounts.get(cmd.account)
        if acct is None:
            return
        for order_id in sorted(acct.open_orders):
            order = acct.open_orders[order_id]
            if cmd.market and order.market != cmd.market:
                continue
            book = self.books[order.market]
            if book.status is _CLOSED:
                continue
            self._cancel_open(seq, book, order, _USER)
        self._flush_deltas(seq)

    def _replace(self, seq: int, cmd: ReplaceOrder) -> None:
        order = self._find_order(seq, cmd, "")
        if order is None:
            return
        book = self.books[order.market]

        def reject(reason: RejectReason) -> None:
            self.events.append(
                OrderRejected(seq, cmd.account, cmd.market, reason, order.client_order_id, order.order_id)
            )

        if book.status is not _OPEN:
            return reject(RejectReason.MARKET_NOT_OPEN)
        if order.type is not _LIMIT:
            return reject(RejectReason.REPLACE_NOT_SUPPORTED)
        reason = check_replace(cmd, book.spec)
        if reason:
            return reject(RejectReason(reason))
        if cmd.price == order.price and cmd.qty == order.remaining:
            return reject(RejectReason.REPLACE_NO_CHANGE)
        if order.display and order.display >= cmd.qty:
            return reject(RejectReason.INVALID_ORDER_PARAMETERS)
        spec = book.spec
        acct = self.accounts[order.account]
        if order.side is _BUY:
            asset = spec.quote
            new_hold = cmd.price * cmd.qty * spec.quote_per_tick_lot
        else:
            asset = spec.base
            new_hold = cmd.qty * spec.base_per_lot
        delta = new_hold - order.hold
        if delta > acct.available[asset]:
            return reject(RejectReason.INSUFFICIENT_BALANCE)
        keep = cmd.price == order.price and cmd.qty < order.remaining
        if not keep and order.post_only and self._crosses(book, order.side, cmd.price):
            return reject(RejectReason.POST_ONLY_WOULD_CROSS)

        acct.available[asset] -= delta
        acct.held[asset] += delta
        if keep:
            level = book.side_levels(order.side)[-order.price if order.side is _BUY else order.price]
            order.hold = new_hold
            order.remaining = cmd.qty
            shown = order.visible if order.visible < cmd.qty else cmd.qty
            level.qty -= order.visible - shown
            order.visible = shown
            if not level.touched:
                level.touched = True
                self._touched.append(level)
            self.events.append(
                OrderReplaced(seq, order.order_id, order.account, order.market, cmd.price, cmd.qty, True, delta)
            )
        else:
            # Lose priority: the old entry stays dead in its queue; a fresh copy carries the order on.
            self._remove_resting(book, order)
            moved = Order(
                order.order_id,
                order.account,
                order.market,
                order.asset,
                order.side,
                order.type,
                cmd.price,
                cmd.qty,
                cmd.qty,
                order.display,
                new_hold,
                0,
                order.tif,
                order.stp,
                order.post_only,
                order.client_order_id,
            )
            self._index(moved, acct)
            self.events.append(
                OrderReplaced(seq, order.order_id, order.account, order.market, cmd.price, cmd.qty, False, delta)
            )
            trades_before = self.next_trade_id
            self._execute(seq, book, moved, acct)
            if self.next_trade_id != trades_before:
                self._run_stops(seq, book)
        self._flush_deltas(seq)

    # ------------------------------------------------------------------ operator actions

    def _set_account_fees(self, seq: int, cmd: SetAccountFees) -> None:
        maker, taker = cmd.maker_ppm, cmd.taker_ppm
        valid = (
            type(cmd.account) is int
            and cmd.account > 0
            and (maker is None) == (taker is None)
            and (maker is None or (type(maker) is int and MIN_MAKER_FEE_PPM <= maker <= MAX_FEE_PPM))
            and (taker is None or (type(taker) is int and 0 <= taker <= MAX_FEE_PPM))
        )
        if not valid:
            self.events.append(OrderRejected(seq, cmd.account, "", RejectReason.INVALID_FEE_RATE))
            return
        acct = self.accounts.get(cmd.account) or self._new_account(cmd.account)
        acct.maker_ppm = maker
        acct.taker_ppm = taker
        self.events.append(AccountFeesChanged(seq, cmd.account, maker, taker))

    def _set_status(self, seq: int, cmd: SetMarketStatus) -> None:
        book = self.books.get(cmd.market)
        if book is None or type(cmd.status) is not MarketStatus:
            reason = RejectReason.UNKNOWN_MARKET if book is None else RejectReason.INVALID_ORDER_PARAMETERS
            self.events.append(OrderRejected(seq, 0, cmd.market, reason))
            return
        book.status = cmd.status
        self.events.append(MarketStatusChanged(seq, cmd.market, cmd.status))
        if cmd.status is _CLOSED:
            for order_id in sorted(self.orders):
                order = self.orders[order_id]
                if order.market == cmd.market:
                    self._cancel_open(seq, book, order, _MARKET_CLOSED)
            self._flush_deltas(seq)
