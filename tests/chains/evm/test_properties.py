"""Properties: encodings round-trip, decode refuses every tampered byte, the nonce book never reuses a live nonce."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from exchange_evm import EvmAdapter, NonceBook, keccak256
from exchange_evm.codec import EvmTx, encode_signed, encode_unsigned, pack_payload, parse_signed, parse_unsigned
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from exchange_framework.interfaces import UnsignedTransaction

from .conftest import network

U256 = st.integers(min_value=0, max_value=2**256 - 1)


@st.composite
def transactions(draw: st.DrawFn) -> EvmTx:
    kind = draw(st.sampled_from([0, 2]))
    max_fee = draw(U256)
    tip = max_fee if kind == 0 else draw(st.integers(0, max_fee))
    return EvmTx(
        kind,
        draw(st.integers(1, 2**64)),
        draw(st.integers(0, 2**64 - 1)),
        max_fee,
        tip,
        draw(st.integers(0, 2**64 - 1)),
        draw(st.binary(min_size=20, max_size=20)),
        draw(U256),
        draw(st.binary(max_size=200)),
    )


@given(transactions(), st.integers(1, 2**256 - 2**129), st.integers(1, 2**255), st.sampled_from([0, 1]))
def test_encodings_round_trip(tx: EvmTx, r: int, s: int, y: int) -> None:
    assert parse_unsigned(encode_unsigned(tx)) == tx
    signed = parse_signed(encode_signed(tx, y, r, s))
    assert (signed.tx, signed.y_parity, signed.r, signed.s) == (tx, y, r, s)


ADAPTER = EvmAdapter(network("http://127.0.0.1:9"), nonce_book=NonceBook(":memory:"))


@st.composite
def payments(draw: st.DrawFn) -> EvmTx:
    """Native payments on the adapter's network (what decode accepts)."""
    kind = draw(st.sampled_from([0, 2]))
    max_fee = draw(st.integers(1, 2**80))
    tip = max_fee if kind == 0 else draw(st.integers(0, max_fee))
    to = draw(st.binary(min_size=20, max_size=20))
    return EvmTx(kind, 31337, draw(st.integers(0, 2**32)), max_fee, tip, 21_000, to, draw(st.integers(1, 2**128)))


@settings(max_examples=300)
@given(payments(), st.data())
def test_decode_refuses_every_tampered_byte(tx: EvmTx, data: st.DataObject) -> None:
    """Changing any byte of the transaction part of a payload makes decode raise ValueError (digest or parse)."""
    encoded = encode_unsigned(tx)
    payload = pack_payload(b"\x11" * 20, tx)
    unsigned = UnsignedTransaction("anvil", payload, (keccak256(encoded),), "k")
    assert ADAPTER.decode(unsigned).amount == tx.value
    position = data.draw(st.integers(len(payload) - len(encoded), len(payload) - 1))
    tampered = bytearray(payload)
    tampered[position] ^= data.draw(st.integers(1, 255))
    try:
        ADAPTER.decode(UnsignedTransaction("anvil", bytes(tampered), unsigned.digests, "k"))
    except ValueError:
        return
    raise AssertionError(f"a payload with byte {position} changed was decoded")


class NonceBookMachine(RuleBasedStateMachine):
    """Reserve, broadcast, release, let time pass, restart: a live nonce is never handed out twice."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.book: NonceBook | None = None
        self.path: Path | None = None
        self.node_next = 0
        self.reserved: dict[int, float] = {}  # nonce -> when (not broadcast)
        self.used: set[int] = set()

    @initialize()
    def open(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="nonce-book-")
        self.path = Path(self.directory) / "book.sqlite"
        self.book = NonceBook(self.path, hold_seconds=100, clock=lambda: self.now)

    def live(self) -> set[int]:
        return self.used | {n for n, when in self.reserved.items() if when >= self.now - 100}

    @rule()
    def reserve(self) -> None:
        assert self.book is not None
        nonce = self.book.reserve("0xAbC", self.node_next)
        assert nonce >= self.node_next
        assert nonce not in self.live(), f"nonce {nonce} handed out twice"
        assert all(n in self.live() for n in range(self.node_next, nonce)), "a gap was left below the new nonce"
        self.reserved[nonce] = self.now

    @precondition(lambda self: bool(self.reserved))
    @rule(data=st.data())
    def broadcast(self, data: st.DataObject) -> None:
        assert self.book is not None
        nonce = data.draw(st.sampled_from(sorted(self.reserved)))
        if nonce not in self.live():
            return  # expired: its transaction would be built again
        del self.reserved[nonce]
        self.used.add(nonce)
        self.book.record_broadcast(f"0x{nonce:064x}", "0xabc", nonce, b"raw")

    @precondition(lambda self: bool(self.reserved))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        assert self.book is not None
        nonce = data.draw(st.sampled_from(sorted(self.reserved)))
        del self.reserved[nonce]
        self.book.release("0xabc", nonce)

    @rule(seconds=st.sampled_from([1.0, 50.0, 101.0]))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def mine(self) -> None:
        """The node's pending count catches up with the lowest used nonce run (the transactions were mined)."""
        while self.node_next in self.used:
            self.node_next += 1

    @rule()
    def restart(self) -> None:
        assert self.book is not None and self.path is not None
        self.book.close()
        self.book = NonceBook(self.path, hold_seconds=100, clock=lambda: self.now)

    @invariant()
    def used_nonces_are_recorded(self) -> None:
        if self.book is not None:
            states = self.book.reserved("0xABC")
            assert all(states.get(n) == "used" for n in self.used)

    def teardown(self) -> None:
        if self.book is not None:
            self.book.close()
            shutil.rmtree(self.directory, ignore_errors=True)


NonceBookMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestNonceBook = NonceBookMachine.TestCase
