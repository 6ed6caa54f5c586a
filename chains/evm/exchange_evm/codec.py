"""EVM transaction encodings: EIP-1559 (type 2) and legacy EIP-155, unsigned and signed, and ERC-20 calldata.

The signing digest is Keccak-256 of the unsigned encoding: ``0x02 || rlp([chain_id, nonce, max_priority_fee,
max_fee, gas, to, value, data, access_list])`` for type 2 (EIP-1559), ``rlp([nonce, gas_price, gas, to, value,
data, chain_id, 0, 0])`` for legacy transactions (EIP-155). The signed encodings append ``y_parity, r, s``
(type 2) or replace the last three items with ``v = chain_id * 2 + 35 + y_parity, r, s`` (legacy).

An :class:`~exchange_framework.interfaces.UnsignedTransaction` payload from this adapter is
``MAGIC || from (20 bytes) || unsigned encoding``: the paying address travels with the transaction, so ``decode``
can name the source and ``assemble`` can check the signature recovers to it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import rlp  # type: ignore[import-untyped]  # rlp ships no type information (no py.typed)
from rlp.sedes import big_endian_int  # type: ignore[import-untyped]

from exchange_evm.address import keccak256

__all__ = [
    "ERC20_TRANSFER_SELECTOR",
    "MAGIC",
    "SECP256K1_N",
    "TRANSFER_TOPIC",
    "EvmTx",
    "SignedTx",
    "decode_erc20_transfer",
    "encode_erc20_transfer",
    "encode_signed",
    "encode_unsigned",
    "pack_payload",
    "parse_signed",
    "parse_unsigned",
    "unpack_payload",
]

MAGIC = b"evm\x01"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
TYPE_LEGACY = 0
TYPE_EIP1559 = 2
ERC20_TRANSFER_SELECTOR = keccak256(b"transfer(address,uint256)")[:4]
TRANSFER_TOPIC = keccak256(b"Transfer(address,address,uint256)")
_UINT256 = 2**256


class EvmTx(msgspec.Struct, frozen=True):
    """One transaction's fields. ``max_fee`` is the gas price of a legacy transaction; ``to`` is 20 bytes."""

    type: int  # 0 (legacy, EIP-155) or 2 (EIP-1559)
    chain_id: int
    nonce: int
    max_fee: int  # wei per gas: maxFeePerGas (type 2) or gasPrice (legacy)
    max_priority_fee: int  # wei per gas; equal to max_fee for a legacy transaction
    gas: int
    to: bytes
    value: int
    data: bytes = b""

    @property
    def fee_cap(self) -> int:
        """The most this transaction can pay in fees, in wei (``gas * max_fee``)."""
        return self.gas * self.max_fee


class SignedTx(msgspec.Struct, frozen=True):
    """A signed transaction: its fields, the signature (``y_parity`` 0 or 1) and its raw bytes."""

    tx: EvmTx
    y_parity: int
    r: int
    s: int
    raw: bytes

    @property
    def txid(self) -> str:
        """The transaction hash as the node reports it (``0x`` + 64 hex)."""
        return "0x" + keccak256(self.raw).hex()


def _check(tx: EvmTx) -> None:
    if tx.type not in (TYPE_LEGACY, TYPE_EIP1559):
        raise ValueError(f"transaction type {tx.type} is not supported (only 0 legacy EIP-155 and 2 EIP-1559)")
    for field in ("chain_id", "nonce", "max_fee", "max_priority_fee", "gas", "value"):
        value = getattr(tx, field)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _UINT256:
            raise ValueError(f"{field} must be an unsigned 256-bit integer, got {value!r}")
    if tx.chain_id < 1:
        raise ValueError("chain_id must be positive: transactions without EIP-155 replay protection are refused")
    if len(tx.to) != 20:
        raise ValueError("contract creation and malformed destinations are refused: 'to' must be 20 bytes")
    if tx.max_priority_fee > tx.max_fee:
        raise ValueError("max_priority_fee exceeds max_fee")


