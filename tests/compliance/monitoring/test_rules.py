"""Each typology rule fires on its pattern with its evidence, and not on benign look-alikes."""

from __future__ import annotations

import pytest

from exchange_framework.compliance.monitoring import Alert, Monitor, MonitoringParams, MovementKind, Rule
from tests.compliance.monitoring.events import MARKETS, Journal

MM = 1
PARAMS = MonitoringParams(reporting_threshold={"USD": 1_000_000, "BTC": 33_333_333}, exempt_accounts=frozenset({MM}))
DAY = 24 * 60


def run(journal: Journal, params: MonitoringParams = PARAMS, **kwargs: object) -> list[Alert]:
    monitor = Monitor(MARKETS, params, **kwargs)  # type: ignore[arg-type]
    return monitor.feed(journal.batches)


def only(alerts: list[Alert], rule: Rule) -> list[Alert]:
    return [a for a in alerts if a.rule is rule]


# -- structuring ------------------------------------------------------------------------------------------------------


def test_structuring_fires_on_repeated_deposits_just_below_the_threshold_with_its_evidence() -> None:
    j = Journal()
    seqs = [j.deposit(0, 7, 950_000), j.deposit(DAY, 7, 970_000), j.deposit(2 * DAY, 7, 990_000)]
    alerts = only(run(j), Rule.STRUCTURING)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.account == 7 and alert.trigger_seq == seqs[-1] and alert.id == f"structuring:7:{seqs[-1]}"
    assert [m.seq for m in alert.evidence] == seqs
    assert [m.amount for m in alert.evidence] == [950_000, 970_000, 990_000]
    assert {m.kind for m in alert.evidence} == {MovementKind.DEPOSIT}
    assert alert.parameters == {
        "structuring_band_ppm": 150_000,
        "structuring_min_count": 3,
        "structuring_window_s": 7 * 86_400,
        "reporting_threshold": 1_000_000,
        "band_floor": 850_000,
    }
    assert alert.evidence[0].ts_ns < alert.evidence[-1].ts_ns == alert.ts_ns


@pytest.mark.parametrize(
    ("amounts", "gap_minutes"),
    [
        ([1_000_000, 1_000_000, 990_000], DAY),  # at the threshold is reported anyway: only one is below
        ([800_000, 820_000, 840_000], DAY),  # well below the band: ordinary deposits
        ([950_000, 960_000, 970_000], 4 * DAY),  # just below, but spread over 8 days (window 7)
        ([950_000, 960_000], DAY),  # two are not a pattern
    ],
)
def test_structuring_ignores_benign_look_alikes(amounts: list[int], gap_minutes: int) -> None:
    j = Journal()
    for i, amount in enumerate(amounts):
        j.deposit(i * gap_minutes, 7, amount)
    assert only(run(j), Rule.STRUCTURING) == []


def test_structuring_evidence_is_not_reused_for_a_second_alert() -> None:
    j = Journal()
    for i in range(5):
        j.deposit(i * 60, 7, 960_000)
    alerts = only(run(j), Rule.STRUCTURING)
    assert len(alerts) == 1  # the 4th and 5th deposits alone are not three fresh ones
    for i in range(5, 6):
        j.deposit(i * 60, 7, 960_000)
    assert len(only(run(j), Rule.STRUCTURING)) == 2


# -- rapid movement ---------------------------------------------------------------------------------------------------


def test_rapid_movement_fires_on_deposit_trade_withdrawal_within_the_window() -> None:
    j = Journal()
    dep = j.deposit(0, 7, 500_000)
    trade = j.trade(5, buyer=7, seller=MM, sats=1_600_000, cents=480_000)
    wd = j.withdraw(20, 7, 1_600_000, asset="BTC")
    alerts = only(run(j), Rule.RAPID_MOVEMENT)
    assert len(alerts) == 1
    alert = alerts[0]
    assert [m.seq for m in alert.evidence] == [dep, trade, wd]
    assert [m.kind for m in alert.evidence] == [MovementKind.DEPOSIT, MovementKind.TRADE, MovementKind.WITHDRAWAL]
    assert alert.evidence[1].received_asset == "BTC" and alert.evidence[1].received == 1_600_000
    assert alert.parameters == {"rapid_window_s": 1800, "elapsed_s": 20 * 60}


@pytest.mark.parametrize("case", ["slow", "same_asset_no_trade", "other_asset", "trade_before_deposit"])
def test_rapid_movement_ignores_benign_look_alikes(case: str) -> None:
    j = Journal()
    if case == "trade_before_deposit":
        j.trade(0, buyer=7, seller=MM, sats=1_600_000, cents=480_000)
        j.deposit(5, 7, 500_000)
    else:
        j.deposit(0, 7, 500_000)
    if case != "same_asset_no_trade" and case != "trade_before_deposit":
        j.trade(5, buyer=7, seller=MM, sats=1_600_000, cents=480_000)
    if case == "slow":
        j.withdraw(45, 7, 1_600_000, asset="BTC")  # after the 30-minute window
    elif case == "other_asset":
        j.withdraw(20, 7, 20_000)  # USD left over, not the trade's proceeds
    elif case == "same_asset_no_trade":
        j.withdraw(20, 7, 500_000)  # a deposit returned: no trade in between
    else:
        j.withdraw(20, 7, 1_600_000, asset="BTC")
    assert only(run(j), Rule.RAPID_MOVEMENT) == []


