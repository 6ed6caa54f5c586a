"""The withdrawal address whitelist, changed only by a quorum of Ed25519 signatures from designated approvers.

A change (add or remove one address) is proposed, then each approver signs :meth:`WhitelistChange.message` -- a
canonical, domain-separated description of the change that includes its id and expiry -- with their own key,
offline or in the admin console. The change takes effect when ``quorum`` distinct designated approvers have signed
before it expires. An added address can carry a cooling-off period before withdrawals may use it. Every proposal,
signature (accepted or refused) and applied change is written to the audit log before the whitelist changes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from enum import StrEnum

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from exchange_framework.audit import AuditLog, canonical_json

__all__ = [
    "CHAIN_WIDE",
    "DEFAULT_CHANGE_TTL_NS",
    "MESSAGE_PREFIX",
    "ChangeStatus",
    "PendingChange",
    "Whitelist",
    "WhitelistApprovers",
    "WhitelistChange",
    "WhitelistEntry",
    "WhitelistError",
    "WhitelistOp",
    "WhitelistState",
]

CHAIN_WIDE = ""
"""The ``asset`` of an entry that whitelists an address for every asset of its chain."""
MESSAGE_PREFIX = b"exchange-framework whitelist change v1\n"
"""Domain separation: what every signed whitelist message starts with, so no other signature can be replayed."""
DEFAULT_CHANGE_TTL_NS = 72 * 3600 * 10**9
"""How long a proposed change may collect signatures unless configured otherwise: three days."""


class WhitelistError(Exception):
    """A whitelist change or signature was refused; nothing changed (the refusal is audited)."""


class WhitelistOp(StrEnum):
    """What a change does."""

    ADD = "add"
    REMOVE = "remove"


class ChangeStatus(StrEnum):
    """Where a proposed change stands."""

    PENDING = "pending"
    APPLIED = "applied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class WhitelistEntry(msgspec.Struct, frozen=True):
    """A destination withdrawals may pay: on ``chain``, for ``asset`` (or every asset: :data:`CHAIN_WIDE`).

    Usable from ``usable_from_ns`` (the end of its cooling-off period). ``change_id`` is the change that added it.
    """

    chain: str
    asset: str
    address: str
    label: str
    usable_from_ns: int
    change_id: str

    def usable(self, now_ns: int) -> bool:
        """Whether withdrawals may pay this address at ``now_ns``."""
        return now_ns >= self.usable_from_ns


class WhitelistChange(msgspec.Struct, frozen=True):
    """A proposed change, exactly as approvers sign it."""

    change_id: str
    op: WhitelistOp
    chain: str
    asset: str
    address: str
    label: str
    cooling_off_ns: int
    proposed_by: str
    proposed_ns: int
    expires_ns: int

    def message(self) -> bytes:
        """Return the bytes each approver signs: :data:`MESSAGE_PREFIX` and the canonical JSON of every field."""
        return MESSAGE_PREFIX + canonical_json(msgspec.to_builtins(self))

    def describe(self) -> str:
        """Say what the change does, for an approver to read before signing."""
        scope = "every asset" if self.asset == CHAIN_WIDE else self.asset
        text = f"{self.op.value} {self.chain} address {self.address} for {scope}"
        if self.op is WhitelistOp.ADD and self.cooling_off_ns:
            text += f", usable {self.cooling_off_ns // 10**9} s after approval"
        return text


class PendingChange(msgspec.Struct, frozen=True):
    """A change and the valid signatures collected for it, by approver name."""

    change: WhitelistChange
    signatures: dict[str, bytes]
    status: ChangeStatus = ChangeStatus.PENDING
    applied_ns: int = 0  # when the quorum was reached (APPLIED only)


class WhitelistState(msgspec.Struct):
    """What the whitelist persists: entries, changes (pending and decided) and the next change number."""

    entries: list[WhitelistEntry] = []
    changes: list[PendingChange] = []
    next_change: int = 1


class WhitelistApprovers:
    """The designated approvers' Ed25519 public keys (32 raw bytes each, by name) and the quorum to reach."""

    def __init__(self, keys: Mapping[str, bytes], quorum: int = 3) -> None:
        problems = []
        if not keys:
            problems.append("no whitelist approvers are designated")
        if not 1 <= quorum <= len(keys):
            problems.append(f"quorum {quorum} must be between 1 and the number of approvers ({len(keys)})")
        self._keys: dict[str, Ed25519PublicKey] = {}
        seen: dict[bytes, str] = {}
        for name, raw in keys.items():
            if not name:
                problems.append("an approver needs a name")
            if len(raw) != 32:
                problems.append(f"approver {name!r}: an Ed25519 public key is 32 bytes, not {len(raw)}")
                continue
            if raw in seen:
                problems.append(f"approvers {seen[raw]!r} and {name!r} have the same key: each needs their own")
            seen[raw] = name
            try:
                self._keys[name] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError as exc:
                problems.append(f"approver {name!r}: not an Ed25519 public key: {exc}")
        if problems:
            raise WhitelistError("; ".join(problems))
        self.quorum = quorum

    @property
    def names(self) -> frozenset[str]:
        """The designated approvers."""
        return frozenset(self._keys)

    def verify(self, name: str, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is ``name``'s valid Ed25519 signature of ``message``."""
        key = self._keys.get(name)
        if key is None or len(signature) != 64:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Whitelist:
    """The whitelist and its pending changes; every method takes the time as ``now_ns`` (never reads a clock).

    ``on_change`` is called with the new :class:`WhitelistState` after every change, after it was audited (the
    policy engine persists it there). Methods are safe to call from several threads; ``lock`` shares the caller's
    lock (the policy engine's), so the whitelist and the engine never wait on each other.
    """

    def __init__(
        self,
        approvers: WhitelistApprovers,
        audit: AuditLog,
        *,
        state: WhitelistState | None = None,
        on_change: Callable[[WhitelistState], None] | None = None,
        change_ttl_ns: int = DEFAULT_CHANGE_TTL_NS,
        lock: threading.RLock | None = None,
    ) -> None:
        self.approvers = approvers
        self._audit = audit
        self._state = state if state is not None else WhitelistState()
        self._on_change = on_change
        self._change_ttl_ns = change_ttl_ns
        self._lock = lock if lock is not None else threading.RLock()
        self.discrepancies: list[str] = self._rebuild()
        """What loading found wrong with the saved state (entries not backed by a signed quorum are dropped)."""

    # -- reading -------------------------------------------------------------------------------------------------

    def entries(self) -> list[WhitelistEntry]:
        """Return every entry, usable or still cooling off."""
        with self._lock:
            return list(self._state.entries)

    def lookup(self, chain: str, asset: str, address: str) -> WhitelistEntry | None:
        """Return the entry allowing ``asset`` to ``address`` on ``chain`` (its own, else chain-wide), if any."""
        with self._lock:
            found = None
            for entry in self._state.entries:
                if entry.chain == chain and entry.address == address:
                    if entry.asset == asset:
                        return entry
                    if entry.asset == CHAIN_WIDE:
                        found = entry
            return found

    def allows(self, chain: str, asset: str, address: str, now_ns: int) -> bool:
        """Whether a withdrawal of ``asset`` on ``chain`` may pay ``address`` at ``now_ns``."""
        with self._lock:
            return any(
                e.chain == chain and e.address == address and e.asset in (asset, CHAIN_WIDE) and e.usable(now_ns)
                for e in self._state.entries
            )

    def change(self, change_id: str) -> PendingChange:
        """Return a proposed change and its signatures; raise :class:`WhitelistError` if unknown."""
        with self._lock:
            for pending in self._state.changes:
                if pending.change.change_id == change_id:
                    return pending
        raise WhitelistError(f"no whitelist change {change_id!r}")

    def pending(self, now_ns: int) -> list[PendingChange]:
        """Return the changes still collecting signatures at ``now_ns``."""
        with self._lock:
            return [
                p for p in self._state.changes if p.status is ChangeStatus.PENDING and now_ns <= p.change.expires_ns
            ]

    def state(self) -> WhitelistState:
        """Return a copy of the persisted state."""
        with self._lock:
            return WhitelistState(list(self._state.entries), list(self._state.changes), self._state.next_change)

    # -- changing ------------------------------------------------------------------------------------------------

    def propose(
        self,
        *,
        op: WhitelistOp | str,
        chain: str,
        address: str,
        proposer: str,
        now_ns: int,
        asset: str = CHAIN_WIDE,
        label: str = "",
        cooling_off_ns: int = 0,
        ttl_ns: int | None = None,
    ) -> WhitelistChange:
        """Propose adding or removing an address; return the change approvers must sign (its :meth:`message`)."""
        with self._lock:
            problems = []
            requested = str(op)
            try:
                op = WhitelistOp(op)
            except ValueError:
                problems.append(f"op {op!r} must be 'add' or 'remove'")
                op = WhitelistOp.ADD  # only to finish checking the rest; the proposal is refused
            if not chain or not address:
                problems.append("a whitelist change needs a chain and an address")
            if address != address.strip():
                problems.append(f"address {address!r} has leading or trailing spaces")
            if type(cooling_off_ns) is not int or cooling_off_ns < 0:
                problems.append(f"cooling_off_ns = {cooling_off_ns!r}: must be a non-negative integer")
            ttl = self._change_ttl_ns if ttl_ns is None else ttl_ns
            if type(ttl) is not int or ttl <= 0:
                problems.append(f"ttl_ns = {ttl!r}: must be a positive integer")
            existing = self._exact(chain, asset, address)
            if op is WhitelistOp.ADD and existing is not None:
                problems.append(f"{chain} {address} is already whitelisted for {asset or 'every asset'}")
            if op is WhitelistOp.REMOVE and existing is None:
                problems.append(f"{chain} {address} is not whitelisted for {asset or 'every asset'}: nothing to remove")
            if op is WhitelistOp.REMOVE and cooling_off_ns:
                problems.append("a removal takes effect at once: leave cooling_off_ns at 0")
            if problems:
                self._audit.append(
                    actor=proposer,
                    action="custody.whitelist.propose_refused",
                    target=f"{chain}:{address}",
                    details={"op": requested, "asset": asset, "reasons": problems},
                    ts_ns=now_ns,
                )
                raise WhitelistError("; ".join(problems))
            change = WhitelistChange(
                change_id=f"wl-{self._state.next_change}",
                op=op,
                chain=chain,
                asset=asset,
                address=address,
                label=label,
                cooling_off_ns=cooling_off_ns,
                proposed_by=proposer,
                proposed_ns=now_ns,
                expires_ns=now_ns + ttl,
            )
            self._audit.append(
                actor=proposer,
                action="custody.whitelist.propose",
                target=f"{chain}:{address}",
                details={**msgspec.to_builtins(change), "message_sha256": _sha256(change.message())},
                ts_ns=now_ns,
            )
            self._state.changes.append(PendingChange(change, {}))
            self._state.next_change += 1
            self._changed()
            return change

    def approve(self, change_id: str, approver: str, signature: bytes, *, now_ns: int) -> PendingChange:
        """Add ``approver``'s signature of the change's :meth:`~WhitelistChange.message`; apply it at quorum.

        Refused (audited, then :class:`WhitelistError`): an unknown or decided change, an expired one, an approver
        who is not designated or has signed already, a signature that does not verify.
        """
        with self._lock:
            index, pending = self._find(change_id)
            change = pending.change if pending is not None else None
            reason = None
            if pending is None or change is None:
                reason = f"no whitelist change {change_id!r}"
            elif pending.status is not ChangeStatus.PENDING:
                reason = f"change {change_id} is {pending.status.value}, not pending"
            elif now_ns > change.expires_ns:
                reason = f"change {change_id} expired (signatures were due by {change.expires_ns} ns)"
            elif approver not in self.approvers.names:
                reason = f"{approver!r} is not a designated whitelist approver"
            elif approver in pending.signatures:
                reason = f"{approver} has already signed change {change_id}"
            elif not self.approvers.verify(approver, signature, change.message()):
                reason = f"the signature does not verify with {approver}'s key over change {change_id}"
            if reason is not None or pending is None or change is None:
                self._audit.append(
                    actor=approver,
                    action="custody.whitelist.approval_refused",
                    target=change_id,
                    details={"reason": str(reason), "signature": signature.hex()},
                    ts_ns=now_ns,
                )
                expired = change is not None and now_ns > change.expires_ns
                if pending is not None and pending.status is ChangeStatus.PENDING and expired:
                    self._state.changes[index] = msgspec.structs.replace(pending, status=ChangeStatus.EXPIRED)
                    self._changed()
                raise WhitelistError(str(reason))
            signatures = {**pending.signatures, approver: signature}
            quorum = len(signatures) >= self.approvers.quorum
            self._audit.append(
                actor=approver,
                action="custody.whitelist.approve",
                target=change_id,
                details={
                    "signature": signature.hex(),
                    "signatures": len(signatures),
                    "quorum": self.approvers.quorum,
                    "change": change.describe(),
                },
                ts_ns=now_ns,
            )
            updated = PendingChange(change, signatures)
            if quorum:
                updated = PendingChange(change, signatures, ChangeStatus.APPLIED, applied_ns=now_ns)
                self._audit.append(
                    actor="custody",
                    action="custody.whitelist.applied",
                    target=f"{change.chain}:{change.address}",
                    details={
                        "change_id": change_id,
                        "op": change.op.value,
                        "asset": change.asset,
                        "signers": sorted(signatures),
                        "usable_from_ns": now_ns + change.cooling_off_ns,
                    },
                    ts_ns=now_ns,
                )
                self._apply(change, now_ns)
            self._state.changes[index] = updated
            self._changed()
            return updated

    def cancel(self, change_id: str, actor: str, *, now_ns: int, reason: str = "") -> None:
        """Withdraw a pending change (audited)."""
        with self._lock:
            index, pending = self._find(change_id)
            if pending is None or pending.status is not ChangeStatus.PENDING:
                raise WhitelistError(f"no pending whitelist change {change_id!r}")
            self._audit.append(
                actor=actor,
                action="custody.whitelist.cancel",
                target=change_id,
                details={"reason": reason},
                ts_ns=now_ns,
            )
            self._state.changes[index] = msgspec.structs.replace(pending, status=ChangeStatus.CANCELLED)
            self._changed()

    # -- internals -----------------------------------------------------------------------------------------------

    def _rebuild(self) -> list[str]:
        """Derive the entries from the applied changes whose signatures verify; report what differs.

        The saved entries are never trusted on their own: an address written into the state file by hand, or a
        change whose signatures no longer verify (forged, or signed by an approver whose key was replaced), gives
        no usable entry. Approvers must sign such a change again.
        """
        problems = []
        numbered = []
        for pending in self._state.changes:
            number = pending.change.change_id.removeprefix("wl-")
            if not number.isdigit():
                problems.append(f"change {pending.change.change_id!r} has no valid id: ignored")
                continue
            numbered.append((int(number), pending))
        numbered.sort(key=lambda item: item[0])
        expected = list(range(1, len(numbered) + 1))
        if [n for n, _ in numbered] != expected:
            problems.append("the saved whitelist changes are not numbered 1, 2, 3, ...: some were removed")
        entries: dict[tuple[str, str, str], WhitelistEntry] = {}
        for _, pending in numbered:
            if pending.status is not ChangeStatus.APPLIED:
                continue
            change = pending.change
            valid = [n for n, sig in pending.signatures.items() if self.approvers.verify(n, sig, change.message())]
            if len(valid) < self.approvers.quorum:
                problems.append(
                    f"change {change.change_id} ({change.describe()}) has {len(valid)} valid signatures of the "
                    f"{self.approvers.quorum} required: not applied; approvers must sign it again"
                )
                continue
            key = (change.chain, change.asset, change.address)
            if change.op is WhitelistOp.ADD:
                entries[key] = WhitelistEntry(
                    change.chain,
                    change.asset,
                    change.address,
                    change.label,
                    pending.applied_ns + change.cooling_off_ns,
                    change.change_id,
                )
            else:
                entries.pop(key, None)
        rebuilt = sorted(entries.values(), key=lambda e: (e.chain, e.asset, e.address))
        saved = sorted(self._state.entries, key=lambda e: (e.chain, e.asset, e.address))
        if rebuilt != saved:
            extra = [f"{e.chain}:{e.address} ({e.asset or 'any asset'})" for e in saved if e not in rebuilt]
            if extra:
                problems.append("saved entries without a valid signed change were dropped: " + ", ".join(extra))
            if not extra:
                problems.append("saved entries differed from the signed changes: rebuilt from the changes")
        self._state.entries = rebuilt
        self._state.next_change = max(self._state.next_change, len(numbered) + 1)
        return problems

    def _exact(self, chain: str, asset: str, address: str) -> WhitelistEntry | None:
        for entry in self._state.entries:
            if (entry.chain, entry.asset, entry.address) == (chain, asset, address):
                return entry
        return None

    def _find(self, change_id: str) -> tuple[int, PendingChange | None]:
        for index, pending in enumerate(self._state.changes):
            if pending.change.change_id == change_id:
                return index, pending
        return -1, None

    def _apply(self, change: WhitelistChange, now_ns: int) -> None:
        key = (change.chain, change.asset, change.address)
        kept = [e for e in self._state.entries if (e.chain, e.asset, e.address) != key]
        if change.op is WhitelistOp.ADD:
            kept.append(
                WhitelistEntry(
                    chain=change.chain,
                    asset=change.asset,
                    address=change.address,
                    label=change.label,
                    usable_from_ns=now_ns + change.cooling_off_ns,
                    change_id=change.change_id,
                )
            )
        self._state.entries = kept

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.state())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
