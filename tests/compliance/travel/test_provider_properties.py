"""A hypothesis state machine over the TRISA provider and a counterparty node behaving arbitrarily, over real gRPC
with mTLS: whatever the counterparty does (down, pending, retry, forged or misaddressed replies, accept, reject),
the withdrawal is allowed only after a genuine acceptance, released only after a genuine rejection, a final
answer never changes and is never asked for again, and every attempt carries the same envelope id."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from exchange_trisa import envelope
from exchange_trisa.directory import StaticDirectory
from exchange_trisa.provider import TrisaProvider
from exchange_trisa.receiver import Receiver, error_envelope
from exchange_trisa.store import TransferStore
from exchange_trisa.thresholds import DEFAULT_THRESHOLDS
from exchange_trisa.transport import TransportError, TrisaClient, TrisaServer
from exchange_trisa.wire import ErrorCode, Payload, Pending, TransferState
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from exchange_framework.interfaces import Outcome, WithdrawalRequest
from tests.compliance.travel.pki import ThrowawayCA, sealing_key

BEHAVIOURS = ("down", "pending", "retry", "forged", "wrong_id", "accept", "reject")


class Bob:
    """A counterparty whose next answer is whatever the test says."""

    def __init__(self, ca: ThrowawayCA) -> None:
        self.receiver = Receiver(sealing_key=sealing_key(), is_customer=lambda address: True)
        self.behaviour = "accept"
        self.seen: list[str] = []  # envelope ids of the transfers that reached Bob
        self.server = TrisaServer(
            ca.issue("bob.vasp.test"),
            transfer=self.transfer,
            key_exchange=self.receiver.key_exchange,
            address="127.0.0.1:0",
        )
        self.server.start()

    def transfer(self, request: Any, peer: str) -> Any:
        self.seen.append(request.id)
        key = self.receiver.peer_keys[peer]
        if self.behaviour == "down":
            raise RuntimeError("Bob's node is failing")
        if self.behaviour == "retry":
            return error_envelope(request.id, ErrorCode.UNAVAILABLE, "try later", retry=True)
        if self.behaviour == "reject":
            return error_envelope(request.id, ErrorCode.REJECTED, "no")
        payload = envelope.open(request, self.receiver.sealing_key)
        if self.behaviour == "pending":
            answer = Payload(identity=payload.identity, sent_at=payload.sent_at)
            answer.transaction.Pack(Pending(envelope_id=request.id, message="later"))
            reply = envelope.seal(answer, key, envelope_id=request.id)
            reply.transfer_state = TransferState.PENDING
            return reply
        if self.behaviour == "forged":
            key = sealing_key().public_key()
        eid = request.id if self.behaviour != "wrong_id" else "someone-else"
        reply = envelope.seal(payload, key, envelope_id=eid)
        reply.transfer_state = TransferState.ACCEPTED
        return reply


NETWORK: dict[str, Any] = {}
IDS = itertools.count(1)


@pytest.fixture(scope="module", autouse=True)
def network() -> Iterator[None]:
    ca = ThrowawayCA.create()
    bob = Bob(ca)
    NETWORK.update(bob=bob, client=TrisaClient(ca.issue("alice.vasp.test"), timeout=5), key=sealing_key())
    try:
        yield
    finally:
        NETWORK["client"].close()
        bob.server.stop(0)
        NETWORK.clear()


class TransferMachine(RuleBasedStateMachine):
    """The model: ``final`` is None until Bob's first genuine accept or reject, then that answer forever."""

    @initialize()
    def start(self) -> None:
        self.bob: Bob = NETWORK["bob"]
        self.provider = TrisaProvider(
            common_name="alice.vasp.test",
            vasp_name="Alice",
            client=NETWORK["client"],
            directory=StaticDirectory({"bob.vasp.test": {"endpoint": f"127.0.0.1:{self.bob.server.port}"}}),
            sealing_key=NETWORK["key"],
            store=TransferStore(":memory:"),
            thresholds=DEFAULT_THRESHOLDS,
            jurisdiction="US",
            prices={"ETH": (3000, 1)},
            decimals={"ETH": 18},
            addresses={"0xb0b": "bob.vasp.test"},
            retry_seconds=0,
        )
        self.withdrawal = WithdrawalRequest(next(IDS), 7, "ETH", "devchain", 2 * 10**18, "0xb0b")
        self.final: Outcome | None = None
        self.reference = ""
        self.seen_before = len(self.bob.seen)

    @rule(behaviour=st.sampled_from(BEHAVIOURS))
    def send(self, behaviour: str) -> None:
        self.bob.behaviour = behaviour
        calls = len(self.bob.seen)
        try:
            self.reference = self.provider.send(self.withdrawal, {"email": "alice@example.com", "account": "7"})
            raised = False
        except (TransportError, envelope.EnvelopeError):
            raised = True
        if self.final is not None:  # answered for good: nobody is asked again
            assert not raised and len(self.bob.seen) == calls
            return
        assert len(self.bob.seen) == calls + 1
        assert raised == (behaviour in ("down", "retry", "forged", "wrong_id"))
        if behaviour == "accept":
            self.final = Outcome.ALLOW
        elif behaviour == "reject":
            self.final = Outcome.REJECT

    @invariant()
    def decision_follows_the_genuine_answer(self) -> None:
        reference = self.provider.envelope_id(self.withdrawal.withdrawal_id)
        assert self.reference in ("", reference)
        expected = self.final if self.final is not None else Outcome.HOLD
        assert self.provider.status(reference).outcome is expected

    @invariant()
    def one_envelope_id(self) -> None:
        reference = self.provider.envelope_id(self.withdrawal.withdrawal_id)
        assert set(self.bob.seen[self.seen_before :]) <= {reference}

    def teardown(self) -> None:
        self.provider.store.close()


TestTransferMachine = TransferMachine.TestCase
TestTransferMachine.settings = settings(max_examples=30, stateful_step_count=12, deadline=None)