# -- layering ---------------------------------------------------------------------------------------------------------


def test_layering_fires_on_a_deposit_hopping_through_accounts_by_trades() -> None:
    j = Journal()
    dep = j.deposit(0, 10, 3_000_000)
    hop1 = j.trade(10, buyer=10, seller=11, sats=9_000_000, cents=3_000_000)
    hop2 = j.trade(40, buyer=12, seller=11, sats=9_000_000, cents=2_900_000)
    wd = j.withdraw(70, 12, 9_000_000, asset="BTC")
    alerts = only(run(j), Rule.LAYERING)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.account == 12 and alert.accounts == (10, 11, 12)
    assert sorted({m.seq for m in alert.evidence}) == [dep, hop1, hop2, wd]
    assert alert.parameters["chain_accounts"] == 3 and alert.parameters["layering_min_accounts"] == 3


def test_layering_through_internal_transfers() -> None:
    j = Journal()
    j.deposit(0, 10, 3_000_000)
    j.transfer(5, 10, 11, 3_000_000)
    j.transfer(10, 11, 12, 3_000_000)
    j.transfer(15, 12, 13, 3_000_000)
    j.withdraw(20, 13, 3_000_000)
    alerts = only(run(j), Rule.LAYERING)
    assert [a.accounts for a in alerts] == [(10, 11, 12, 13)]
    kinds = {m.kind for m in alerts[0].evidence}
    assert kinds == {MovementKind.DEPOSIT, MovementKind.TRANSFER_OUT, MovementKind.WITHDRAWAL}


@pytest.mark.parametrize("case", ["market_maker", "one_hop", "slow_hop", "withdrawn_by_the_depositor"])
def test_layering_ignores_benign_look_alikes(case: str) -> None:
    j = Journal()
    j.deposit(0, 10, 3_000_000)
    middle = MM if case == "market_maker" else 11
    j.trade(10, buyer=10, seller=middle, sats=9_000_000, cents=3_000_000)
    if case != "one_hop":
        j.trade(40 if case != "slow_hop" else 40 + 7 * 60, buyer=12, seller=middle, sats=9_000_000, cents=2_900_000)
    last = 10 if case == "withdrawn_by_the_depositor" else (11 if case == "one_hop" else 12)
    j.withdraw(500, last, 100_000)
    assert only(run(j), Rule.LAYERING) == []


# -- fan-in / fan-out -------------------------------------------------------------------------------------------------


def test_fan_in_fires_on_many_sources_into_one_account() -> None:
    j = Journal()
    seqs = [j.deposit(i * 30, 7, 50_000 + i, tx=f"t{i}") for i in range(8)]
    alerts = only(run(j), Rule.FAN_IN)
    assert len(alerts) == 1 and [m.seq for m in alerts[0].evidence] == seqs
    assert alerts[0].parameters == {"fan_in_min_sources": 8, "fan_in_window_s": 3 * 86_400, "distinct": 8}


def test_fan_in_counts_payers_when_the_wallet_knows_them() -> None:
    j = Journal()
    for i in range(10):
        j.deposit(i * 30, 7, 50_000, tx=f"t{i}")
    assert only(run(j, party=lambda ref: "bc1-same-payer"), Rule.FAN_IN) == []  # one payer, ten transactions
    assert len(only(run(j, party=lambda ref: f"payer-{ref}"), Rule.FAN_IN)) == 1


@pytest.mark.parametrize("case", ["too_few", "too_slow", "same_transaction"])
def test_fan_in_ignores_benign_look_alikes(case: str) -> None:
    j = Journal()
    for i in range(7 if case == "too_few" else 8):
        j.deposit(i * (DAY if case == "too_slow" else 30), 7, 50_000, tx="same" if case == "same_transaction" else "")
    assert only(run(j), Rule.FAN_IN) == []


def test_fan_out_fires_on_many_withdrawals_and_transfers_to_other_accounts() -> None:
    j = Journal()
    j.deposit(0, 7, 5_000_000)
    wds = [j.withdraw(10 + i, 7, 100_000) for i in range(5)]
    xfers = [j.transfer(20 + i, 7, 20 + i, 100_000) for i in range(3)]
    alerts = only(run(j), Rule.FAN_OUT)
    assert len(alerts) == 1
    assert [m.seq for m in alerts[0].evidence] == wds + xfers
    assert {m.counterparty for m in alerts[0].evidence if m.kind is MovementKind.TRANSFER_OUT} == {20, 21, 22}


def test_fan_out_to_one_destination_is_not_fan_out() -> None:
    j = Journal()
    j.deposit(0, 7, 5_000_000)
    for i in range(8):
        j.transfer(10 + i, 7, 20, 100_000)  # eight payments to the same account: one destination
    for i in range(7):
        j.withdraw(30 + i, 7, 10_000)  # with seven withdrawals: eight destinations, at the last one
    alerts = only(run(j), Rule.FAN_OUT)
    assert [a.parameters["distinct"] for a in alerts] == [8]
    assert alerts[0].trigger_seq == j.seq  # only when the 7th withdrawal made it eight distinct


def test_bad_parameters_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="structuring_min_count"):
        MonitoringParams(structuring_min_count=-1)
    with pytest.raises(ValueError, match=r"reporting_threshold\.USD"):
        MonitoringParams(reporting_threshold={"USD": 0})
