"""Typology rules: structuring, rapid movement, layering, fan-in and fan-out over one account's recent movements.

The rules are pure functions of :class:`Movement` records (what an account's money did, taken from engine events by
:mod:`~exchange_framework.compliance.monitoring.monitor`) and integer :class:`MonitoringParams`. Every alert carries
its evidence: the movements (seq, time, kind, asset, amount, reference, counterparty) and the rule's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum

import msgspec

__all__ = [
    "Alert",
    "MonitoringParams",
    "Movement",
    "MovementKind",
    "Rule",
    "fan_in",
    "fan_out",
    "make_alert",
    "rapid_movement",
    "structuring",
]

NS = 1_000_000_000
PPM = 1_000_000


class Rule(StrEnum):
    """The typologies the monitor detects."""

    STRUCTURING = "structuring"
    RAPID_MOVEMENT = "rapid_movement"
    LAYERING = "layering"
    FAN_IN = "fan_in"
    FAN_OUT = "fan_out"


class MovementKind(StrEnum):
    """What one movement of an account's money was."""

    DEPOSIT = "deposit"  # a credit from outside (FundsCredited, reference not "xfer:")
    WITHDRAWAL = "withdrawal"  # money left the exchange (HeldFundsDebited, or FundsDebited not "xfer:")
    TRADE = "trade"  # the account gave ``amount`` of ``asset`` and received ``received`` of ``received_asset``
    TRANSFER_IN = "transfer_in"  # an internal transfer from ``counterparty`` (FundsCredited "xfer:<id>")
    TRANSFER_OUT = "transfer_out"  # an internal transfer to ``counterparty`` (FundsDebited "xfer:<id>")


class Movement(msgspec.Struct, frozen=True):
    """One movement of one account's money, as evidence: the engine seq, the journal time and the amounts."""

    seq: int
    ts_ns: int
    kind: MovementKind
    account: int
    asset: str
    amount: int  # atomic units of ``asset`` (given, for a trade)
    reference: str = ""
    counterparty: int = 0  # the other account of a trade or internal transfer
    received_asset: str = ""  # trades only
    received: int = 0  # trades only, atomic units of ``received_asset``
    party: str = ""  # the external source (deposit) or destination (withdrawal) if known, else the reference


class MonitoringParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The rules' thresholds: integers only (seconds, counts, ppm, atomic units per asset).

    ``reporting_threshold`` maps an asset to its reporting threshold in atomic units (e.g. ``{"USD": 1_000_000}``
    for 10,000.00 USD in cents); structuring is evaluated only for listed assets, and the scoring features express
    amounts as a fraction of it (the quote-value normalisation). ``exempt_accounts`` (the exchange's own market
    makers and house accounts) never count as a layering hop.
    """

    reporting_threshold: dict[str, int] = {}
    structuring_band_ppm: int = 150_000  # "just below": within 15% under the threshold
    structuring_min_count: int = 3
    structuring_window_s: int = 7 * 86_400
    rapid_window_s: int = 30 * 60  # deposit -> trade -> withdrawal within 30 minutes
    layering_min_accounts: int = 3  # a chain through at least 3 distinct accounts (2 internal hops)
    layering_hop_s: int = 6 * 3600  # each hop within 6 hours of the previous one
    layering_window_s: int = 48 * 3600  # deposit to withdrawal
    fan_in_min_sources: int = 8
    fan_in_window_s: int = 3 * 86_400
    fan_out_min_destinations: int = 8
    fan_out_window_s: int = 3 * 86_400
    exempt_accounts: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, int) and (type(value) is not int or value < 0):
                raise ValueError(f"[compliance.monitoring] {name} must be a non-negative integer, not {value!r}")
        for asset, threshold in self.reporting_threshold.items():
            if type(threshold) is not int or threshold <= 0:
                raise ValueError(f"reporting_threshold.{asset} must be a positive integer of atomic units")
        if not 0 < self.structuring_band_ppm < PPM:
            raise ValueError("structuring_band_ppm must be between 1 and 999999 (parts per million)")
        if self.structuring_min_count < 2 or self.fan_in_min_sources < 2 or self.fan_out_min_destinations < 2:
            raise ValueError("the minimum counts must be at least 2")
        if self.layering_min_accounts < 2:
            raise ValueError("layering_min_accounts must be at least 2 (one internal hop)")

    def as_evidence(self, rule: Rule) -> dict[str, int]:
        """The parameters ``rule`` used, for an alert's evidence."""
        names = {
            Rule.STRUCTURING: ("structuring_band_ppm", "structuring_min_count", "structuring_window_s"),
            Rule.RAPID_MOVEMENT: ("rapid_window_s",),
            Rule.LAYERING: ("layering_min_accounts", "layering_hop_s", "layering_window_s"),
            Rule.FAN_IN: ("fan_in_min_sources", "fan_in_window_s"),
            Rule.FAN_OUT: ("fan_out_min_destinations", "fan_out_window_s"),
        }[rule]
        return {name: getattr(self, name) for name in names}


