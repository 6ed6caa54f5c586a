"""Withdrawal PSBTs and coin selection without a node: property tests of their invariants, refusals by read_psbt."""

from __future__ import annotations

import hashlib

import coincurve
import pytest
from embit.script import Script  # type: ignore[import-untyped]
from embit.transaction import Transaction, TransactionInput, TransactionOutput  # type: ignore[import-untyped]
from exchange_bitcoin.address import p2wpkh_script
from exchange_bitcoin.coins import Utxo, fee_for, select_coins
from exchange_bitcoin.psbt import RBF_SEQUENCE, Spend, build_psbt, finalize, read_psbt, txid_of, verify_signature
from hypothesis import given, settings
from hypothesis import strategies as st

KEY = coincurve.PrivateKey(hashlib.sha256(b"psbt test key").digest())
PUB = KEY.public_key.format()
HOT = p2wpkh_script(PUB)
DEST = bytes.fromhex("0014") + bytes(range(20))
TAPROOT = bytes.fromhex("5120") + bytes(range(32))
DUST = 546


def prev_tx(value: int, script: bytes = HOT, salt: int = 0) -> Transaction:
    """A previous transaction paying ``value`` to ``script`` at output 1 (its input is made up: never validated)."""
    source = TransactionInput(hashlib.sha256(b"%d" % salt).digest(), 0)
    return Transaction(
        vin=[source], vout=[TransactionOutput(1, Script(DEST)), TransactionOutput(value, Script(script))]
    )


def spend_of(value: int, salt: int = 0) -> Spend:
    tx = prev_tx(value, salt=salt)
    return Spend(tx.txid().hex(), 1, value, tx.serialize())


utxos = st.lists(
    st.builds(Utxo, st.integers(1, 10**9), st.text("0123456789abcdef", min_size=64, max_size=64), st.integers(0, 3)),
    max_size=12,
    unique_by=lambda u: (u.txid, u.vout),
)


@settings(max_examples=300, deadline=None)
@given(utxos, st.integers(1, 3 * 10**9), st.integers(1000, 200_000), st.sampled_from([DEST, TAPROOT]))
def test_coin_selection_pays_exactly_with_enough_fee_and_no_dust_change(
    candidates: list[Utxo], amount: int, rate: int, destination: bytes
) -> None:
    selection = select_coins(
        candidates, amount=amount, fee_rate=rate, destination_script=destination, change_script=HOT, dust=DUST
    )
    if selection is None:
        # refusing is right only if even every input together cannot pay amount plus the change-less fee
        total = sum(u.value for u in candidates)
        assert total < amount + fee_for(rate, max(1, len(candidates)), [destination]) or not candidates
        return
    inputs, fee, change = selection
    assert len(set(inputs)) == len(inputs) and set(inputs) <= set(candidates)
    assert sum(u.value for u in inputs) == amount + fee + change
    outputs = [destination, HOT] if change else [destination]
    assert fee >= fee_for(rate, len(inputs), outputs)
    assert change == 0 or change >= DUST
    if change == 0:  # the fee absorbs at most the change that would have been dust, plus the second output's cost
        assert fee < fee_for(rate, len(inputs), [destination, HOT]) + DUST
    assert [u.value for u in inputs] == sorted((u.value for u in inputs), reverse=True)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(10_000, 10**10), min_size=1, max_size=4),
    st.integers(1, 10**8),
    st.booleans(),
    st.sampled_from([DEST, TAPROOT, bytes.fromhex("a914") + bytes(20) + b"\x87"]),
)
def test_built_psbts_read_back_as_built(values: list[int], amount: int, with_change: bool, destination: bytes) -> None:
    spends = [spend_of(v, salt=i) for i, v in enumerate(values)]
    total = sum(values)
    amount = min(amount, total - 1)
    change = (total - amount) // 2 if with_change and total - amount >= 2 else 0
    psbt = build_psbt(
        chain_id="net", public_key=PUB, spends=spends, destination_script=destination, amount=amount, change=change
    )
    read = read_psbt(psbt.serialize())
    assert (read.chain_id, read.public_key, read.destination_script) == ("net", PUB, destination)
    assert (read.amount, read.change, read.fee) == (amount, change, total - amount - change)
    assert read.inputs == tuple(spends)
    assert len(read.digests) == len(spends) and len(set(read.digests)) == len(spends)
    signed = finalize(read, [KEY.sign_recoverable(d, hasher=None) for d in read.digests])
    assert len(txid_of(signed)) == 64
    assert all(i.sequence == RBF_SEQUENCE for i in Transaction.parse(signed).vin)


