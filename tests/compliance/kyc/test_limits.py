"""KYC tier limits: the policy read from ``[compliance.kyc]``, the 24-hour rolling sum, and refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_framework.compliance.limits import (
    RELEASED_STAGES,
    WINDOW_NS,
    LimitError,
    RecentWithdrawal,
    TierPolicy,
    check_withdrawal,
)
from exchange_framework.config import ConfigError, parse_config
from tests.conftest import MINIMAL_CONFIG

BTC = 10**8
USDT = 10**6
HOUR = 3600 * 10**9
NOW = 1_000 * 24 * HOUR

TIERS = """
[compliance.kyc]
provider = "manual"

[compliance.kyc.tiers.1.daily_withdrawal]
BTC = "0.5"
USDT = "10000"

[compliance.kyc.tiers.2.daily_withdrawal]
BTC = "10"
USDT = "250000.5"

[compliance.kyc.tiers.4.daily_withdrawal]
USDT = "1000000"
"""


def policy(extra: str = TIERS) -> TierPolicy:
    return TierPolicy.from_config(parse_config(MINIMAL_CONFIG + extra))


def w(amount: int, *, hours_ago: float = 1, asset: str = "BTC", stage: str = "requested") -> RecentWithdrawal:
    return RecentWithdrawal(asset=asset, amount=amount, stage=stage, requested_ns=NOW - int(hours_ago * HOUR))


def test_tiers_are_read_into_atomic_units() -> None:
    p = policy()
    assert p.daily_limit(1, "BTC") == BTC // 2
    assert p.daily_limit(1, "USDT") == 10_000 * USDT
    assert p.daily_limit(2, "USDT") == 250_000_500_000
    assert p.daily_limit(3, "BTC") == 10 * BTC  # tier 3 is not listed: the highest listed below it applies
    with pytest.raises(LimitError, match="BTC cannot be withdrawn at KYC tier 4"):
        p.daily_limit(4, "BTC")  # tier 4 lists only USDT: fail closed, not unlimited
    with pytest.raises(LimitError, match=r"KYC tier 1\): complete verification"):
        p.daily_limit(0, "BTC")


def test_without_tiers_tier_one_is_unlimited_and_tier_zero_cannot_withdraw() -> None:
    p = policy("")
    assert p.daily_limit(1, "BTC") is None
    check_withdrawal(p, kyc_tier=7, asset="BTC", amount=10**20, recent=[w(10**20)], now_ns=NOW)
    with pytest.raises(LimitError, match="KYC tier 1"):
        check_withdrawal(p, kyc_tier=0, asset="BTC", amount=1, recent=[], now_ns=NOW)


def test_limit_per_tier_is_inclusive() -> None:
    p = policy()
    check_withdrawal(p, kyc_tier=1, asset="BTC", amount=BTC // 2, recent=[], now_ns=NOW)
    with pytest.raises(LimitError, match=r"daily BTC limit at KYC tier 1 \(0\.5 BTC .* 0\.5 BTC available"):
        check_withdrawal(p, kyc_tier=1, asset="BTC", amount=BTC // 2 + 1, recent=[], now_ns=NOW)
    check_withdrawal(p, kyc_tier=2, asset="BTC", amount=BTC // 2 + 1, recent=[], now_ns=NOW)


def test_the_window_rolls_over_24_hours() -> None:
    p = policy()
    recent = [w(BTC // 4, hours_ago=23.9), w(BTC // 4, hours_ago=2)]
    with pytest.raises(LimitError, match="0 BTC available"):
        check_withdrawal(p, kyc_tier=1, asset="BTC", amount=1, recent=recent, now_ns=NOW)
    later = NOW + HOUR // 5  # the older withdrawal is now 24.1 hours old
    check_withdrawal(p, kyc_tier=1, asset="BTC", amount=BTC // 4, recent=recent, now_ns=later)
    with pytest.raises(LimitError, match=r"0\.25 BTC available"):
        check_withdrawal(p, kyc_tier=1, asset="BTC", amount=BTC // 4 + 1, recent=recent, now_ns=later)


def test_released_withdrawals_and_other_assets_do_not_count() -> None:
    p = policy()
    recent = [w(BTC // 2, stage=stage) for stage in sorted(RELEASED_STAGES)]
    recent += [w(9_000 * USDT, asset="USDT")]
    check_withdrawal(p, kyc_tier=1, asset="BTC", amount=BTC // 2, recent=recent, now_ns=NOW)
    for stage in ("requested", "screening", "awaiting_approval", "approved", "signed", "broadcast", "completed"):
        with pytest.raises(LimitError):
            check_withdrawal(p, kyc_tier=1, asset="BTC", amount=1, recent=[w(BTC // 2, stage=stage)], now_ns=NOW)


def test_bad_amounts_are_refused() -> None:
    with pytest.raises(LimitError, match="greater than zero"):
        check_withdrawal(policy(), kyc_tier=2, asset="BTC", amount=0, recent=[], now_ns=NOW)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[compliance.kyc.tiers.1.daily_withdrawal]\nBTC = "0.000000001"\n', "more than 8 decimal places"),
        ('[compliance.kyc.tiers.1.daily_withdrawal]\nDOGE = "1"\n', "does not list: one of BTC, USDT"),
        ("[compliance.kyc.tiers.1.daily_withdrawal]\nBTC = 1.5\n", "compliance.kyc.tiers.1.daily_withdrawal.BTC"),
        ('[compliance.kyc.tiers.1.daily_withdrawal]\nBTC = "-1"\n', "greater than or equal to 0"),
        ('[compliance.kyc.tiers.one.daily_withdrawal]\nBTC = "1"\n', "KYC tier number"),
    ],
)
def test_bad_tier_config_names_the_key(extra: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(MINIMAL_CONFIG + extra)


recent_strategy = st.lists(
    st.builds(
        RecentWithdrawal,
        asset=st.sampled_from(["BTC", "USDT"]),
        amount=st.integers(1, BTC),
        stage=st.sampled_from(["requested", "screening", "completed", "rejected", "cancelled", "failed"]),
        requested_ns=st.integers(NOW - 2 * WINDOW_NS, NOW),
    ),
    max_size=12,
)


@given(recent=recent_strategy, amount=st.integers(1, BTC), tier=st.integers(0, 5))
def test_check_agrees_with_a_model(recent: list[RecentWithdrawal], amount: int, tier: int) -> None:
    p = policy()
    limits = {1: BTC // 2, 2: 10 * BTC, 3: 10 * BTC}  # tier 0 none, tier 4 and 5 list no BTC
    used = sum(
        r.amount
        for r in recent
        if r.asset == "BTC" and r.stage not in {"rejected", "cancelled", "failed"} and r.requested_ns > NOW - WINDOW_NS
    )
    allowed = tier in limits and used + amount <= limits[tier]
    try:
        check_withdrawal(p, kyc_tier=tier, asset="BTC", amount=amount, recent=recent, now_ns=NOW)
    except LimitError:
        assert not allowed
    else:
        assert allowed