class Alert(msgspec.Struct, frozen=True):
    """A rule fired on ``account``: the evidence (movements), the rule's parameters and, once scored, ``score``.

    ``id`` is ``"<rule>:<account>:<trigger seq>"``, unique and stable across replays. ``accounts`` is the path of
    a layering chain (first the account that received the deposit, last the one that withdrew). ``features`` are
    the scoring inputs, in the order of :data:`~exchange_framework.compliance.monitoring.features.FEATURES`;
    ``score`` is the model's probability that the alert is a true typology (``None`` without a model).
    """

    id: str
    rule: Rule
    account: int
    trigger_seq: int
    ts_ns: int
    evidence: tuple[Movement, ...]
    parameters: dict[str, int]
    summary: str
    accounts: tuple[int, ...] = ()
    features: tuple[float, ...] = ()
    score: float | None = None


def make_alert(
    rule: Rule,
    trigger: Movement,
    evidence: Sequence[Movement],
    params: MonitoringParams,
    summary: str,
    extra: Mapping[str, int] | None = None,
    accounts: tuple[int, ...] = (),
) -> Alert:
    """Build the alert ``rule`` raises on ``trigger``'s account with ``evidence`` and the rule's parameters."""
    parameters = params.as_evidence(rule) | dict(extra or {})
    return Alert(
        id=f"{rule.value}:{trigger.account}:{trigger.seq}",
        rule=rule,
        account=trigger.account,
        trigger_seq=trigger.seq,
        ts_ns=trigger.ts_ns,
        evidence=tuple(sorted(evidence, key=lambda m: (m.seq, m.kind, m.account))),
        parameters=parameters,
        summary=summary,
        accounts=accounts,
    )


RuleFn = Callable[[Movement, Sequence[Movement], MonitoringParams], Alert | None]


def structuring(trigger: Movement, recent: Sequence[Movement], params: MonitoringParams) -> Alert | None:
    """Repeated deposits (or withdrawals) of one asset just below its reporting threshold within the window.

    Fires when ``trigger`` is such a movement and, counting it, at least ``structuring_min_count`` of the same kind
    and asset fall in ``[threshold - band, threshold)`` within ``structuring_window_s``.
    """
    if trigger.kind not in (MovementKind.DEPOSIT, MovementKind.WITHDRAWAL):
        return None
    threshold = params.reporting_threshold.get(trigger.asset)
    if threshold is None:
        return None
    floor = threshold - threshold * params.structuring_band_ppm // PPM

    def below(m: Movement) -> bool:
        return m.kind is trigger.kind and m.asset == trigger.asset and floor <= m.amount < threshold

    if not below(trigger):
        return None
    since = trigger.ts_ns - params.structuring_window_s * NS
    hits = [m for m in recent if m.ts_ns >= since and m.seq <= trigger.seq and below(m)]
    if len(hits) < params.structuring_min_count:
        return None
    return make_alert(
        Rule.STRUCTURING,
        trigger,
        hits,
        params,
        f"{len(hits)} {trigger.kind.value}s of {trigger.asset} in [{floor}, {threshold}) within "
        f"{params.structuring_window_s}s",
        {"reporting_threshold": threshold, "band_floor": floor},
    )


