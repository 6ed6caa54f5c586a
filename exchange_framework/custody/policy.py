"""The custody policy engine: the gate between a built withdrawal transaction and any signer.

The kernel builds an unsigned transaction through the chain adapter, decodes it again through the same adapter
(``ChainAdapter.decode``), and submits the withdrawal, the unsigned transaction and the decoded one here. The engine
checks what the *decoded* transaction would do: that it is the withdrawal asked for, the chain id, the fee cap, the
source wallet and its tier, the destination whitelist, then the first matching rule (allow, block, or k approvals
from a named group) and the velocity limits. Only :meth:`PolicyEngine.release` hands out the digests to sign, and
only for an approved request, once. Every decision and refusal is written to the audit log before state changes;
the state is persisted after every change (SQLite: :mod:`exchange_framework.custody.policy_state`). The time comes from
the injected clock, read once per call.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, NoReturn

import msgspec

from exchange_framework.audit import AuditLog, Clock
from exchange_framework.custody.policy_state import PolicyStore, StateError
from exchange_framework.custody.rules import DestinationMatch, PolicyConfig, RuleAction, Tier
from exchange_framework.custody.velocity import VelocityEvent, breached_limits, prune
from exchange_framework.custody.whitelist import (
    DEFAULT_CHANGE_TTL_NS,
    PendingChange,
    Whitelist,
    WhitelistApprovers,
    WhitelistChange,
    WhitelistOp,
    WhitelistState,
)
from exchange_framework.interfaces import (
    DecodedTransaction,
    KeyScheme,
    SigningRequest,
    UnsignedTransaction,
    WithdrawalRequest,
)

__all__ = [
    "Approval",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyError",
    "RequestStatus",
    "SigningApproval",
    "WithdrawalRecord",
]


class PolicyError(Exception):
    """A policy operation was refused (the refusal is audited) or the engine cannot work; nothing was released."""


class RequestStatus(StrEnum):
    """Where a withdrawal stands in the policy engine."""

    PENDING = "pending"  # waiting for approvals
    APPROVED = "approved"  # may be released to the signer (within the release window)
    BLOCKED = "blocked"  # refused by a check or a rule
    DENIED = "denied"  # vetoed by an approver
    RELEASED = "released"  # its digests went to the signer
    EXPIRED = "expired"  # approved but not released in time


_FINAL = frozenset({RequestStatus.BLOCKED, RequestStatus.DENIED, RequestStatus.RELEASED, RequestStatus.EXPIRED})


class Approval(msgspec.Struct, frozen=True):
    """One approver's approval of a withdrawal, and when it was given."""

    approver: str
    ts_ns: int


class WithdrawalRecord(msgspec.Struct, frozen=True):
    """Everything the engine keeps about one request (persisted; never handed out with its digests)."""

    request_id: str
    withdrawal: WithdrawalRequest
    unsigned: UnsignedTransaction
    decoded: DecodedTransaction
    requester: str
    submitted_ns: int
    status: RequestStatus
    tier: Tier | None = None
    rule: str | None = None
    required: int = 0
    group: str | None = None
    approvals: tuple[Approval, ...] = ()
    denied_by: str | None = None
    reasons: tuple[str, ...] = ()
    decided_ns: int = 0


class PolicyDecision(msgspec.Struct, frozen=True):
    """What the engine says about a request: its status, why, the approvals it has and needs, and what the
    transaction does (the decoded transaction an approver reviews; never the digests)."""

    request_id: str
    withdrawal_id: int
    status: RequestStatus
    rule: str | None
    reasons: tuple[str, ...]
    approvals_required: int
    approvals: tuple[str, ...]  # approvers whose approval counts now
    group: str | None
    decided_ns: int
    account: int
    requester: str
    submitted_ns: int
    tier: Tier | None
    decoded: DecodedTransaction


class SigningApproval(msgspec.Struct, frozen=True):
    """An approved withdrawal released to the signer: the only value that carries the digests to sign."""

    request_id: str
    withdrawal_id: int
    chain: str
    key_id: str
    digests: tuple[bytes, ...]
    unsigned: UnsignedTransaction
    decoded: DecodedTransaction
    rule: str
    approvers: tuple[str, ...]
    released_ns: int

    def signing_requests(self, scheme: KeyScheme | None = None) -> list[SigningRequest]:
        """Return one :class:`SigningRequest` per digest (``request_id/index``), for a custody signer."""
        return [
            SigningRequest(
                request_id=f"{self.request_id}/{i}", key_id=self.key_id, chain=self.chain, payload=d, scheme=scheme
            )
            for i, d in enumerate(self.digests)
        ]


