"""The small typed interfaces that plugins implement and the ``register_*`` hooks return.

Each registered item has a ``name``: the operator selects an implementation by that name in ``exchange.toml``
(``[backends] journal = "file"``), and two plugins registering the same name is a start-up error. The kernel calls
only the methods declared here; each protocol starts with its core methods and grows with the kernel.

Also here: the values that cross the seam — :class:`Decision` (the answer of a compliance check), the requests
screened at onboarding, deposit and withdrawal, and a custody balance report.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import msgspec

from exchange_framework.ledger.postings import Entry, Posting
from exchange_framework.types import AccountId

if TYPE_CHECKING:
    from exchange_framework.config import ExchangeConfig
    from exchange_framework.engine.events import Event
    from exchange_framework.engine.market import AssetSpec
    from exchange_framework.sequencer.journal import Journal

__all__ = [
    "AdminPage",
    "BlockHeader",
    "ChainAdapter",
    "CustodyBalance",
    "CustodySigner",
    "Decision",
    "DecodedTransaction",
    "DepositAddress",
    "DepositRequest",
    "Entry",
    "EventSubscriber",
    "JournalBackend",
    "KeyExistsError",
    "KeyScheme",
    "KycProvider",
    "LedgerBackend",
    "LedgerStore",
    "MarketDataPublisher",
    "OnboardingRequest",
    "Outcome",
    "Posting",
    "SanctionsScreener",
    "ScannedBlock",
    "SignatureInvalidError",
    "SigningError",
    "SigningRefusedError",
    "SigningRequest",
    "TransactionStatus",
    "Transfer",
    "TravelRuleProvider",
    "TxState",
    "UnknownKeyError",
    "UnsignedTransaction",
    "WithdrawalRequest",
]


# -- compliance decisions -----------------------------------------------------------------------------------------


class Outcome(IntEnum):
    """What a compliance check decided, ordered from most to least permissive."""

    ALLOW = 0
    HOLD = 1  # stop and put it in front of a person: the fail-closed answer
    REJECT = 2


class Decision(msgspec.Struct, frozen=True):
    """The answer of a compliance check: an outcome, the reasons for it, and who decided."""

    outcome: Outcome
    reasons: tuple[str, ...] = ()
    provider: str = ""

    @classmethod
    def allow(cls, *reasons: str, provider: str = "") -> Decision:
        """Let the action proceed."""
        return cls(Outcome.ALLOW, reasons, provider)

    @classmethod
    def hold(cls, *reasons: str, provider: str = "") -> Decision:
        """Stop the action for manual review."""
        return cls(Outcome.HOLD, reasons, provider)

    @classmethod
    def reject(cls, *reasons: str, provider: str = "") -> Decision:
        """Refuse the action."""
        return cls(Outcome.REJECT, reasons, provider)

    @classmethod
    def combine(cls, decisions: Iterable[Decision | None], *, required: bool = True) -> Decision:
        """Merge several answers: the strictest outcome wins, carrying every reason at that outcome.

        ``None`` means "no opinion". If nobody had an opinion and a decision is ``required``, the result is a hold:
        the kernel fails closed rather than let an unscreened action through.
        """
        answers = [d for d in decisions if d is not None]
        if not answers:
            if required:
                return cls.hold("no screening provider gave a decision")
            return cls.allow()
        strictest = max(d.outcome for d in answers)
        reasons: list[str] = []
        providers: list[str] = []
        for d in answers:
            if d.outcome == strictest:
                reasons.extend(r for r in d.reasons if r not in reasons)
                if d.provider and d.provider not in providers:
                    providers.append(d.provider)
        return cls(strictest, tuple(reasons), ",".join(providers))


class OnboardingRequest(msgspec.Struct, frozen=True):
    """A person or company asking to open an account. ``details`` holds what the sign-up form collected."""

    account: AccountId
    country: str  # ISO 3166-1 alpha-2
    details: Mapping[str, str] = {}


class DepositRequest(msgspec.Struct, frozen=True):
    """A deposit seen on chain, before it is credited. ``amount`` is in the asset's atomic units."""

    account: AccountId
    asset: str
    chain: str
    amount: int
    address: str
    txid: str
    source_addresses: tuple[str, ...] = ()


