"""TRISA's gRPC API over real mutual TLS on 127.0.0.1: our client and server, with throwaway CA certificates.

A transfer to one of the receiver's customers is accepted with a reply sealed to us; an unknown beneficiary,
a forged or altered envelope, a sender who skipped KeyExchange, a client certificate from another CA and a server
certificate for another name are all refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from exchange_trisa import envelope, identity
from exchange_trisa.receiver import Receiver
from exchange_trisa.transport import MtlsIdentity, TransportError, TrisaClient, TrisaServer
from exchange_trisa.wire import TRANSACTION_TYPE, ErrorCode, Payload, Transaction, TransferState

from tests.compliance.travel.pki import ThrowawayCA, sealing_key

BOB_CUSTOMER = "0xb0b0000000000000000000000000000000000001"


@dataclass
class Network:
    ca: ThrowawayCA
    alice: MtlsIdentity
    alice_key: rsa.RSAPrivateKey
    bob_key: rsa.RSAPrivateKey
    receiver: Receiver
    endpoint: str
    client: TrisaClient


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    ca = ThrowawayCA.create()
    bob_key = sealing_key()
    receiver = Receiver(sealing_key=bob_key, is_customer=lambda address: address == BOB_CUSTOMER)
    server = TrisaServer(
        ca.issue("bob.vasp.test"),
        transfer=receiver.transfer,
        key_exchange=receiver.key_exchange,
        address="127.0.0.1:0",
    )
    server.start()
    alice = ca.issue("alice.vasp.test")
    client = TrisaClient(alice, timeout=5)
    try:
        yield Network(ca, alice, sealing_key(), bob_key, receiver, f"127.0.0.1:{server.port}", client)
    finally:
        client.close()
        server.stop()


def transfer_payload(beneficiary: str) -> Any:
    ivms = identity.identity_payload(
        {"name": "Howard", "given_names": "Jane", "account": "7", "country": "US"},
        originator_address="0xa11ce00000000000000000000000000000000001",
        beneficiary_address=beneficiary,
        originating_vasp="Alice VASP",
    )
    payload = Payload(sent_at="2026-11-25T12:00:00Z")
    payload.identity.Pack(ivms)
    payload.transaction.Pack(Transaction(beneficiary=beneficiary, amount=1.5, network="ETH", asset_type="ETH"))
    return payload


def test_an_accepted_transfer_comes_back_sealed_to_us(network: Network) -> None:
    bob = network.client.key_exchange(network.endpoint, network.alice_key.public_key(), name="bob.vasp.test")
    assert envelope.key_signature(bob) == envelope.key_signature(network.bob_key.public_key())
    sent = transfer_payload(BOB_CUSTOMER)
    sealed = envelope.seal(sent, bob, envelope_id="env-accepted")
    reply = network.client.transfer(network.endpoint, sealed, name="bob.vasp.test")
    assert reply.id == "env-accepted" and reply.transfer_state == TransferState.ACCEPTED
    assert not reply.HasField("error")
    opened = envelope.open(reply, network.alice_key)
    assert opened.received_at and opened.sent_at == sent.sent_at
    assert opened.identity == sent.identity and opened.transaction.type_url == TRANSACTION_TYPE
    record = network.receiver.received[("alice.vasp.test", "env-accepted")]
    assert record.accepted and record.beneficiary_accounts == (BOB_CUSTOMER,)
    assert record.originator_names == ("Howard, Jane",)
    # the same envelope id again (a retry) is answered the same way
    again = network.client.transfer(network.endpoint, envelope.seal(sent, bob, envelope_id="env-accepted"))
    assert again.transfer_state == TransferState.ACCEPTED


def test_an_unknown_beneficiary_is_rejected_with_a_trisa_code(network: Network) -> None:
    bob = network.client.key_exchange(network.endpoint, network.alice_key.public_key())
    sealed = envelope.seal(transfer_payload("0xnot-a-customer"), bob, envelope_id="env-unknown")
    reply = network.client.transfer(network.endpoint, sealed)
    assert reply.transfer_state == TransferState.REJECTED and not reply.sealed
    assert reply.error.code == ErrorCode.UNKNOWN_WALLET_ADDRESS and not reply.error.retry
    assert not network.receiver.received[("alice.vasp.test", "env-unknown")].accepted


def test_forged_and_altered_envelopes_are_refused(network: Network) -> None:
    network.client.key_exchange(network.endpoint, network.alice_key.public_key())
    forged = envelope.seal(transfer_payload(BOB_CUSTOMER), sealing_key().public_key(), envelope_id="env-forged")
    reply = network.client.transfer(network.endpoint, forged)
    assert reply.error.code == ErrorCode.ENVELOPE_DECODE_FAIL and reply.transfer_state == TransferState.REJECTED
    altered = envelope.seal(transfer_payload(BOB_CUSTOMER), network.bob_key.public_key(), envelope_id="env-altered")
    altered.payload = bytes([altered.payload[0] ^ 1]) + altered.payload[1:]
    reply = network.client.transfer(network.endpoint, altered)
    assert reply.error.code == ErrorCode.ENVELOPE_DECODE_FAIL and "HMAC" in reply.error.message
    assert ("alice.vasp.test", "env-forged") not in network.receiver.received


def test_a_sender_without_key_exchange_is_told_to_do_it(network: Network) -> None:
    carol = TrisaClient(network.ca.issue("carol.vasp.test"), timeout=5)
    try:
        sealed = envelope.seal(transfer_payload(BOB_CUSTOMER), network.bob_key.public_key(), envelope_id="env-c")
        reply = carol.transfer(network.endpoint, sealed)
        assert reply.error.code == ErrorCode.INVALID_KEY and reply.error.retry
        assert carol.status(network.endpoint) == 1  # healthy
    finally:
        carol.close()


def test_a_certificate_from_another_ca_is_refused(network: Network) -> None:
    other = ThrowawayCA.create("Some Other CA")
    mallory = TrisaClient(other.issue("mallory.vasp.test", trust=network.ca.pem), timeout=5)
    try:
        with pytest.raises(TransportError, match="UNAVAILABLE"):
            mallory.key_exchange(network.endpoint, sealing_key().public_key())
    finally:
        mallory.close()
    assert "mallory.vasp.test" not in network.receiver.peer_keys


def test_a_server_certificate_for_another_name_is_refused(network: Network) -> None:
    with pytest.raises(TransportError, match="UNAVAILABLE"):
        network.client.status(network.endpoint, name="charlie.vasp.test")
