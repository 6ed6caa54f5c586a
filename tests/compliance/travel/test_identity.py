"""IVMS101 identity payloads: the public fixture's identity decodes to its published names and addresses and
re-encodes byte for byte (undescribed fields kept); ours carry the originator, the beneficiary address and VASPs."""

from __future__ import annotations

import json

import pytest
from exchange_trisa import envelope, identity
from exchange_trisa.wire import IDENTITY_TYPE, IdentityPayload, Payload

from tests.compliance.travel.test_envelope import DATA, fixture_envelope


def test_the_published_identity_payload_decodes_to_its_names_and_addresses() -> None:
    key = envelope.load_private_key((DATA / "sealing_key.pem").read_bytes())
    payload = envelope.open(fixture_envelope(), key)
    ivms = identity.decode(payload.identity)
    assert ivms.SerializeToString() == payload.identity.value  # nothing lost, byte for byte
    want = json.loads((DATA / "pending_payload.json").read_text())["identity"]

    def published(persons: list[dict[str, object]]) -> list[str]:
        out = []
        for person in persons:
            natural = person.get("natural_person")
            if natural:
                for n in natural["name"]["name_identifiers"]:  # type: ignore[index]
                    out.append(", ".join(p for p in (n["primary_identifier"], n["secondary_identifier"]) if p))
            else:
                for n in person["legal_person"]["name"]["name_identifiers"]:  # type: ignore[index]
                    out.append(n["legal_person_name"])
        return out

    assert identity.names(ivms.originator.originator_persons) == published(want["originator"]["originator_persons"])
    assert identity.names(ivms.beneficiary.beneficiary_persons) == published(want["beneficiary"]["beneficiary_persons"])
    assert identity.beneficiary_accounts(ivms) == want["beneficiary"]["account_numbers"]
    assert list(ivms.originator.account_numbers) == want["originator"]["account_numbers"]
    assert identity.names([ivms.originating_vasp.originating_vasp]) == published(
        [want["originating_vasp"]["originating_vasp"]]
    )
    home = ivms.originator.originator_persons[0].natural_person.geographic_addresses[0]
    want_home = want["originator"]["originator_persons"][0]["natural_person"]["geographic_addresses"][0]
    assert (home.street_name, home.town_name, home.country) == (
        want_home["street_name"],
        want_home["town_name"],
        want_home["country"],
    )


def test_our_identity_payload_names_the_originator_and_the_beneficiary_address() -> None:
    ivms = identity.identity_payload(
        {"email": "alice@example.com", "account": "12", "country": "DE"},
        originator_address="0xa11ce",
        beneficiary_address="0xb0b",
        originating_vasp="Our Exchange",
        beneficiary_vasp="Bob VASP",
    )
    again = IdentityPayload.FromString(ivms.SerializeToString())
    assert identity.names(again.originator.originator_persons) == ["alice@example.com"]
    natural = again.originator.originator_persons[0].natural_person
    assert (natural.customer_identification, natural.country_of_residence) == ("12", "DE")
    assert natural.name.name_identifiers[0].name_identifier_type == identity.LEGAL_NAME
    assert identity.beneficiary_accounts(again) == ["0xb0b"]
    assert identity.names([again.beneficiary_vasp.beneficiary_vasp]) == ["Bob VASP"]
    with pytest.raises(ValueError, match="no name"):
        identity.identity_payload({}, originator_address="a", beneficiary_address="b", originating_vasp="v")


def test_an_identity_of_another_type_is_refused() -> None:
    payload = Payload()
    payload.identity.type_url = "type.googleapis.com/something.Else"
    with pytest.raises(ValueError, match=IDENTITY_TYPE):
        identity.decode(payload.identity)
