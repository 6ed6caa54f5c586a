"""Seeded synthetic account histories, as real engine events, labelled by typology: the model's training data.

Nothing is downloaded. One market (``BTC-USD``: USD in cents, BTC in satoshis) and one exempt market maker
(account 1) that every ordinary customer trades with. Each customer follows one behaviour for ~60 days:

- illicit: ``structuring`` (several deposits just under the reporting threshold within days, then a withdrawal),
  ``rapid`` (a fresh account deposits, buys, withdraws the coins within minutes), ``layering`` (a deposit passed
  through 2-4 mule accounts by trades between them, the last one withdraws), ``fan_in`` (many small deposits from
  many payers, then withdrawn at once), ``fan_out`` (one deposit split into many withdrawals);
- benign, including look-alikes that trip the same rules: ``retail`` (ordinary trading), ``business`` (takings
  deposited often, some amounts just under the threshold), ``arbitrage`` (long-lived traders who deposit, buy and
  withdraw quickly, many times), ``merchant`` (many small customer payments in), ``payroll`` (regular payouts to
  many addresses), ``peers`` (a circle of established accounts trading with each other and withdrawing).

Amounts, timings and history lengths overlap between the two sides on purpose (some structurers use ragged
amounts, some businesses round ones; some mules have a little history), so the rules alone over-alert and the
scores have something to learn. Same seed, same events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from exchange_framework.compliance.monitoring.rules import MonitoringParams
from exchange_framework.engine.events import Event, FundsCredited, FundsHeld, HeldFundsDebited, Trade
from exchange_framework.types import Side

__all__ = ["ILLICIT", "MARKETS", "MARKET_MAKER", "PARAMS", "SyntheticHistory", "generate"]

MARKET = "BTC-USD"
MARKETS = {MARKET: ("BTC", "USD")}
MARKET_MAKER = 1
START_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
DAY = 86_400
USD_THRESHOLD = 1_000_000  # 10,000.00 USD in cents
PRICE = 3_000_000  # cents per BTC (30,000 USD)
SATS = 100_000_000
PARAMS = MonitoringParams(
    reporting_threshold={"USD": USD_THRESHOLD, "BTC": USD_THRESHOLD * SATS // PRICE},
    exempt_accounts=frozenset({MARKET_MAKER}),
)
ILLICIT = ("structuring", "rapid", "layering", "fan_in", "fan_out")
_BENIGN = ("retail", "business", "arbitrage", "merchant", "payroll", "peers")
# how often each behaviour appears (illicit ~ 1 in 4 customers, mostly rarer than their look-alikes)
_WEIGHTS = {
    "retail": 40, "business": 8, "arbitrage": 8, "merchant": 6, "payroll": 5, "peers": 6,
    "structuring": 5, "rapid": 5, "layering": 4, "fan_in": 4, "fan_out": 4,
}  # fmt: skip


@dataclass
class SyntheticHistory:
    """Engine event batches ``(ts_ns, events)`` in journal order, and each customer account's behaviour."""

    batches: list[tuple[int, list[Event]]]
    labels: dict[int, str] = field(default_factory=dict)

    def illicit(self, account: int) -> bool:
        """Whether ``account`` took part in an illicit typology."""
        return self.labels.get(account, "retail") in ILLICIT


