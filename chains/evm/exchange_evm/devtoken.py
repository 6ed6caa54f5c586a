"""A minimal ERC-20 and a coin forwarder for development nodes, hand-assembled here (no compiler, no third-party code).

It implements what an exchange's deposit and withdrawal paths touch: ``transfer(address,uint256)`` (reverts on
insufficient balance, emits the standard ``Transfer(address indexed, address indexed, uint256)`` event, returns
``true``) and ``balanceOf(address)``. Any other call reverts. Balances live at storage slot = the holder's address,
so a development node mints with ``anvil_setStorageAt(token, holder, amount)`` (:func:`balance_slot`).

Install it with ``anvil_setCode(address, RUNTIME)``: the runtime code needs no constructor.

:data:`FORWARDER` pays the coin it receives on to the address in its first 32 calldata bytes (an internal payment,
as a smart-contract wallet makes), reverting if that call fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from exchange_evm.codec import TRANSFER_TOPIC

__all__ = ["FORWARDER", "RUNTIME", "assemble", "balance_slot"]

_OPCODES = {
    "STOP": 0x00, "ADD": 0x01, "SUB": 0x03, "LT": 0x10, "EQ": 0x14, "ISZERO": 0x15, "AND": 0x16, "SHR": 0x1C,
    "CALLER": 0x33, "CALLVALUE": 0x34, "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36, "MSTORE": 0x52, "SLOAD": 0x54,
    "SSTORE": 0x55, "JUMPI": 0x57, "GAS": 0x5A, "JUMPDEST": 0x5B, "DUP1": 0x80, "DUP2": 0x81, "DUP3": 0x82,
    "SWAP1": 0x90, "LOG3": 0xA3, "CALL": 0xF1, "RETURN": 0xF3, "REVERT": 0xFD,
}  # fmt: skip

Item = str | int | bytes  # an opcode name, ":label" (a JUMPDEST here), "@label" (PUSH2 its offset), or a PUSH value


def assemble(program: Sequence[Item]) -> bytes:
    """Assemble opcodes, labels and pushes (``int`` → shortest PUSH, ``bytes`` → PUSH of that width)."""

    def size(item: Item) -> int:
        if isinstance(item, bytes):
            return 1 + len(item)
        if isinstance(item, int):
            return 2 + max(0, (item.bit_length() - 1) // 8)
        return 3 if item.startswith("@") else 1

    labels: dict[str, int] = {}
    offset = 0
    for item in program:
        if isinstance(item, str) and item.startswith(":"):
            labels[item[1:]] = offset
        offset += size(item)
    out = bytearray()
    for item in program:
        if isinstance(item, bytes):
            if not 1 <= len(item) <= 32:
                raise ValueError("a push is 1 to 32 bytes")
            out += bytes([0x5F + len(item)]) + item
        elif isinstance(item, int):
            width = size(item) - 1
            out += bytes([0x5F + width]) + item.to_bytes(width, "big")
        elif item.startswith(":"):
            out.append(_OPCODES["JUMPDEST"])
        elif item.startswith("@"):
            out += bytes([0x61]) + labels[item[1:]].to_bytes(2, "big")
        else:
            out.append(_OPCODES[item])
    return bytes(out)


_PROGRAM: list[Item] = [
    # selector = calldata[0:4]
    0, "CALLDATALOAD", 0xE0, "SHR",
    "DUP1", bytes.fromhex("a9059cbb"), "EQ", "@transfer", "JUMPI",
    "DUP1", bytes.fromhex("70a08231"), "EQ", "@balanceOf", "JUMPI",
    ":fail", 0, "DUP1", "REVERT",
    # balanceOf(owner): return sload(owner)
    ":balanceOf", 4, "CALLDATALOAD", "SLOAD", 0, "MSTORE", 32, 0, "RETURN",
    # transfer(to, amount)
    ":transfer",
    0x44, "CALLDATASIZE", "LT", "@fail", "JUMPI",            # short calldata
    4, "CALLDATALOAD", b"\xff" * 20, "AND",                  # to
    0x24, "CALLDATALOAD",                                    # to amount
    "CALLER", "SLOAD",                                       # to amount balance
    "DUP2", "DUP2", "LT", "@fail", "JUMPI",                  # balance < amount: revert
    "DUP2", "SWAP1", "SUB", "CALLER", "SSTORE",              # balance[caller] -= amount        -> to amount
    "DUP2", "SLOAD", "DUP2", "ADD", "DUP3", "SSTORE",        # balance[to] += amount            -> to amount
    0, "MSTORE",                                             # memory[0:32] = amount            -> to
    "CALLER", TRANSFER_TOPIC, 32, 0, "LOG3",                 # Transfer(caller, to, amount)
    1, 0, "MSTORE", 32, 0, "RETURN",                         # return true
]  # fmt: skip

RUNTIME: bytes = assemble(_PROGRAM)

FORWARDER: bytes = assemble([
    0, 0, 0, 0, "CALLVALUE", 0, "CALLDATALOAD", "GAS", "CALL",  # call(gas, to, value, no input, no output)
    "ISZERO", "@fail", "JUMPI", "STOP",
    ":fail", 0, "DUP1", "REVERT",
])  # fmt: skip


def balance_slot(holder: str) -> str:
    """Return the storage slot (32-byte hex) holding ``holder``'s balance in :data:`RUNTIME`."""
    return "0x" + bytes(12).hex() + holder[2:].lower()
