"""TRISA's protobuf messages, described to the ``protobuf`` runtime at import time.

The field names, numbers and types are those of trisacrypto/trisa's ``.proto`` files (commit ``dbfd1ae``):
``proto/trisa/api/v1beta1/api.proto`` and ``errors.proto`` (the peer-to-peer ``TRISANetwork``/``TRISAHealth``
messages), ``proto/trisa/data/generic/v1beta1/transaction.proto`` (``Transaction``, ``Pending``),
``proto/trisa/gds/api/v1beta1/api.proto`` and ``proto/trisa/gds/models/v1beta1/models.proto`` (the directory's
``Lookup``/``Search``), and ``proto/ivms101/identity.proto`` and ``ivms101.proto`` (the identity payload).
Describing them here, in a private descriptor pool, gives byte-exact encoding and decoding by Google's runtime
without a ``protoc`` build step. Fields and messages we do not use are left undescribed: the runtime keeps them as
unknown fields, byte for byte, so a message from a peer re-serialises unchanged. Enums are described as ``int32``
(the same varint on the wire); the codes we use are constants below.
"""

from __future__ import annotations

from typing import Any

# No stubs needed: the message classes are made at run time, so they are typed Any whatever the stubs say.
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

__all__ = [
    "IDENTITY_TYPE",
    "PENDING_TYPE",
    "TRANSACTION_TYPE",
    "Beneficiary",
    "Certificate",
    "ErrorCode",
    "GdsError",
    "HealthCheck",
    "IdentityPayload",
    "LookupReply",
    "LookupRequest",
    "Originator",
    "Payload",
    "Pending",
    "Person",
    "SearchReply",
    "SearchRequest",
    "SecureEnvelope",
    "ServiceState",
    "SigningKey",
    "Transaction",
    "TransferState",
    "TrisaError",
]

IDENTITY_TYPE = "type.googleapis.com/ivms101.IdentityPayload"
TRANSACTION_TYPE = "type.googleapis.com/trisa.data.generic.v1beta1.Transaction"
PENDING_TYPE = "type.googleapis.com/trisa.data.generic.v1beta1.Pending"


class TransferState:
    """``trisa.api.v1beta1.TransferState`` values."""

    UNSPECIFIED, STARTED, PENDING, REVIEW, REPAIR, ACCEPTED, COMPLETED, REJECTED = range(8)


class ErrorCode:
    """The ``trisa.api.v1beta1.Error.Code`` values this plugin sends or reads."""

    UNHANDLED = 0
    UNAVAILABLE = 1
    INTERNAL_ERROR = 49
    REJECTED = 50
    UNKNOWN_WALLET_ADDRESS = 51
    UNKNOWN_BENEFICIARY = 54  # spelled UNKOWN_BENEFICIARY in the proto
    COMPLIANCE_CHECK_FAIL = 90
    INVALID_KEY = 106
    ENVELOPE_DECODE_FAIL = 107
    UNHANDLED_ALGORITHM = 108
    BAD_REQUEST = 150
    UNPARSEABLE_IDENTITY = 151
    MISSING_FIELDS = 153

    RETRYABLE = frozenset({UNHANDLED, UNAVAILABLE, INTERNAL_ERROR})


_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BYTES, _BOOL, _DOUBLE, _INT32, _INT64, _UINT32, _UINT64, _MESSAGE = (
    _F.TYPE_STRING,
    _F.TYPE_BYTES,
    _F.TYPE_BOOL,
    _F.TYPE_DOUBLE,
    _F.TYPE_INT32,
    _F.TYPE_INT64,
    _F.TYPE_UINT32,
    _F.TYPE_UINT64,
    _F.TYPE_MESSAGE,
)
_REPEATED = 1 << 8  # or-ed into a field's kind: a repeated field
_ENUM = _INT32  # enums are varints on the wire

Field = tuple[str, int, int, str]


def _message(name: str, fields: list[Field], *, oneof: str = "") -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    if oneof:
        message.oneof_decl.add(name=oneof)
    for field_name, number, kind, type_name in fields:
        label = _F.LABEL_REPEATED if kind & _REPEATED else _F.LABEL_OPTIONAL
        field = message.field.add(name=field_name, number=number, type=kind & 0xFF, label=label)
        if type_name:
            field.type_name = type_name
        if oneof:
            field.oneof_index = 0
    return message