class _World:
    def __init__(self, rng: random.Random, days: int) -> None:
        self.rng = rng
        self.days = days
        self.actions: list[tuple[int, int, str, tuple[int, ...]]] = []  # (ts_ns, order, kind, args)
        self.labels: dict[int, str] = {}
        self.next_account = 100

    def account(self, label: str) -> int:
        self.next_account += 1
        self.labels[self.next_account] = label
        return self.next_account

    def at(self, seconds: float) -> int:
        return START_NS + int(seconds * 1_000_000_000)

    def add(self, ts: int, kind: str, *args: int) -> None:
        self.actions.append((ts, len(self.actions), kind, args))

    def deposit(self, t: float, account: int, asset: int, amount: int) -> None:
        self.add(self.at(t), "deposit", account, asset, amount)

    def withdraw(self, t: float, account: int, asset: int, amount: int) -> None:
        self.add(self.at(t), "withdraw", account, asset, amount)

    def buy(self, t: float, account: int, usd: int, seller: int = MARKET_MAKER, premium_ppm: int = 0) -> int:
        sats = usd * SATS // PRICE * (1_000_000 - premium_ppm) // 1_000_000
        self.add(self.at(t), "trade", account, seller, sats, usd)
        return sats

    def sell(self, t: float, account: int, sats: int, buyer: int = MARKET_MAKER) -> int:
        usd = sats * PRICE // SATS
        self.add(self.at(t), "trade", buyer, account, sats, usd)
        return usd

    # -- helpers ------------------------------------------------------------------------------------------------------

    def day(self, lo: float = 0.0, hi: float | None = None) -> float:
        return self.rng.uniform(lo * DAY, (self.days if hi is None else hi) * DAY)

    def usd(self, lo: int, hi: int, round_p: float = 0.2) -> int:
        dollars = int(self.rng.lognormvariate(0, 1) * (hi - lo) / 3) + lo
        dollars = min(max(dollars, lo), hi)
        if self.rng.random() < round_p:
            dollars = max(lo, dollars // 100 * 100)
        cents = 0 if self.rng.random() < 0.5 else self.rng.randrange(100)
        return dollars * 100 + cents

    def near_threshold(self, round_p: float) -> int:
        dollars = self.rng.randint(8_600, 9_990)
        if self.rng.random() < round_p:
            dollars = dollars // 100 * 100
            return dollars * 100
        return dollars * 100 + self.rng.randrange(100)

    def history(self, account: int, start: float, deposits: int) -> None:
        """Some ordinary activity before ``start`` (days): deposits, buys and a sell."""
        for _ in range(deposits):
            t = self.rng.uniform(max(0.0, start - 40) * DAY, start * DAY)
            amount = self.usd(50, 3_000)
            self.deposit(t, account, 0, amount)
            sats = self.buy(t + self.rng.uniform(60, 3 * DAY), account, amount // 2)
            if self.rng.random() < 0.5:
                self.sell(t + self.rng.uniform(3 * DAY, 6 * DAY), account, sats // 2)


_ASSETS = ("USD", "BTC")


def _retail(w: _World) -> None:
    a = w.account("retail")
    for _ in range(w.rng.randint(1, 5)):
        t = w.day()
        amount = w.usd(20, 8_000)
        w.deposit(t, a, 0, amount)
        sats = w.buy(t + w.rng.uniform(300, 2 * DAY), a, amount * w.rng.randint(30, 100) // 100)
        if w.rng.random() < 0.4:
            w.withdraw(t + w.rng.uniform(2 * DAY, 20 * DAY), a, 1, sats * w.rng.randint(20, 100) // 100)


def _business(w: _World) -> None:
    a = w.account("business")
    if w.rng.random() < 0.6:
        w.history(a, w.rng.uniform(10, 30), w.rng.randint(1, 8))
    t = w.day(15, 55)
    for _ in range(w.rng.randint(3, 7)):
        t += w.rng.uniform(0.5 * DAY, 2.5 * DAY)
        amount = w.near_threshold(0.4) if w.rng.random() < 0.6 else w.usd(2_000, 20_000)
        w.deposit(t, a, 0, amount)
        if w.rng.random() < 0.5:
            w.buy(t + w.rng.uniform(3600, DAY), a, amount // 3)


def _arbitrage(w: _World) -> None:
    a = w.account("arbitrage")
    if w.rng.random() < 0.6:
        w.history(a, w.rng.uniform(10, 40), w.rng.randint(1, 10))
    for _ in range(w.rng.randint(1, 4)):
        t = w.day(20, 58)
        amount = w.usd(500, 60_000, round_p=0.35)
        w.deposit(t, a, 0, amount)
        lo = 95 if w.rng.random() < 0.5 else 70  # half the time the whole deposit goes straight through
        sats = w.buy(t + w.rng.uniform(30, 600), a, amount * w.rng.randint(lo, 100) // 100)
        w.withdraw(t + w.rng.uniform(700, 1_700), a, 1, sats * w.rng.randint(lo, 100) // 100)


def _merchant(w: _World) -> None:
    a = w.account("merchant")
    if w.rng.random() < 0.6:
        w.history(a, w.rng.uniform(10, 30), w.rng.randint(1, 6))
    t = w.day(20, 50)
    total = 0
    for _ in range(w.rng.randint(6, 20)):
        amount = w.usd(10, 2_500, round_p=0.4)
        total += amount
        w.deposit(t + w.rng.uniform(0, 3 * DAY), a, 0, amount)
    share = w.rng.randint(85, 100) if w.rng.random() < 0.4 else w.rng.randint(10, 60)
    w.withdraw(t + w.rng.uniform(2 * DAY, 8 * DAY), a, 0, total * share // 100)


def _payroll(w: _World) -> None:
    a = w.account("payroll")
    if w.rng.random() < 0.6:
        w.history(a, w.rng.uniform(10, 30), w.rng.randint(1, 8))
    t = w.day(20, 50)
    w.deposit(t, a, 0, w.usd(5_000, 90_000, round_p=0.4))
    salary = w.usd(800, 8_000, round_p=0.5)
    uniform = w.rng.random() < 0.4  # a fixed salary: near-equal payouts
    for _ in range(w.rng.randint(6, 16)):
        pay = salary * w.rng.randint(90, 110) // 100 if uniform else w.usd(800, 8_000, round_p=0.5)
        w.withdraw(t + w.rng.uniform(0.2 * DAY, 2.5 * DAY), a, 0, pay)


def _peers(w: _World) -> None:
    size = w.rng.randint(3, 5)
    group = [w.account("peers") for _ in range(size)]
    for a in group:
        if w.rng.random() < 0.6:
            w.history(a, w.rng.uniform(10, 30), w.rng.randint(1, 8))
    t = w.day(25, 55)
    amount = w.usd(200, 30_000, round_p=0.3)
    w.deposit(t, group[0], 0, amount)
    for i in range(size - 1):
        t += w.rng.uniform(300, 5 * 3600)
        part = amount * (w.rng.randint(90, 100) if w.rng.random() < 0.4 else w.rng.randint(20, 100)) // 100
        w.buy(t, group[i], part, seller=group[i + 1], premium_ppm=w.rng.choice((0, 0, 20_000, 100_000)))
    w.withdraw(t + w.rng.uniform(300, 5 * 3600), group[-1], 0, amount * w.rng.randint(20, 100) // 100)


def _structuring(w: _World) -> None:
    a = w.account("structuring")
    if w.rng.random() < 0.45:
        w.history(a, w.rng.uniform(5, 20), w.rng.randint(1, 3))
    t = w.day(20, 50)
    total = 0
    for _ in range(w.rng.randint(3, 6)):
        t += w.rng.uniform(0.1 * DAY, 1.5 * DAY)
        amount = w.near_threshold(0.45)
        total += amount
        w.deposit(t, a, 0, amount)
    if w.rng.random() < 0.7:
        sats = w.buy(t + w.rng.uniform(600, DAY), a, total * 9 // 10)
        w.withdraw(t + w.rng.uniform(DAY, 3 * DAY), a, 1, sats)


def _rapid(w: _World) -> None:
    a = w.account("rapid")
    if w.rng.random() < 0.45:
        w.history(a, w.rng.uniform(5, 30), w.rng.randint(1, 4))
    t = w.day(20, 58)
    amount = w.usd(1_000, 90_000, round_p=0.45)
    w.deposit(t, a, 0, amount)
    lo = 70 if w.rng.random() < 0.3 else 95  # some keep a part back
    sats = w.buy(t + w.rng.uniform(20, 400), a, amount * w.rng.randint(lo, 100) // 100)
    w.withdraw(t + w.rng.uniform(500, 1_500), a, 1, sats * w.rng.randint(lo, 100) // 100)


def _layering(w: _World) -> None:
    size = w.rng.randint(3, 5)
    group = [w.account("layering") for _ in range(size)]
    for a in group:
        if w.rng.random() < 0.4:
            w.history(a, w.rng.uniform(5, 30), w.rng.randint(1, 4))
    t = w.day(20, 58)
    amount = w.usd(1_000, 80_000, round_p=0.35)
    w.deposit(t, group[0], 0, amount)
    for i in range(size - 1):
        t += w.rng.uniform(120, 3 * 3600)
        w.buy(t, group[i], amount, seller=group[i + 1], premium_ppm=w.rng.randint(50_000, 300_000))
    w.withdraw(t + w.rng.uniform(300, 3 * 3600), group[-1], 0, amount * w.rng.randint(85, 100) // 100)


def _fan_in(w: _World) -> None:
    a = w.account("fan_in")
    if w.rng.random() < 0.45:
        w.history(a, w.rng.uniform(5, 20), w.rng.randint(1, 3))
    t = w.day(20, 55)
    total = 0
    for _ in range(w.rng.randint(8, 25)):
        amount = w.usd(200, 4_000, round_p=0.5)
        total += amount
        w.deposit(t + w.rng.uniform(0, 2 * DAY), a, 0, amount)
    w.withdraw(t + w.rng.uniform(2 * DAY, 3 * DAY), a, 0, total * w.rng.randint(90, 100) // 100)


def _fan_out(w: _World) -> None:
    a = w.account("fan_out")
    if w.rng.random() < 0.45:
        w.history(a, w.rng.uniform(5, 20), w.rng.randint(1, 3))
    t = w.day(20, 55)
    amount = w.usd(8_000, 150_000, round_p=0.45)
    w.deposit(t, a, 0, amount)
    pieces = w.rng.randint(8, 20)
    ragged = w.rng.random() < 0.4
    for _ in range(pieces):
        spread = 50 if ragged else 15
        piece = amount // pieces * w.rng.randint(100 - spread, 100 + spread) // 100
        w.withdraw(t + w.rng.uniform(600, 2 * DAY), a, 0, piece)


_BEHAVIOURS = {
    "retail": _retail, "business": _business, "arbitrage": _arbitrage, "merchant": _merchant,
    "payroll": _payroll, "peers": _peers, "structuring": _structuring, "rapid": _rapid,
    "layering": _layering, "fan_in": _fan_in, "fan_out": _fan_out,
}  # fmt: skip


def generate(seed: int, customers: int = 1_000, *, days: int = 60) -> SyntheticHistory:
    """Generate about ``customers`` customer histories over ``days`` days with ``seed``: same arguments, same events."""
    if customers < 1 or days < 1:
        raise ValueError("customers and days must be positive")
    rng = random.Random(seed)
    w = _World(rng, days)
    names = sorted(_WEIGHTS)
    weights = [_WEIGHTS[n] for n in names]
    while len(w.labels) < customers:
        _BEHAVIOURS[rng.choices(names, weights)[0]](w)
    return SyntheticHistory(_events(w), dict(w.labels))


def _events(w: _World) -> list[tuple[int, list[Event]]]:
    batches: list[tuple[int, list[Event]]] = []
    seq = trade_id = order_id = withdrawal_id = 0
    for ts, _order, kind, args in sorted(w.actions):
        seq += 1
        if kind == "deposit":
            account, asset, amount = args
            ref = f"dep:synthetic:{seq:08x}{w.rng.getrandbits(32):08x}:0"
            batches.append((ts, [FundsCredited(seq, account, _ASSETS[asset], amount, ref)]))
        elif kind == "withdraw":
            account, asset, amount = args
            withdrawal_id += 1
            ref = f"wd:{withdrawal_id}"
            batches.append((ts, [FundsHeld(seq, account, _ASSETS[asset], amount, ref)]))
            seq += 1
            batches.append((ts + 60_000_000_000, [HeldFundsDebited(seq, account, _ASSETS[asset], amount, ref)]))
        else:
            buyer, seller, sats, usd = args
            trade_id += 1
            order_id += 2
            price = usd * 100 // max(1, sats)
            taker = Side.BUY if w.rng.random() < 0.5 else Side.SELL
            maker, taker_account = (seller, buyer) if taker is Side.BUY else (buyer, seller)
            batches.append((ts, [Trade(seq, MARKET, trade_id, price, sats, taker, order_id - 1, maker, order_id,
                                       taker_account, sats, usd, 0, 0, 0)]))  # fmt: skip
    batches.sort(key=lambda b: (b[0], b[1][0].seq))
    # seqs must follow journal order: renumber after the withdrawal debits were placed a minute later
    out: list[tuple[int, list[Event]]] = []
    for n, (ts, events) in enumerate(batches, start=1):
        out.append((ts, [_reseq(e, n) for e in events]))
    return out


def _reseq(event: Event, seq: int) -> Event:
    import msgspec

    return msgspec.structs.replace(event, seq=seq)