def _body(tx: EvmTx) -> list[Any]:
    if tx.type == TYPE_EIP1559:
        return [tx.chain_id, tx.nonce, tx.max_priority_fee, tx.max_fee, tx.gas, tx.to, tx.value, tx.data, []]
    return [tx.nonce, tx.max_fee, tx.gas, tx.to, tx.value, tx.data]


def encode_unsigned(tx: EvmTx) -> bytes:
    """Return the bytes whose Keccak-256 is the signing digest of ``tx``."""
    _check(tx)
    if tx.type == TYPE_EIP1559:
        return bytes([TYPE_EIP1559]) + bytes(rlp.encode(_body(tx)))
    return bytes(rlp.encode([*_body(tx), tx.chain_id, 0, 0]))


def encode_signed(tx: EvmTx, y_parity: int, r: int, s: int) -> bytes:
    """Return the raw signed transaction (what ``eth_sendRawTransaction`` takes)."""
    _check(tx)
    if y_parity not in (0, 1) or not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise ValueError("signature values out of range")
    if tx.type == TYPE_EIP1559:
        return bytes([TYPE_EIP1559]) + bytes(rlp.encode([*_body(tx), y_parity, r, s]))
    return bytes(rlp.encode([*_body(tx), tx.chain_id * 2 + 35 + y_parity, r, s]))


def _int(item: object, name: str) -> int:
    if not isinstance(item, bytes):
        raise ValueError(f"{name} is a list where an integer belongs")
    try:
        return int(big_endian_int.deserialize(item))
    except Exception:  # rlp's DeserializationError: leading zero bytes
        raise ValueError(f"{name} is not a canonical integer") from None


def _bytes(item: object, name: str) -> bytes:
    if not isinstance(item, bytes):
        raise ValueError(f"{name} is a list where bytes belong")
    return item


def _decode_list(data: bytes, what: str) -> list[Any]:
    try:
        items = rlp.decode(data, strict=True)
    except Exception as exc:  # rlp raises DecodingError and friends for malformed input
        raise ValueError(f"{what} is not valid RLP: {exc}") from None
    if not isinstance(items, list):
        raise ValueError(f"{what} is not an RLP list")
    return items


def _fields(items: list[Any], typ: int, chain_id: int) -> EvmTx:
    if typ == TYPE_EIP1559:
        cid, nonce, tip, max_fee, gas = (
            _int(items[i], n) for i, n in enumerate(("chain_id", "nonce", "tip", "max_fee", "gas"))
        )
        to, value, data = _bytes(items[5], "to"), _int(items[6], "value"), _bytes(items[7], "data")
        if items[8] != []:
            raise ValueError("access lists are not used by this adapter: refusing a transaction that has one")
        tx = EvmTx(TYPE_EIP1559, cid, nonce, max_fee, tip, gas, to, value, data)
    else:
        nonce, price, gas = (_int(items[i], n) for i, n in enumerate(("nonce", "gas_price", "gas")))
        to, value, data = _bytes(items[3], "to"), _int(items[4], "value"), _bytes(items[5], "data")
        tx = EvmTx(TYPE_LEGACY, chain_id, nonce, price, price, gas, to, value, data)
    _check(tx)
    return tx


def parse_unsigned(data: bytes) -> EvmTx:
    """Parse an unsigned encoding (type 2 or legacy EIP-155); ``ValueError`` for anything else."""
    if not data:
        raise ValueError("empty transaction")
    if data[0] == TYPE_EIP1559:
        items = _decode_list(data[1:], "the EIP-1559 transaction")
        if len(items) != 9:
            raise ValueError(f"an unsigned EIP-1559 transaction has 9 fields, this one {len(items)}")
        return _fields(items, TYPE_EIP1559, 0)
    if data[0] < 0xC0:
        raise ValueError(f"transaction type {data[0]} is not supported (only legacy EIP-155 and EIP-1559)")
    items = _decode_list(data, "the legacy transaction")
    if len(items) != 9:
        raise ValueError("a legacy transaction without its EIP-155 chain id (9 fields) is refused")
    chain_id = _int(items[6], "chain_id")
    if _int(items[7], "r") != 0 or _int(items[8], "s") != 0:
        raise ValueError("an unsigned EIP-155 transaction ends with chain_id, 0, 0")
    return _fields(items, TYPE_LEGACY, chain_id)