def rapid_movement(trigger: Movement, recent: Sequence[Movement], params: MonitoringParams) -> Alert | None:
    """A deposit, a trade out of the deposited asset and a withdrawal of the trade's proceeds within the window.

    ``trigger`` is the withdrawal (of asset X); the rule looks back for a trade that received X after a deposit
    of the asset that trade gave, the deposit no more than ``rapid_window_s`` before the withdrawal.
    """
    if trigger.kind is not MovementKind.WITHDRAWAL:
        return None
    since = trigger.ts_ns - params.rapid_window_s * NS
    window = [m for m in recent if since <= m.ts_ns <= trigger.ts_ns and m.seq < trigger.seq]
    for trade in reversed(window):
        if trade.kind is not MovementKind.TRADE or trade.received_asset != trigger.asset:
            continue
        deposits = [
            m for m in window if m.kind is MovementKind.DEPOSIT and m.asset == trade.asset and m.seq < trade.seq
        ]
        if deposits:
            deposit = deposits[-1]
            trades = [
                m
                for m in window
                if m.kind is MovementKind.TRADE
                and deposit.seq < m.seq <= trade.seq
                and m.received_asset == trigger.asset
            ]
            seconds = (trigger.ts_ns - deposit.ts_ns) // NS
            return make_alert(
                Rule.RAPID_MOVEMENT,
                trigger,
                [deposit, *trades, trigger],
                params,
                f"deposit of {deposit.asset} traded to {trigger.asset} and withdrawn within {seconds}s",
                {"elapsed_s": seconds},
            )
    return None


def fan_in(trigger: Movement, recent: Sequence[Movement], params: MonitoringParams) -> Alert | None:
    """Money into one account from at least ``fan_in_min_sources`` distinct sources within the window.

    A source is a deposit's payer when the monitor was told it (``party``), else the deposit transaction, or the
    sending account of an internal transfer. Trades on the order book are not sources.
    """
    return _fan(
        Rule.FAN_IN,
        trigger,
        recent,
        params,
        (MovementKind.DEPOSIT, MovementKind.TRANSFER_IN),
        params.fan_in_min_sources,
        params.fan_in_window_s,
    )


def fan_out(trigger: Movement, recent: Sequence[Movement], params: MonitoringParams) -> Alert | None:
    """Money out of one account to at least ``fan_out_min_destinations`` distinct destinations within the window.

    A destination is a withdrawal's address when the monitor was told it (``party``), else the withdrawal itself,
    or the receiving account of an internal transfer.
    """
    return _fan(
        Rule.FAN_OUT,
        trigger,
        recent,
        params,
        (MovementKind.WITHDRAWAL, MovementKind.TRANSFER_OUT),
        params.fan_out_min_destinations,
        params.fan_out_window_s,
    )


def _fan(
    rule: Rule,
    trigger: Movement,
    recent: Sequence[Movement],
    params: MonitoringParams,
    kinds: tuple[MovementKind, ...],
    minimum: int,
    window_s: int,
) -> Alert | None:
    if trigger.kind not in kinds:
        return None
    since = trigger.ts_ns - window_s * NS
    hits = [m for m in recent if m.kind in kinds and since <= m.ts_ns and m.seq <= trigger.seq]
    parties = {_party(m) for m in hits}
    if len(parties) < minimum:
        return None
    word = "sources" if rule is Rule.FAN_IN else "destinations"
    return make_alert(
        rule, trigger, hits, params, f"{len(parties)} distinct {word} within {window_s}s", {"distinct": len(parties)}
    )


def _party(m: Movement) -> str:
    if m.kind in (MovementKind.TRANSFER_IN, MovementKind.TRANSFER_OUT):
        return f"account:{m.counterparty}"
    return m.party or m.reference or f"seq:{m.seq}"


ACCOUNT_RULES: tuple[RuleFn, ...] = (structuring, rapid_movement, fan_in, fan_out)
