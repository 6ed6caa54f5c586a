"""The few Solana programs the adapter builds and reads instructions of, encoded to their documented layouts.

System program ``Transfer`` (u32 tag 2, u64 lamports), SPL Token ``Transfer`` (tag 3, u64) and ``TransferChecked``
(tag 12, u64, u8 decimals), Associated Token Account ``CreateIdempotent`` (tag 1), Compute Budget
``SetComputeUnitLimit`` (tag 2, u32) and ``SetComputeUnitPrice`` (tag 3, u64 micro-lamports), and SPL Memo (UTF-8
data). All integers little-endian. Token-2022 is not handled.
"""

from __future__ import annotations

import struct

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

__all__ = [
    "ATA_PROGRAM",
    "COMPUTE_BUDGET_PROGRAM",
    "MEMO_PROGRAM",
    "MEMO_PROGRAMS",
    "SYSTEM_PROGRAM",
    "TOKEN_ACCOUNT_SIZE",
    "TOKEN_PROGRAM",
    "create_ata_idempotent",
    "memo",
    "set_compute_unit_limit",
    "set_compute_unit_price",
    "system_transfer",
    "token_transfer_checked",
]

SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")  # SPL Memo v2
MEMO_PROGRAMS = frozenset({MEMO_PROGRAM, Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")})
TOKEN_ACCOUNT_SIZE = 165  # bytes of an SPL token account (for its rent-exempt minimum)

SYSTEM_TRANSFER = 2
TOKEN_TRANSFER = 3
TOKEN_TRANSFER_CHECKED = 12
ATA_CREATE_IDEMPOTENT = 1
CU_LIMIT = 2
CU_PRICE = 3


def system_transfer(source: Pubkey, destination: Pubkey, lamports: int) -> Instruction:
    """System program ``Transfer`` of ``lamports`` from ``source`` (a signer) to ``destination``."""
    data = struct.pack("<IQ", SYSTEM_TRANSFER, lamports)
    return Instruction(SYSTEM_PROGRAM, data, [AccountMeta(source, True, True), AccountMeta(destination, False, True)])


def token_transfer_checked(
    source: Pubkey, mint: Pubkey, destination: Pubkey, owner: Pubkey, amount: int, decimals: int
) -> Instruction:
    """SPL Token ``TransferChecked`` between token accounts, signed by the source account's ``owner``."""
    data = struct.pack("<BQB", TOKEN_TRANSFER_CHECKED, amount, decimals)
    metas = [
        AccountMeta(source, False, True),
        AccountMeta(mint, False, False),
        AccountMeta(destination, False, True),
        AccountMeta(owner, True, False),
    ]
    return Instruction(TOKEN_PROGRAM, data, metas)


def create_ata_idempotent(payer: Pubkey, ata: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    """Associated Token Account ``CreateIdempotent``: create ``owner``'s account for ``mint`` unless it exists."""
    metas = [
        AccountMeta(payer, True, True),
        AccountMeta(ata, False, True),
        AccountMeta(owner, False, False),
        AccountMeta(mint, False, False),
        AccountMeta(SYSTEM_PROGRAM, False, False),
        AccountMeta(TOKEN_PROGRAM, False, False),
    ]
    return Instruction(ATA_PROGRAM, bytes([ATA_CREATE_IDEMPOTENT]), metas)


def set_compute_unit_limit(units: int) -> Instruction:
    """Compute Budget ``SetComputeUnitLimit``."""
    return Instruction(COMPUTE_BUDGET_PROGRAM, struct.pack("<BI", CU_LIMIT, units), [])


def set_compute_unit_price(micro_lamports: int) -> Instruction:
    """Compute Budget ``SetComputeUnitPrice`` (priority fee per compute unit, in micro-lamports)."""
    return Instruction(COMPUTE_BUDGET_PROGRAM, struct.pack("<BQ", CU_PRICE, micro_lamports), [])


def memo(text: str) -> Instruction:
    """SPL Memo v2 with ``text`` (no signer accounts)."""
    return Instruction(MEMO_PROGRAM, text.encode(), [])