def _file(name: str, package: str, *messages: descriptor_pb2.DescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name=f"exchange_trisa/{name}", package=package, syntax="proto3")
    file.dependency.append("google/protobuf/any.proto")
    file.message_type.extend(messages)
    return file


def _ivms101() -> descriptor_pb2.FileDescriptorProto:
    m = ".ivms101."
    name_id = [("primary_identifier", 1, _STRING, ""), ("secondary_identifier", 2, _STRING, "")]
    return _file(
        "ivms101.proto",
        "ivms101",
        _message(
            "IdentityPayload",
            [
                ("originator", 1, _MESSAGE, m + "Originator"),
                ("beneficiary", 2, _MESSAGE, m + "Beneficiary"),
                ("originating_vasp", 3, _MESSAGE, m + "OriginatingVasp"),
                ("beneficiary_vasp", 4, _MESSAGE, m + "BeneficiaryVasp"),
            ],
        ),
        _message(
            "Originator",
            [
                ("originator_persons", 1, _MESSAGE | _REPEATED, m + "Person"),
                ("account_numbers", 2, _STRING | _REPEATED, ""),
            ],
        ),
        _message(
            "Beneficiary",
            [
                ("beneficiary_persons", 1, _MESSAGE | _REPEATED, m + "Person"),
                ("account_numbers", 2, _STRING | _REPEATED, ""),
            ],
        ),
        _message("OriginatingVasp", [("originating_vasp", 1, _MESSAGE, m + "Person")]),
        _message("BeneficiaryVasp", [("beneficiary_vasp", 1, _MESSAGE, m + "Person")]),
        _message(
            "Person",
            [("natural_person", 1, _MESSAGE, m + "NaturalPerson"), ("legal_person", 2, _MESSAGE, m + "LegalPerson")],
            oneof="person",
        ),
        _message(
            "NaturalPerson",
            [
                ("name", 1, _MESSAGE, m + "NaturalPersonName"),
                ("geographic_addresses", 2, _MESSAGE | _REPEATED, m + "Address"),
                ("national_identification", 3, _MESSAGE, m + "NationalIdentification"),
                ("customer_identification", 4, _STRING, ""),
                ("date_and_place_of_birth", 5, _MESSAGE, m + "DateAndPlaceOfBirth"),
                ("country_of_residence", 6, _STRING, ""),
            ],
        ),
        _message("NaturalPersonName", [("name_identifiers", 1, _MESSAGE | _REPEATED, m + "NaturalPersonNameId")]),
        _message("NaturalPersonNameId", [*name_id, ("name_identifier_type", 3, _ENUM, "")]),
        _message(
            "Address",
            [
                ("address_type", 1, _ENUM, ""),
                ("street_name", 4, _STRING, ""),
                ("building_number", 5, _STRING, ""),
                ("post_code", 10, _STRING, ""),
                ("town_name", 11, _STRING, ""),
                ("country_sub_division", 14, _STRING, ""),
                ("address_line", 15, _STRING | _REPEATED, ""),
                ("country", 16, _STRING, ""),
            ],
        ),
        _message("DateAndPlaceOfBirth", [("date_of_birth", 1, _STRING, ""), ("place_of_birth", 2, _STRING, "")]),
        _message(
            "NationalIdentification",
            [
                ("national_identifier", 1, _STRING, ""),
                ("national_identifier_type", 2, _ENUM, ""),
                ("country_of_issue", 3, _STRING, ""),
                ("registration_authority", 4, _STRING, ""),
            ],
        ),
        _message(
            "LegalPerson",
            [
                ("name", 1, _MESSAGE, m + "LegalPersonName"),
                ("geographic_addresses", 2, _MESSAGE | _REPEATED, m + "Address"),
                ("customer_number", 3, _STRING, ""),
                ("national_identification", 4, _MESSAGE, m + "NationalIdentification"),
                ("country_of_registration", 5, _STRING, ""),
            ],
        ),
        _message("LegalPersonName", [("name_identifiers", 1, _MESSAGE | _REPEATED, m + "LegalPersonNameId")]),
        _message(
            "LegalPersonNameId",
            [("legal_person_name", 1, _STRING, ""), ("legal_person_name_identifier_type", 2, _ENUM, "")],
        ),
    )