class WithdrawalRequest(msgspec.Struct, frozen=True):
    """A withdrawal the customer asked for, already held on the ledger. ``amount`` is in atomic units."""

    withdrawal_id: int
    account: AccountId
    asset: str
    chain: str
    amount: int
    address: str
    beneficiary_name: str = ""  # who receives it, as the customer declared (travel rule); "" if not declared
    beneficiary_vasp: str = ""  # the VASP the customer says holds the address; "" if not declared or self-hosted


# -- sequencing and storage ---------------------------------------------------------------------------------------


@runtime_checkable
class JournalBackend(Protocol):
    """Opens the command journal (``[backends] journal = "<name>"``)."""

    name: str

    def open(self, config: ExchangeConfig) -> Journal:
        """Open (creating if needed) the journal described by ``config`` and return it ready to append."""
        ...


@runtime_checkable
class LedgerStore(Protocol):
    """The double-entry ledger's storage: balanced entries applied in sequence, idempotently.

    Implemented by :class:`exchange_framework.ledger.store.SqlLedgerStore` (SQLite and PostgreSQL).
    """

    name: str

    async def create_schema(self) -> None:
        """Create or migrate the store's schema to the newest version."""
        ...

    async def ensure_assets(self, assets: Mapping[str, AssetSpec]) -> None:
        """Register assets; an asset's decimals may never change."""
        ...

    async def last_seq(self, consumer: str = "settlement") -> int:
        """Return the high-water mark of ``consumer``: every entry up to it is applied."""
        ...

    async def apply(self, entries: Sequence[Entry], consumer: str = "settlement") -> int:
        """Apply entries above the high-water mark in one transaction (mark included); return the new mark.

        Raise, writing nothing, if an entry does not balance, names an unknown asset or would overdraw a customer.
        """
        ...

    async def balances(self, *, account: str | None = None, asset: str | None = None) -> dict[tuple[str, str], int]:
        """Return balances by (account code, asset)."""
        ...

    async def close(self) -> None:
        """Release the store's connections."""
        ...


@runtime_checkable
class LedgerBackend(Protocol):
    """Opens the ledger store (``[backends] ledger = "<name>"``, ``[ledger] url``)."""

    name: str

    def open(self, config: ExchangeConfig) -> LedgerStore:
        """Return a store for ``config``'s ledger database (not yet connected: its methods connect)."""
        ...


# -- events out of the engine -------------------------------------------------------------------------------------


@runtime_checkable
class EventSubscriber(Protocol):
    """Consumes engine events in sequence order, idempotently by ``event.seq``."""

    name: str

    def last_seq(self) -> int:
        """Return the highest sequence number already handled durably; delivery resumes after it."""
        ...

    def handle(self, event: Event) -> None:
        """Apply one event. Seeing an event with a ``seq`` already handled must change nothing."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


@runtime_checkable
class MarketDataPublisher(Protocol):
    """Publishes public market data (trades, book changes) derived from engine events to some transport."""

    name: str

    def publish(self, event: Event) -> None:
        """Publish what ``event`` changes in public market data; events that change nothing public are ignored."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


# -- chains and custody -------------------------------------------------------------------------------------------


class DepositAddress(msgspec.Struct, frozen=True):
    """Where an account deposits on one chain: an address and, on chains with shared addresses, a memo or tag.

    ``memo`` is empty when the chain needs none; when it is set, a deposit without it cannot be attributed.
    """

    address: str
    memo: str = ""


class BlockHeader(msgspec.Struct, frozen=True):
    """One block of a chain as the deposit tracker follows it: reorgs are found through ``parent_hash`` links."""

    height: int
    hash: str
    parent_hash: str