def test_read_psbt_refuses_what_it_cannot_vouch_for() -> None:
    good = build_psbt(
        chain_id="net", public_key=PUB, spends=[spend_of(10**6)], destination_script=DEST, amount=10**5, change=10**5
    )
    assert read_psbt(good.serialize()).fee == 10**6 - 2 * 10**5

    lying = build_psbt(
        chain_id="net", public_key=PUB, spends=[spend_of(10**6)], destination_script=DEST, amount=10**5, change=10**5
    )
    lying.inputs[0].witness_utxo = TransactionOutput(10**7, Script(HOT))  # claims more than the input holds
    with pytest.raises(ValueError, match="disagrees with its previous transaction"):
        read_psbt(lying.serialize())

    swapped = build_psbt(
        chain_id="net", public_key=PUB, spends=[spend_of(10**6)], destination_script=DEST, amount=10**5, change=0
    )
    swapped.inputs[0].non_witness_utxo = prev_tx(10**6, salt=99)
    with pytest.raises(ValueError, match="does not match its outpoint"):
        read_psbt(swapped.serialize())

    other_key = coincurve.PrivateKey(hashlib.sha256(b"another").digest()).public_key.format()
    foreign = prev_tx(10**6, script=p2wpkh_script(other_key))
    stolen = build_psbt(
        chain_id="net",
        public_key=PUB,
        spends=[Spend(foreign.txid().hex(), 1, 10**6, foreign.serialize())],
        destination_script=DEST,
        amount=10**5,
        change=0,
    )
    with pytest.raises(ValueError, match="not a P2WPKH output of the hot key"):
        read_psbt(stolen.serialize())

    nameless = build_psbt(
        chain_id="net", public_key=PUB, spends=[spend_of(10**6)], destination_script=DEST, amount=10**5, change=0
    )
    nameless.unknown.clear()
    with pytest.raises(ValueError, match="which network"):
        read_psbt(nameless.serialize())

    unmarked = build_psbt(
        chain_id="net", public_key=PUB, spends=[spend_of(10**6)], destination_script=DEST, amount=10**5, change=10**5
    )
    unmarked.outputs[1].bip32_derivations.clear()
    with pytest.raises(ValueError, match="change output is not marked"):
        read_psbt(unmarked.serialize())

    overspend = build_psbt(
        chain_id="net", public_key=PUB, spends=[spend_of(10**6)], destination_script=DEST, amount=10**6, change=1
    )
    with pytest.raises(ValueError, match="exceed inputs"):
        read_psbt(overspend.serialize())
    for garbage in (b"", b"psbt\xff", good.serialize() + b"\x00", b"\x00" * 50):
        with pytest.raises(ValueError, match="not a PSBT"):
            read_psbt(garbage)


def test_signatures_are_checked_against_the_key_the_digest_and_low_s() -> None:
    digest = hashlib.sha256(b"digest").digest()
    signature = KEY.sign_recoverable(digest, hasher=None)
    der = verify_signature(PUB, digest, signature)
    assert der is not None and der == KEY.sign(digest, hasher=None)  # RFC 6979: the same r, s either way
    assert verify_signature(PUB, digest, signature[:64]) == der
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = signature[:32] + (order - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big")
    assert verify_signature(PUB, digest, high_s) is None
    assert verify_signature(PUB, hashlib.sha256(b"other").digest(), signature) is None
    assert verify_signature(PUB, digest, signature[:64] + b"\x02") is None