def _api() -> descriptor_pb2.FileDescriptorProto:
    return _file(
        "api.proto",
        "trisa.api.v1beta1",
        _message(
            "SecureEnvelope",
            [
                ("id", 1, _STRING, ""),
                ("payload", 2, _BYTES, ""),
                ("encryption_key", 3, _BYTES, ""),
                ("encryption_algorithm", 4, _STRING, ""),
                ("hmac", 5, _BYTES, ""),
                ("hmac_secret", 6, _BYTES, ""),
                ("hmac_algorithm", 7, _STRING, ""),
                ("error", 9, _MESSAGE, ".trisa.api.v1beta1.Error"),
                ("timestamp", 10, _STRING, ""),
                ("sealed", 11, _BOOL, ""),
                ("public_key_signature", 12, _STRING, ""),
                ("transfer_state", 13, _ENUM, ""),
            ],
        ),
        _message(
            "Payload",
            [
                ("identity", 1, _MESSAGE, ".google.protobuf.Any"),
                ("transaction", 2, _MESSAGE, ".google.protobuf.Any"),
                ("sent_at", 3, _STRING, ""),
                ("received_at", 4, _STRING, ""),
            ],
        ),
        _message(
            "Error",
            [
                ("code", 1, _ENUM, ""),
                ("message", 2, _STRING, ""),
                ("retry", 3, _BOOL, ""),
                ("details", 4, _MESSAGE, ".google.protobuf.Any"),
            ],
        ),
        _message(
            "SigningKey",
            [
                ("version", 1, _INT64, ""),
                ("signature", 2, _BYTES, ""),
                ("signature_algorithm", 3, _STRING, ""),
                ("public_key_algorithm", 4, _STRING, ""),
                ("not_before", 8, _STRING, ""),
                ("not_after", 9, _STRING, ""),
                ("revoked", 10, _BOOL, ""),
                ("data", 11, _BYTES, ""),  # the PKIX (DER SubjectPublicKeyInfo) sealing key
            ],
        ),
        _message("HealthCheck", [("attempts", 1, _UINT32, ""), ("last_checked_at", 2, _STRING, "")]),
        _message(
            "ServiceState",
            [("status", 1, _ENUM, ""), ("not_before", 2, _STRING, ""), ("not_after", 3, _STRING, "")],
        ),
    )


def _generic() -> descriptor_pb2.FileDescriptorProto:
    return _file(
        "transaction.proto",
        "trisa.data.generic.v1beta1",
        _message(
            "Transaction",
            [
                ("txid", 1, _STRING, ""),
                ("originator", 2, _STRING, ""),
                ("beneficiary", 3, _STRING, ""),
                ("amount", 4, _DOUBLE, ""),  # TRISA's wire type; the exchange never computes with it
                ("network", 5, _STRING, ""),
                ("timestamp", 6, _STRING, ""),
                ("extra_json", 7, _STRING, ""),
                ("asset_type", 8, _STRING, ""),
                ("tag", 9, _STRING, ""),
            ],
        ),
        _message(
            "Pending",
            [
                ("envelope_id", 1, _STRING, ""),
                ("received_by", 2, _STRING, ""),
                ("received_at", 3, _STRING, ""),
                ("message", 4, _STRING, ""),
                ("reply_not_after", 5, _STRING, ""),
                ("reply_not_before", 6, _STRING, ""),
                ("extra_json", 7, _STRING, ""),
                ("transaction", 15, _MESSAGE, ".trisa.data.generic.v1beta1.Transaction"),
            ],
        ),
    )


