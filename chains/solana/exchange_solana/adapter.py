"""The Solana chain adapter: SOL and SPL tokens, memo or per-account deposit addresses, slots as heights.

Withdrawals are one-signer transactions (v0 or legacy) paid by the custody key's address: a Compute Budget unit
limit (and a price, if configured), then a System ``Transfer`` or an Associated Token Account ``CreateIdempotent``
plus an SPL ``TransferChecked``, then an optional Memo. The payload and the one "digest" are the versioned message
bytes, which Ed25519 signs directly (64-byte signature); the first signature is the txid.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Collection, Mapping, Sequence

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from solders.hash import Hash
from solders.message import Message, MessageV0, from_bytes_versioned, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from exchange_framework.interfaces import (
    BlockHeader,
    DecodedTransaction,
    DepositAddress,
    KeyScheme,
    ScannedBlock,
    TransactionStatus,
    Transfer,
    TxState,
    UnsignedTransaction,
)
from exchange_framework.types import AccountId
from exchange_solana import programs
from exchange_solana.node import NodeBlock, NodeFault, NodeTransaction, SolanaNode
from exchange_solana.settings import is_address

__all__ = ["InsufficientFunds", "SolanaAdapter", "Token"]

MAX_U64 = 2**64 - 1
_MAX_SKIPPED = 10_000  # slots walked back from a skipped slot to the block before it


class Token(msgspec.Struct, frozen=True):
    """An SPL token the adapter knows: exchange symbol, mint address, decimals."""

    symbol: str
    mint: str
    decimals: int


class InsufficientFunds(ValueError):
    """The hot wallet cannot pay a withdrawal; the message names the shortfall."""


class _Parsed(msgspec.Struct, frozen=True):
    message: Message | MessageV0
    decoded: DecodedTransaction
    payer: Pubkey
    blockhash: str


class SolanaAdapter:
    """A :class:`~exchange_framework.interfaces.ChainAdapter` for one Solana cluster over a :class:`SolanaNode`."""

    def __init__(
        self,
        node: SolanaNode,
        *,
        deposit_owner: str,
        chain_id: str,
        name: str = "solana",
        native_asset: str = "SOL",
        confirmations: int = 32,
        account_addresses: Mapping[int, str] | None = None,
        tokens: Sequence[Token] = (),
        legacy: bool = False,
        compute_unit_price: int = 0,
        lamports_per_signature: int = 5000,
    ) -> None:
        if not is_address(deposit_owner):
            raise ValueError(f"deposit_owner {deposit_owner!r} is not a base58 Solana address")
        self.node = node
        self.name = name
        self.signature_scheme = KeyScheme.ED25519  # the wallet signs Solana messages with an Ed25519 hot key
        self.chain_id = chain_id
        self.native_asset = native_asset
        self.required_confirmations = confirmations
        self.deposit_owner = deposit_owner
        self.account_addresses = dict(account_addresses or {})
        self.tokens = {t.symbol: t for t in tokens}
        self._by_mint = {Pubkey.from_string(t.mint): t for t in tokens}
        self.legacy = legacy
        self.compute_unit_price = compute_unit_price
        self.lamports_per_signature = lamports_per_signature
        self._counter = secrets.randbelow(50_000)  # varies the unit limit so equal withdrawals never collide
        self._sent: dict[str, str] = {}  # txid -> recent blockhash, for DROPPED after expiry (this process only)

    # -- addresses -----------------------------------------------------------------------------------------------

    def deposit_address(self, account: AccountId) -> DepositAddress:
        """The account's own configured address, else the shared ``deposit_owner`` with the account number as memo."""
        own = self.account_addresses.get(int(account))
        if own is not None:
            return DepositAddress(own)
        return DepositAddress(self.deposit_owner, str(int(account)))

    def validate_address(self, address: str) -> bool:
        """Whether ``address`` is a canonical base58 32-byte address (Solana addresses have no checksum)."""
        return is_address(address)

    # -- watching ------------------------------------------------------------------------------------------------

    def tip_height(self) -> int:
        """The node's current slot at its commitment."""
        return self.node.slot()

    def block_header(self, height: int) -> BlockHeader | None:
        """The header of slot ``height``; a skipped slot repeats the hash of the block before it (see docs)."""
        if height < 0 or height > self.node.slot():
            return None
        block = self.node.block(height)
        if block is not None:
            return BlockHeader(height, block.blockhash, block.previous_blockhash)
        previous = self._block_before(height)
        return BlockHeader(height, previous.blockhash, previous.blockhash)

    def _block_before(self, slot: int) -> NodeBlock:
        for earlier in range(slot - 1, max(-1, slot - 1 - _MAX_SKIPPED), -1):
            block = self.node.block(earlier)
            if block is not None:
                return block
        raise NodeFault(f"no block in the {_MAX_SKIPPED} slots before {slot}")

    def scan(self, from_height: int, addresses: Collection[str], *, max_blocks: int = 100) -> list[ScannedBlock]:
        """Slots from ``from_height``: SOL system transfers and SPL transfers to ``addresses`` (or their ATAs)."""
        tip = self.node.slot()
        native = set(addresses)
        token_accounts: dict[str, tuple[str, Token]] = {}
        for address in native:
            if not is_address(address):
                continue
            for token in self.tokens.values():
                ata = get_associated_token_address(Pubkey.from_string(address), Pubkey.from_string(token.mint))
                token_accounts[str(ata)] = (address, token)
        out: list[ScannedBlock] = []
        for slot in range(from_height, min(tip, from_height + max_blocks - 1) + 1):
            block = self.node.block(slot)
            if block is None:
                previous = self._block_before(slot)
                out.append(ScannedBlock(BlockHeader(slot, previous.blockhash, previous.blockhash)))
                continue
            transfers: list[Transfer] = []
            for tx in block.transactions:
                if tx.ok:
                    transfers.extend(self._transfers(tx, native, token_accounts))
            header = BlockHeader(slot, block.blockhash, block.previous_blockhash)
            out.append(ScannedBlock(header, tuple(transfers)))
        return out

    def _transfers(
        self, tx: NodeTransaction, native: set[str], token_accounts: Mapping[str, tuple[str, Token]]
    ) -> list[Transfer]:
        try:
            message = from_bytes_versioned(tx.message)
        except ValueError as exc:
            raise NodeFault(f"transaction {tx.signature} has a message that does not parse: {exc}") from exc
        keys = tx.account_keys
        memo = ""
        found: list[tuple[int, str, int, str, str]] = []  # index, asset, amount, address, source
        for index, ix in enumerate(message.instructions):
            if ix.program_id_index >= len(keys) or any(i >= len(keys) for i in bytes(ix.accounts)):
                raise NodeFault(f"transaction {tx.signature} names an account its message does not list")
            program = Pubkey.from_string(keys[ix.program_id_index])
            data = bytes(ix.data)
            accounts = [keys[i] for i in bytes(ix.accounts)]
            if program in programs.MEMO_PROGRAMS and not memo:
                memo = data.decode("utf-8", "replace").strip()
            elif program == programs.SYSTEM_PROGRAM and len(data) == 12 and len(accounts) >= 2:
                tag, lamports = struct.unpack("<IQ", data)
                if tag == programs.SYSTEM_TRANSFER and accounts[1] in native:
                    found.append((index, self.native_asset, lamports, accounts[1], accounts[0]))
            elif program == programs.TOKEN_PROGRAM and data:
                hit = _token_transfer(data, accounts, token_accounts)
                if hit is not None:
                    found.append((index, *hit))
        return [
            Transfer(tx.signature, index, asset, amount, address, memo, (source,))
            for index, asset, amount, address, source in found
            if amount > 0
        ]

    # -- withdrawals ---------------------------------------------------------------------------------------------

    def build_withdrawal(
        self,
        *,
        key_id: str,
        public_key: bytes,
        destination: str,
        asset: str,
        amount: int,
        memo: str = "",
    ) -> UnsignedTransaction:
        """A transfer paid and signed by ``public_key``'s address, with the node's latest blockhash."""
        if len(public_key) != 32:
            raise ValueError("a Solana custody key is an Ed25519 public key of 32 bytes")
        if not self.validate_address(destination):
            raise ValueError(f"{destination!r} is not a base58 Solana address")
        if asset != self.native_asset and asset not in self.tokens:
            raise ValueError(f"unknown asset {asset!r} on {self.name}: known are {[self.native_asset, *self.tokens]}")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_U64:
            raise ValueError(f"amount must be a positive integer of atomic units below 2**64, got {amount!r}")
        if len(memo.encode()) > 500:
            raise ValueError("memo longer than 500 bytes")
        payer = Pubkey.from_bytes(public_key)
        dest = Pubkey.from_string(destination)
        if dest == payer:
            raise ValueError("the destination is the hot wallet itself")
        self._counter = (self._counter + 1) % 50_000
        instructions = [programs.set_compute_unit_limit(100_000 + self._counter)]
        if self.compute_unit_price:
            instructions.append(programs.set_compute_unit_price(self.compute_unit_price))
        fee = self._fee(100_000 + self._counter)
        if asset == self.native_asset:
            minimum = self.node.rent_exempt_minimum(0)
            if amount < minimum and self.node.balance(destination) == 0:
                raise ValueError(
                    f"{destination} is a new account: send it at least {minimum} lamports (rent exemption)"
                )
            instructions.append(programs.system_transfer(payer, dest, amount))
            need = amount + fee + minimum
        else:
            token = self.tokens[asset]
            mint = Pubkey.from_string(token.mint)
            if not dest.is_on_curve():
                raise ValueError(
                    f"{destination} is not a wallet address (off the Ed25519 curve): send tokens to a wallet"
                )
            source_ata = get_associated_token_address(payer, mint)
            dest_ata = get_associated_token_address(dest, mint)
            instructions.append(programs.create_ata_idempotent(payer, dest_ata, dest, mint))
            instructions.append(
                programs.token_transfer_checked(source_ata, mint, dest_ata, payer, amount, token.decimals)
            )
            fee += self.node.rent_exempt_minimum(programs.TOKEN_ACCOUNT_SIZE)
            held = self.node.token_balance(str(source_ata))
            if held < amount:
                raise InsufficientFunds(f"{payer} holds {held} {asset}, {amount - held} short of {amount}")
            need = fee
        if memo:
            instructions.append(programs.memo(memo))
        lamports = self.node.balance(str(payer))
        if lamports < need:
            raise InsufficientFunds(
                f"{payer} holds {lamports} lamports, {need - lamports} short of the {need} this withdrawal needs"
            )
        blockhash = Hash.from_string(self.node.latest_blockhash())
        message: Message | MessageV0
        if self.legacy:
            message = Message.new_with_blockhash(instructions, payer, blockhash)
        else:
            message = MessageV0.try_compile(payer, instructions, [], blockhash)
        payload = to_bytes_versioned(message)
        return UnsignedTransaction(self.name, payload, (payload,), key_id)

    def _fee(self, unit_limit: int, signatures: int = 1) -> int:
        priority = -(-self.compute_unit_price * unit_limit // 1_000_000)
        return signatures * self.lamports_per_signature + priority

    def decode(self, unsigned: UnsignedTransaction) -> DecodedTransaction:
        """What the message does, from its bytes; refuses other shapes and an expired or foreign blockhash."""
        parsed = self._parse(unsigned)
        if not self.node.is_blockhash_valid(parsed.blockhash):
            raise ValueError(
                f"the transaction's blockhash {parsed.blockhash} is expired or not of this cluster: build it again"
            )
        return parsed.decoded

    def _parse(self, unsigned: UnsignedTransaction) -> _Parsed:
        if unsigned.chain != self.name:
            raise ValueError(f"transaction is for chain {unsigned.chain!r}, not {self.name!r}")
        try:
            message = from_bytes_versioned(unsigned.payload)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"payload is not a Solana message: {exc}") from None
        if not isinstance(message, Message | MessageV0):
            raise ValueError("only legacy and v0 messages are supported")
        if to_bytes_versioned(message) != unsigned.payload:
            raise ValueError("payload is not a canonical Solana message")
        if tuple(unsigned.digests) != (unsigned.payload,):
            raise ValueError("the digest to sign must be the message bytes themselves")
        if isinstance(message, MessageV0) and message.address_table_lookups:
            raise ValueError("address lookup tables are not used in withdrawals")
        if message.header.num_required_signatures != 1:
            raise ValueError("a withdrawal has exactly one signer, the fee payer")
        keys = list(message.account_keys)
        payer = keys[0]
        decoded = self._decode_instructions(message, keys, payer)
        return _Parsed(message, decoded, payer, str(message.recent_blockhash))

    def _decode_instructions(
        self, message: Message | MessageV0, keys: list[Pubkey], payer: Pubkey
    ) -> DecodedTransaction:
        unit_limit: int | None = None
        unit_price = 0
        memo: str | None = None
        transfer: tuple[str, Pubkey, int] | None = None  # asset, destination, amount
        created: tuple[Pubkey, Pubkey, Pubkey] | None = None  # ata, owner, mint
        rent = 0
        for ix in message.instructions:
            if ix.program_id_index >= len(keys) or any(i >= len(keys) for i in bytes(ix.accounts)):
                raise ValueError("an instruction names an account the message does not list")
            program = keys[ix.program_id_index]
            data = bytes(ix.data)
            accounts = [keys[i] for i in bytes(ix.accounts)]
            if transfer is not None and program != programs.MEMO_PROGRAM and program not in programs.MEMO_PROGRAMS:
                raise ValueError(f"unexpected instruction of {program} after the transfer")
            if program == programs.COMPUTE_BUDGET_PROGRAM:
                if len(data) == 5 and data[0] == programs.CU_LIMIT and unit_limit is None:
                    unit_limit = struct.unpack("<I", data[1:])[0]
                elif len(data) == 9 and data[0] == programs.CU_PRICE and not unit_price:
                    unit_price = struct.unpack("<Q", data[1:])[0]
                else:
                    raise ValueError("unexpected compute budget instruction")
            elif program in programs.MEMO_PROGRAMS:
                if memo is not None or accounts:
                    raise ValueError("one memo without signers is allowed")
                try:
                    memo = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError("memo is not UTF-8") from None
            elif program == programs.SYSTEM_PROGRAM:
                if (
                    len(data) != 12
                    or struct.unpack("<I", data[:4])[0] != programs.SYSTEM_TRANSFER
                    or len(accounts) != 2
                ):
                    raise ValueError("unexpected system program instruction")
                if accounts[0] != payer or created is not None:
                    raise ValueError("the SOL transfer must be paid by the fee payer")
                transfer = (self.native_asset, accounts[1], struct.unpack("<Q", data[4:])[0])
            elif program == programs.ATA_PROGRAM:
                if data != bytes([1]) or len(accounts) != 6 or created is not None:
                    raise ValueError("unexpected associated token account instruction")
                if accounts[0] != payer or accounts[4:] != [programs.SYSTEM_PROGRAM, programs.TOKEN_PROGRAM]:
                    raise ValueError("unexpected associated token account instruction accounts")
                ata, owner, mint = accounts[1], accounts[2], accounts[3]
                if get_associated_token_address(owner, mint) != ata:
                    raise ValueError("the created token account is not the owner's associated account")
                created = (ata, owner, mint)
                rent = self.node_rent(programs.TOKEN_ACCOUNT_SIZE)
            elif program == programs.TOKEN_PROGRAM:
                if created is None or len(data) != 10 or data[0] != programs.TOKEN_TRANSFER_CHECKED:
                    raise ValueError("a token withdrawal is CreateIdempotent then TransferChecked")
                amount, decimals = struct.unpack("<QB", data[1:])
                source, mint, dest_ata, authority = accounts
                token = self._by_mint.get(mint)
                if token is None or decimals != token.decimals:
                    raise ValueError(f"mint {mint} is not a known token (or its decimals differ)")
                if authority != payer or source != get_associated_token_address(payer, mint):
                    raise ValueError("the token transfer must be from the fee payer's associated account")
                if (dest_ata, mint) != (created[0], created[2]):
                    raise ValueError("the token transfer does not credit the account the transaction creates")
                transfer = (token.symbol, created[1], amount)
            else:
                raise ValueError(f"unexpected instruction of program {program}")
        if transfer is None:
            raise ValueError("the message holds no transfer")
        fee = message.header.num_required_signatures * self.lamports_per_signature
        fee += -(-unit_price * (unit_limit if unit_limit is not None else 200_000) // 1_000_000) + rent
        asset, destination, amount = transfer
        if amount <= 0:
            raise ValueError("the transfer moves nothing")
        return DecodedTransaction(
            chain=self.name,
            chain_id=self.chain_id,
            asset=asset,
            source=str(payer),
            destination=str(destination),
            amount=amount,
            fee=fee,
            fee_asset=self.native_asset,
            memo=memo or "",
        )

    def node_rent(self, size: int) -> int:
        """The rent-exempt minimum of an account of ``size`` bytes (asked of the node)."""
        return self.node.rent_exempt_minimum(size)

    def assemble(self, unsigned: UnsignedTransaction, signatures: Sequence[bytes]) -> bytes:
        """The serialised transaction with the fee payer's 64-byte Ed25519 signature over the message bytes."""
        parsed = self._parse(unsigned)
        if len(signatures) != 1 or len(signatures[0]) != 64:
            raise ValueError("a Solana withdrawal takes exactly one 64-byte Ed25519 signature")
        try:
            Ed25519PublicKey.from_public_bytes(bytes(parsed.payer)).verify(bytes(signatures[0]), unsigned.payload)
        except InvalidSignature:
            raise ValueError(f"the signature does not verify against the fee payer {parsed.payer}") from None
        tx = VersionedTransaction.populate(parsed.message, [Signature.from_bytes(bytes(signatures[0]))])
        return bytes(tx)

    def broadcast(self, signed_tx: bytes) -> str:
        """Send once: a signature the node already knows is not sent again. The txid is the first signature."""
        try:
            tx = VersionedTransaction.from_bytes(signed_tx)
        except ValueError as exc:
            raise ValueError(f"not a serialised Solana transaction: {exc}") from None
        if not all(tx.verify_with_results()):
            raise ValueError("a signature of the transaction does not verify")
        txid = str(tx.signatures[0])
        self._sent.setdefault(txid, str(tx.message.recent_blockhash))
        if self.node.signature_status(txid) is not None:
            return txid
        sent = self.node.send_transaction(signed_tx)
        if sent != txid:
            raise NodeFault(f"the node answered signature {sent} for transaction {txid}")
        return txid

    def transaction_status(self, txid: str) -> TransactionStatus:
        """From the node's signature status; a failed transaction (fee charged, nothing moved) is DROPPED."""
        try:
            Signature.from_string(txid)
        except ValueError:
            return TransactionStatus(txid, TxState.UNKNOWN)
        status = self.node.signature_status(txid)
        if status is None:
            blockhash = self._sent.get(txid)
            if blockhash is None:
                return TransactionStatus(txid, TxState.UNKNOWN)
            if self.node.is_blockhash_valid(blockhash):
                return TransactionStatus(txid, TxState.PENDING)
            return TransactionStatus(txid, TxState.DROPPED)
        if not status.ok:
            return TransactionStatus(txid, TxState.DROPPED, block_height=status.slot)
        tip = self.node.slot()
        if status.slot is None or status.slot > tip:
            return TransactionStatus(txid, TxState.PENDING)
        header = self.block_header(status.slot)
        return TransactionStatus(
            txid, TxState.CONFIRMED, tip - status.slot + 1, status.slot, header.hash if header else ""
        )


def _token_transfer(
    data: bytes, accounts: Sequence[str], token_accounts: Mapping[str, tuple[str, Token]]
) -> tuple[str, int, str, str] | None:
    """An SPL ``Transfer``/``TransferChecked`` crediting a watched token account: (asset, amount, owner, source)."""
    if data[0] == programs.TOKEN_TRANSFER and len(data) == 9 and len(accounts) >= 3:
        destination, authority = accounts[1], accounts[2]
        amount = struct.unpack("<Q", data[1:])[0]
        mint: str | None = None
    elif data[0] == programs.TOKEN_TRANSFER_CHECKED and len(data) == 10 and len(accounts) >= 4:
        destination, authority, mint = accounts[2], accounts[3], accounts[1]
        amount = struct.unpack("<Q", data[1:9])[0]
        if destination in token_accounts and data[9] != token_accounts[destination][1].decimals:
            return None  # the program refuses wrong decimals; such a transaction could not have succeeded
    else:
        return None
    hit = token_accounts.get(destination)
    if hit is None or (mint is not None and mint != hit[1].mint):
        return None
    return hit[1].symbol, amount, hit[0], authority
