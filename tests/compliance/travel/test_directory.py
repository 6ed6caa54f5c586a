"""Counterparty lookup: against a local GDS implementing the documented Lookup/Search over TLS, and from config."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from exchange_trisa.directory import Counterparty, CounterpartyDirectory, DirectoryError, GdsDirectory, StaticDirectory

from tests.compliance.travel.gds_server import LocalGds, VaspRecord
from tests.compliance.travel.pki import ThrowawayCA, sealing_key


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


@pytest.fixture(scope="module")
def gds(ca: ThrowawayCA) -> Iterator[tuple[LocalGds, str]]:
    bob_cert = ca.issue("bob.vasp.test").certificate
    der = x509.load_pem_x509_certificate(bob_cert).public_bytes(serialization.Encoding.DER)
    server = LocalGds(
        ca.issue("localhost"),
        records=[
            VaspRecord("b0b-id", "bob.vasp.test", "127.0.0.1:7001", "Bob's Discount VASP", "GB", der),
            VaspRecord("a11-id", "alice.vasp.test", "127.0.0.1:7002", "AliceCoin", "US"),
            VaspRecord("b0c-id", "bobcat.vasp.test", "127.0.0.1:7003", "Bobcat Exchange", "US"),
            VaspRecord("e7e-id", "eve.vasp.test", "127.0.0.1:7005", "Eve", "US", revoked=True),
        ],
    )
    endpoint = server.start()
    try:
        yield server, endpoint
    finally:
        server.stop()


def test_gds_lookup_gives_the_endpoint_and_the_signing_key(ca: ThrowawayCA, gds: tuple[LocalGds, str]) -> None:
    server, endpoint = gds
    directory = GdsDirectory(endpoint, trust_chain=ca.pem, timeout=5)
    try:
        assert isinstance(directory, CounterpartyDirectory)
        bob = directory.lookup("bob.vasp.test")
        assert bob is not None
        assert (bob.endpoint, bob.name, bob.country, bob.vasp_id) == (
            "127.0.0.1:7001",
            "Bob's Discount VASP",
            "GB",
            "b0b-id",
        )
        cert = x509.load_der_x509_certificate(server.records[0].signing_certificate)
        assert bob.sealing_key == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        alice = directory.lookup("alice.vasp.test")
        assert alice is not None and alice.sealing_key == b""  # no signing certificate: KeyExchange supplies it
        assert directory.lookup("nobody.vasp.test") is None
        with pytest.raises(DirectoryError, match="revoked"):
            directory.lookup("eve.vasp.test")
    finally:
        directory.close()


def test_gds_search_by_name_and_country(ca: ThrowawayCA, gds: tuple[LocalGds, str]) -> None:
    _, endpoint = gds
    directory = GdsDirectory(endpoint, trust_chain=ca.pem, timeout=5)
    try:
        assert sorted(c.common_name for c in directory.search("bob")) == ["bob.vasp.test", "bobcat.vasp.test"]
        assert [c.common_name for c in directory.search("BOB", country="US")] == ["bobcat.vasp.test"]
        assert directory.search("nobody") == []
    finally:
        directory.close()


def test_an_untrusted_or_unreachable_directory_is_an_error(gds: tuple[LocalGds, str]) -> None:
    _, endpoint = gds
    untrusted = GdsDirectory(endpoint, trust_chain=ThrowawayCA.create("Other").pem, timeout=5)
    with pytest.raises(DirectoryError, match="UNAVAILABLE"):
        untrusted.lookup("bob.vasp.test")
    untrusted.close()
    down = GdsDirectory("127.0.0.1:1", trust_chain=ThrowawayCA.create().pem, timeout=2)
    with pytest.raises(DirectoryError):
        down.search("bob")
    down.close()


def test_static_directory_from_config() -> None:
    key = sealing_key().public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    directory = StaticDirectory(
        {
            "bob.vasp.test": {"endpoint": "127.0.0.1:7001", "name": "Bob VASP", "country": "GB", "sealing_key": pem},
            "carol.vasp.test": {"endpoint": "127.0.0.1:7004"},
        }
    )
    assert isinstance(directory, CounterpartyDirectory)
    bob = directory.lookup("bob.vasp.test")
    assert bob is not None and bob.endpoint == "127.0.0.1:7001"
    assert bob.sealing_key == key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert directory.lookup("carol.vasp.test") == Counterparty("carol.vasp.test", "127.0.0.1:7004", "carol.vasp.test")
    assert [c.common_name for c in directory.search("bob", country="GB")] == ["bob.vasp.test"]
    assert directory.lookup("nobody") is None
    with pytest.raises(ValueError, match="endpoint"):
        StaticDirectory({"x": {"name": "no endpoint"}})
    with pytest.raises(ValueError, match="sealing_key"):
        StaticDirectory({"x": {"endpoint": "h:1", "sealing_key": "not a key"}})


def test_the_members_directory_requires_our_certificate(ca: ThrowawayCA) -> None:
    members = LocalGds(
        ca.issue("localhost"), records=[VaspRecord("b0b", "bob.vasp.test", "127.0.0.1:7001", "Bob", "GB")]
    )
    members.members = True
    endpoint = members.start()
    try:
        anonymous = GdsDirectory(endpoint, trust_chain=ca.pem, timeout=5)
        with pytest.raises(DirectoryError, match="UNAVAILABLE"):
            anonymous.lookup("bob.vasp.test")
        anonymous.close()
        ours = GdsDirectory(endpoint, trust_chain=ca.pem, identity=ca.issue("alice.vasp.test"), timeout=5)
        found = ours.lookup("bob.vasp.test")
        assert found is not None and found.endpoint == "127.0.0.1:7001"
        ours.close()
    finally:
        members.stop()
