"""Hypothesis: random command streams, journalled and settled in random runs and batches, on SQLite and PostgreSQL.

Whatever the commands (orders of every kind, cancels, replaces, stops, icebergs, self-trades, credits, debits,
halts) and however settlement is cut into runs and batches (with or without an engine snapshot to restart from),
the ledger sums to zero per asset, never shows a negative customer balance, and holds exactly what an independent
recomputation gives: the postings of the events of a separate engine run, and that engine's balances. With custody
commands mixed in, the omnibus accounts hold minus what a model of the wallets holds.
"""

from __future__ import annotations

import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.engine.commands import Command, CreditFunds, DebitHeldFunds, MoveCustody, encode_command
from exchange_framework.engine.events import CustodyMoved, FundsCredited, HeldFundsDebited
from exchange_framework.engine.market import AssetSpec, MarketSpec
from exchange_framework.engine.snapshot import snapshot
from exchange_framework.ledger.postings import EXTERNAL, FEES, NETWORK_FEES, PostingRules, available, held
from exchange_framework.sequencer import FileJournal, JournalRecord, SnapshotStore
from exchange_framework.testing.postgres import ThrowawayPostgres
from tests.engine.helpers import ASSETS, MARKETS, Runner
from tests.engine.test_engine_properties import COMMAND, FUNDING
from tests.ledger.test_settlement import PostingRow, check_zero_sum, settle


class HelperMarkets:
    """The engine tests' two markets (odd lot multipliers, a maker rebate) as settlement's config."""

    def engine_assets(self) -> dict[str, AssetSpec]:
        return dict(ASSETS)

    def engine_markets(self) -> dict[str, MarketSpec]:
        return dict(MARKETS)


def fresh_url(ledger_url: str, request: pytest.FixtureRequest, directory: Path) -> str:
    """A new empty database for one example, on the same kind of server as ``ledger_url``."""
    if ledger_url.startswith("sqlite"):
        return f"sqlite:///{directory / 'ledger.db'}"
    cluster: ThrowawayPostgres = request.getfixturevalue("postgres")
    return cluster.create_database()


@st.composite
def settlement_runs(draw: st.DrawFn, last: int) -> list[tuple[int | None, int]]:
    """Runs of (until_seq, batch_size) that end with settling everything."""
    cuts = sorted(draw(st.lists(st.integers(0, last), max_size=4)))
    return [(cut, draw(st.integers(1, 60))) for cut in [*cuts, None]]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands=st.lists(COMMAND, min_size=5, max_size=120), data=st.data())
def test_random_streams_settle_to_a_balanced_ledger_equal_to_the_engine(
    ledger_url: str, request: pytest.FixtureRequest, tmp_path: Path, commands: list[Command], data: st.DataObject
) -> None:
    directory = Path(tempfile.mkdtemp(prefix=f"example-{uuid.uuid4().hex[:6]}-", dir=tmp_path))
    stream = FUNDING + commands
    last = len(stream)

    # The independent recomputation: a separate engine run, its events turned into postings here.
    run = Runner()
    rules = PostingRules(dict(MARKETS))
    expected_rows: list[PostingRow] = []
    snapshot_at = data.draw(st.integers(0, last), label="snapshot_at")
    snapshots = SnapshotStore(directory / "snapshots")
    with FileJournal(directory / "commands.journal", fsync=False) as journal:
        for seq, command in enumerate(stream, start=1):
            journal.append([JournalRecord(seq, 1_000 + seq, encode_command(command))])
            expected_rows += [(seq, p.account, p.asset, p.amount) for p in rules.postings(run(command))]
            if seq == snapshot_at:
                snapshots.save(seq, snapshot(run.engine))
    engine = run.engine
    expected: dict[tuple[str, str], int] = {}
    for account_id, acct in engine.accounts.items():
        for asset in engine.assets:
            expected[(available(account_id), asset)] = acct.available[asset]
            expected[(held(account_id), asset)] = acct.held[asset]
    for asset in engine.assets:
        expected[(FEES, asset)] = engine.fees_collected[asset]
        expected[(EXTERNAL, asset)] = -run.net_in.get(asset, 0)

    runs = data.draw(settlement_runs(last), label="runs")
    one_instance = data.draw(st.booleans(), label="one_instance")
    restored: list[int] = []
    ledger = settle(
        HelperMarkets(),
        fresh_url(ledger_url, request, directory),
        directory / "commands.journal",
        runs,
        snapshot_dir=directory / "snapshots",
        one_instance=one_instance,
        restored=restored,
    )

    assert ledger.mark == last
    assert ledger.entries == list(range(1, last + 1))
    assert ledger.postings == expected_rows
    assert ledger.balances == {key: amount for key, amount in expected.items() if amount}
    check_zero_sum(ledger.balances, list(ASSETS))
    balance: dict[tuple[str, str], int] = defaultdict(int)
    previous_seq = 0
    for seq, code, asset, amount in [*ledger.postings, (last + 1, "", "", 0)]:
        if seq != previous_seq:  # every entry before this one is applied: no customer may be below zero
            negative = {key: v for key, v in balance.items() if key[0].startswith("customer:") and v < 0}
            assert not negative, f"after seq {previous_seq}: {negative}"
            previous_seq = seq
        balance[(code, asset)] += amount

    # Where each run's replica started: a fresh Settlement restores the snapshot when the mark has reached it.
    start_marks = [0] + [min(until, last) if until is not None else last for until, _ in runs[:-1]]
    if one_instance:
        assert restored == [0] * len(runs)
    else:
        assert restored == [snapshot_at if 0 < snapshot_at <= mark else 0 for mark in start_marks]


