"""Custody accounts on funds commands, and MoveCustody: form checks, once-only references, codec, snapshot, replay.

The engine keeps no custody balances: it validates the custody account's form (``omnibus:<tier>:<chain>``), the
amounts and the reference, echoes the custody account on its events, and remembers the reference (in snapshots
too). A refused command changes nothing.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from exchange_framework.engine.commands import (
    CreditFunds,
    DebitHeldFunds,
    HoldFunds,
    MoveCustody,
    custody_account,
    decode_command,
    encode_command,
    is_custody_account,
)
from exchange_framework.engine.events import (
    CustodyMoved,
    FundsCredited,
    FundsRejected,
    HeldFundsDebited,
    decode_event,
    encode_event,
)
from exchange_framework.engine.snapshot import engine_state, restore, snapshot, state_hash
from exchange_framework.types import RejectReason
from tests.engine.helpers import Runner, check_invariants, new_engine
from tests.engine.scenario import funded, place, state

R = RejectReason
HOT = "omnibus:hot:devchain"
DEPOSIT = "omnibus:deposit:devchain"
WARM = "omnibus:warm:devchain"


def test_custody_account_names_tier_and_chain_and_refuses_anything_else() -> None:
    assert custody_account("hot", "devchain") == HOT
    assert custody_account("cold", "bitcoin-regtest") == "omnibus:cold:bitcoin-regtest"
    for tier, chain in [
        ("lukewarm", "evm"),
        ("hot", ""),
        ("hot", "EVM"),
        ("hot", "a:b"),
        ("hot", "-x"),
        ("hot", "x" * 65),
    ]:
        with pytest.raises(ValueError, match="custody account"):
            custody_account(tier, chain)
    assert not is_custody_account(None)
    assert not is_custody_account("omnibus:hot:devchain\n")
    assert not is_custody_account("external")


def test_credit_with_custody_echoes_it_and_a_bad_custody_account_changes_nothing() -> None:
    run = Runner()
    seq, events = place(run, CreditFunds(1, "BTC", 500, "dep:1", custody=DEPOSIT))
    assert events == [FundsCredited(seq, 1, "BTC", 500, "dep:1", DEPOSIT)]
    before = state(run.engine)
    seq, events = place(run, CreditFunds(1, "BTC", 500, "dep:2", custody="omnibus:lukewarm:devchain"))
    assert events == [FundsRejected(seq, 1, "BTC", R.INVALID_CUSTODY_ACCOUNT, "dep:2")]
    assert state(run.engine) == before
    # the refused reference was not used up
    seq, events = place(run, CreditFunds(1, "BTC", 500, "dep:2", custody=DEPOSIT))
    assert events == [FundsCredited(seq, 1, "BTC", 500, "dep:2", DEPOSIT)]
    check_invariants(run.engine, run.net_in)


def test_held_debit_with_custody_echoes_it_and_a_bad_one_keeps_the_hold() -> None:
    run = funded(1)
    place(run, HoldFunds(1, "ETH", 70, "wd:1"))
    before = state(run.engine)
    seq, events = place(run, DebitHeldFunds("wd:1", custody="hot"))
    assert events == [FundsRejected(seq, 0, "", R.INVALID_CUSTODY_ACCOUNT, "wd:1")]
    assert state(run.engine) == before
    seq, events = place(run, DebitHeldFunds("wd:1", custody=HOT))
    assert events == [HeldFundsDebited(seq, 1, "ETH", 70, "wd:1", HOT)]
    seq, events = place(run, DebitHeldFunds("wd:1", custody=HOT))
    assert events == [FundsRejected(seq, 0, "", R.UNKNOWN_REFERENCE, "wd:1")]
    check_invariants(run.engine, run.net_in)


def test_move_custody_is_announced_once_per_reference() -> None:
    run = funded(1)
    before = engine_state(run.engine)
    seq, events = place(run, MoveCustody("ETH", DEPOSIT, HOT, 990, 10, "sweep:1"))
    assert events == [CustodyMoved(seq, "ETH", DEPOSIT, HOT, 990, 10, "sweep:1")]
    after = engine_state(run.engine)
    assert after["transfer_refs"] == sorted([*before["transfer_refs"], "sweep:1"])
    assert {k: v for k, v in after.items() if k not in ("transfer_refs", "last_seq")} == {
        k: v for k, v in before.items() if k not in ("transfer_refs", "last_seq")
    }  # no balance of any customer or fee account moved
    seq, events = place(run, MoveCustody("ETH", DEPOSIT, HOT, 990, 10, "sweep:1"))
    assert events == [FundsRejected(seq, 0, "ETH", R.DUPLICATE_REFERENCE, "sweep:1")]
    # a fee alone (a withdrawal's network fee): no receiving account
    seq, events = place(run, MoveCustody("ETH", HOT, "", 0, 21, "wd:1:fee"))
    assert events == [CustodyMoved(seq, "ETH", HOT, "", 0, 21, "wd:1:fee")]
    # custody move references share the once-only set with credits and debits
    seq, events = place(run, CreditFunds(1, "ETH", 5, "wd:1:fee"))
    assert events == [FundsRejected(seq, 1, "ETH", R.DUPLICATE_REFERENCE, "wd:1:fee")]
    check_invariants(run.engine, run.net_in)


BAD_MOVES: list[tuple[str, Any, RejectReason]] = [
    ("no reference", MoveCustody("BTC", DEPOSIT, HOT, 5, 0, ""), R.INVALID_ORDER_PARAMETERS),
    ("reference not str", MoveCustody("BTC", DEPOSIT, HOT, 5, 0, 7), R.INVALID_ORDER_PARAMETERS),  # type: ignore[arg-type]
    ("unknown asset", MoveCustody("DOGE", DEPOSIT, HOT, 5, 0, "r"), R.UNKNOWN_ASSET),
    ("zero amount and fee", MoveCustody("BTC", DEPOSIT, HOT, 0, 0, "r"), R.INVALID_AMOUNT),
    ("negative amount", MoveCustody("BTC", DEPOSIT, HOT, -5, 10, "r"), R.INVALID_AMOUNT),
    ("negative fee", MoveCustody("BTC", DEPOSIT, HOT, 5, -1, "r"), R.INVALID_AMOUNT),
    ("float amount", MoveCustody("BTC", DEPOSIT, HOT, 5.0, 0, "r"), R.INVALID_AMOUNT),  # type: ignore[arg-type]
    ("bool fee", MoveCustody("BTC", DEPOSIT, HOT, 5, True, "r"), R.INVALID_AMOUNT),
    ("bad tier", MoveCustody("BTC", "omnibus:lukewarm:devchain", HOT, 5, 0, "r"), R.INVALID_CUSTODY_ACCOUNT),
    ("customer account", MoveCustody("BTC", "customer:1:available", HOT, 5, 0, "r"), R.INVALID_CUSTODY_ACCOUNT),
    ("external", MoveCustody("BTC", DEPOSIT, "external", 5, 0, "r"), R.INVALID_CUSTODY_ACCOUNT),
    ("to itself", MoveCustody("BTC", HOT, HOT, 5, 1, "r"), R.INVALID_CUSTODY_ACCOUNT),
    ("amount without payee", MoveCustody("BTC", HOT, "", 5, 1, "r"), R.INVALID_CUSTODY_ACCOUNT),
    ("payee without amount", MoveCustody("BTC", HOT, WARM, 0, 1, "r"), R.INVALID_CUSTODY_ACCOUNT),
    ("no payer", MoveCustody("BTC", "", HOT, 5, 0, "r"), R.INVALID_CUSTODY_ACCOUNT),
]


@pytest.mark.parametrize(("cmd", "reason"), [c[1:] for c in BAD_MOVES], ids=[c[0] for c in BAD_MOVES])
def test_bad_custody_move_is_rejected_with_its_reason_and_changes_nothing(cmd: MoveCustody, reason: R) -> None:
    run = funded(1)
    before = state(run.engine)
    seq, events = place(run, cmd)
    assert len(events) == 1 and isinstance(events[0], FundsRejected)
    assert events[0].reason is reason
    assert events[0].seq == seq and events[0].account == 0
    assert state(run.engine) == before


def test_journal_codec_round_trips_custody_and_old_records_decode_without_it() -> None:
    big = 10**30  # beyond msgpack's 64-bit ints: the JSON form
    for command in (
        MoveCustody("ETH", DEPOSIT, HOT, 990, 10, "sweep:1"),
        MoveCustody("ETH", HOT, "", 0, big, "wd:1:fee"),
        CreditFunds(1, "ETH", big, "dep:1", custody=DEPOSIT),
        DebitHeldFunds("wd:1", custody=HOT),
    ):
        assert decode_command(encode_command(command)) == command
    # records journalled before custody accounts existed: array forms without the trailing field
    old_credit = msgspec.msgpack.encode(["credit", 1, "BTC", 5, "dep:x"])
    assert decode_command(old_credit) == CreditFunds(1, "BTC", 5, "dep:x", custody="")
    old_debit = msgspec.msgpack.encode(["debit_held", "wd:9"])
    assert decode_command(old_debit) == DebitHeldFunds("wd:9", custody="")
    assert decode_command(b'["credit",1,"BTC",5,"dep:y"]') == CreditFunds(1, "BTC", 5, "dep:y")
    event = CustodyMoved(4, "ETH", DEPOSIT, HOT, 990, 10, "sweep:1")
    assert decode_event(encode_event(event)) == event


def test_snapshot_keeps_custody_references_and_replay_is_deterministic() -> None:
    stream = [
        CreditFunds(1, "ETH", 1_000, "dep:1", custody=DEPOSIT),
        MoveCustody("ETH", DEPOSIT, HOT, 990, 10, "sweep:1"),
        HoldFunds(1, "ETH", 500, "wd:1"),
        DebitHeldFunds("wd:1", custody=HOT),
        MoveCustody("ETH", HOT, "", 0, 3, "wd:1:fee"),
        MoveCustody("ETH", HOT, WARM, 400, 2, "tier:1"),
        MoveCustody("ETH", HOT, WARM, 400, 2, "tier:1"),  # refused: duplicate
    ]
    first, second = Runner(), Runner()
    for command in stream:
        first(command)
        second(command)
    assert first.events == second.events
    assert state_hash(first.engine) == state_hash(second.engine)
    restored = new_engine()
    restore(restored, snapshot(first.engine))
    assert state_hash(restored) == state_hash(first.engine)
    run = Runner(restored)
    _, events = place(run, MoveCustody("ETH", HOT, WARM, 400, 2, "tier:1"))
    assert [type(e) for e in events] == [FundsRejected] and events[0].reason is R.DUPLICATE_REFERENCE  # type: ignore[attr-defined]
    _, events = place(run, MoveCustody("ETH", HOT, WARM, 400, 2, "tier:2"))
    assert [type(e) for e in events] == [CustodyMoved]