def parse_signed(raw: bytes) -> SignedTx:
    """Parse a raw signed transaction (type 2 or legacy EIP-155); ``ValueError`` for anything else."""
    if not raw:
        raise ValueError("empty transaction")
    if raw[0] == TYPE_EIP1559:
        items = _decode_list(raw[1:], "the signed EIP-1559 transaction")
        if len(items) != 12:
            raise ValueError(f"a signed EIP-1559 transaction has 12 fields, this one {len(items)}")
        tx = _fields(items[:9], TYPE_EIP1559, 0)
        y, r, s = (_int(items[9 + i], n) for i, n in enumerate(("y_parity", "r", "s")))
    elif raw[0] >= 0xC0:
        items = _decode_list(raw, "the signed legacy transaction")
        if len(items) != 9:
            raise ValueError(f"a signed legacy transaction has 9 fields, this one {len(items)}")
        v = _int(items[6], "v")
        if v < 37:
            raise ValueError(f"v = {v}: a transaction without EIP-155 replay protection is refused")
        chain_id, y = (v - 35) // 2, (v - 35) % 2
        tx = _fields(items[:6], TYPE_LEGACY, chain_id)
        r, s = _int(items[7], "r"), _int(items[8], "s")
    else:
        raise ValueError(f"transaction type {raw[0]} is not supported (only legacy EIP-155 and EIP-1559)")
    if y not in (0, 1) or not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise ValueError("signature values out of range")
    if encode_signed(tx, y, r, s) != raw:
        raise ValueError("the transaction does not re-encode to the same bytes")
    return SignedTx(tx, y, r, s, bytes(raw))


def pack_payload(source: bytes, tx: EvmTx) -> bytes:
    """Return an UnsignedTransaction payload: ``MAGIC || source || unsigned encoding``."""
    if len(source) != 20:
        raise ValueError("the source address is 20 bytes")
    return MAGIC + source + encode_unsigned(tx)


def unpack_payload(payload: bytes) -> tuple[bytes, bytes, EvmTx]:
    """Return ``(source, unsigned encoding, fields)`` from a payload; ``ValueError`` if it is not one of ours."""
    if not isinstance(payload, bytes) or not payload.startswith(MAGIC) or len(payload) < len(MAGIC) + 21:
        raise ValueError("not an EVM adapter payload (expected MAGIC || from || unsigned transaction)")
    source = payload[len(MAGIC) : len(MAGIC) + 20]
    unsigned = payload[len(MAGIC) + 20 :]
    tx = parse_unsigned(unsigned)
    if encode_unsigned(tx) != unsigned:
        raise ValueError("the unsigned transaction does not re-encode to the same bytes")
    return source, unsigned, tx


def encode_erc20_transfer(to: bytes, amount: int) -> bytes:
    """Return the calldata of ERC-20 ``transfer(to, amount)``."""
    if len(to) != 20 or not 0 < amount < _UINT256:
        raise ValueError("transfer needs a 20-byte address and a positive 256-bit amount")
    return ERC20_TRANSFER_SELECTOR + bytes(12) + to + amount.to_bytes(32, "big")


def decode_erc20_transfer(data: bytes) -> tuple[bytes, int]:
    """Return ``(to, amount)`` from ERC-20 ``transfer`` calldata; ``ValueError`` for any other call."""
    if len(data) != 68 or data[:4] != ERC20_TRANSFER_SELECTOR:
        raise ValueError("the call is not exactly ERC-20 transfer(address,uint256)")
    if any(data[4:16]):
        raise ValueError("the transfer's address argument has non-zero high bytes")
    return data[16:36], int.from_bytes(data[36:68], "big")
