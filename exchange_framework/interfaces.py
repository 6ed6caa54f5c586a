"""The small typed interfaces that plugins implement and the ``register_*`` hooks return.

Each registered item has a ``name``: the operator selects an implementation by that name in ``exchange.toml``
(``[backends] journal = "file"``), and two plugins registering the same name is a start-up error. The kernel calls
only the methods declared here; each protocol starts with its core methods and grows with the kernel.

Also here: the values that cross the seam — :class:`Decision` (the answer of a compliance check), the requests
screened at onboarding, deposit and withdrawal, and a custody balance report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
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
    "ChainAdapter",
    "CustodyBalance",
    "CustodySigner",
    "Decision",
    "DecodedTransaction",
    "DepositRequest",
    "Entry",
    "EventSubscriber",
    "JournalBackend",
    "KycProvider",
    "LedgerBackend",
    "LedgerStore",
    "MarketDataPublisher",
    "OnboardingRequest",
    "Outcome",
    "Posting",
    "SanctionsScreener",
    "SigningRequest",
    "TravelRuleProvider",
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


@runtime_checkable
class ChainAdapter(Protocol):
    """Everything the kernel needs from one blockchain network; ``name`` is the chain id, such as "bitcoin"."""

    name: str
    required_confirmations: int

    def new_deposit_address(self, account: AccountId) -> str:
        """Derive a fresh deposit address for ``account`` (deterministically, from public key material only)."""
        ...

    def validate_address(self, address: str) -> bool:
        """Return whether ``address`` is well formed for this chain (checksum included)."""
        ...

    def confirmations(self, txid: str) -> int:
        """Return how many confirmations ``txid`` has, 0 if unconfirmed or unknown."""
        ...

    def broadcast(self, signed_tx: bytes) -> str:
        """Send a signed transaction to the network and return its txid."""
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


class SigningRequest(msgspec.Struct, frozen=True):
    """What the kernel asks a signer to sign, after its policy engine approved the withdrawal."""

    request_id: str
    key_id: str
    chain: str
    payload: bytes  # the exact bytes (or digest) the chain expects signed


@runtime_checkable
class CustodySigner(Protocol):
    """Signs with keys that never leave it (HSM, threshold signers, offline cold storage)."""

    name: str

    def public_key(self, key_id: str) -> bytes:
        """Return the public key of ``key_id``."""
        ...

    def sign(self, request: SigningRequest) -> bytes:
        """Check what it can of ``request`` again (defence in depth), sign it and return the signature.

        Raise rather than return anything if in doubt: the kernel holds the withdrawal.
        """
        ...


class CustodyBalance(msgspec.Struct, frozen=True):
    """How much of an asset a custody backend holds in one wallet, in atomic units, for ledger reconciliation."""

    source: str  # the reporting backend's name
    asset: str
    wallet: str
    amount: int


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

    def send(self, withdrawal: WithdrawalRequest, originator: Mapping[str, str]) -> str:
        """Send the travel rule message for an outgoing transfer and return the provider's reference."""
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