def _gds() -> descriptor_pb2.FileDescriptorProto:
    models = ".trisa.gds.models.v1beta1."
    api = ".trisa.gds.api.v1beta1."
    search_reply = _message(
        "SearchReply",
        [("error", 1, _MESSAGE, api + "Error"), ("results", 2, _MESSAGE | _REPEATED, api + "SearchReply.Result")],
    )
    search_reply.nested_type.append(
        _message(
            "Result",
            [
                ("id", 1, _STRING, ""),
                ("registered_directory", 2, _STRING, ""),
                ("common_name", 3, _STRING, ""),
                ("endpoint", 4, _STRING, ""),
            ],
        )
    )
    file = _file(
        "gds.proto",
        "trisa.gds.api.v1beta1",
        _message(
            "LookupRequest",
            [("id", 1, _STRING, ""), ("registered_directory", 2, _STRING, ""), ("common_name", 3, _STRING, "")],
        ),
        _message(
            "LookupReply",
            [
                ("error", 1, _MESSAGE, api + "Error"),
                ("id", 2, _STRING, ""),
                ("registered_directory", 3, _STRING, ""),
                ("common_name", 4, _STRING, ""),
                ("endpoint", 5, _STRING, ""),
                ("identity_certificate", 6, _MESSAGE, models + "Certificate"),
                ("signing_certificate", 7, _MESSAGE, models + "Certificate"),
                ("name", 8, _STRING, ""),
                ("country", 9, _STRING, ""),
                ("verified_on", 10, _STRING, ""),
            ],
        ),
        _message(
            "SearchRequest",
            [
                ("name", 1, _STRING | _REPEATED, ""),
                ("website", 2, _STRING | _REPEATED, ""),
                ("country", 7, _STRING | _REPEATED, ""),
                ("business_category", 8, _ENUM | _REPEATED, ""),
                ("vasp_category", 9, _STRING | _REPEATED, ""),
            ],
        ),
        search_reply,
        _message("Error", [("code", 1, _INT32, ""), ("message", 2, _STRING, "")]),
    )
    file.dependency.append("exchange_trisa/models.proto")
    return file


def _models() -> descriptor_pb2.FileDescriptorProto:
    m = ".trisa.gds.models.v1beta1."
    return _file(
        "models.proto",
        "trisa.gds.models.v1beta1",
        _message(
            "Certificate",
            [
                ("version", 1, _INT64, ""),
                ("serial_number", 2, _BYTES, ""),
                ("signature", 3, _BYTES, ""),
                ("signature_algorithm", 4, _STRING, ""),
                ("public_key_algorithm", 5, _STRING, ""),
                ("subject", 6, _MESSAGE, m + "Name"),
                ("issuer", 7, _MESSAGE, m + "Name"),
                ("not_before", 8, _STRING, ""),
                ("not_after", 9, _STRING, ""),
                ("revoked", 10, _BOOL, ""),
                ("data", 11, _BYTES, ""),  # the DER certificate
                ("chain", 12, _BYTES, ""),
            ],
        ),
        _message(
            "Name",
            [
                ("common_name", 1, _STRING, ""),
                ("serial_number", 2, _STRING, ""),
                ("organization", 3, _STRING | _REPEATED, ""),
                ("organizational_unit", 4, _STRING | _REPEATED, ""),
                ("street_address", 5, _STRING | _REPEATED, ""),
                ("locality", 6, _STRING | _REPEATED, ""),
                ("province", 7, _STRING | _REPEATED, ""),
                ("postal_code", 8, _STRING | _REPEATED, ""),
                ("country", 9, _STRING | _REPEATED, ""),
            ],
        ),
    )


def _pool() -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    for file in (_ivms101(), _api(), _generic(), _models(), _gds()):
        pool.Add(file)
    return pool


_POOL = _pool()


def _class(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(name))


SecureEnvelope: Any = _class("trisa.api.v1beta1.SecureEnvelope")
Payload: Any = _class("trisa.api.v1beta1.Payload")
TrisaError: Any = _class("trisa.api.v1beta1.Error")
SigningKey: Any = _class("trisa.api.v1beta1.SigningKey")
HealthCheck: Any = _class("trisa.api.v1beta1.HealthCheck")
ServiceState: Any = _class("trisa.api.v1beta1.ServiceState")
Transaction: Any = _class("trisa.data.generic.v1beta1.Transaction")
Pending: Any = _class("trisa.data.generic.v1beta1.Pending")
IdentityPayload: Any = _class("ivms101.IdentityPayload")
Originator: Any = _class("ivms101.Originator")
Beneficiary: Any = _class("ivms101.Beneficiary")
Person: Any = _class("ivms101.Person")
Certificate: Any = _class("trisa.gds.models.v1beta1.Certificate")
LookupRequest: Any = _class("trisa.gds.api.v1beta1.LookupRequest")
LookupReply: Any = _class("trisa.gds.api.v1beta1.LookupReply")
SearchRequest: Any = _class("trisa.gds.api.v1beta1.SearchRequest")
SearchReply: Any = _class("trisa.gds.api.v1beta1.SearchReply")
GdsError: Any = _class("trisa.gds.api.v1beta1.Error")
