"""TRISA's protobuf messages, described to the ``protobuf`` runtime at import time.

The field names, numbers and types are those of trisacrypto/trisa's ``proto/trisa/api/v1beta1/api.proto``
(``SecureEnvelope``, ``Payload``) and ``proto/trisa/data/generic/v1beta1/transaction.proto`` (``Transaction``,
``Pending``).
Describing them here, in a private descriptor pool, gives byte-exact encoding and decoding by Google's runtime
without a ``protoc`` build step. ``SecureEnvelope.error`` (field 9) is left undescribed: the runtime keeps it as an
unknown field, byte for byte. IVMS101 identity payloads travel as ``google.protobuf.Any`` and are not decoded here.
"""

from __future__ import annotations

from typing import Any

# No stubs needed: the message classes are made at run time, so they are typed Any whatever the stubs say.
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

__all__ = ["IDENTITY_TYPE", "PENDING_TYPE", "TRANSACTION_TYPE", "Payload", "Pending", "SecureEnvelope", "Transaction"]

IDENTITY_TYPE = "type.googleapis.com/ivms101.IdentityPayload"
TRANSACTION_TYPE = "type.googleapis.com/trisa.data.generic.v1beta1.Transaction"
PENDING_TYPE = "type.googleapis.com/trisa.data.generic.v1beta1.Pending"

_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BYTES, _BOOL, _DOUBLE, _INT32, _MESSAGE = (
    _F.TYPE_STRING,
    _F.TYPE_BYTES,
    _F.TYPE_BOOL,
    _F.TYPE_DOUBLE,
    _F.TYPE_INT32,
    _F.TYPE_MESSAGE,
)


def _message(name: str, fields: list[tuple[str, int, int, str]]) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, kind, type_name in fields:
        field = message.field.add(name=field_name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
        if type_name:
            field.type_name = type_name
    return message


def _build() -> tuple[Any, Any, Any, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    api = descriptor_pb2.FileDescriptorProto(
        name="exchange_trisa/api.proto", package="trisa.api.v1beta1", syntax="proto3"
    )
    api.dependency.append("google/protobuf/any.proto")
    api.message_type.append(
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
                ("timestamp", 10, _STRING, ""),
                ("sealed", 11, _BOOL, ""),
                ("public_key_signature", 12, _STRING, ""),
                ("transfer_state", 13, _INT32, ""),  # an enum on the wire: a varint either way
            ],
        )
    )
    api.message_type.append(
        _message(
            "Payload",
            [
                ("identity", 1, _MESSAGE, ".google.protobuf.Any"),
                ("transaction", 2, _MESSAGE, ".google.protobuf.Any"),
                ("sent_at", 3, _STRING, ""),
                ("received_at", 4, _STRING, ""),
            ],
        )
    )
    generic = descriptor_pb2.FileDescriptorProto(
        name="exchange_trisa/transaction.proto", package="trisa.data.generic.v1beta1", syntax="proto3"
    )
    generic.message_type.append(
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
        )
    )
    generic.message_type.append(
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
        )
    )
    pool.Add(api)
    pool.Add(generic)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("trisa.api.v1beta1.SecureEnvelope")),
        get(pool.FindMessageTypeByName("trisa.api.v1beta1.Payload")),
        get(pool.FindMessageTypeByName("trisa.data.generic.v1beta1.Transaction")),
        get(pool.FindMessageTypeByName("trisa.data.generic.v1beta1.Pending")),
    )


SecureEnvelope, Payload, Transaction, Pending = _build()
