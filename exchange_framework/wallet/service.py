"""The running wallet: deposit trackers per chain, and the withdrawal lifecycle from request to final debit.

A withdrawal goes through visible stages (:class:`~exchange_framework.wallet.types.WithdrawalStage`)::

    requested -> (screening, held for an operator) -> (travel_rule) -> awaiting_approval (k of n) -> approved
              -> signed -> broadcast (n of N confirmations) -> completed
    any stage before approved -> rejected | cancelled        (the held funds are released)

1. The request holds the amount in the engine (``HoldFunds``, reference ``wd:<id>``) before anything else.
2. The ``screen_withdrawal`` hooks decide (fail closed: no answer or an error is a hold for an operator).
   Then, if a travel rule provider says the transfer needs it (value at or above its threshold), the withdrawal
   waits in ``travel_rule`` (stored before the message is sent) until the beneficiary's VASP accepts; a rejection
   releases the funds; no answer, an error or a hold keeps it there (an operator may clear or deny it).
3. The chain adapter builds the unsigned transaction and decodes it again; the custody policy engine checks the
   decoded transaction and decides allow, block, or k-of-n approvals. Without a configured policy engine every
   withdrawal needs one operator approval: nothing is ever signed unreviewed.
4. Only an approved request's digests reach the custody signer; the signature is verified when the adapter
   assembles the transaction, which is stored before it is broadcast.
5. Broadcast is idempotent (same bytes, same txid); at the chain's confirmation depth the held funds are debited
   (``DebitHeldFunds`` out of the hot wallet's custody account ``omnibus:hot:<chain>``), the network fee the
   transaction paid is recorded (``MoveCustody``, reference ``wd:<id>:fee``) and the withdrawal is completed.

Deposit addresses are swept into the hot wallet by :class:`~exchange_framework.wallet.sweeper.DepositSweeper`
(:attr:`Wallet.sweeper`, run before each withdrawal round) when the exchange has their keys.

Every step is stored before its effect, and every effect is idempotent (engine references, adapter broadcast), so
the processor can crash and restart anywhere: nothing is sent twice, no funds are lost or released twice. A node
fault leaves the withdrawal where it is, with the error shown, and the next round retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

import msgspec
import pluggy

from exchange_framework.compliance.limits import LimitError, TierPolicy, check_withdrawal, recent_withdrawals
from exchange_framework.compliance.onboarding import AccountFrozenError, OnboardingGate, frozen_accounts
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.policy import PolicyDecision, PolicyEngine, RequestStatus
from exchange_framework.engine.commands import (
    Command,
    DebitHeldFunds,
    HoldFunds,
    MoveCustody,
    ReleaseFunds,
    custody_account,
)
from exchange_framework.engine.events import Event, FundsRejected
from exchange_framework.funding.deposits import DepositTracker, hook_screener
from exchange_framework.funding.store import Deposit, DepositStore
from exchange_framework.identity import IdentityStore
from exchange_framework.interfaces import (
    ChainAdapter,
    CustodySigner,
    Decision,
    KeyScheme,
    Outcome,
    SigningRequest,
    TravelRuleProvider,
    TxState,
    UnsignedTransaction,
    WithdrawalRequest,
)
from exchange_framework.money import MoneyError, format_atomic, parse_decimal, to_atomic
from exchange_framework.node import ExchangeNode
from exchange_framework.plugins import run_screening
from exchange_framework.types import RejectReason
from exchange_framework.wallet.custody import CustodyStore
from exchange_framework.wallet.store import OPEN_STAGES, WalletStore, WhitelistRow, WithdrawalRow
from exchange_framework.wallet.sweeper import DepositSweeper
from exchange_framework.wallet.types import (
    AddressBookEntry,
    DepositView,
    WalletError,
    WithdrawalStage,
    WithdrawalView,
)

__all__ = ["Wallet"]

_log = logging.getLogger(__name__)


class Wallet:
    """The :class:`~exchange_framework.wallet.types.WalletService` of a running exchange.

    ``signer`` holds the hot wallet key ``hot_key_id`` (created on start if missing). ``policy`` is the custody
    policy engine (:class:`~exchange_framework.custody.policy.PolicyEngine`) or ``None``, in which case every
    withdrawal waits for ``fallback_approvals`` operator approvals.
    """

    def __init__(
        self,
        *,
        config: ExchangeConfig,
        pm: pluggy.PluginManager,
        node: ExchangeNode,
        identity: IdentityStore,
        adapters: dict[str, ChainAdapter],
        deposit_store: DepositStore,
        store: WalletStore,
        signer: CustodySigner | None,
        hot_key_id: str = "hot-1",
        policy: PolicyEngine | None = None,
        policy_factory: Callable[[], PolicyEngine] | None = None,
        fallback_approvals: int = 1,
        cooling_off_ns: int = 24 * 3600 * 10**9,
        poll_interval: float = 1.0,
        clock: Callable[[], int] = time.time_ns,
        travel_rule: Sequence[TravelRuleProvider] = (),
        custody_store: CustodyStore | None = None,
    ) -> None:
        self.config = config
        self.pm = pm
        self.node = node
        self.identity = identity
        self.adapters = adapters
        self.deposit_store = deposit_store
        self.store = store
        self.signer = signer
        self.hot_key_id = hot_key_id
        self.policy = policy
        self.policy_factory = policy_factory
        self.policy_error = ""
        self.fallback_approvals = fallback_approvals
        self.cooling_off_ns = cooling_off_ns
        self.poll_interval = poll_interval
        self.clock = clock
        self.travel_rule = tuple(travel_rule)  # providers asked about every screened withdrawal
        self.custody_store = custody_store  # the hot wallet's addresses (reconciliation) and deposit sweeps
        self.sweeper: DepositSweeper | None = None  # sweeps deposit addresses before each withdrawal round
        self.decimals = {symbol: asset.decimals for symbol, asset in config.assets.items()}
        self.tier_policy = TierPolicy.from_config(config)  # [compliance.kyc] withdrawal limits per KYC tier
        self.trackers: dict[str, DepositTracker] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._processor: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._round_lock = asyncio.Lock()
        self.hot_public_key = b""  # the secp256k1 hot key (Bitcoin, EVM, the dev chain)
        self.hot_keys: dict[KeyScheme, bytes] = {}  # public key of the hot wallet key of each scheme in use
        self.signer_error = "" if signer is not None else "no custody signer is configured"

    # -- lifecycle
    async def start(self) -> None:
        """Start a deposit tracker thread per chain and the withdrawal processor."""
        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        if self.signer is not None:
            try:
                for scheme in sorted({scheme_of(a) for a in self.adapters.values()} | {KeyScheme.SECP256K1}):
                    self.hot_keys[scheme] = await asyncio.to_thread(self._hot_key, scheme)
                self.hot_public_key = self.hot_keys[KeyScheme.SECP256K1]
                await asyncio.to_thread(self._record_hot_addresses)
            except Exception as exc:  # a locked or broken keystore: deposits still work, withdrawals wait
                self.signer_error = f"the custody signer is not usable: {exc}"
                _log.error("%s", self.signer_error)
        if self.policy is None and self.policy_factory is not None:
            try:
                self.policy = await asyncio.to_thread(self.policy_factory)
            except Exception as exc:  # fail closed: a configured policy that cannot open stops withdrawals
                self.policy_error = f"the custody policy engine could not start: {exc}"
                _log.error("%s", self.policy_error)
        screener = hook_screener(self.pm, self.config)
        for name, adapter in self.adapters.items():
            tracker = DepositTracker(adapter, self.deposit_store, submit=self._submit_from_thread, screen=screener)
            self.trackers[name] = tracker
            thread = threading.Thread(
                target=tracker.run, args=(self._stop, self.poll_interval), name=f"deposits-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._processor = asyncio.create_task(self._process_forever(), name="withdrawals")

    def _record_hot_addresses(self) -> None:
        """Record the hot wallet's addresses on each chain whose adapter can tell them (``hot_addresses`` or
        ``address_of_key``), for reconciliation and sweeps; a chain that cannot answer now is logged and skipped."""
        if self.custody_store is None:
            return
        for name, adapter in self.adapters.items():
            key = self.hot_keys.get(scheme_of(adapter))
            many = getattr(adapter, "hot_addresses", None)
            one = getattr(adapter, "address_of_key", None)
            if key is None:
                continue
            try:
                if many is not None:
                    addresses = [str(a) for a in many(key)]
                elif one is not None:
                    addresses = [str(one(key))]
                else:
                    continue
                for address in addresses:
                    self.custody_store.add_address(name, "hot", address)
                if self.sweeper is not None and addresses:  # sweeps go to the current hot key's address
                    self.sweeper.destinations[name] = str(one(key)) if one is not None else addresses[0]
            except Exception:  # a node fault or a chain name that cannot name an account: reconciliation says so
                _log.exception("the hot wallet's addresses on %s could not be recorded", name)

    def hot_key_for(self, scheme: KeyScheme) -> str:
        """The hot wallet's key id for ``scheme``: ``hot_key_id`` for secp256k1, ``<hot_key_id>-<scheme>`` else."""
        return self.hot_key_id if scheme is KeyScheme.SECP256K1 else f"{self.hot_key_id}-{scheme.value}"

    def _hot_key(self, scheme: KeyScheme) -> bytes:
        assert self.signer is not None
        key_id = self.hot_key_for(scheme)
        try:
            return self.signer.public_key(key_id)
        except Exception:  # not created yet
            return self.signer.create_key(key_id, scheme)

    async def close(self) -> None:
        """Stop the trackers and the processor."""
        self._stop.set()
        if self._processor is not None:
            self._processor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._processor
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 10)
        self.store.close()
        self.deposit_store.close()
        if self.custody_store is not None:
            self.custody_store.close()

    def _submit_from_thread(self, command: Command) -> Sequence[Event]:
        """Sequence a command from a tracker thread through the node on the event loop."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self.node.submit(command), self._loop)
        return future.result(timeout=60).events

    # -- helpers
    def _chain_for(self, asset: str, chain: str | None) -> ChainAdapter:
        chains = self.assets().get(asset)
        if not chains:
            known = ", ".join(sorted(self.assets())) or "none"
            raise WalletError(f"{asset!r} cannot be deposited or withdrawn here; assets with a chain: {known}")
        name = chain or chains[0]
        if name not in chains:
            raise WalletError(f"{asset} does not move on {name!r}; use one of {', '.join(chains)}")
        return self.adapters[name]

    def _amount(self, asset: str, atomic: int) -> str:
        return format_atomic(atomic, self.decimals[asset], trim=True)

    def _deposit_view(self, d: Deposit) -> DepositView:
        return DepositView(
            id=f"{d.chain}:{d.txid}:{d.index}",
            chain=d.chain,
            asset=d.asset,
            amount=self._amount(d.asset, d.amount) if d.asset in self.decimals else str(d.amount),
            address=d.address,
            memo=d.memo,
            txid=d.txid,
            stage=d.stage.value,
            confirmations=d.confirmations,
            required_confirmations=d.required_confirmations,
            reasons=d.reasons,
            first_seen_ms=d.first_seen_ns // 1_000_000,
            updated_ms=d.updated_ns // 1_000_000,
        )

    def _view(self, row: WithdrawalRow) -> WithdrawalView:
        adapter = self.adapters.get(row.chain)
        return WithdrawalView(
            id=row.id,
            account=row.account,
            chain=row.chain,
            asset=row.asset,
            amount=self._amount(row.asset, row.amount),
            fee=format_atomic(row.fee, self.decimals.get(adapter.native_asset, 0), trim=True) if adapter else "0",
            address=row.address,
            memo=row.memo,
            stage=row.stage,
            txid=row.txid,
            confirmations=row.confirmations,
            required_confirmations=adapter.required_confirmations if adapter else 0,
            reasons=tuple(row.reasons + ([row.error] if row.error else [])),
            approvals=tuple(row.approvals),
            required_approvals=row.required_approvals,
            requested_ms=row.requested_ns // 1_000_000,
            updated_ms=row.updated_ns // 1_000_000,
        )

    @staticmethod
    def _entry(row: WhitelistRow) -> AddressBookEntry:
        return AddressBookEntry(
            id=row.id,
            chain=row.chain,
            asset=row.asset,
            address=row.address,
            memo=row.memo,
            label=row.label,
            added_ms=row.added_ns // 1_000_000,
            usable_from_ms=row.usable_from_ns // 1_000_000,
        )

    # -- deposits
    def assets(self) -> dict[str, list[str]]:
        """Every exchange asset that some registered chain moves, with those chains."""
        out: dict[str, list[str]] = {}
        for name, adapter in self.adapters.items():
            moved = getattr(adapter, "assets", None) or {adapter.native_asset}
            for asset in sorted(moved):
                if asset in self.decimals:
                    out.setdefault(asset, []).append(name)
        return out

    def deposit_address(self, account: int, asset: str, chain: str | None = None) -> tuple[str, str]:
        """``account``'s deposit address for ``asset`` (watched from now on)."""
        adapter = self._chain_for(asset, chain)
        address = self.trackers[adapter.name].deposit_address(account)
        return address.address, address.memo

    def deposits(self, account: int, *, asset: str | None = None, limit: int = 100) -> list[DepositView]:
        """``account``'s deposits on every chain, newest first."""
        found = self.deposit_store.deposits(account=account, limit=limit)
        views = [self._deposit_view(d) for d in found if asset is None or d.asset == asset]
        return sorted(views, key=lambda v: v.first_seen_ms, reverse=True)[:limit]

    # -- whitelist
    def whitelist(self, account: int) -> list[AddressBookEntry]:
        """``account``'s whitelisted addresses."""
        return [self._entry(r) for r in self.store.whitelist(account)]

    def add_to_whitelist(
        self, account: int, *, asset: str, address: str, chain: str | None = None, memo: str = "", label: str = ""
    ) -> AddressBookEntry:
        """Whitelist ``address`` for ``asset``; usable after the cooling-off period."""
        adapter = self._chain_for(asset, chain)
        address = address.strip()
        if not adapter.validate_address(address):
            raise WalletError(f"{address!r} is not a valid {adapter.name} address: check it and paste it again")
        if len(label) > 80 or len(memo) > 128:
            raise WalletError("the label is at most 80 characters and the memo at most 128")
        now = self.clock()
        row = self.store.add_whitelist(
            account=account,
            chain=adapter.name,
            asset=asset,
            address=address,
            memo=memo,
            label=label,
            now_ns=now,
            usable_ns=now + self.cooling_off_ns,
        )
        return self._entry(row)

    def remove_from_whitelist(self, account: int, entry_id: int) -> None:
        """Remove one of ``account``'s whitelist entries."""
        if not self.store.remove_whitelist(account, entry_id):
            raise WalletError("no such whitelist entry on this account")

    # -- withdrawals: requests
    async def request_withdrawal(
        self,
        account: int,
        *,
        asset: str,
        amount: str,
        address: str,
        chain: str | None = None,
        memo: str = "",
        beneficiary_name: str = "",
        beneficiary_vasp: str = "",
    ) -> WithdrawalView:
        """Hold the amount and start a withdrawal to one of ``account``'s usable whitelisted addresses.

        ``beneficiary_name``/``beneficiary_vasp``: what the customer declares for the travel rule (optional).
        """
        beneficiary_name, beneficiary_vasp = beneficiary_name.strip(), beneficiary_vasp.strip()
        for label, text in (("beneficiary name", beneficiary_name), ("beneficiary VASP", beneficiary_vasp)):
            if len(text) > 140 or not text.isprintable():
                raise WalletError(f"the {label} is at most 140 printable characters")
        adapter = self._chain_for(asset, chain)
        user = self.identity.user(account)
        if user is None or user.disabled:
            raise WalletError("this account cannot withdraw")
        try:  # a sanctions hit or rejection at onboarding freezes the account (docs/compliance.md)
            frozen_accounts(self.config).check(account, "withdraw")
        except AccountFrozenError as exc:
            raise WalletError(str(exc)) from None
        try:  # the KYC tier may withdraw this asset at all (the daily sum is checked below, under the lock)
            self.tier_policy.daily_limit(user.kyc_tier, asset)
        except LimitError as exc:
            raise WalletError(str(exc)) from None
        try:
            value = parse_decimal(amount, what="amount")
            units = to_atomic(value, self.decimals[asset])
        except MoneyError as exc:
            raise WalletError(f"{exc}; {asset} has {self.decimals[asset]} decimal places") from None
        if units <= 0:
            raise WalletError("the amount must be greater than zero")
        now = self.clock()
        entries = [
            e
            for e in self.store.whitelist(account)
            if e.chain == adapter.name and e.asset == asset and e.address == address.strip() and e.memo == memo
        ]
        if not entries:
            raise WalletError("withdrawals go only to whitelisted addresses: add this address to your whitelist first")
        if all(e.usable_from_ns > now for e in entries):
            wait = min(e.usable_from_ns for e in entries) - now
            raise WalletError(f"this address is new: it can be used in {_duration(wait)} (cooling-off period)")
        async with self._round_lock:  # the processor must not see the row before its funds are held
            try:  # the KYC tier's daily limit, counted under the same lock as the insert
                recent = recent_withdrawals(self.store, account, now_ns=now)
                check_withdrawal(
                    self.tier_policy, kyc_tier=user.kyc_tier, asset=asset, amount=units, recent=recent, now_ns=now
                )
            except LimitError as exc:
                raise WalletError(str(exc)) from None
            row = self.store.insert_withdrawal(
                account=account,
                chain=adapter.name,
                asset=asset,
                amount=units,
                address=address.strip(),
                memo=memo,
                now_ns=now,
                beneficiary_name=beneficiary_name,
                beneficiary_vasp=beneficiary_vasp,
            )
            refused = await self._hold(row)
        if refused:
            raise WalletError(refused)
        self._kick.set()
        return self._view(row)

    async def _hold(self, row: WithdrawalRow) -> str:
        """Hold the withdrawal's funds (again, after a crash: an existing hold is kept); "" or why it was refused.

        A refusal rejects the withdrawal.
        """
        command = HoldFunds(account=row.account, asset=row.asset, amount=row.amount, reference=row.reference)
        applied = await self.node.submit(command)
        rejected = next((e for e in applied.events if isinstance(e, FundsRejected)), None)
        if rejected is None or rejected.reason is RejectReason.DUPLICATE_REFERENCE:
            return ""
        why = rejected.reason.name.lower().replace("_", " ")
        row.stage = WithdrawalStage.REJECTED
        row.reasons.append(f"not held: {why}")
        self.store.save(row, self.clock())
        if rejected.reason is RejectReason.INSUFFICIENT_BALANCE:
            return f"insufficient {row.asset} balance for this withdrawal"
        return f"the withdrawal was refused: {why}"

    async def cancel_withdrawal(self, account: int, withdrawal_id: int) -> WithdrawalView:
        """Cancel a withdrawal that has not been approved yet; its funds are released."""
        async with self._round_lock:
            row = self.store.withdrawal(withdrawal_id)
            if row is None or row.account != account:
                raise WalletError("no such withdrawal on this account")
            if row.stage not in (
                WithdrawalStage.REQUESTED,
                WithdrawalStage.SCREENING,
                WithdrawalStage.TRAVEL_RULE,
                WithdrawalStage.AWAITING_APPROVAL,
            ):
                raise WalletError(f"a withdrawal that is {row.stage.value} can no longer be cancelled")
            await self._release(row, WithdrawalStage.CANCELLED, "cancelled by the customer")
            return self._view(row)

    def withdrawals(
        self, account: int | None = None, *, stage: WithdrawalStage | None = None, limit: int = 100
    ) -> list[WithdrawalView]:
        """Withdrawals newest first, of one account or all."""
        rows = self.store.withdrawals(account=account, stages=[stage] if stage else None, limit=limit)
        return [self._view(r) for r in rows]

    async def approve_withdrawal(
        self, withdrawal_id: int, *, operator: str, approve: bool, note: str = ""
    ) -> WithdrawalView:
        """An operator clears a screening hold or gives a k-of-n approval; any denial rejects the withdrawal."""
        async with self._round_lock:
            row = self.store.withdrawal(withdrawal_id)
            if row is None:
                raise WalletError(f"there is no withdrawal {withdrawal_id}")
            reason = f"denied by {operator}" + (f": {note}" if note else "")
            if row.stage is WithdrawalStage.SCREENING:
                if not approve:
                    await self._release(row, WithdrawalStage.REJECTED, reason)
                else:
                    row.screened = True
                    row.stage = WithdrawalStage.REQUESTED
                    row.reasons.append(f"screening hold cleared by {operator}" + (f": {note}" if note else ""))
                    self.store.save(row, self.clock())
            elif row.stage is WithdrawalStage.TRAVEL_RULE:
                if not approve:
                    await self._release(row, WithdrawalStage.REJECTED, reason)
                else:  # e.g. an unhosted wallet whose owner the operator verified
                    row.travel_rule = f"cleared by {operator}"
                    row.stage = WithdrawalStage.REQUESTED
                    row.reasons.append(f"travel rule hold cleared by {operator}" + (f": {note}" if note else ""))
                    self.store.save(row, self.clock())
            elif row.stage is WithdrawalStage.AWAITING_APPROVAL:
                if operator in row.approvals:
                    raise WalletError(f"{operator} has already approved withdrawal {withdrawal_id}")
                if self._requester(row) == operator:
                    raise WalletError("the customer who asked for a withdrawal cannot approve it")
                await self._policy_vote(row, operator, approve, reason)
            else:
                raise WalletError(f"withdrawal {withdrawal_id} is {row.stage.value}: there is nothing to approve")
            self._kick.set()
            return self._view(row)

    def _requester(self, row: WithdrawalRow) -> str:
        user = self.identity.user(row.account)
        return user.email if user else f"account:{row.account}"

    async def _policy_vote(self, row: WithdrawalRow, operator: str, approve: bool, reason: str) -> None:
        policy = self.policy
        if policy is None:
            if not approve:
                await self._release(row, WithdrawalStage.REJECTED, reason)
                return
            row.approvals.append(operator)
            if len(row.approvals) >= row.required_approvals:
                row.stage = WithdrawalStage.APPROVED
            self.store.save(row, self.clock())
            return
        rid = f"w{row.id}"
        try:
            if approve:
                decision = await asyncio.to_thread(policy.approve, rid, approver=operator)
            else:
                decision = await asyncio.to_thread(policy.deny, rid, approver=operator, reason=reason)
        except Exception as exc:  # the policy refused the vote (outside the group, expired...): say why
            raise WalletError(str(exc)) from None
        await self._apply_decision(row, decision)

    async def _apply_decision(self, row: WithdrawalRow, decision: PolicyDecision) -> None:
        row.approvals = list(decision.approvals)
        row.required_approvals = decision.approvals_required
        if decision.status is RequestStatus.APPROVED:
            row.stage = WithdrawalStage.APPROVED
            self.store.save(row, self.clock())
        elif decision.status in (RequestStatus.BLOCKED, RequestStatus.DENIED, RequestStatus.EXPIRED):
            reasons = "; ".join(decision.reasons) or decision.status.value
            await self._release(row, WithdrawalStage.REJECTED, f"custody policy: {reasons}")
        else:
            row.stage = WithdrawalStage.AWAITING_APPROVAL
            self.store.save(row, self.clock())

    async def _release(self, row: WithdrawalRow, stage: WithdrawalStage, reason: str) -> None:
        """Give the held funds back (idempotent by reference), then record the final stage."""
        applied = await self.node.submit(ReleaseFunds(reference=row.reference))
        rejected = next((e for e in applied.events if isinstance(e, FundsRejected)), None)
        if rejected is not None and rejected.reason is not RejectReason.UNKNOWN_REFERENCE:
            raise WalletError(f"releasing withdrawal {row.id}'s funds failed: {rejected.reason.name}")
        row.stage = stage
        row.reasons.append(reason)
        self.store.save(row, self.clock())

    # -- withdrawals: the processor
    async def _process_forever(self) -> None:
        while True:
            if self.sweeper is not None:  # first: sweeps fund the hot wallet that withdrawals pay from
                try:
                    await self.sweeper.process_once()
                except Exception:
                    _log.exception("sweeping deposit addresses failed; retrying")
            try:
                await self.process_once()
            except Exception:
                _log.exception("withdrawal processing failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_interval)
            self._kick.clear()

    async def process_once(self) -> None:
        """Move every open withdrawal on as far as it can go now."""
        async with self._round_lock:
            for row in self.store.withdrawals(stages=sorted(OPEN_STAGES), limit=10_000, oldest_first=True):
                try:
                    await self._advance(row)
                except Exception as exc:  # a node or signer fault: stay in this stage, show the error, retry
                    row.error = f"{type(exc).__name__}: {exc}"
                    self.store.save(row, self.clock())

    async def _advance(self, row: WithdrawalRow) -> None:
        adapter = self.adapters[row.chain]
        if row.stage is WithdrawalStage.REQUESTED and not row.screened:
            # A crash between recording the request and holding its funds leaves no hold: make sure there is one.
            if await self._hold(row):
                return
            request = WithdrawalRequest(row.id, row.account, row.asset, row.chain, row.amount, row.address)
            decision = await asyncio.to_thread(
                run_screening, self.pm, "screen_withdrawal", config=self.config, request=request
            )
            if decision.outcome is Outcome.REJECT:
                await self._release(row, WithdrawalStage.REJECTED, "screening: " + "; ".join(decision.reasons))
                return
            if decision.outcome is Outcome.HOLD:
                row.stage = WithdrawalStage.SCREENING
                row.reasons.append("held for review: " + "; ".join(decision.reasons))
                self.store.save(row, self.clock())
                return
            row.screened = True
            self.store.save(row, self.clock())
        if row.stage is WithdrawalStage.REQUESTED and not row.travel_rule:
            request = _travel_rule_request(row)
            needed = [p for p in self.travel_rule if await asyncio.to_thread(p.required, request)]
            row.travel_rule = "required" if needed else "not_required"
            if needed:  # stored before any message goes out
                row.stage = WithdrawalStage.TRAVEL_RULE
            self.store.save(row, self.clock())
        if row.stage is WithdrawalStage.TRAVEL_RULE:
            await self._travel_rule(row)
        if row.stage is WithdrawalStage.REQUESTED:
            await self._build_and_submit(row, adapter)
        if row.stage is WithdrawalStage.APPROVED:
            await self._sign(row, adapter)
        if row.stage is WithdrawalStage.SIGNED:
            assert row.signed is not None
            row.txid = await asyncio.to_thread(adapter.broadcast, row.signed)
            row.stage = WithdrawalStage.BROADCAST
            row.error = ""
            self.store.save(row, self.clock())
        if row.stage is WithdrawalStage.BROADCAST:
            await self._track(row, adapter)

    async def _travel_rule(self, row: WithdrawalRow) -> None:
        """Send (again: providers are idempotent per withdrawal) and read the counterparty's answer."""
        request = _travel_rule_request(row)
        user = self.identity.user(row.account)
        originator = {"account": str(row.account), "email": user.email if user else "", "country": ""}
        if user is not None:
            originator["country"] = user.country
        # The legal name and birth date the customer's KYC gave (and onboarding screened), where there is one.
        applicant = await asyncio.to_thread(OnboardingGate(self.config).applicant, row.account)
        if applicant is not None:
            originator.update(
                {k: v for k, v in (("name", applicant.full_name), ("date_of_birth", applicant.date_of_birth)) if v}
            )
            originator["country"] = originator["country"] or applicant.country
        decisions = []
        for provider in self.travel_rule:
            if await asyncio.to_thread(provider.required, request):
                reference = await asyncio.to_thread(provider.send, request, originator)
                decisions.append(await asyncio.to_thread(provider.status, reference))
        if decisions:
            decision = Decision.combine(decisions)
        else:  # it needed the travel rule, and nobody answers for it now (a provider removed): fail closed
            decision = Decision.hold("no travel rule provider answers for it any more: an operator must decide")
        why = "; ".join(decision.reasons)
        if decision.outcome is Outcome.REJECT:
            await self._release(row, WithdrawalStage.REJECTED, f"travel rule: {why}")
            return
        if decision.outcome is Outcome.HOLD:
            note = f"travel rule: {why or 'waiting for the counterparty'}"
            if row.reasons and row.reasons[-1].startswith("travel rule: "):
                row.reasons[-1] = note  # the latest word on the wait, not one line per round
            else:
                row.reasons.append(note)
            row.error = ""
            self.store.save(row, self.clock())
            return
        row.travel_rule = "accepted"
        row.stage = WithdrawalStage.REQUESTED
        row.error = ""
        row.reasons.append(f"travel rule: {why or 'accepted'}")
        self.store.save(row, self.clock())

    async def _build_and_submit(self, row: WithdrawalRow, adapter: ChainAdapter) -> None:
        scheme = scheme_of(adapter)
        if self.signer is None or scheme not in self.hot_keys:
            raise RuntimeError(f"{self.signer_error or 'no hot key'}: withdrawals wait until the signer works")
        if self.policy_error:
            raise RuntimeError(f"{self.policy_error}: withdrawals wait until it works")
        if row.unsigned is None:
            unsigned = await asyncio.to_thread(
                adapter.build_withdrawal,
                key_id=self.hot_key_for(scheme),
                public_key=self.hot_keys[scheme],
                destination=row.address,
                asset=row.asset,
                amount=row.amount,
                memo=row.memo,
            )
            row.unsigned = _encode_unsigned(unsigned)
            self.store.save(row, self.clock())
        unsigned = _decode_unsigned(row.unsigned)
        decoded = await asyncio.to_thread(adapter.decode, unsigned)
        if (decoded.destination, decoded.amount, decoded.asset) != (row.address, row.amount, row.asset):
            await self._release(row, WithdrawalStage.REJECTED, "the built transaction does not match the request")
            return
        row.fee = decoded.fee
        if self.policy is None:
            row.required_approvals = self.fallback_approvals
            row.stage = WithdrawalStage.AWAITING_APPROVAL
            self.store.save(row, self.clock())
            return
        request = WithdrawalRequest(row.id, row.account, row.asset, row.chain, row.amount, row.address)
        decision = await asyncio.to_thread(
            self.policy.submit,
            withdrawal=request,
            unsigned=unsigned,
            decoded=decoded,
            requester=self._requester(row),
        )
        await self._apply_decision(row, decision)

    async def _sign(self, row: WithdrawalRow, adapter: ChainAdapter) -> None:
        assert self.signer is not None and row.unsigned is not None
        unsigned = _decode_unsigned(row.unsigned)
        scheme = scheme_of(adapter)
        if self.policy is not None:
            rid = f"w{row.id}"
            current = await asyncio.to_thread(self.policy.status, rid)
            if current.status is RequestStatus.RELEASED:
                # Released before a crash, but the signature was not stored: these very digests were approved.
                requests = _requests(rid, unsigned, scheme)
            else:
                approval = await asyncio.to_thread(self.policy.release, rid)
                requests = approval.signing_requests(scheme)
        else:
            requests = _requests(f"w{row.id}", unsigned, scheme)
        signatures = [await asyncio.to_thread(self.signer.sign, r) for r in requests]
        row.signed = await asyncio.to_thread(adapter.assemble, unsigned, signatures)
        row.stage = WithdrawalStage.SIGNED
        self.store.save(row, self.clock())

    async def _record_network_fee(self, row: WithdrawalRow, adapter: ChainAdapter, hot: str) -> None:
        """Record the fee the withdrawal's transaction paid out of the hot wallet (idempotent by reference).

        The adapter's ``paid_fee(txid)`` when it has one, else the decoded transaction's fee (its most).
        """
        asset = adapter.native_asset
        paid = getattr(adapter, "paid_fee", None)
        fee = int(await asyncio.to_thread(paid, row.txid)) if paid is not None else row.fee
        if fee <= 0 or asset not in self.decimals:
            return
        command = MoveCustody(asset, hot, "", 0, fee, f"{row.reference}:fee")
        applied = await self.node.submit(command)
        rejected = next((e for e in applied.events if isinstance(e, FundsRejected)), None)
        if rejected is not None and rejected.reason is not RejectReason.DUPLICATE_REFERENCE:
            raise RuntimeError(f"recording the network fee failed: {rejected.reason.name}")

    async def _track(self, row: WithdrawalRow, adapter: ChainAdapter) -> None:
        status = await asyncio.to_thread(adapter.transaction_status, row.txid)
        if status.state is TxState.CONFIRMED:
            row.confirmations = status.confirmations
            if status.confirmations >= adapter.required_confirmations:
                hot = custody_account("hot", row.chain)
                applied = await self.node.submit(DebitHeldFunds(reference=row.reference, custody=hot))
                rejected = next((e for e in applied.events if isinstance(e, FundsRejected)), None)
                if rejected is not None and rejected.reason is not RejectReason.UNKNOWN_REFERENCE:
                    raise RuntimeError(f"debiting the held funds failed: {rejected.reason.name}")
                await self._record_network_fee(row, adapter, hot)
                row.stage = WithdrawalStage.COMPLETED
            row.error = ""
        elif status.state in (TxState.PENDING, TxState.UNKNOWN):
            row.confirmations = 0
            if status.state is TxState.UNKNOWN and row.signed is not None:  # lost by the node: send the same bytes
                await asyncio.to_thread(adapter.broadcast, row.signed)
        else:
            row.error = "the network dropped the transaction: an operator must decide (funds stay held)"
        self.store.save(row, self.clock())


def scheme_of(adapter: ChainAdapter) -> KeyScheme:
    """The signature scheme a chain's transactions need: the adapter's optional ``signature_scheme`` attribute
    (Ed25519 chains such as Solana set it), secp256k1 otherwise."""
    return KeyScheme(getattr(adapter, "signature_scheme", KeyScheme.SECP256K1))


def _travel_rule_request(row: WithdrawalRow) -> WithdrawalRequest:
    """The withdrawal as travel rule providers see it: with what the customer declared about the beneficiary."""
    return WithdrawalRequest(
        row.id,
        row.account,
        row.asset,
        row.chain,
        row.amount,
        row.address,
        beneficiary_name=row.beneficiary_name,
        beneficiary_vasp=row.beneficiary_vasp,
    )


def _requests(request_id: str, unsigned: UnsignedTransaction, scheme: KeyScheme) -> list[SigningRequest]:
    return [
        SigningRequest(
            request_id=f"{request_id}/{i}", key_id=unsigned.key_id, chain=unsigned.chain, payload=d, scheme=scheme
        )
        for i, d in enumerate(unsigned.digests)
    ]


def _encode_unsigned(unsigned: UnsignedTransaction) -> bytes:
    return msgspec.msgpack.encode(unsigned)


def _decode_unsigned(data: bytes) -> UnsignedTransaction:
    return msgspec.msgpack.decode(data, type=UnsignedTransaction)


def _duration(ns: int) -> str:
    seconds = max(1, ns // 10**9)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{Decimal(seconds) / 3600:.1f} h"
