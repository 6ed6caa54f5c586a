"""IVMS101 identity payloads: the originator and beneficiary of an outgoing transfer, and reading incoming ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from exchange_trisa.wire import IDENTITY_TYPE, IdentityPayload, Person

__all__ = ["LEGAL_NAME", "LEGAL_PERSON_NAME", "beneficiary_accounts", "identity_payload", "names", "natural_person"]

LEGAL_NAME = 4  # ivms101.NaturalPersonNameTypeCode NATURAL_PERSON_NAME_TYPE_CODE_LEGL
LEGAL_PERSON_NAME = 1  # ivms101.LegalPersonNameTypeCode LEGAL_PERSON_NAME_TYPE_CODE_LEGL


def natural_person(name: str, *, given_names: str = "", customer_id: str = "", country: str = "") -> Any:
    """A natural ``Person`` with a legal name (``name`` is the primary identifier: the family name or full name)."""
    person = Person()
    natural = person.natural_person
    natural.name.name_identifiers.add(
        primary_identifier=name, secondary_identifier=given_names, name_identifier_type=LEGAL_NAME
    )
    natural.customer_identification = customer_id
    natural.country_of_residence = country
    return person


def legal_person(name: str, *, country: str = "") -> Any:
    """A legal ``Person`` (a VASP) with its legal name."""
    person = Person()
    legal = person.legal_person
    legal.name.name_identifiers.add(legal_person_name=name, legal_person_name_identifier_type=LEGAL_PERSON_NAME)
    legal.country_of_registration = country
    return person


def identity_payload(
    originator: Mapping[str, str],
    *,
    originator_address: str,
    beneficiary_address: str,
    originating_vasp: str,
    beneficiary_vasp: str = "",
    beneficiary_name: str = "",
) -> Any:
    """The ``ivms101.IdentityPayload`` of an outgoing transfer.

    ``originator`` is what the exchange knows of its customer: ``name`` (or ``email`` when no legal name is on
    file), optional ``given_names``, ``account`` and ``country``. The beneficiary is named by its address; the
    beneficiary VASP completes its customer's identity in its reply, as TRISA's workflow has it.
    """
    payload = IdentityPayload()
    name = originator.get("name") or originator.get("email") or ""
    if not name:
        raise ValueError("the originator has no name or e-mail on file: travel rule data cannot be built")
    payload.originator.originator_persons.append(
        natural_person(
            name,
            given_names=originator.get("given_names", ""),
            customer_id=originator.get("account", ""),
            country=originator.get("country", ""),
        )
    )
    payload.originator.account_numbers.append(originator_address)
    if beneficiary_name:
        payload.beneficiary.beneficiary_persons.append(natural_person(beneficiary_name))
    payload.beneficiary.account_numbers.append(beneficiary_address)
    payload.originating_vasp.originating_vasp.CopyFrom(legal_person(originating_vasp))
    if beneficiary_vasp:
        payload.beneficiary_vasp.beneficiary_vasp.CopyFrom(legal_person(beneficiary_vasp))
    return payload


def decode(identity: Any) -> Any:
    """The ``IdentityPayload`` inside a ``google.protobuf.Any``; ``ValueError`` if it holds something else."""
    if identity.type_url != IDENTITY_TYPE:
        raise ValueError(f"the identity is a {identity.type_url or 'missing'} message, not {IDENTITY_TYPE}")
    return IdentityPayload.FromString(identity.value)


def beneficiary_accounts(payload: Any) -> list[str]:
    """The beneficiary's account numbers (wallet addresses) named in an ``IdentityPayload``."""
    return [a for a in payload.beneficiary.account_numbers if a]


def names(persons: Iterable[Any]) -> list[str]:
    """The legal names of natural or legal persons, "primary, secondary" for natural persons."""
    found: list[str] = []
    for person in persons:
        kind = person.WhichOneof("person")
        if kind == "natural_person":
            for n in person.natural_person.name.name_identifiers:
                found.append(", ".join(p for p in (n.primary_identifier, n.secondary_identifier) if p))
        elif kind == "legal_person":
            found.extend(n.legal_person_name for n in person.legal_person.name.name_identifiers)
    return found
