"""Sweeping: moving credited coins from customers' deposit addresses into the hot wallet, and onto the ledger.

A sweep goes through stored stages (:class:`~exchange_framework.wallet.custody.SweepStage`)::

    built -> signed -> broadcast (n of N confirmations) -> completed (recorded on the ledger)
    built | broadcast -> failed (could not be signed or assembled; dropped by the network)

One round (:meth:`DepositSweeper.process_once`) first moves every open sweep on, then looks for deposit addresses
worth sweeping. What an address may give is its on-chain balance less the deposits there that the ledger does not
owe (confirming, held, rejected: :data:`~exchange_framework.wallet.custody.UNOWED_STAGES`), so only confirmed,
credited coins move. A native-coin sweep sends that less the network fee; a token sweep sends it all and pays the
fee from the address's native coins. An address with an open sweep is left alone until it ends.

Checks before anything is signed: the chain adapter decodes the built transaction again and it must pay from the
account's deposit address to the hot wallet's own address (recorded by the running wallet), on the adapter's chain
id, the asked asset and amount, with a fee no higher than ``max_fee_factor`` times the estimate. Coins only move
between the exchange's own addresses, so no operator approval is asked for: sweeps do not go to the custody policy
engine, whose rules are written for payments from configured custody wallets (it refuses any other source).

Every step is stored before its effect, broadcasting the same bytes is idempotent, and the ledger move's reference
(``sweep:<chain>:<id>``) is accepted once, so a crash anywhere neither loses nor doubles a sweep. At the chain's
confirmation depth the sweep is recorded with ``MoveCustody(omnibus:deposit:<chain> -> omnibus:hot:<chain>, fee)``
(a token's fee as a second, fee-only move in the native asset, reference ``sweep:<chain>:<id>:fee``).

Limits: chains whose adapter lacks ``balance``, ``transfer_fee`` and ``deposit_key_path`` are not swept; a token
at an address without native coin for the fee waits (no gas top-up); ``min_amounts`` (per asset, atomic units)
keeps dust where it is (by default a native sweep must move at least its own fee).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec

from exchange_framework.engine.commands import Command, MoveCustody, custody_account
from exchange_framework.engine.events import Event, FundsRejected
from exchange_framework.funding.deposits import deposit_custody
from exchange_framework.funding.store import DepositStore
from exchange_framework.interfaces import (
    ChainAdapter,
    CustodySigner,
    KeyScheme,
    SigningRequest,
    TxState,
    UnsignedTransaction,
)
from exchange_framework.types import RejectReason
from exchange_framework.wallet.custody import CustodyStore, SweepRow, SweepStage, assets_of, read_balances, unowed
from exchange_framework.wallet.deposit_keys import deposit_key_id

__all__ = ["DepositSweeper", "SubmitAsync"]

_log = logging.getLogger(__name__)

SubmitAsync = Callable[[Command], Awaitable[Sequence[Event]]]
"""Sequence one engine command and return its events (``lambda c: node.submit(c)`` then ``.events``)."""


def _release(adapter: ChainAdapter, unsigned: UnsignedTransaction) -> None:
    """Give back the nonce (or inputs) a built transaction holds that will never be broadcast, if the adapter can."""
    release = getattr(adapter, "release", None)
    if release is not None:
        try:
            release(unsigned)
        except Exception:  # the hold expires on its own; nothing else depends on it
            _log.exception("releasing an unsent sweep's nonce on %s failed", unsigned.chain)


def _sweepable(adapter: ChainAdapter) -> bool:
    return all(hasattr(adapter, m) for m in ("balance", "transfer_fee", "deposit_key_path"))


class DepositSweeper:
    """Sweeps deposit addresses into the hot wallet (see the module docstring).

    ``signer`` signs for deposit keys (:class:`~exchange_framework.wallet.deposit_keys.DepositKeys`);
    ``assets`` are the exchange's assets (others are never swept or recorded).
    """

    def __init__(
        self,
        *,
        adapters: Mapping[str, ChainAdapter],
        deposit_store: DepositStore,
        custody_store: CustodyStore,
        signer: CustodySigner,
        submit: SubmitAsync,
        assets: Sequence[str],
        min_amounts: Mapping[str, int] | None = None,
        max_fee_factor: int = 2,
        scan_seconds: float = 0.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.adapters = dict(adapters)
        self.deposit_store = deposit_store
        self.custody_store = custody_store
        self.signer = signer
        self.submit = submit
        self.assets = frozenset(assets)
        self.min_amounts = dict(min_amounts or {})
        self.max_fee_factor = max_fee_factor
        self.scan_seconds = scan_seconds
        """Least time between two looks for new deposits to sweep (each reads every deposit address's balance);
        open sweeps move on every round, and a sweep completing triggers a look at once."""
        self.clock = clock
        self.destinations: dict[str, str] = {}
        """The current hot wallet address per chain, set by the running wallet from its hot key; without one, a
        chain's only recorded hot address (a chain with several and none set is not swept)."""
        self._lock = asyncio.Lock()
        self._last_scan = -float("inf")

    def destination(self, chain: str) -> str | None:
        """Where sweeps on ``chain`` go: :attr:`destinations`, else the one hot address recorded, else None."""
        if chain in self.destinations:
            return self.destinations[chain]
        recorded = self.custody_store.addresses(chain, "hot")
        return recorded[0] if len(recorded) == 1 else None

    def chains(self) -> list[str]:
        """The chains this sweeper can sweep (adapter support, a deposit key root, a recorded hot address)."""
        keyed = set(getattr(self.signer, "chains", lambda: list(self.adapters))())
        return sorted(
            name
            for name, adapter in self.adapters.items()
            if _sweepable(adapter)
            and name in keyed
            and deposit_custody(adapter) != custody_account("hot", name)  # deposits that land in the hot wallet
            and self.destination(name) is not None
        )

    # -- one round
    async def process_once(self) -> list[SweepRow]:
        """Move open sweeps on, then start new ones; return the sweeps started in this round."""
        async with self._lock:
            completed = False
            for row in self.custody_store.sweeps(stages=SweepStage.OPEN, limit=10_000):
                try:
                    await self._advance(row)
                except Exception as exc:  # a node or signer fault: stay in this stage, show the error, retry
                    row.error = f"{type(exc).__name__}: {exc}"
                    self.custody_store.save_sweep(row, self.clock())
                completed |= row.stage == SweepStage.COMPLETED
            started: list[SweepRow] = []
            now = time.monotonic()
            if not completed and now - self._last_scan < self.scan_seconds:
                return started
            self._last_scan = now
            for chain in self.chains():
                try:
                    started += await asyncio.to_thread(self._start_sweeps, chain)
                except Exception:  # the node is down: try again next round
                    _log.exception("looking for deposits to sweep on %s failed; retrying", chain)
            for row in started:
                try:
                    await self._advance(row)
                except Exception as exc:
                    row.error = f"{type(exc).__name__}: {exc}"
                    self.custody_store.save_sweep(row, self.clock())
            return started

    # -- finding and building
    def _start_sweeps(self, chain: str) -> list[SweepRow]:
        adapter = self.adapters[chain]
        hot = self.destination(chain)
        if hot is None:
            return []
        own = {hot, *self.custody_store.addresses(chain, "hot")}
        busy = {r.address for r in self.custody_store.sweeps(stages=SweepStage.OPEN, limit=10_000) if r.chain == chain}
        accounts: dict[str, int] = {}
        for (address, _memo), account in self.deposit_store.watched(chain).items():
            accounts[address] = min(account, accounts.get(address, account))  # memo chains share one address
        moved = sorted(a for a in assets_of(adapter) if a in self.assets)
        candidates = [a for a in sorted(accounts) if a not in busy and a not in own]
        # Balances first, then the chain's tip: every block they include is at or below it. The deposit tracker
        # must have scanned that far, so every deposit in those balances is in the store before it is read:
        # coins the tracker has not seen yet are never taken for credited ones.
        balances = {
            (a, asset): amount
            for asset in moved
            for a, amount in zip(candidates, read_balances(adapter, candidates, asset), strict=True)
        }
        tip = adapter.tip_height()
        scanned = self.deposit_store.tip(chain)
        if scanned is None or scanned.height < tip:
            return []
        not_owed = unowed(self.deposit_store, chain)
        free = {key: amount - not_owed.get(key, 0) for key, amount in balances.items()}
        started = []
        for address in candidates:
            row = self._build_one(adapter, chain, address, accounts[address], hot, moved, free)
            if row is not None:
                started.append(row)
        return started

    def _build_one(
        self,
        adapter: ChainAdapter,
        chain: str,
        address: str,
        account: int,
        hot: str,
        moved: Sequence[str],
        free_of: Mapping[tuple[str, str], int],
    ) -> SweepRow | None:
        """Build, check and store one sweep of ``address`` (tokens first, then the native coin), or None.

        ``free_of`` is what each (address, asset) may give: its balance less the deposits not on the ledger.
        """
        native = adapter.native_asset
        native_free = free_of.get((address, native), 0)
        for asset in sorted(moved, key=lambda a: a == native):  # tokens first: the native coin pays their fees
            free = free_of[(address, asset)]
            fee = int(adapter.transfer_fee(asset))  # type: ignore[attr-defined]
            if asset == native:
                amount = free - fee
                if amount <= 0 or amount < self.min_amounts.get(asset, fee):
                    continue
            else:
                amount = free
                if amount <= 0 or amount < self.min_amounts.get(asset, 1) or native_free < fee:
                    continue
            return self._build(adapter, chain, address, account, hot, asset, amount, fee)
        return None

    def _build(
        self, adapter: ChainAdapter, chain: str, address: str, account: int, hot: str, asset: str, amount: int, fee: int
    ) -> SweepRow | None:
        key_id = deposit_key_id(chain, account)
        public_key = self.signer.public_key(key_id)
        unsigned = adapter.build_withdrawal(
            key_id=key_id, public_key=public_key, destination=hot, asset=asset, amount=amount
        )
        decoded = adapter.decode(unsigned)
        problems = [
            f"{name}: expected {want!r}, the transaction has {got!r}"
            for name, want, got in (
                ("source", address, decoded.source),
                ("destination", hot, decoded.destination),
                ("asset", asset, decoded.asset),
                ("amount", amount, decoded.amount),
                ("chain id", adapter.chain_id, decoded.chain_id),
                ("fee asset", adapter.native_asset, decoded.fee_asset),
            )
            if want != got
        ]
        if decoded.fee > fee * self.max_fee_factor:
            problems.append(f"fee {decoded.fee} is above {self.max_fee_factor} times the estimate {fee}")
        if problems:  # never signed: say why in the log and try again next round (the chain may have moved)
            _log.error("sweep of %s on %s refused before signing: %s", address, chain, "; ".join(problems))
            _release(adapter, unsigned)
            return None
        return self.custody_store.insert_sweep(
            chain=chain,
            account=account,
            address=address,
            asset=asset,
            amount=amount,
            fee=decoded.fee,
            fee_asset=decoded.fee_asset,
            destination=hot,
            unsigned=msgspec.msgpack.encode(unsigned),
            now_ns=self.clock(),
        )

    # -- moving a sweep on
    async def _advance(self, row: SweepRow) -> None:
        adapter = self.adapters[row.chain]
        if row.stage == SweepStage.BUILT:
            await self._sign(row, adapter)
        if row.stage == SweepStage.SIGNED:
            assert row.signed is not None
            row.txid = await asyncio.to_thread(adapter.broadcast, row.signed)
            row.stage = SweepStage.BROADCAST
            row.error = ""
            self.custody_store.save_sweep(row, self.clock())
        if row.stage == SweepStage.BROADCAST:
            await self._track(row, adapter)

    async def _sign(self, row: SweepRow, adapter: ChainAdapter) -> None:
        assert row.unsigned is not None
        unsigned = msgspec.msgpack.decode(row.unsigned, type=UnsignedTransaction)
        scheme = KeyScheme(getattr(adapter, "signature_scheme", KeyScheme.SECP256K1))
        requests = [
            SigningRequest(f"sweep-{row.chain}-{row.id}/{i}", unsigned.key_id, unsigned.chain, digest, scheme)
            for i, digest in enumerate(unsigned.digests)
        ]
        try:
            signatures = [await asyncio.to_thread(self.signer.sign, r) for r in requests]
            signed = await asyncio.to_thread(adapter.assemble, unsigned, signatures)
        except ValueError as exc:  # the signature does not verify: never retried blindly
            row.stage = SweepStage.FAILED
            row.reasons.append(f"could not be signed: {exc}")
            self.custody_store.save_sweep(row, self.clock())
            await asyncio.to_thread(_release, adapter, unsigned)
            return
        row.signed = signed
        row.stage = SweepStage.SIGNED
        self.custody_store.save_sweep(row, self.clock())

    async def _track(self, row: SweepRow, adapter: ChainAdapter) -> None:
        status = await asyncio.to_thread(adapter.transaction_status, row.txid)
        if status.state is TxState.CONFIRMED:
            row.confirmations = status.confirmations
            if status.confirmations >= adapter.required_confirmations:
                paid = getattr(adapter, "paid_fee", None)
                if paid is not None:
                    row.fee = int(await asyncio.to_thread(paid, row.txid))
                await self._record(row, adapter)
                row.stage = SweepStage.COMPLETED
            row.error = ""
        elif status.state in (TxState.PENDING, TxState.UNKNOWN):
            row.confirmations = 0
            if status.state is TxState.UNKNOWN and row.signed is not None:  # lost by the node: the same bytes again
                await asyncio.to_thread(adapter.broadcast, row.signed)
        else:
            row.stage = SweepStage.FAILED
            row.reasons.append("the network dropped the sweep's transaction; the coins are still at the address")
        self.custody_store.save_sweep(row, self.clock())

    async def _record(self, row: SweepRow, adapter: ChainAdapter) -> None:
        """Put the confirmed sweep on the ledger's custody accounts (idempotent by reference)."""
        source = deposit_custody(adapter)
        destination = custody_account("hot", row.chain)
        same_asset_fee = row.fee if row.fee_asset == row.asset else 0
        moves = [MoveCustody(row.asset, source, destination, row.amount, same_asset_fee, row.reference)]
        if row.fee and row.fee_asset != row.asset and row.fee_asset in self.assets:
            moves.append(MoveCustody(row.fee_asset, source, "", 0, row.fee, f"{row.reference}:fee"))
        for move in moves:
            events = await self.submit(move)
            rejected = next((e for e in events if isinstance(e, FundsRejected)), None)
            if rejected is not None and rejected.reason is not RejectReason.DUPLICATE_REFERENCE:
                raise RuntimeError(f"the ledger refused custody move {move.reference}: {rejected.reason.name}")
