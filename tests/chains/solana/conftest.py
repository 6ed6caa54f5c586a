"""A LiteSVM chain for the Solana adapter's tests: a funded hot wallet, an SPL mint, a depositor.

Keys are made from fixed strings; per-account addresses come from BIP39's published "abandon ... about" phrase.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import hashlib
from collections.abc import Collection, Iterator

import pytest
from bip_utils import Bip39SeedGenerator
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from exchange_solana import LiteSvmNode, SolanaAdapter, Token
from exchange_solana import programs as p
from exchange_solana.keys import slip10_addresses
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from exchange_framework.interfaces import DepositAddress

_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")


@pytest.fixture(autouse=True, scope="module")
def _clean_floating_point_state_after_litesvm() -> Iterator[None]:
    """LiteSVM's native code leaves the x87 floating-point state dirty when its objects run or are freed (later
    long-double work in the process gives NaN: SQLite cast '-1e30' to NaN, scipy warned at import). After each
    module here, free them and put glibc's default floating-point environment (FE_DFL_ENV) back."""
    yield
    gc.collect()
    _LIBM.fesetenv(ctypes.c_void_p(-1))


MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
PER_ACCOUNT = slip10_addresses(Bip39SeedGenerator(MNEMONIC).Generate(), (1, 2, 3))
HOT_SEED = hashlib.sha256(b"solana hot wallet").digest()
HOT = Keypair.from_seed(HOT_SEED)
OWNER = Keypair.from_seed(hashlib.sha256(b"solana deposit owner").digest())
DEPOSITOR = Keypair.from_seed(hashlib.sha256(b"solana depositor").digest())
MINT = Keypair.from_seed(hashlib.sha256(b"solana dev mint").digest())
OUTSIDE = Keypair.from_seed(hashlib.sha256(b"an outside wallet").digest()).pubkey()
TOKEN = Token("DUSD", str(MINT.pubkey()), 6)
SOL = 10**9
CHAIN_ID = "litesvm-test"


def execute(node: LiteSvmNode, instructions: list[Instruction], *signers: Keypair, skip_preflight: bool = False) -> str:
    """Sign ``instructions`` (first signer pays) with local keys and run them on ``node``."""
    message = MessageV0.try_compile(signers[0].pubkey(), instructions, [], Hash.from_string(node.latest_blockhash()))
    return node.execute(VersionedTransaction(message, list(signers)), skip_preflight=skip_preflight)


def ata(owner: Pubkey) -> Pubkey:
    """The owner's associated token account of the dev mint."""
    return get_associated_token_address(owner, MINT.pubkey())


class SolanaChain:
    """LiteSVM with the dev mint, a funded hot wallet (SOL and DUSD) and a funded depositor."""

    def __init__(self) -> None:
        self.node = LiteSvmNode()
        for who in (HOT, DEPOSITOR, OWNER):
            self.node.airdrop(str(who.pubkey()), 100 * SOL)
        mint = MINT.pubkey()
        rent = self.node.rent_exempt_minimum(82)
        initialize_mint2 = Instruction(
            p.TOKEN_PROGRAM,
            bytes([20, TOKEN.decimals]) + bytes(DEPOSITOR.pubkey()) + b"\x00",
            [AccountMeta(mint, False, True)],
        )
        create = create_account(
            CreateAccountParams(
                from_pubkey=DEPOSITOR.pubkey(), to_pubkey=mint, lamports=rent, space=82, owner=p.TOKEN_PROGRAM
            )
        )
        execute(self.node, [create, initialize_mint2], DEPOSITOR, MINT)
        for owner in (HOT.pubkey(), DEPOSITOR.pubkey(), OWNER.pubkey()):
            execute(self.node, [p.create_ata_idempotent(DEPOSITOR.pubkey(), ata(owner), owner, mint)], DEPOSITOR)
        for owner in (HOT.pubkey(), DEPOSITOR.pubkey()):
            self.mint_to(ata(owner), 10**12)
        self.node.mine(1)

    def mint_to(self, account: Pubkey, amount: int) -> str:
        """SPL ``MintTo`` (tag 7) by the mint authority (the depositor)."""
        data = bytes([7]) + amount.to_bytes(8, "little")
        metas = [
            AccountMeta(MINT.pubkey(), False, True),
            AccountMeta(account, False, True),
            AccountMeta(DEPOSITOR.pubkey(), True, False),
        ]
        return execute(self.node, [Instruction(p.TOKEN_PROGRAM, data, metas)], DEPOSITOR)

    def adapter(self, **overrides: object) -> SolanaAdapter:
        """The adapter under test: memo deposits to OWNER, per-account addresses for accounts 1..3."""
        fields: dict[str, object] = {
            "deposit_owner": str(OWNER.pubkey()),
            "chain_id": CHAIN_ID,
            "confirmations": 3,
            "account_addresses": PER_ACCOUNT,
            "tokens": [TOKEN],
        }
        fields.update(overrides)
        node = fields.pop("node", self.node)
        return SolanaAdapter(node, **fields)  # type: ignore[arg-type]

    def deposit(self, to: DepositAddress, asset: str, amount: int, *, checked: bool = True) -> str:
        """Pay ``to`` from the depositor, with ``to.memo`` in a memo instruction when it has one."""
        dest = Pubkey.from_string(to.address)
        if asset == "SOL":
            instructions = [p.system_transfer(DEPOSITOR.pubkey(), dest, amount)]
        else:
            source, mint = ata(DEPOSITOR.pubkey()), MINT.pubkey()
            instructions = [p.create_ata_idempotent(DEPOSITOR.pubkey(), ata(dest), dest, mint)]
            if checked:
                instructions.append(p.token_transfer_checked(source, mint, ata(dest), DEPOSITOR.pubkey(), amount, 6))
            else:  # the older unchecked Transfer (tag 3): source, destination, owner
                metas = [
                    AccountMeta(source, False, True),
                    AccountMeta(ata(dest), False, True),
                    AccountMeta(DEPOSITOR.pubkey(), True, False),
                ]
                instructions.append(Instruction(p.TOKEN_PROGRAM, bytes([3]) + amount.to_bytes(8, "little"), metas))
        if to.memo:
            instructions.append(p.memo(to.memo))
        return execute(self.node, instructions, DEPOSITOR)

    def sign(self, key_id: str, payload: bytes) -> bytes:
        """The custody signer's part, with an independent Ed25519 (``cryptography``): 64 bytes over the message."""
        assert key_id == "sol-hot"
        return Ed25519PrivateKey.from_private_bytes(HOT_SEED).sign(payload)

    def reorg(self, depth: int, *, drop: Collection[str]) -> None:
        """LiteSVM has one history: nothing to reorganise."""
        pytest.skip("LiteSVM has no forks: a Solana reorg cannot be produced in process")


@pytest.fixture
def chain() -> SolanaChain:
    """A fresh LiteSVM chain per test (set-up takes milliseconds)."""
    return SolanaChain()
