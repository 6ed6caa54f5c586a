"""Withdrawal limits per KYC tier, enforced by the kernel when a withdrawal is requested.

A :class:`TierPolicy` is read once from ``[compliance.kyc]`` (decimal strings turned into atomic units there);
from then on everything is integers. :func:`check_withdrawal` is what the wallet calls before it records a new
withdrawal: it sums the account's withdrawals of the asset requested in the last 24 hours — every stage except
``rejected``, ``cancelled`` and ``failed``, whose funds were released — and refuses a request that would go over
the tier's limit, with a message saying how much is still available.

Without ``tiers`` in the config the policy is the historical one: tier 1 and above withdraw without a daily limit,
tier 0 does not withdraw at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import msgspec

from exchange_framework.money import format_atomic, to_atomic

if TYPE_CHECKING:
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.wallet.store import WalletStore

__all__ = [
    "RELEASED_STAGES",
    "WINDOW_NS",
    "LimitError",
    "RecentWithdrawal",
    "TierLimits",
    "TierPolicy",
    "check_withdrawal",
    "recent_withdrawals",
]

WINDOW_NS = 24 * 3600 * 10**9
# Stages whose held funds went back to the customer: they never count against a limit.
RELEASED_STAGES = frozenset({"rejected", "cancelled", "failed"})
# More rows than this for one account in 24 hours: refuse rather than sum a partial history (fail closed).
_MAX_ROWS = 10_000


class LimitError(ValueError):
    """A withdrawal refused by the KYC tier policy; the message says why and what the customer can do."""


class TierLimits(msgspec.Struct, frozen=True):
    """One tier's daily withdrawal limits in atomic units per asset; ``unlimited`` tiers have no daily cap."""

    tier: int
    daily_withdrawal: Mapping[str, int] = {}
    unlimited: bool = False


class TierPolicy(msgspec.Struct, frozen=True):
    """Withdrawal limits per KYC tier (atomic units). A customer gets the highest tier listed at or below theirs."""

    tiers: Mapping[int, TierLimits]
    decimals: Mapping[str, int] = {}

    @classmethod
    def from_config(cls, config: ExchangeConfig) -> TierPolicy:
        """Build the policy from ``[compliance.kyc]`` (already validated: every limit is exact in its asset)."""
        decimals = {symbol: asset.decimals for symbol, asset in config.assets.items()}
        tiers = config.compliance.kyc.tiers
        if tiers is None:
            return cls(tiers={1: TierLimits(tier=1, unlimited=True)}, decimals=decimals)
        return cls(
            tiers={
                number: TierLimits(
                    tier=number,
                    daily_withdrawal={
                        asset: to_atomic(limit, decimals[asset]) for asset, limit in settings.daily_withdrawal.items()
                    },
                )
                for number, settings in tiers.items()
            },
            decimals=decimals,
        )

    def limits_for(self, kyc_tier: int) -> TierLimits | None:
        """The limits that apply to a customer at ``kyc_tier``, or None if they may not withdraw at all."""
        eligible = [number for number in self.tiers if number <= kyc_tier]
        return self.tiers[max(eligible)] if eligible else None

    def daily_limit(self, kyc_tier: int, asset: str) -> int | None:
        """The most of ``asset`` a customer at ``kyc_tier`` may withdraw in 24 hours (atomic units); None: no cap.

        Raise :class:`LimitError` when the tier may not withdraw ``asset`` at all.
        """
        limits = self.limits_for(kyc_tier)
        if limits is None:
            lowest = min((n for n in self.tiers if n > kyc_tier), default=None)
            need = f"KYC tier {lowest}" if lowest is not None else "a higher KYC tier"
            raise LimitError(f"withdrawals need a verified identity ({need}): complete verification first")
        if limits.unlimited:
            return None
        if asset not in limits.daily_withdrawal:
            raise LimitError(
                f"{asset} cannot be withdrawn at KYC tier {kyc_tier}: verify to a higher tier or contact support"
            )
        return limits.daily_withdrawal[asset]


class RecentWithdrawal(msgspec.Struct, frozen=True):
    """What the limit check needs of one past withdrawal (``amount`` in atomic units, ``stage`` by its value)."""

    asset: str
    amount: int
    stage: str
    requested_ns: int


def recent_withdrawals(store: WalletStore, account: int, *, now_ns: int) -> list[RecentWithdrawal]:
    """``account``'s withdrawals requested in the 24 hours before ``now_ns`` from a wallet store, any stage.

    Raise :class:`LimitError` if there are too many to be sure the sum is complete.
    """
    since = now_ns - WINDOW_NS
    rows = store.withdrawals(account=account, limit=_MAX_ROWS)
    found = [
        RecentWithdrawal(asset=row.asset, amount=row.amount, stage=row.stage.value, requested_ns=row.requested_ns)
        for row in rows
    ]
    if len(rows) >= _MAX_ROWS and all(r.requested_ns > since for r in found):
        raise LimitError("too many withdrawals in the last 24 hours to check the limit: contact support")
    return [r for r in found if r.requested_ns > since]


def check_withdrawal(
    policy: TierPolicy,
    *,
    kyc_tier: int,
    asset: str,
    amount: int,
    recent: Iterable[RecentWithdrawal],
    now_ns: int,
) -> None:
    """Refuse (raise :class:`LimitError`) a withdrawal of ``amount`` atomic units that the tier does not allow.

    ``recent`` are the account's withdrawals; those of ``asset`` requested in the 24 hours up to ``now_ns`` and
    not released (rejected, cancelled, failed) count against the limit. Nothing is changed either way.
    """
    if amount <= 0:
        raise LimitError("the amount must be greater than zero")
    limit = policy.daily_limit(kyc_tier, asset)
    if limit is None:
        return
    since = now_ns - WINDOW_NS
    used = sum(
        r.amount for r in recent if r.asset == asset and r.stage not in RELEASED_STAGES and since < r.requested_ns
    )
    if used + amount <= limit:
        return
    places = policy.decimals.get(asset, 0)
    left = max(limit - used, 0)
    raise LimitError(
        f"this withdrawal would exceed your daily {asset} limit at KYC tier {kyc_tier} "
        f"({format_atomic(limit, places, trim=True)} {asset} in any 24 hours; "
        f"{format_atomic(left, places, trim=True)} {asset} available now): withdraw less, wait, or verify to a "
        "higher tier"
    )