class Transfer(msgspec.Struct, frozen=True):
    """A payment to a watched address, as found in a block. ``amount`` is in ``asset``'s atomic units.

    ``(txid, index)`` identifies it on its chain: ``index`` is the output index (UTXO chains), the log index
    (EVM token transfers) or the instruction/message index; a plain native transfer uses 0.
    """

    txid: str
    index: int
    asset: str
    amount: int
    address: str
    memo: str = ""
    source_addresses: tuple[str, ...] = ()


class ScannedBlock(msgspec.Struct, frozen=True):
    """A block's header and the transfers in it to the addresses the scan asked about, in chain order."""

    header: BlockHeader
    transfers: tuple[Transfer, ...] = ()


class TxState(IntEnum):
    """Where a broadcast transaction stands on the node's best chain."""

    UNKNOWN = 0  # never seen by the node
    PENDING = 1  # in the mempool, not in a block
    CONFIRMED = 2  # in a block of the best chain (see ``confirmations``)
    DROPPED = 3  # left the mempool or the chain for good (replaced, expired, reorged out and invalid)


class TransactionStatus(msgspec.Struct, frozen=True):
    """The state of a transaction; ``confirmations`` is 1 in the tip block, 0 unless CONFIRMED."""

    txid: str
    state: TxState
    confirmations: int = 0
    block_height: int | None = None
    block_hash: str = ""


@runtime_checkable
class ChainAdapter(Protocol):
    """Everything the kernel needs from one blockchain network; ``name`` is the chain id, such as "bitcoin".

    An adapter never holds a private key: deposit addresses come from an extended public key, and withdrawals are
    built unsigned, decoded for the custody policy engine, signed by a custody signer and assembled here. Methods
    that talk to the node raise on any node failure (down, timeout, an answer that does not parse); callers retry,
    so every method is safe to call again. ``docs/chains.md`` walks through writing one, and
    :mod:`exchange_framework.chains.conformance` is the kit it must pass.
    """

    name: str
    chain_id: str  # the network as transactions encode it; DecodedTransaction.chain_id carries the same value
    native_asset: str  # the exchange asset symbol of the chain's coin, in which fees are paid
    required_confirmations: int  # depth at which a deposit is final enough to credit

    def deposit_address(self, account: AccountId) -> DepositAddress:
        """Return ``account``'s deposit address, derived from public key material only.

        Deterministic (the same account always gets the same answer, on every restart and machine) and distinct
        per account. UTXO and account chains derive a BIP32 non-hardened child of the configured xpub (see
        :mod:`exchange_framework.chains.hd`); memo chains return a shared address with the account's memo.
        """
        ...

    def validate_address(self, address: str) -> bool:
        """Return whether ``address`` is well formed for this chain and network (checksum included)."""
        ...

    def tip_height(self) -> int:
        """Return the height of the node's best block."""
        ...

    def block_header(self, height: int) -> BlockHeader | None:
        """Return the header of the best chain's block at ``height``, or ``None`` above the tip."""
        ...

    def scan(self, from_height: int, addresses: Collection[str], *, max_blocks: int = 100) -> list[ScannedBlock]:
        """Return consecutive best-chain blocks from ``from_height`` (at most ``max_blocks``, fewer at the tip).

        Each block carries every transfer (native coin and the tokens the adapter knows) that pays one of
        ``addresses``, with the amount in atomic units and the payer's addresses. Blocks with no such transfer
        are still returned: the caller follows the chain through their parent hashes.
        """
        ...

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
        """Build an unsigned transaction paying ``amount`` atomic units of ``asset`` to ``destination``.

        It is paid from the address of ``public_key`` (the custody key ``key_id``); the adapter estimates the fee
        and picks the nonce or the inputs, and never hands out the same nonce or input twice. Raise ``ValueError``
        for a bad destination, unknown asset or non-positive amount, and an error naming the shortfall when the
        wallet cannot pay.
        """
        ...

    def decode(self, unsigned: UnsignedTransaction) -> DecodedTransaction:
        """Decode what ``unsigned`` would do from its payload bytes alone (never from what was asked for).

        The custody policy engine checks this answer before any signer sees the transaction. Raise
        ``ValueError`` if the payload does not parse or its digests do not match it.
        """
        ...

    def assemble(self, unsigned: UnsignedTransaction, signatures: Sequence[bytes]) -> bytes:
        """Combine ``unsigned`` with one signature per digest (in the chain's documented format) into a signed tx.

        Raise ``ValueError`` if a signature does not verify against the digest and the paying key.
        """
        ...

    def broadcast(self, signed_tx: bytes) -> str:
        """Send a signed transaction to the network and return its txid.

        Idempotent: broadcasting the same bytes again returns the same txid and sends nothing new. Raise
        ``ValueError`` if the node refuses the transaction (bad signature, wrong chain id, spent nonce).
        """
        ...

    def transaction_status(self, txid: str) -> TransactionStatus:
        """Return where ``txid`` stands: unknown, pending, confirmed (with confirmations) or dropped."""
        ...


