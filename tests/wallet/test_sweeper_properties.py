"""Hypothesis: deposits (some held for review), mining, sweep rounds, crashes at any sweep stage and restarts, in any
order, on the dev chain through a real shard. Once everything is final, every custody account on the ledger (the
journal replayed) holds exactly what the chain holds, the hot wallet holds what the sweeps moved, and no sweep
was recorded twice; coins held for review never leave their address."""

from __future__ import annotations

import asyncio
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import coincurve
from exchange_devchain import DevChain, DevChainAdapter
from exchange_devchain.plugin import DEV_XPRV, DEV_XPUB
from exchange_devchain.tx import address_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.config import parse_config
from exchange_framework.engine.commands import Command, decode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.events import CustodyMoved, Event, FundsCredited
from exchange_framework.funding import DepositStore, DepositTracker
from exchange_framework.interfaces import Decision, DepositRequest
from exchange_framework.sequencer import FileJournal
from exchange_framework.shard import Shard
from exchange_framework.wallet.custody import CustodyStore, SweepStage, custody_report, unowed
from exchange_framework.wallet.deposit_keys import DepositKeys
from exchange_framework.wallet.sweeper import DepositSweeper

CONFIG = """
[brand]
name = "Sweep properties"
[assets.DEV]
decimals = 8
[assets.DUSD]
decimals = 6
"""
FEE = 1_000

OP = st.one_of(
    st.tuples(
        st.just("deposit"),
        st.integers(1, 4),
        st.sampled_from(["DEV", "DEV", "DUSD"]),
        st.integers(1, 50_000),
    ),
    st.tuples(st.just("mine"), st.integers(1, 3)),
    st.tuples(st.just("sweep")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("crash"), st.integers(0, 20), st.sampled_from(["built", "signed", "broadcast"])),
)


def replay(journal_path: Path, config_text: str, root: Path) -> list[Event]:
    config = parse_config(config_text, root=root)
    engine = MatchingEngine(config.engine_assets(), config.engine_markets())
    with FileJournal(journal_path, read_only=True) as journal:
        for record in journal.read():
            engine.apply(record.seq, decode_command(record.payload))
    return engine.events


async def scenario(root: Path, ops: Sequence[tuple[object, ...]], held: frozenset[int]) -> None:
    config = parse_config(CONFIG, root=root)
    chain = DevChain(root / "chain", min_fee=FEE)
    adapter = DevChainAdapter(chain, xpub=DEV_XPUB, required_confirmations=2, dev_deposit_xprv=DEV_XPRV)
    deposits = DepositStore(root / "deposits.db")
    custody = CustodyStore(root / "custody.db")
    hot = address_of(coincurve.PrivateKey().public_key.format())
    custody.add_address("devchain", "hot", hot)

    def screen(request: DepositRequest) -> Decision:
        return Decision.hold("review") if request.account in held else Decision.allow()

    journal_path = root / "commands.journal"
    with Shard(config, journal=FileJournal(journal_path, fsync=False), snapshot_dir=root / "snap") as shard:
        tracker = DepositTracker(adapter, deposits, submit=lambda c: shard.execute([c]), screen=screen, start_height=0)

        async def submit(command: Command) -> Sequence[Event]:
            return shard.execute([command])

        def new_sweeper() -> DepositSweeper:
            keys = DepositKeys({"devchain": adapter}, {"devchain": DEV_XPRV})
            return DepositSweeper(
                adapters={"devchain": adapter},
                deposit_store=deposits,
                custody_store=custody,
                signer=keys,
                submit=submit,
                assets=["DEV", "DUSD"],
            )

        sweeper = new_sweeper()
        for op in ops:
            if op[0] == "deposit":
                _, account, asset, amount = op
                chain.faucet(tracker.deposit_address(int(account)).address, int(amount), str(asset))  # type: ignore[call-overload]
            elif op[0] == "mine":
                chain.mine(int(op[1]))  # type: ignore[call-overload]
                tracker.poll()
            elif op[0] == "sweep":
                await sweeper.process_once()
            elif op[0] == "restart":
                sweeper = new_sweeper()
            else:  # a crash lost the last stage write of one open sweep: it is back one stage
                open_rows = custody.sweeps(stages=SweepStage.OPEN)
                if open_rows:
                    row = open_rows[int(op[1]) % len(open_rows)]  # type: ignore[call-overload]
                    back = {SweepStage.SIGNED: SweepStage.BUILT, SweepStage.BROADCAST: SweepStage.SIGNED}
                    if row.stage in back and op[2] != "built":
                        row.stage = back[row.stage]
                        row.txid = "" if row.stage != SweepStage.BROADCAST else row.txid
                        if row.stage == SweepStage.BUILT:
                            row.signed = None
                        custody.save_sweep(row, 0)
                    sweeper = new_sweeper()
        # everything final: mine, let the tracker and the sweeper finish, until nothing moves any more
        for _ in range(12):
            chain.mine(2)
            tracker.poll()
            await sweeper.process_once()
        chain.mine(2)
        tracker.poll()
        await sweeper.process_once()
        assert custody.sweeps(stages=SweepStage.OPEN) == []

    events = replay(journal_path, CONFIG, root)
    ledger: dict[tuple[str, str], int] = defaultdict(int)  # what the ledger says each custody account holds
    references = []
    for ev in events:
        if isinstance(ev, FundsCredited) and ev.custody:
            ledger[(ev.custody, ev.asset)] += ev.amount
        elif isinstance(ev, CustodyMoved):
            references.append(ev.reference)
            ledger[(ev.from_account, ev.asset)] -= ev.amount + ev.fee
            if ev.to_account:
                ledger[(ev.to_account, ev.asset)] += ev.amount
    assert len(references) == len(set(references))
    assert all(amount >= 0 for amount in ledger.values()), ledger  # no custody account ever gave what it lacked
    for (address, asset), amount in unowed(deposits, "devchain").items():  # held deposits never leave
        assert chain.balance(address, asset) >= amount, (address, asset)
    completed = custody.sweeps(stages=[SweepStage.COMPLETED], limit=10_000)
    assert sorted(r.reference for r in completed if True) == sorted(x for x in references if not x.endswith(":fee"))
    report = custody_report(
        {"devchain": adapter}, deposit_store=deposits, custody_store=custody, assets=["DEV", "DUSD"]
    )
    reported: dict[tuple[str, str], int] = defaultdict(int)
    for item in report:
        reported[(item.account, item.asset)] += item.amount
    assert {k: v for k, v in reported.items() if v} == {k: v for k, v in ledger.items() if v}
    swept = defaultdict(int)
    for r in completed:
        swept[r.asset] += r.amount
    assert {a: chain.balance(hot, a) for a in ("DEV", "DUSD")} == {a: swept[a] for a in ("DEV", "DUSD")}
    deposits.close()
    custody.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OP, min_size=3, max_size=30), held=st.frozensets(st.integers(1, 4), max_size=2))
def test_any_order_of_deposits_sweeps_and_crashes_ends_with_the_ledger_equal_to_the_chain(
    ops: list[tuple[object, ...]], held: frozenset[int]
) -> None:
    root = Path(tempfile.mkdtemp(prefix="sweeps-"))
    asyncio.run(scenario(root, ops, held))