class PolicyEngine:
    """Checks withdrawals against the custody policy, collects approvals, and releases approved ones to signers.

    ``state_path`` is the SQLite file the state is kept in (None keeps it in memory: tests only); ``change_ttl_ns`` is
    how long a whitelist change may collect signatures. Every public
    method is safe to call from several threads. If the audit log or the state file cannot be written, the call
    raises and nothing is decided; a failed save also stops the engine (restart it to reload the saved state).
    """

    def __init__(
        self,
        config: PolicyConfig,
        *,
        whitelist_approvers: WhitelistApprovers,
        audit: AuditLog,
        clock: Clock,
        state_path: str | os.PathLike[str] | None = None,
        fsync: bool = True,
        change_ttl_ns: int = DEFAULT_CHANGE_TTL_NS,
    ) -> None:
        problems = config.problems()
        if problems:
            raise PolicyError("invalid custody policy:\n" + "\n".join(map(str, problems)))
        self.config = config
        self._audit = audit
        self._clock = clock
        self._lock = threading.RLock()
        self._failed: str | None = None
        self._store = PolicyStore(state_path, fsync=fsync)
        try:
            self._open = self._store.open_requests()  # pending and approved requests; decided ones stay in the store
            self._velocity = self._store.velocity()
            self.whitelist = Whitelist(
                whitelist_approvers,
                audit,
                state=self._store.whitelist(),
                on_change=self._whitelist_changed,
                lock=self._lock,
                change_ttl_ns=change_ttl_ns,
            )
            if self.whitelist.discrepancies:
                # Recorded, and the whitelist is the one the signed changes give: nothing unsigned is usable.
                self._audit.append(
                    actor="custody",
                    action="custody.whitelist.state_discrepancy",
                    target=str(state_path),
                    details={"problems": self.whitelist.discrepancies},
                    ts_ns=self._clock(),
                )
        except BaseException:
            self._store.close()
            raise

    # -- withdrawals ---------------------------------------------------------------------------------------------

    def submit(
        self,
        *,
        withdrawal: WithdrawalRequest,
        unsigned: UnsignedTransaction,
        decoded: DecodedTransaction,
        requester: str,
        request_id: str | None = None,
    ) -> PolicyDecision:
        """Check a withdrawal's decoded transaction and decide: approved, blocked, or pending approvals.

        ``decoded`` must come from the chain adapter decoding ``unsigned.payload``. Submitting the same request id
        again with the same transaction returns the current decision; with another transaction it is refused.
        """
        with self._lock:
            self._check_running()
            now = self._clock()
            rid = request_id if request_id is not None else f"w{withdrawal.withdrawal_id}"
            existing = self._record(rid)
            if existing is not None:
                if existing.withdrawal == withdrawal and existing.unsigned == unsigned:
                    return self._decision(existing, now)
                self._refuse(requester, "custody.withdrawal.submit_refused", rid, f"request {rid} exists already", now)
            record = WithdrawalRecord(
                request_id=rid,
                withdrawal=withdrawal,
                unsigned=unsigned,
                decoded=decoded,
                requester=requester,
                submitted_ns=now,
                status=RequestStatus.PENDING,
            )
            record = self._evaluate(record, now)
            self._audit.append(
                actor=requester,
                action="custody.withdrawal.submit",
                target=rid,
                details={**_describe(record), **_outcome(record)},
                ts_ns=now,
            )
            self._commit(record, now)
            return self._decision(record, now)

    def approve(self, request_id: str, *, approver: str) -> PolicyDecision:
        """Record ``approver``'s approval; once enough distinct approvals count, re-check and approve.

        Refused (audited, :class:`PolicyError`): an unknown or decided request, an approver outside the rule's
        group, the requester, or an approver whose earlier approval still counts. An expired approval may be renewed.
        """
        with self._lock:
            self._check_running()
            now = self._clock()
            record = self._record(request_id)
            action = "custody.withdrawal.approve_refused"
            if record is None:
                self._refuse(approver, action, request_id, f"no request {request_id}", now)
            if record.status is not RequestStatus.PENDING:
                self._refuse(approver, action, request_id, f"request {request_id} is {record.status.value}", now)
            members = self.config.groups.get(record.group or "", frozenset())
            if approver not in members:
                self._refuse(approver, action, request_id, f"{approver} is not in approver group {record.group}", now)
            if approver == record.requester:
                self._refuse(approver, action, request_id, "the requester cannot approve their own request", now)
            if any(a.approver == approver for a in self._counting(record, now)):
                self._refuse(approver, action, request_id, f"{approver} has already approved {request_id}", now)
            approvals = (*(a for a in record.approvals if a.approver != approver), Approval(approver, now))
            record = msgspec.structs.replace(record, approvals=approvals)
            if len(self._counting(record, now)) >= record.required:
                record = self._evaluate(record, now)
            self._audit.append(
                actor=approver,
                action="custody.withdrawal.approve",
                target=request_id,
                details=_outcome(record) | {"approvals": [a.approver for a in self._counting(record, now)]},
                ts_ns=now,
            )
            self._commit(record, now)
            return self._decision(record, now)

    def deny(self, request_id: str, *, approver: str, reason: str) -> PolicyDecision:
        """Veto a pending or approved (not yet released) request; one deny is final.

        Allowed for the requester and for members of the rule's group (of any group when the rule needed none).
        """
        with self._lock:
            self._check_running()
            now = self._clock()
            record = self._record(request_id)
            action = "custody.withdrawal.deny_refused"
            if record is None:
                self._refuse(approver, action, request_id, f"no request {request_id}", now)
            if record.status not in (RequestStatus.PENDING, RequestStatus.APPROVED):
                self._refuse(approver, action, request_id, f"request {request_id} is {record.status.value}", now)
            if record.group is not None:
                allowed = set(self.config.groups.get(record.group, frozenset()))
            else:
                allowed = {m for members in self.config.groups.values() for m in members}
            if approver not in allowed | {record.requester}:
                self._refuse(approver, action, request_id, f"{approver} may not deny {request_id}", now)
            record = msgspec.structs.replace(
                record,
                status=RequestStatus.DENIED,
                denied_by=approver,
                reasons=(*record.reasons, f"denied by {approver}: {reason}"),
                decided_ns=now,
            )
            self._audit.append(
                actor=approver,
                action="custody.withdrawal.deny",
                target=request_id,
                details=_outcome(record) | {"reason": reason},
                ts_ns=now,
            )
            self._commit(record, now)
            return self._decision(record, now)

    def release(self, request_id: str, *, actor: str = "custody") -> SigningApproval:
        """Hand an approved request's digests to the signer, once, within the release window.

        Everything that can change with time is checked again (chain id, wallet, and the whitelist if the rule that
        approved it needs a whitelisted destination; a rule removed from the configuration blocks). Refused (audited,
        :class:`PolicyError`) for any request that is not approved; an approval older than the release window
        expires; a failed re-check blocks the request.
        """
        with self._lock:
            self._check_running()
            now = self._clock()
            record = self._record(request_id)
            action = "custody.withdrawal.release_refused"
            if record is None:
                self._refuse(actor, action, request_id, f"no request {request_id}", now)
            if record.status is not RequestStatus.APPROVED:
                self._refuse(actor, action, request_id, f"request {request_id} is {record.status.value}", now)
            if now - record.decided_ns > self.config.release_ttl_ns:
                expired = msgspec.structs.replace(
                    record,
                    status=RequestStatus.EXPIRED,
                    reasons=(*record.reasons, "approved but not released within the release window"),
                )
                self._audit.append(
                    actor=actor,
                    action="custody.withdrawal.expired",
                    target=request_id,
                    details=_outcome(expired),
                    ts_ns=now,
                )
                self._commit(expired, now)
                raise PolicyError(f"request {request_id} expired: approved too long ago; submit it again")
            problems = self._release_problems(record, now)
            if problems:
                blocked = msgspec.structs.replace(
                    record, status=RequestStatus.BLOCKED, reasons=tuple(problems), decided_ns=now
                )
                self._audit.append(
                    actor=actor,
                    action="custody.withdrawal.release_blocked",
                    target=request_id,
                    details=_outcome(blocked),
                    ts_ns=now,
                )
                self._commit(blocked, now)
                raise PolicyError(f"request {request_id} blocked at release: " + "; ".join(problems))
            approvers = tuple(a.approver for a in self._counting(record, record.decided_ns))
            released = msgspec.structs.replace(record, status=RequestStatus.RELEASED)
            self._audit.append(
                actor=actor,
                action="custody.withdrawal.release",
                target=request_id,
                details={
                    "key_id": record.unsigned.key_id,
                    "digests_sha256": [hashlib.sha256(d).hexdigest() for d in record.unsigned.digests],
                    "rule": record.rule,
                    "approvers": list(approvers),
                },
                ts_ns=now,
            )
            self._commit(released, now)
            assert record.rule is not None  # an approved request always matched a rule
            return SigningApproval(
                request_id=request_id,
                withdrawal_id=record.withdrawal.withdrawal_id,
                chain=record.unsigned.chain,
                key_id=record.unsigned.key_id,
                digests=record.unsigned.digests,
                unsigned=record.unsigned,
                decoded=record.decoded,
                rule=record.rule,
                approvers=approvers,
                released_ns=now,
            )

    def status(self, request_id: str) -> PolicyDecision:
        """Return the current decision on a request; raise :class:`PolicyError` if unknown."""
        with self._lock:
            record = self._record(request_id)
            if record is None:
                raise PolicyError(f"no request {request_id}")
            return self._decision(record, self._clock())

    def requests(self, status: RequestStatus | None = None) -> list[PolicyDecision]:
        """Return the decisions on every request (or those with ``status``), oldest first."""
        with self._lock:
            now = self._clock()
            try:
                records = self._store.requests(None if status is None else status.value)
            except StateError as exc:
                raise PolicyError(str(exc)) from exc
            return [self._decision(r, now) for r in records]

    # -- whitelist (the clock read here, the quorum kept by Whitelist) ------------------------------------------

    def propose_whitelist_change(
        self,
        *,
        op: WhitelistOp | str,
        chain: str,
        address: str,
        proposer: str,
        asset: str = "",
        label: str = "",
        cooling_off_ns: int = 0,
        ttl_ns: int | None = None,
    ) -> WhitelistChange:
        """Propose adding or removing a whitelist address; approvers sign the returned change's ``message()``."""
        with self._lock:
            self._check_running()
            if self.config.network(chain) is None:
                now = self._clock()
                self._refuse(
                    proposer, "custody.whitelist.propose_refused", f"{chain}:{address}", f"no network {chain!r}", now
                )
            return self.whitelist.propose(
                op=op,
                chain=chain,
                address=address,
                proposer=proposer,
                now_ns=self._clock(),
                asset=asset,
                label=label,
                cooling_off_ns=cooling_off_ns,
                ttl_ns=ttl_ns,
            )

    def approve_whitelist_change(self, change_id: str, *, approver: str, signature: bytes) -> PendingChange:
        """Add an approver's Ed25519 signature to a whitelist change; it applies at quorum."""
        with self._lock:
            self._check_running()
            return self.whitelist.approve(change_id, approver, signature, now_ns=self._clock())

    def cancel_whitelist_change(self, change_id: str, *, actor: str, reason: str = "") -> None:
        """Withdraw a pending whitelist change (audited)."""
        with self._lock:
            self._check_running()
            self.whitelist.cancel(change_id, actor, now_ns=self._clock(), reason=reason)

    def pending_whitelist_changes(self) -> list[PendingChange]:
        """Return the whitelist changes still collecting signatures now."""
        with self._lock:
            return self.whitelist.pending(self._clock())

    def close(self) -> None:
        """Release the state file's lock."""
        with self._lock:
            self._store.close()

    # -- internals -----------------------------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._failed is not None:
            raise PolicyError(f"the custody policy engine stopped: {self._failed}; restart it")

    def _refuse(self, actor: str, action: str, target: str, reason: str, now: int) -> NoReturn:
        self._audit.append(actor=actor, action=action, target=target, details={"reason": reason}, ts_ns=now)
        raise PolicyError(reason)

    def _counting(self, record: WithdrawalRecord, now: int) -> list[Approval]:
        members = self.config.groups.get(record.group or "", frozenset())
        return [
            a
            for a in record.approvals
            if a.approver in members
            and a.approver != record.requester
            and a.ts_ns <= now
            and now - a.ts_ns < self.config.approval_ttl_ns
        ]

    def _static_problems(self, record: WithdrawalRecord, now: int) -> tuple[list[str], Tier | None]:
        """Check the decoded transaction against the request, the network, the wallets and the whitelist."""
        w, d, u = record.withdrawal, record.decoded, record.unsigned
        problems = []
        mismatches = [
            f"{name}: asked {asked!r}, transaction has {got!r}"
            for name, asked, got in (
                ("chain", w.chain, d.chain),
                ("asset", w.asset, d.asset),
                ("amount", w.amount, d.amount),
                ("destination", w.address, d.destination),
            )
            if asked != got
        ]
        if u.chain != d.chain:
            mismatches.append(f"chain: unsigned transaction is for {u.chain!r}, decoded one for {d.chain!r}")
        if mismatches:
            problems.append("the decoded transaction does not match the withdrawal: " + "; ".join(mismatches))
        if type(d.amount) is not int or d.amount <= 0:
            problems.append(f"amount {d.amount!r} must be a positive integer")
        if type(d.fee) is not int or d.fee < 0:
            problems.append(f"fee {d.fee!r} must be a non-negative integer")
        network = self.config.network(d.chain)
        if network is None:
            problems.append(f"no network {d.chain!r} is configured")
        else:
            if d.chain_id != network.chain_id:
                problems.append(f"chain id {d.chain_id!r} is not the configured {network.chain_id!r} of {d.chain}")
            if network.max_fee is not None and isinstance(d.fee, int) and d.fee > network.max_fee:
                problems.append(f"fee {d.fee} is above the cap of {network.max_fee} for {d.chain}")
        wallet = self.config.wallet(d.chain, d.source)
        tier = None
        if wallet is None:
            problems.append(f"source {d.source} is not a custody wallet on {d.chain}")
        else:
            tier = wallet.tier
            if wallet.key_id is not None and wallet.key_id != u.key_id:
                problems.append(f"key {u.key_id!r} does not belong to wallet {d.source} (its key is {wallet.key_id!r})")
        if not u.digests:
            problems.append("the unsigned transaction has nothing to sign")
        return problems, tier

    def _unlisted(self, decoded: DecodedTransaction, now: int) -> str | None:
        """Return why ``decoded``'s destination is not usable from the whitelist at ``now``, or None if it is."""
        d = decoded
        if self.whitelist.allows(d.chain, d.asset, d.destination, now):
            return None
        entry = self.whitelist.lookup(d.chain, d.asset, d.destination)
        if entry is None:
            return f"destination {d.destination} is not whitelisted for {d.asset} on {d.chain}"
        return f"destination {d.destination} is whitelisted but cooling off until {entry.usable_from_ns} ns"

    def _release_problems(self, record: WithdrawalRecord, now: int) -> list[str]:
        """What forbids releasing an approved record now: the static checks, and the rule's destination match."""
        problems, _tier = self._static_problems(record, now)
        rule = self.config.rule(record.rule or "")
        unlisted = self._unlisted(record.decoded, now)
        if rule is None:
            problems.append(f"rule {record.rule!r} that approved it is no longer configured")
        elif rule.destination is DestinationMatch.WHITELISTED and unlisted is not None:
            problems.append(unlisted)
        return problems

    def _evaluate(self, record: WithdrawalRecord, now: int) -> WithdrawalRecord:
        """Decide a pending record at ``now``: blocked, approved, or still pending with the rule's requirement."""
        problems, tier = self._static_problems(record, now)
        if problems or tier is None:
            return _block(record, problems, now, tier=tier)
        d = record.decoded
        unlisted = self._unlisted(d, now)
        rule = self.config.first_match(
            chain=d.chain, asset=d.asset, tier=tier, amount=d.amount, whitelisted=unlisted is None
        )
        if rule is None:
            reasons = [] if unlisted is None else [unlisted]
            return _block(record, [*reasons, "no policy rule matches this withdrawal"], now, tier=tier)
        record = msgspec.structs.replace(record, tier=tier, rule=rule.name, required=rule.approvals, group=rule.group)
        if rule.action is RuleAction.BLOCK:
            return _block(record, [f"rule {rule.name!r} blocks it"], now, tier=tier)
        if rule.action is RuleAction.APPROVE and len(self._counting(record, now)) < rule.approvals:
            return msgspec.structs.replace(record, status=RequestStatus.PENDING, reasons=())
        candidate = VelocityEvent(
            ts_ns=self._velocity_time(now),
            request_id=record.request_id,
            chain=d.chain,
            asset=d.asset,
            account=record.withdrawal.account,
            tier=tier,
            amount=d.amount,
        )
        breaches = breached_limits(self._velocity, self.config.limits, candidate)
        if breaches:
            return _block(record, breaches, now, tier=tier)
        return msgspec.structs.replace(record, status=RequestStatus.APPROVED, reasons=(), decided_ns=now)

    def _velocity_time(self, now: int) -> int:
        # A clock stepping back must not place an event before others: windows are checked at event times.
        return max([now, *(e.ts_ns for e in self._velocity)])

    def _record(self, request_id: str) -> WithdrawalRecord | None:
        record = self._open.get(request_id)
        if record is not None:
            return record
        try:
            return self._store.request(request_id)
        except StateError as exc:
            raise PolicyError(str(exc)) from exc

    def _commit(self, record: WithdrawalRecord, now: int) -> None:
        previous = self._open.get(record.request_id)
        velocity = list(self._velocity)
        newly_approved = record.status is RequestStatus.APPROVED and (
            previous is None or previous.status is not RequestStatus.APPROVED
        )
        if newly_approved:
            assert record.tier is not None  # an approved request passed the wallet check
            velocity.append(
                VelocityEvent(
                    ts_ns=self._velocity_time(now),
                    request_id=record.request_id,
                    chain=record.decoded.chain,
                    asset=record.decoded.asset,
                    account=record.withdrawal.account,
                    tier=record.tier,
                    amount=record.decoded.amount,
                )
            )
        velocity = prune(velocity, self.config.limits, now)
        self._save(record=record, velocity=velocity)
        self._velocity = velocity
        if record.status in _FINAL:
            self._open.pop(record.request_id, None)
        else:
            self._open[record.request_id] = record

    def _whitelist_changed(self, whitelist: WhitelistState) -> None:
        self._check_running()
        self._save(whitelist=whitelist)

    def _save(
        self,
        *,
        record: WithdrawalRecord | None = None,
        whitelist: WhitelistState | None = None,
        velocity: list[VelocityEvent] | None = None,
    ) -> None:
        try:
            self._store.save(record=record, whitelist=whitelist, velocity=velocity)
        except Exception as exc:
            self._failed = str(exc)
            raise PolicyError(f"the custody policy state could not be saved: {exc}") from exc

    def _decision(self, record: WithdrawalRecord, now: int) -> PolicyDecision:
        if record.status is RequestStatus.PENDING:
            counting = self._counting(record, now)
        elif record.status in (RequestStatus.APPROVED, RequestStatus.RELEASED, RequestStatus.EXPIRED):
            counting = self._counting(record, record.decided_ns)  # the approvals that decided it
        else:
            counting = []
        return PolicyDecision(
            request_id=record.request_id,
            withdrawal_id=record.withdrawal.withdrawal_id,
            status=record.status,
            rule=record.rule,
            reasons=record.reasons,
            approvals_required=record.required,
            approvals=tuple(a.approver for a in counting),
            group=record.group,
            decided_ns=record.decided_ns,
            account=record.withdrawal.account,
            requester=record.requester,
            submitted_ns=record.submitted_ns,
            tier=record.tier,
            decoded=record.decoded,
        )