class DecodedTransaction(msgspec.Struct, frozen=True):
    """What an unsigned transaction would do, decoded by its chain adapter for the custody policy engine.

    The policy engine checks these fields (never the withdrawal request that asked for the transaction) against
    the whitelist, chain id, asset and limits before any signer sees the transaction. Amounts are atomic units.
    """

    chain: str  # the adapter's name, such as "ethereum"
    chain_id: str  # the network as the transaction encodes it (EIP-155 id, genesis hash, chain-id string)
    asset: str  # exchange asset symbol moved, such as "ETH" or "USDC"
    source: str  # the address paying
    destination: str  # the address credited
    amount: int  # how much of ``asset`` the destination receives
    fee: int  # the most the transaction can pay in fees, in ``fee_asset`` atomic units
    fee_asset: str
    memo: str = ""


class UnsignedTransaction(msgspec.Struct, frozen=True):
    """A transaction built by a chain adapter, waiting for policy approval and signatures.

    ``payload`` is the adapter's own serialisation (enough to decode and to assemble the signed transaction);
    ``digests`` are the exact 32-byte messages the custody signer signs, one per input or signer; ``key_id``
    names the custody key that must sign them.
    """

    chain: str
    payload: bytes
    digests: tuple[bytes, ...]
    key_id: str


class KeyScheme(StrEnum):
    """A signature scheme a custody key signs with, and the byte formats that go with it.

    - ``secp256k1``: ECDSA over secp256k1 (Bitcoin, EVM, Cosmos). The payload is a 32-byte digest, the public key is
      33 bytes (SEC1 compressed) and a signature is 65 bytes ``r || s || v``: ``r`` and ``s`` big-endian, ``s`` in
      the lower half of the group order (low-S), ``v`` the recovery id (0 or 1; a chain adapter adds its own offset,
      27 or EIP-155, where its encoding needs one).
    - ``ed25519``: PureEdDSA (RFC 8032; Solana, Stellar). The payload is the message itself (1 to 65,536 bytes), the
      public key 32 bytes and a signature 64 bytes.
    """

    SECP256K1 = "secp256k1"
    ED25519 = "ed25519"


class SigningRequest(msgspec.Struct, frozen=True):
    """What the kernel asks a signer to sign, after its policy engine approved the withdrawal.

    ``scheme``, when given, is the scheme the caller expects ``key_id`` to have; a signer refuses a key of another
    scheme. Leave it out only when the caller cannot know (the signer still checks the payload against its key).
    """

    request_id: str
    key_id: str
    chain: str
    payload: bytes  # the exact bytes (or digest) the chain expects signed
    scheme: KeyScheme | None = None


class SigningError(Exception):
    """A custody signer did not sign. The kernel holds the withdrawal (fail closed); nothing was signed."""


class UnknownKeyError(SigningError):
    """The signer holds no key of that id."""


class KeyExistsError(SigningError):
    """A key of that id exists already: keys are never replaced."""


class SigningRefusedError(SigningError):
    """The request failed a signer's own checks (payload size, key scheme, key attributes)."""


