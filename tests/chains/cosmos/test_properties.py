"""Properties of the Cosmos codec and adapter: round trips, and mutated bytes never pass as signed."""

from __future__ import annotations

import contextlib
import hashlib

import coincurve
from exchange_cosmos import AccountState, Coin, MsgSend, SignDoc, TxBody
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_framework.interfaces import UnsignedTransaction

from .test_cosmos import FAUCET_PRIVATE, FAUCET_PUBLIC, TO, _adapter

_ADAPTER = _adapter(accounts=lambda address: AccountState(1, 0))
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(
    memo=_TEXT,
    amount=st.integers(min_value=1, max_value=2**200),
    denom=st.sampled_from(["ucosm", "stake"]),
    sequence=st.integers(0, 2**64 - 1),
    account=st.integers(0, 2**64 - 1),
)
@settings(max_examples=150, deadline=None)
def test_sign_doc_round_trips(memo: str, amount: int, denom: str, sequence: int, account: int) -> None:
    """Every field built comes back decoded, and the encoding is stable through decode/encode."""
    unsigned = _ADAPTER.build_sign_doc(
        key_id="k",
        public_key=FAUCET_PUBLIC,
        destination=TO,
        coin=Coin(denom, amount),
        memo=memo,
        account_number=account,
        sequence=sequence,
    )
    doc = SignDoc.decode(unsigned.payload)
    assert doc.encode() == unsigned.payload and doc.account_number == account
    body = TxBody.decode(doc.body_bytes)
    assert body.encode() == doc.body_bytes and body.memo == memo
    assert body.messages == (MsgSend(_ADAPTER_SOURCE, TO, (Coin(denom, amount),)),)
    decoded = _ADAPTER.decode(unsigned)
    assert (decoded.amount, decoded.memo, decoded.asset) == (amount, memo, {"ucosm": "COSM", "stake": "STAKE"}[denom])


_ADAPTER_SOURCE = "cosmos1pkptre7fdkl6gfrzlesjjvhxhlc3r4gmmk8rs6"
_BASE = _ADAPTER.build_withdrawal(
    key_id="k", public_key=FAUCET_PUBLIC, destination=TO, asset="COSM", amount=777, memo="m"
)
_SIGNATURE = coincurve.PrivateKey(FAUCET_PRIVATE).sign_recoverable(_BASE.digests[0], hasher=None)


@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_a_mutated_sign_doc_never_assembles_with_the_original_signature(data: st.DataObject) -> None:
    """Flip, insert or drop bytes: decode raises ValueError or sees other bytes, and assemble always refuses."""
    payload = bytearray(_BASE.payload)
    position = data.draw(st.integers(0, len(payload) - 1))
    action = data.draw(st.sampled_from(["flip", "insert", "drop"]))
    if action == "flip":
        payload[position] ^= data.draw(st.integers(1, 255))
    elif action == "insert":
        payload.insert(position, data.draw(st.integers(0, 255)))
    else:
        del payload[position]
    mutated = bytes(payload)
    unsigned = UnsignedTransaction("simd", mutated, (hashlib.sha256(mutated).digest(),), "k")
    with contextlib.suppress(ValueError):  # decoding may succeed: it then reports what the mutated bytes say
        _ADAPTER.decode(unsigned)
    try:
        _ADAPTER.assemble(unsigned, [_SIGNATURE])
    except ValueError:
        return
    raise AssertionError("a mutated SignDoc assembled with the original signature")