CUSTODY = st.sampled_from(["omnibus:hot:devchain", "omnibus:deposit:devchain", "omnibus:warm:evm", "omnibus:cold:evm"])
CUSTODY_COMMAND = st.one_of(
    st.builds(
        CreditFunds,
        account=st.integers(1, 3),
        asset=st.sampled_from(list(ASSETS)),
        amount=st.integers(1, 50_000),
        reference=st.sampled_from(["d1", "d2", "d3", "d4", ""]),
        custody=CUSTODY,
    ),
    st.builds(DebitHeldFunds, reference=st.sampled_from(["w1", "w2", "w3"]), custody=CUSTODY),
    st.builds(
        MoveCustody,
        asset=st.sampled_from(list(ASSETS)),
        from_account=CUSTODY,
        to_account=st.one_of(CUSTODY, st.just("")),
        amount=st.integers(0, 20_000),
        fee=st.integers(0, 300),
        reference=st.sampled_from(["m1", "m2", "m3", "m4", "m5", "d1"]),
    ),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    commands=st.lists(st.one_of(COMMAND, CUSTODY_COMMAND, CUSTODY_COMMAND), min_size=5, max_size=100), data=st.data()
)
def test_custody_moves_mixed_in_keep_the_ledger_zero_sum_and_omnibus_equal_to_custody(
    ledger_url: str, request: pytest.FixtureRequest, tmp_path: Path, commands: list[Command], data: st.DataObject
) -> None:
    """Deposits into custody accounts, withdrawals out of them and custody moves (sweeps, tier transfers, network
    fees) mixed into random trading: the ledger stays zero-sum, its customer and fee accounts equal the engine's, and
    every omnibus account holds exactly minus what a model of the wallets (fed only the accepted events) holds."""
    directory = Path(tempfile.mkdtemp(prefix=f"custody-{uuid.uuid4().hex[:6]}-", dir=tmp_path))
    stream = FUNDING + commands
    run = Runner()
    wallets: dict[tuple[str, str], int] = defaultdict(int)  # what each custody account holds on chain
    paid: dict[str, int] = defaultdict(int)  # network fees
    with FileJournal(directory / "commands.journal", fsync=False) as journal:
        for seq, command in enumerate(stream, start=1):
            journal.append([JournalRecord(seq, 1_000 + seq, encode_command(command))])
            for ev in run(command):
                if isinstance(ev, FundsCredited) and ev.custody:
                    wallets[(ev.custody, ev.asset)] += ev.amount
                elif isinstance(ev, HeldFundsDebited) and ev.custody:
                    wallets[(ev.custody, ev.asset)] -= ev.amount
                elif isinstance(ev, CustodyMoved):
                    wallets[(ev.from_account, ev.asset)] -= ev.amount + ev.fee
                    if ev.to_account:
                        wallets[(ev.to_account, ev.asset)] += ev.amount
                    paid[ev.asset] += ev.fee
    runs = data.draw(settlement_runs(len(stream)), label="runs")
    ledger = settle(HelperMarkets(), fresh_url(ledger_url, request, directory), directory / "commands.journal", runs)

    check_zero_sum(ledger.balances, list(ASSETS))
    engine = run.engine
    for account_id, acct in engine.accounts.items():
        for asset in engine.assets:
            assert ledger.balances.get((available(account_id), asset), 0) == acct.available[asset]
            assert ledger.balances.get((held(account_id), asset), 0) == acct.held[asset]
    for asset in engine.assets:
        assert ledger.balances.get((FEES, asset), 0) == engine.fees_collected[asset]
        assert ledger.balances.get((NETWORK_FEES, asset), 0) == -paid[asset]
    omnibus = {key: amount for key, amount in ledger.balances.items() if key[0].startswith("omnibus:")}
    assert omnibus == {key: -amount for key, amount in wallets.items() if amount}
