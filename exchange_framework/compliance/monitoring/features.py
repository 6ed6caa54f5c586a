"""Scoring features of an alert: what the rule saw plus the account's lifetime activity, as a fixed-order vector.

The model refuses to load unless its stored feature list equals :data:`FEATURES` exactly: renaming, adding or
reordering a feature means training a new model (``python -m exchange_framework.compliance.monitoring train``).
Amounts are normalised by the asset's reporting threshold (``amount / threshold``), so assets with different
atomic units compare; an asset without a threshold contributes 0 to value features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from exchange_framework.compliance.monitoring.rules import Alert, MonitoringParams, MovementKind, Rule

__all__ = ["FEATURES", "AccountStats", "extract"]

FEATURES: tuple[str, ...] = (
    "rule_structuring",
    "rule_rapid_movement",
    "rule_layering",
    "rule_fan_in",
    "rule_fan_out",
    "evidence_count",
    "evidence_span_s",
    "evidence_mean_gap_s",
    "evidence_value",
    "evidence_max_value",
    "near_threshold_fraction",
    "amount_cv",
    "round_amount_fraction",
    "chain_accounts",
    "account_age_s",
    "lifetime_deposits",
    "lifetime_withdrawals",
    "lifetime_trades",
    "lifetime_counterparties",
    "withdrawn_to_deposited",
    "prior_alerts",
)
_RULE_FEATURE = {rule: FEATURES.index(f"rule_{rule.value}") for rule in Rule}


@dataclass
class AccountStats:
    """An account's lifetime activity as the monitor saw it (values normalised by reporting thresholds)."""

    first_seen_ns: int
    deposits: int = 0
    withdrawals: int = 0
    trades: int = 0
    counterparties: set[int] = field(default_factory=set)
    deposited_value: float = 0.0
    withdrawn_value: float = 0.0
    alerts: int = 0


def value(asset: str, amount: int, params: MonitoringParams) -> float:
    """``amount`` of ``asset`` as a multiple of its reporting threshold (0 if it has none)."""
    threshold = params.reporting_threshold.get(asset)
    return amount / threshold if threshold else 0.0


def extract(alert: Alert, stats: AccountStats, params: MonitoringParams) -> tuple[float, ...]:
    """Return the features of ``alert`` on an account with ``stats`` (before this alert), ordered as FEATURES."""
    ev = alert.evidence
    money = [m for m in ev if m.kind is not MovementKind.TRADE or m.account == alert.account]
    values = [value(m.asset, m.amount, params) for m in money]
    times = sorted(m.ts_ns for m in ev)
    span = (times[-1] - times[0]) / 1e9 if times else 0.0
    gap = span / (len(times) - 1) if len(times) > 1 else 0.0
    near = [v for v in values if 0.8 <= v < 1.0]
    thresholds = [params.reporting_threshold.get(m.asset, 0) for m in money]
    rounds = [t > 0 and m.amount % max(1, t // 100) == 0 for m, t in zip(money, thresholds, strict=True)]
    mean = sum(values) / len(values) if values else 0.0
    cv = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / mean if values and mean > 0 else 0.0
    out = [0.0] * len(FEATURES)
    out[_RULE_FEATURE[alert.rule]] = 1.0
    rest = (
        float(len(ev)),
        span,
        gap,
        sum(values),
        max(values, default=0.0),
        len(near) / len(values) if values else 0.0,
        cv,
        sum(rounds) / len(rounds) if rounds else 0.0,
        float(len(alert.accounts)),
        (alert.ts_ns - stats.first_seen_ns) / 1e9,
        float(stats.deposits),
        float(stats.withdrawals),
        float(stats.trades),
        float(len(stats.counterparties)),
        stats.withdrawn_value / stats.deposited_value if stats.deposited_value > 0 else 0.0,
        float(stats.alerts),
    )
    out[len(Rule) :] = rest
    return tuple(out)
