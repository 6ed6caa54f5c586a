"""Executing sweeps: an approved proposal becomes a transfer that passes the custody policy engine like any
withdrawal, is signed by its source tier's signer, broadcast, and at depth recorded on the ledger's custody accounts.

A sweep goes through visible stages (:class:`~exchange_framework.custody.tiers_store.SweepStage`)::

    proposed --(an operator's approval)--> awaiting_approval (k of n) -> approved -> signed -> broadcast -> completed
    proposed | awaiting_approval -> rejected (denied, blocked by the policy, or it could not be built)
    proposed -> superseded (a newer plan replaced it)          ceremony: cold -> warm, never executed here

The transfer is built by the chain adapter from the source tier's wallet (``[[custody.wallets]]``, its ``key_id``)
to the destination tier's wallet address, decoded again, and submitted to the **same** policy engine as customer
withdrawals (request ``sweep-<id>``, requester ``custody.tiers``): the destination must be whitelisted, the rules
and velocity limits apply to the source tier, and approvals come from the rule's group. Operators' approvals are
recorded in the sweep store (audited) by the admin console or ``exchange custody tiers approve``; the executor in
the running exchange hands them to the policy engine. Every step is stored before its effect; broadcasting the same
bytes and the ledger move's reference are idempotent, so a crash anywhere neither loses nor doubles a sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from exchange_framework.audit import AuditLog
from exchange_framework.custody.policy import PolicyDecision, PolicyEngine, RequestStatus
from exchange_framework.custody.rules import Tier, Wallet
from exchange_framework.custody.tiers_plan import Plan
from exchange_framework.custody.tiers_store import OPEN_STAGES, SweepRow, SweepStage, SweepStore
from exchange_framework.engine import commands
from exchange_framework.engine.events import FundsRejected
from exchange_framework.interfaces import (
    ChainAdapter,
    CustodySigner,
    KeyScheme,
    SigningRequest,
    TxState,
    UnsignedTransaction,
    WithdrawalRequest,
)
from exchange_framework.types import RejectReason

__all__ = ["REQUESTER", "LedgerMove", "RecordMove", "SweepError", "TierSweeper", "custody_account", "node_recorder"]

_log = logging.getLogger(__name__)

REQUESTER = "custody.tiers"  # who asks the policy engine for sweeps (never an approver)


class SweepError(Exception):
    """A sweep action was refused; nothing changed. The message says why and what to do."""


class LedgerMove(msgspec.Struct, frozen=True):
    """Money moving between the ledger's custody accounts: ``from_account`` loses ``amount + fee``, ``to_account``
    gains ``amount`` (empty when ``amount`` is 0: a network fee alone). ``reference`` is used once."""

    asset: str
    from_account: str
    to_account: str
    amount: int
    fee: int
    reference: str


RecordMove = Callable[[LedgerMove], Awaitable[None]]
"""Sequence a custody move for the ledger; idempotent by reference; raises if it was refused."""


def custody_account(tier: Tier, chain: str) -> str:
    """The ledger's custody account of ``tier`` on ``chain``: ``omnibus:<tier>:<chain>`` (``ValueError`` for a chain
    name the ledger does not accept)."""
    return commands.custody_account(tier.value, chain)


def node_recorder(node: Any) -> RecordMove:
    """A :data:`RecordMove` that sequences the engine's ``MoveCustody`` command through ``node``
    (:class:`~exchange_framework.node.ExchangeNode`); a repeated reference counts as done (already recorded)."""

    async def record(move: LedgerMove) -> None:
        command = commands.MoveCustody(
            asset=move.asset,
            from_account=move.from_account,
            to_account=move.to_account,
            amount=move.amount,
            fee=move.fee,
            reference=move.reference,
        )
        applied = await node.submit(command)
        rejected = next((e for e in applied.events if isinstance(e, FundsRejected)), None)
        if rejected is not None and rejected.reason is not RejectReason.DUPLICATE_REFERENCE:
            raise RuntimeError(f"the ledger refused custody move {move.reference}: {rejected.reason.name}")

    return record


def _scheme(adapter: ChainAdapter) -> KeyScheme:
    return KeyScheme(getattr(adapter, "signature_scheme", KeyScheme.SECP256K1))


class TierSweeper:
    """Stores the planner's proposals, records operators' approvals, and executes approved sweeps.

    ``policy`` returns the running policy engine (or None while it is not open: sweeps wait); ``wallets`` are the
    ``[[custody.wallets]]`` entries; ``signers`` sign for each source tier; ``record_move`` puts a completed sweep on
    the ledger. ``audit`` must be open for any operator action (fail closed).
    """

    def __init__(
        self,
        *,
        store: SweepStore,
        policy: Callable[[], PolicyEngine | None],
        wallets: Sequence[Wallet],
        adapters: Mapping[str, ChainAdapter],
        signers: Mapping[Tier, CustodySigner],
        record_move: RecordMove,
        audit: Callable[[], AuditLog | None],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.policy = policy
        self.wallets = list(wallets)
        self.adapters = adapters
        self.signers = signers
        self.record_move = record_move
        self.audit = audit
        self.clock = clock
        self._lock = asyncio.Lock()

    # -- proposals
    def busy(self, asset: str, chain: str) -> bool:
        """Whether a sweep of ``asset`` on ``chain`` is on its way (the planner waits until it ends)."""
        return any(r.asset == asset and r.chain == chain for r in self.store.sweeps(stages=sorted(OPEN_STAGES)))

    def propose(self, plans: Sequence[Plan]) -> list[SweepRow]:
        """Store each plan's sweeps as proposals, superseding unsubmitted ones the plan no longer wants.

        An asset and chain with a sweep on its way is left alone. Return the proposals now open for the plans.
        """
        now = self.clock()
        out: list[SweepRow] = []
        waiting = (SweepStage.PROPOSED, SweepStage.CEREMONY)
        existing = self.store.sweeps(stages=waiting, limit=10_000, oldest_first=True)
        for p in plans:
            asset, chain = p.holdings.asset, p.holdings.chain
            if self.busy(asset, chain):
                continue
            mine = [r for r in existing if r.asset == asset and r.chain == chain]
            for sweep in p.sweeps:
                same = next(
                    (
                        r
                        for r in mine
                        if (r.source, r.destination, r.amount, r.ceremony)
                        == (sweep.source, sweep.destination, sweep.amount, sweep.ceremony)
                    ),
                    None,
                )
                if same is not None:
                    mine.remove(same)
                    out.append(same)
                    continue
                row = self.store.insert(
                    asset=asset,
                    chain=chain,
                    source=sweep.source,
                    destination=sweep.destination,
                    amount=sweep.amount,
                    ceremony=sweep.ceremony,
                    reason=sweep.reason,
                    demand=p.demand,
                    now_ns=now,
                )
                out.append(row)
                log = self.audit()
                if log is not None:
                    log.append(
                        actor=REQUESTER,
                        action="custody.tiers.propose",
                        target=f"sweep:{row.id}",
                        details=_describe(row),
                        ts_ns=now,
                    )
            for stale in mine:
                self.store.supersede(stale.id, "a newer plan replaced it", now)
        return out

    # -- approvals
    def record_decision(self, sweep_id: int, *, operator: str, approve: bool, note: str = "") -> SweepRow:
        """Record (audited first) an operator's approval or denial of a proposal; the executor acts on it.

        Refused (:class:`SweepError`): an unknown sweep, a ceremony proposal, a sweep past approval, no audit log,
        a second decision by the same operator, or a denial without a note.
        """
        row = self.store.sweep(sweep_id)
        if row is None:
            raise SweepError(f"there is no sweep {sweep_id}")
        if row.stage is SweepStage.CEREMONY:
            raise SweepError(
                f"sweep {sweep_id} moves cold -> warm: it is done by the cold-vault ceremony (exchange custody "
                "ceremony recover on the offline machine), never by approving it here"
            )
        if row.stage not in (SweepStage.PROPOSED, SweepStage.AWAITING_APPROVAL):
            raise SweepError(f"sweep {sweep_id} is {row.stage.value.replace('_', ' ')}: there is nothing to decide")
        if not operator or operator == REQUESTER:
            raise SweepError("name the operator who decides (they must be in the policy's approver group)")
        if not approve and not note.strip():
            raise SweepError("say why the sweep is denied (a note is required)")
        if any(a.approver == operator for a in self.store.approvals(sweep_id)):
            raise SweepError(f"{operator} has already decided on sweep {sweep_id}")
        log = self.audit()
        if log is None:
            raise SweepError("the audit log is not open, and every custody action must be audited: nothing was done")
        now = self.clock()
        log.append(
            actor=operator,
            action="custody.tiers.approve" if approve else "custody.tiers.deny",
            target=f"sweep:{sweep_id}",
            details={**_describe(row), "note": note},
            ts_ns=now,
        )
        if not self.store.record_approval(sweep_id, approver=operator, approve=approve, note=note, now_ns=now):
            raise SweepError(f"{operator} has already decided on sweep {sweep_id}")
        return row

    # -- execution
    async def process_once(self) -> None:
        """Hand recorded decisions to the policy engine and move every approved sweep on as far as it can go."""
        async with self._lock:
            for decision in self.store.approvals(pending_only=True):
                row = self.store.sweep(decision.sweep_id)
                if row is None:
                    continue
                try:
                    outcome = await self._decide(row, decision.approver, decision.approve, decision.note)
                except Exception as exc:  # the policy engine is not running, a node fault...: retried next round
                    row.error = f"{type(exc).__name__}: {exc}"
                    self.store.save(row, self.clock())
                    continue
                self.store.mark_handled(row.id, decision.approver, outcome)
            active = (SweepStage.APPROVED, SweepStage.SIGNED, SweepStage.BROADCAST)
            for row in self.store.sweeps(stages=active, limit=10_000, oldest_first=True):
                try:
                    await self._advance(row)
                except Exception as exc:  # stay in this stage, show the error, retry
                    row.error = f"{type(exc).__name__}: {exc}"
                    self.store.save(row, self.clock())

    def _engine(self) -> PolicyEngine:
        engine = self.policy()
        if engine is None:
            raise RuntimeError("the custody policy engine is not running: sweeps wait until it is")
        return engine

    async def _decide(self, row: SweepRow, operator: str, approve: bool, note: str) -> str:
        if row.stage is SweepStage.PROPOSED:
            if not approve:
                self._finish(row, SweepStage.REJECTED, f"denied by {operator}: {note}")
                return "rejected"
            await self._submit(row)
        if row.stage is not SweepStage.AWAITING_APPROVAL:
            return row.stage.value  # the policy decided without approvals (allow, or blocked)
        engine = self._engine()
        try:
            if approve:
                decision = await asyncio.to_thread(engine.approve, row.request_id, approver=operator)
            else:
                decision = await asyncio.to_thread(engine.deny, row.request_id, approver=operator, reason=note)
        except Exception as exc:  # refused by the policy (not in the group...): recorded as the outcome
            row.reasons.append(f"{operator}: {exc}")
            self.store.save(row, self.clock())
            return f"refused: {exc}"
        self._apply(row, decision)
        return row.stage.value

    def _wallet(self, chain: str, tier: Tier) -> Wallet:
        for wallet in self.wallets:
            if wallet.chain == chain and wallet.tier is tier:
                return wallet
        raise SweepError(f"no [[custody.wallets]] entry of tier {tier.value} on {chain}: add one to sweep there")

    async def _submit(self, row: SweepRow) -> None:
        """Build, decode and submit the sweep's transfer to the policy engine."""
        engine = self._engine()
        adapter = self.adapters.get(row.chain)
        try:
            if adapter is None:
                raise SweepError(f"no chain adapter {row.chain!r} is registered")
            source = self._wallet(row.chain, row.source)
            destination = self._wallet(row.chain, row.destination)
            signer = self.signers.get(row.source)
            if signer is None:
                raise SweepError(f"no custody signer is configured for the {row.source.value} tier")
            if source.key_id is None:
                raise SweepError(f"the {row.source.value} wallet on {row.chain} needs a key_id to sign sweeps")
        except SweepError as exc:
            self._finish(row, SweepStage.REJECTED, str(exc))
            return
        if row.unsigned is None:
            public_key = await asyncio.to_thread(signer.public_key, source.key_id)
            unsigned = await asyncio.to_thread(
                adapter.build_withdrawal,
                key_id=source.key_id,
                public_key=public_key,
                destination=destination.address,
                asset=row.asset,
                amount=row.amount,
            )
            row.unsigned = msgspec.msgpack.encode(unsigned)
            self.store.save(row, self.clock())
        unsigned = msgspec.msgpack.decode(row.unsigned, type=UnsignedTransaction)
        decoded = await asyncio.to_thread(adapter.decode, unsigned)
        if decoded.source != source.address:
            self._finish(
                row, SweepStage.REJECTED, f"key {source.key_id} pays from {decoded.source}, not {source.address}"
            )
            return
        row.fee, row.fee_asset = decoded.fee, decoded.fee_asset
        request = WithdrawalRequest(row.id, 0, row.asset, row.chain, row.amount, destination.address)
        decision = await asyncio.to_thread(
            engine.submit,
            withdrawal=request,
            unsigned=unsigned,
            decoded=decoded,
            requester=REQUESTER,
            request_id=row.request_id,
        )
        self._apply(row, decision)

    def _apply(self, row: SweepRow, decision: PolicyDecision) -> None:
        if decision.status is RequestStatus.APPROVED:
            row.stage = SweepStage.APPROVED
            row.error = ""
            self.store.save(row, self.clock())
        elif decision.status in (RequestStatus.BLOCKED, RequestStatus.DENIED, RequestStatus.EXPIRED):
            self._finish(row, SweepStage.REJECTED, "custody policy: " + ("; ".join(decision.reasons) or "refused"))
        elif decision.status is RequestStatus.PENDING:
            row.stage = SweepStage.AWAITING_APPROVAL
            row.error = ""
            self.store.save(row, self.clock())

    def _finish(self, row: SweepRow, stage: SweepStage, reason: str) -> None:
        row.stage = stage
        row.reasons.append(reason)
        row.error = ""
        self.store.save(row, self.clock())

    async def _advance(self, row: SweepRow) -> None:
        adapter = self.adapters[row.chain]
        if row.stage is SweepStage.APPROVED:
            await self._sign(row, adapter)
        if row.stage is SweepStage.SIGNED:
            assert row.signed is not None
            row.txid = await asyncio.to_thread(adapter.broadcast, row.signed)
            row.stage = SweepStage.BROADCAST
            row.error = ""
            self.store.save(row, self.clock())
        if row.stage is SweepStage.BROADCAST:
            await self._track(row, adapter)

    async def _sign(self, row: SweepRow, adapter: ChainAdapter) -> None:
        assert row.unsigned is not None
        engine = self._engine()
        unsigned = msgspec.msgpack.decode(row.unsigned, type=UnsignedTransaction)
        scheme = _scheme(adapter)
        current = await asyncio.to_thread(engine.status, row.request_id)
        if current.status is RequestStatus.RELEASED:  # released before a crash: these very digests were approved
            requests = [
                SigningRequest(f"{row.request_id}/{i}", unsigned.key_id, unsigned.chain, d, scheme)
                for i, d in enumerate(unsigned.digests)
            ]
        else:
            try:
                approval = await asyncio.to_thread(engine.release, row.request_id, actor=REQUESTER)
            except Exception as exc:
                latest = await asyncio.to_thread(engine.status, row.request_id)
                if latest.status in (RequestStatus.BLOCKED, RequestStatus.EXPIRED):
                    self._finish(row, SweepStage.REJECTED, f"custody policy: {exc}")
                    return
                raise
            requests = approval.signing_requests(scheme)
        signer = self.signers[row.source]
        signatures = [await asyncio.to_thread(signer.sign, r) for r in requests]
        row.signed = await asyncio.to_thread(adapter.assemble, unsigned, signatures)
        row.stage = SweepStage.SIGNED
        self.store.save(row, self.clock())

    async def _track(self, row: SweepRow, adapter: ChainAdapter) -> None:
        status = await asyncio.to_thread(adapter.transaction_status, row.txid)
        if status.state is TxState.CONFIRMED:
            row.confirmations = status.confirmations
            if status.confirmations >= adapter.required_confirmations:
                await self._record(row)
                row.stage = SweepStage.COMPLETED
            row.error = ""
        elif status.state in (TxState.PENDING, TxState.UNKNOWN):
            row.confirmations = 0
            if status.state is TxState.UNKNOWN and row.signed is not None:  # lost by the node: the same bytes again
                await asyncio.to_thread(adapter.broadcast, row.signed)
        else:
            row.error = "the network dropped the sweep's transaction: an operator must decide"
        self.store.save(row, self.clock())

    async def _record(self, row: SweepRow) -> None:
        """Put the confirmed sweep on the ledger's custody accounts (its network fee too)."""
        source = custody_account(row.source, row.chain)
        destination = custody_account(row.destination, row.chain)
        same_asset_fee = row.fee if row.fee_asset in ("", row.asset) else 0
        await self.record_move(LedgerMove(row.asset, source, destination, row.amount, same_asset_fee, row.reference))
        if row.fee and row.fee_asset not in ("", row.asset):
            await self.record_move(LedgerMove(row.fee_asset, source, "", 0, row.fee, f"{row.reference}:fee"))


def _describe(row: SweepRow) -> dict[str, Any]:
    return {
        "asset": row.asset,
        "chain": row.chain,
        "source": row.source.value,
        "destination": row.destination.value,
        "amount": row.amount,
        "ceremony": row.ceremony,
        "reason": row.reason,
        "demand": row.demand,
    }