class SignatureInvalidError(SigningError):
    """The signer produced signatures that did not verify, as many times as it was allowed to try."""


@runtime_checkable
class CustodySigner(Protocol):
    """Signs with keys that never leave it (HSM, software keystore, threshold signers, offline cold storage).

    Every method raises :class:`SigningError` (or a subclass) rather than return anything doubtful. Byte formats of
    payloads, public keys and signatures are those of :class:`KeyScheme`. ``exchange_framework.custody.conformance``
    checks an implementation against this contract.
    """

    name: str
    schemes: frozenset[KeyScheme]  # the schemes this signer can create keys for and sign with

    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        """Generate a new key inside the signer's boundary and return its public key.

        Raise :class:`KeyExistsError` if ``key_id`` is taken, :class:`SigningRefusedError` for an unsupported scheme.
        """
        ...

    def key_scheme(self, key_id: str) -> KeyScheme:
        """Return the scheme of ``key_id``; raise :class:`UnknownKeyError` if there is no such key."""
        ...

    def public_key(self, key_id: str) -> bytes:
        """Return the public key of ``key_id``; raise :class:`UnknownKeyError` if there is no such key."""
        ...

    def sign(self, request: SigningRequest) -> bytes:
        """Check what it can of ``request`` again (defence in depth), sign it and return the signature.

        Every signature is verified against the key's public key before it is returned. Raise rather than return
        anything if in doubt: the kernel holds the withdrawal.
        """
        ...


class CustodyBalance(msgspec.Struct, frozen=True):
    """How much of an asset a custody backend holds in one wallet, in atomic units, for ledger reconciliation.

    ``account`` names the ledger custody account the wallet belongs to (``omnibus:<tier>:<chain>``), so
    reconciliation compares it account by account; empty compares it only in the asset's total.
    """

    source: str  # the reporting backend's name
    asset: str
    wallet: str
    amount: int
    account: str = ""


# -- compliance providers -----------------------------------------------------------------------------------------


@runtime_checkable
class KycProvider(Protocol):
    """Verifies who a customer is (document checks, liveness, company registries)."""

    name: str

    def start(self, request: OnboardingRequest) -> str:
        """Begin verifying an applicant and return the provider's case reference."""
        ...

    def status(self, reference: str) -> Decision:
        """Return the current verdict on a case: hold while it is still in progress."""
        ...


@runtime_checkable
class SanctionsScreener(Protocol):
    """Screens names and addresses against sanctions lists and risk intelligence."""

    name: str

    def screen_party(self, name: str, country: str) -> Decision:
        """Screen a person or company by name and country."""
        ...

    def screen_address(self, chain: str, address: str) -> Decision:
        """Screen a blockchain address (exposure to sanctioned or illicit entities)."""
        ...


@runtime_checkable
class TravelRuleProvider(Protocol):
    """Exchanges originator and beneficiary information with the counterparty VASP (FATF recommendation 16)."""

    name: str

    def required(self, withdrawal: WithdrawalRequest) -> bool:
        """Return whether the transfer needs a travel rule message (its value at or above the threshold).

        Answer ``True`` when in doubt (no price, unknown jurisdiction): the kernel then waits for the counterparty.
        """
        ...

    def send(self, withdrawal: WithdrawalRequest, originator: Mapping[str, str]) -> str:
        """Send the travel rule message for an outgoing transfer and return the provider's reference.

        Called again for the same withdrawal after a crash or an error, so it must be idempotent by
        ``withdrawal.withdrawal_id``: never a second, different message. Raise when the counterparty cannot be
        reached; the kernel keeps the withdrawal held and calls again.
        """
        ...

    def status(self, reference: str) -> Decision:
        """Return whether the counterparty accepted the transfer: hold while it has not answered."""
        ...


# -- portal and admin ---------------------------------------------------------------------------------------------


class AdminPage(msgspec.Struct, frozen=True):
    """An extra page in the admin console's navigation, served by a route the same plugin registers."""

    name: str
    title: str
    path: str
