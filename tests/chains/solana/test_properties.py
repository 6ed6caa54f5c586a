"""Properties of the Solana adapter's decoding: mutated messages never pass with the original signature."""

from __future__ import annotations

import contextlib

from exchange_solana import SolanaAdapter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.interfaces import UnsignedTransaction

from .conftest import HOT, OUTSIDE, SolanaChain

_CHAIN = SolanaChain()
_ADAPTER: SolanaAdapter = _CHAIN.adapter()
_BASE = {
    asset: _ADAPTER.build_withdrawal(
        key_id="sol-hot",
        public_key=bytes(HOT.pubkey()),
        destination=str(OUTSIDE),
        asset=asset,
        amount=5_000_000,
        memo="m",
    )
    for asset in ("SOL", "DUSD")
}
_SIGNATURES = {asset: _CHAIN.sign("sol-hot", u.payload) for asset, u in _BASE.items()}


@given(data=st.data(), asset=st.sampled_from(["SOL", "DUSD"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_mutated_message_never_assembles_with_the_original_signature(data: st.DataObject, asset: str) -> None:
    """Flip, insert or drop a byte: decode raises ValueError or reads other bytes; assemble always refuses."""
    payload = bytearray(_BASE[asset].payload)
    position = data.draw(st.integers(0, len(payload) - 1))
    action = data.draw(st.sampled_from(["flip", "insert", "drop"]))
    if action == "flip":
        payload[position] ^= data.draw(st.integers(1, 255))
    elif action == "insert":
        payload.insert(position, data.draw(st.integers(0, 255)))
    else:
        del payload[position]
    mutated = bytes(payload)
    unsigned = UnsignedTransaction("solana", mutated, (mutated,), "sol-hot")
    with contextlib.suppress(ValueError):  # decoding may succeed: it then reports what the mutated bytes say
        _ADAPTER.decode(unsigned)
    try:
        _ADAPTER.assemble(unsigned, [_SIGNATURES[asset]])
    except ValueError:
        return
    raise AssertionError("a mutated message assembled with the original signature")


@given(amount=st.integers(1_000_000, 10**10), memo=st.text(max_size=30), legacy=st.booleans())
@settings(max_examples=100, deadline=None)
def test_build_decode_round_trip(amount: int, memo: str, legacy: bool) -> None:
    """Whatever is asked (amount, memo, message version) is what decode reads back from the bytes."""
    adapter = _CHAIN.adapter(legacy=legacy)
    for asset in ("SOL", "DUSD"):
        unsigned = adapter.build_withdrawal(
            key_id="k", public_key=bytes(HOT.pubkey()), destination=str(OUTSIDE), asset=asset, amount=amount, memo=memo
        )
        decoded = adapter.decode(unsigned)
        assert (decoded.asset, decoded.amount, decoded.memo, decoded.destination) == (asset, amount, memo, str(OUTSIDE))
        assert (unsigned.payload[0] == 0x80) is not legacy
