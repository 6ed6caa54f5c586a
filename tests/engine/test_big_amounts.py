"""Amounts beyond 64 bits (100 ETH is 10**20 wei) survive the journal encoding and snapshots exactly."""

from __future__ import annotations

from exchange_framework.engine.commands import CreditFunds, PlaceOrder, decode_command, encode_command
from exchange_framework.engine.engine import MatchingEngine
from exchange_framework.engine.snapshot import restore, snapshot, state_hash
from exchange_framework.types import OrderType, Side
from tests.engine.helpers import ASSETS, MARKETS

HUGE = 123 * 10**24  # 123 million ETH in wei: far past 2**64


def test_commands_with_huge_amounts_round_trip() -> None:
    command = CreditFunds(account=7, asset="ETH", amount=HUGE, reference="deposit:1")
    data = encode_command(command)
    assert data.startswith(b"[")  # the JSON form
    assert decode_command(data) == command
    small = CreditFunds(account=7, asset="ETH", amount=10**18)
    assert not encode_command(small).startswith(b"[")  # ordinary amounts keep the compact msgpack form
    assert decode_command(encode_command(small)) == small


def test_snapshot_with_huge_balances_restores_the_same_state() -> None:
    engine = MatchingEngine(ASSETS, MARKETS)
    engine.apply(1, CreditFunds(account=1, asset="ETH", amount=HUGE))
    engine.apply(2, CreditFunds(account=2, asset="USDT", amount=10**30))
    market = next(m for m, spec in MARKETS.items() if spec.base == "ETH")
    engine.apply(3, PlaceOrder(account=1, market=market, side=Side.SELL, type=OrderType.LIMIT, qty=5, price=100))
    data = snapshot(engine)
    copy = MatchingEngine(ASSETS, MARKETS)
    restore(copy, data)
    assert state_hash(copy) == state_hash(engine)
    assert copy.accounts[1].available["ETH"] + copy.accounts[1].held["ETH"] == HUGE