def _block(record: WithdrawalRecord, reasons: Iterable[str], now: int, *, tier: Tier | None) -> WithdrawalRecord:
    return msgspec.structs.replace(
        record, status=RequestStatus.BLOCKED, reasons=tuple(reasons), decided_ns=now, tier=tier
    )


def _describe(record: WithdrawalRecord) -> dict[str, Any]:
    d, w = record.decoded, record.withdrawal
    return {
        "withdrawal_id": w.withdrawal_id,
        "account": w.account,
        "asked": {"chain": w.chain, "asset": w.asset, "amount": w.amount, "address": w.address},
        "decoded": {
            "chain": d.chain,
            "chain_id": d.chain_id,
            "asset": d.asset,
            "source": d.source,
            "destination": d.destination,
            "amount": d.amount,
            "fee": d.fee,
            "fee_asset": d.fee_asset,
            "memo": d.memo,
        },
        "key_id": record.unsigned.key_id,
        "digests_sha256": [hashlib.sha256(x).hexdigest() for x in record.unsigned.digests],
    }


def _outcome(record: WithdrawalRecord) -> dict[str, Any]:
    return {
        "status": record.status.value,
        "rule": record.rule,
        "reasons": list(record.reasons),
        "tier": record.tier.value if record.tier is not None else None,
        "approvals_required": record.required,
        "group": record.group,
    }
