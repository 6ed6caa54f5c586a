"""Coin selection for withdrawals: largest outputs first until the payment, the fee and (if any) the change fit."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from exchange_bitcoin.psbt import estimate_vsize

__all__ = ["Selection", "Utxo", "fee_for", "select_coins"]


class Utxo(NamedTuple):
    """A spendable output of the hot wallet: its value in atomic units and its outpoint."""

    value: int
    txid: str
    vout: int


class Selection(NamedTuple):
    """The inputs chosen, the fee they pay and the change going back (0: no change output)."""

    inputs: tuple[Utxo, ...]
    fee: int
    change: int


def fee_for(fee_rate: int, n_inputs: int, output_scripts: list[bytes]) -> int:
    """Return the fee (atomic units, rounded up) of a P2WPKH spend at ``fee_rate`` per 1,000 virtual bytes."""
    return math.ceil(fee_rate * estimate_vsize(n_inputs, output_scripts) / 1000)


def select_coins(
    candidates: Iterable[Utxo],
    *,
    amount: int,
    fee_rate: int,
    destination_script: bytes,
    change_script: bytes,
    dust: int,
) -> Selection | None:
    """Pick inputs, largest first (ties by outpoint, so the answer is deterministic), or ``None`` if they cannot pay.

    With change, the change is at least ``dust``; when what is left over after the payment and a change-less fee
    is below that, there is no change output and the remainder goes to the fee.
    """
    chosen: list[Utxo] = []
    total = 0
    for utxo in sorted(candidates, key=lambda u: (-u.value, u.txid, u.vout)):
        chosen.append(utxo)
        total += utxo.value
        fee = fee_for(fee_rate, len(chosen), [destination_script, change_script])
        if total >= amount + fee + dust:
            return Selection(tuple(chosen), fee, total - amount - fee)
        if total >= amount + fee_for(fee_rate, len(chosen), [destination_script]):
            return Selection(tuple(chosen), total - amount, 0)
    return None
