"""The few Cosmos SDK protobuf messages a bank transfer needs, encoded and decoded by field number.

Field numbers are those of the Cosmos SDK ``.proto`` files: ``cosmos.tx.v1beta1`` (``TxBody``, ``AuthInfo``,
``SignerInfo``, ``ModeInfo``, ``Fee``, ``SignDoc``, ``TxRaw``), ``cosmos.bank.v1beta1.MsgSend``,
``cosmos.base.v1beta1.Coin``, ``cosmos.crypto.secp256k1.PubKey`` and ``google.protobuf.Any``. Encoding is canonical
proto3 (fields in number order, default values left out), as the SDK's own encoder writes them. The reader refuses
unknown fields, wrong wire types, a non-repeated field given twice and truncated input; it accepts default values
written out explicitly (older cosmjs versions wrote them).
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

__all__ = [
    "MSG_SEND",
    "SECP256K1_PUBKEY",
    "SIGN_MODE_DIRECT",
    "AuthInfo",
    "Coin",
    "MsgSend",
    "ProtoError",
    "SignDoc",
    "TxBody",
    "TxRaw",
]

MSG_SEND = "/cosmos.bank.v1beta1.MsgSend"
SECP256K1_PUBKEY = "/cosmos.crypto.secp256k1.PubKey"
SIGN_MODE_DIRECT = 1
_VARINT, _LEN = 0, 2
_MAX_U64 = 2**64 - 1


class ProtoError(ValueError):
    """Bytes that are not the expected protobuf message."""


# -- writer -------------------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    if not 0 <= value <= _MAX_U64:
        raise ProtoError(f"{value} does not fit a uint64")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes_field(field: int, value: bytes) -> bytes:
    return _key(field, _LEN) + _varint(len(value)) + value if value else b""


def _str_field(field: int, value: str) -> bytes:
    return _bytes_field(field, value.encode())


def _uint_field(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + _varint(value) if value else b""


def _message_field(field: int, value: bytes) -> bytes:
    """An embedded message: written even when empty (presence matters for messages)."""
    return _key(field, _LEN) + _varint(len(value)) + value


# -- reader -------------------------------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ProtoError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift >= 64:
            raise ProtoError("varint longer than 10 bytes")
    if value > _MAX_U64:
        raise ProtoError("varint exceeds uint64")
    return value, pos


def _fields(data: bytes, schema: dict[int, tuple[int, bool]], what: str) -> Iterator[tuple[int, int | bytes]]:
    """Yield ``(field, value)``; ``schema`` maps field -> (wire type, repeated)."""
    seen: set[int] = set()
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if field not in schema:
            raise ProtoError(f"{what}: unknown field {field}")
        expected, repeated = schema[field]
        if wire != expected:
            raise ProtoError(f"{what}: field {field} has wire type {wire}, expected {expected}")
        if field in seen and not repeated:
            raise ProtoError(f"{what}: field {field} appears twice")
        seen.add(field)
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
            yield field, value
        else:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ProtoError(f"{what}: field {field} runs past the end")
            yield field, data[pos : pos + length]
            pos += length


def _text(value: int | bytes, what: str) -> str:
    assert isinstance(value, bytes)
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtoError(f"{what} is not UTF-8") from None


# -- messages -----------------------------------------------------------------------------------------------------


class Coin(msgspec.Struct, frozen=True):
    """``cosmos.base.v1beta1.Coin``: a denom and an integer amount (a decimal string on the wire)."""

    denom: str
    amount: int

    def encode(self) -> bytes:
        """Canonical bytes."""
        return _str_field(1, self.denom) + _str_field(2, str(self.amount))

    @classmethod
    def decode(cls, data: bytes) -> Coin:
        """Parse; the amount must be a plain non-negative decimal integer."""
        denom, amount = "", "0"
        for field, value in _fields(data, {1: (_LEN, False), 2: (_LEN, False)}, "Coin"):
            if field == 1:
                denom = _text(value, "denom")
            else:
                amount = _text(value, "amount")
        if not amount.isdigit() or not amount.isascii():
            raise ProtoError(f"coin amount {amount!r} is not a non-negative integer")
        return cls(denom, int(amount))


class MsgSend(msgspec.Struct, frozen=True):
    """``cosmos.bank.v1beta1.MsgSend``."""

    from_address: str
    to_address: str
    amount: tuple[Coin, ...]

    def encode(self) -> bytes:
        """Canonical bytes."""
        out = _str_field(1, self.from_address) + _str_field(2, self.to_address)
        return out + b"".join(_message_field(3, c.encode()) for c in self.amount)

    @classmethod
    def decode(cls, data: bytes) -> MsgSend:
        """Parse."""
        source = destination = ""
        coins: list[Coin] = []
        schema = {1: (_LEN, False), 2: (_LEN, False), 3: (_LEN, True)}
        for field, value in _fields(data, schema, "MsgSend"):
            if field == 1:
                source = _text(value, "from_address")
            elif field == 2:
                destination = _text(value, "to_address")
            else:
                assert isinstance(value, bytes)
                coins.append(Coin.decode(value))
        return cls(source, destination, tuple(coins))


def _any(type_url: str, value: bytes) -> bytes:
    return _str_field(1, type_url) + _bytes_field(2, value)


def _read_any(data: bytes) -> tuple[str, bytes]:
    type_url, value = "", b""
    for field, item in _fields(data, {1: (_LEN, False), 2: (_LEN, False)}, "Any"):
        if field == 1:
            type_url = _text(item, "type_url")
        else:
            assert isinstance(item, bytes)
            value = item
    return type_url, value


class TxBody(msgspec.Struct, frozen=True):
    """``cosmos.tx.v1beta1.TxBody`` holding ``MsgSend`` messages (the only message this adapter handles)."""

    messages: tuple[MsgSend, ...]
    memo: str = ""
    timeout_height: int = 0

    def encode(self) -> bytes:
        """Canonical bytes."""
        out = b"".join(_message_field(1, _any(MSG_SEND, m.encode())) for m in self.messages)
        return out + _str_field(2, self.memo) + _uint_field(3, self.timeout_height)

    @classmethod
    def decode(cls, data: bytes) -> TxBody:
        """Parse; any message other than ``MsgSend`` and any extension option is refused."""
        messages: list[MsgSend] = []
        memo, timeout = "", 0
        schema = {1: (_LEN, True), 2: (_LEN, False), 3: (_VARINT, False)}
        for field, value in _fields(data, schema, "TxBody"):
            if field == 1:
                assert isinstance(value, bytes)
                type_url, inner = _read_any(value)
                if type_url != MSG_SEND:
                    raise ProtoError(f"message {type_url!r} is not a bank MsgSend")
                messages.append(MsgSend.decode(inner))
            elif field == 2:
                memo = _text(value, "memo")
            else:
                assert isinstance(value, int)
                timeout = value
        return cls(tuple(messages), memo, timeout)


class AuthInfo(msgspec.Struct, frozen=True):
    """``cosmos.tx.v1beta1.AuthInfo`` with one secp256k1 signer in SIGN_MODE_DIRECT and a fee."""

    public_key: bytes  # 33-byte compressed secp256k1
    sequence: int
    fee: tuple[Coin, ...]
    gas_limit: int
    sign_mode: int = SIGN_MODE_DIRECT
    payer: str = ""
    granter: str = ""

    def encode(self) -> bytes:
        """Canonical bytes."""
        pubkey = _message_field(1, _any(SECP256K1_PUBKEY, _bytes_field(1, self.public_key)))
        mode = _message_field(2, _message_field(1, _uint_field(1, self.sign_mode)))
        signer = pubkey + mode + _uint_field(3, self.sequence)
        fee = b"".join(_message_field(1, c.encode()) for c in self.fee) + _uint_field(2, self.gas_limit)
        fee += _str_field(3, self.payer) + _str_field(4, self.granter)
        return _message_field(1, signer) + _message_field(2, fee)

    @classmethod
    def decode(cls, data: bytes) -> AuthInfo:
        """Parse; exactly one signer with a secp256k1 key in single signing mode is accepted."""
        signers: list[bytes] = []
        fee_bytes: bytes | None = None
        for field, value in _fields(data, {1: (_LEN, True), 2: (_LEN, False)}, "AuthInfo"):
            assert isinstance(value, bytes)
            if field == 1:
                signers.append(value)
            else:
                fee_bytes = value
        if len(signers) != 1 or fee_bytes is None:
            raise ProtoError("exactly one signer and a fee are expected")
        public_key, mode, sequence = b"", -1, 0
        schema = {1: (_LEN, False), 2: (_LEN, False), 3: (_VARINT, False)}
        for field, value in _fields(signers[0], schema, "SignerInfo"):
            if field == 1:
                assert isinstance(value, bytes)
                type_url, inner = _read_any(value)
                if type_url != SECP256K1_PUBKEY:
                    raise ProtoError(f"signer key {type_url!r} is not a secp256k1 key")
                for _, key in _fields(inner, {1: (_LEN, False)}, "PubKey"):
                    assert isinstance(key, bytes)
                    public_key = key
            elif field == 2:
                assert isinstance(value, bytes)
                for _, single in _fields(value, {1: (_LEN, False)}, "ModeInfo"):
                    assert isinstance(single, bytes)
                    mode = 0
                    for _, m in _fields(single, {1: (_VARINT, False)}, "ModeInfo.Single"):
                        assert isinstance(m, int)
                        mode = m
            else:
                assert isinstance(value, int)
                sequence = value
        coins: list[Coin] = []
        gas, payer, granter = 0, "", ""
        schema = {1: (_LEN, True), 2: (_VARINT, False), 3: (_LEN, False), 4: (_LEN, False)}
        for field, value in _fields(fee_bytes, schema, "Fee"):
            if field == 1:
                assert isinstance(value, bytes)
                coins.append(Coin.decode(value))
            elif field == 2:
                assert isinstance(value, int)
                gas = value
            elif field == 3:
                payer = _text(value, "payer")
            else:
                granter = _text(value, "granter")
        if len(public_key) != 33 or mode < 0:
            raise ProtoError("the signer needs a 33-byte secp256k1 public key and a single signing mode")
        return cls(public_key, sequence, tuple(coins), gas, mode, payer, granter)


class SignDoc(msgspec.Struct, frozen=True):
    """``cosmos.tx.v1beta1.SignDoc``: what SIGN_MODE_DIRECT signs (SHA-256 of its bytes)."""

    body_bytes: bytes
    auth_info_bytes: bytes
    chain_id: str
    account_number: int

    def encode(self) -> bytes:
        """Canonical bytes."""
        out = _bytes_field(1, self.body_bytes) + _bytes_field(2, self.auth_info_bytes)
        return out + _str_field(3, self.chain_id) + _uint_field(4, self.account_number)

    @classmethod
    def decode(cls, data: bytes) -> SignDoc:
        """Parse."""
        body = auth = b""
        chain_id, account = "", 0
        schema = {1: (_LEN, False), 2: (_LEN, False), 3: (_LEN, False), 4: (_VARINT, False)}
        for field, value in _fields(data, schema, "SignDoc"):
            if field == 1:
                assert isinstance(value, bytes)
                body = value
            elif field == 2:
                assert isinstance(value, bytes)
                auth = value
            elif field == 3:
                chain_id = _text(value, "chain_id")
            else:
                assert isinstance(value, int)
                account = value
        return cls(body, auth, chain_id, account)


class TxRaw(msgspec.Struct, frozen=True):
    """``cosmos.tx.v1beta1.TxRaw``: the broadcast form (body and auth info bytes exactly as signed)."""

    body_bytes: bytes
    auth_info_bytes: bytes
    signatures: tuple[bytes, ...]

    def encode(self) -> bytes:
        """Canonical bytes (each signature written even if empty, as the SDK does)."""
        out = _bytes_field(1, self.body_bytes) + _bytes_field(2, self.auth_info_bytes)
        return out + b"".join(_message_field(3, s) for s in self.signatures)

    @classmethod
    def decode(cls, data: bytes) -> TxRaw:
        """Parse."""
        body = auth = b""
        signatures: list[bytes] = []
        for field, value in _fields(data, {1: (_LEN, False), 2: (_LEN, False), 3: (_LEN, True)}, "TxRaw"):
            assert isinstance(value, bytes)
            if field == 1:
                body = value
            elif field == 2:
                auth = value
            else:
                signatures.append(value)
        return cls(body, auth, tuple(signatures))
