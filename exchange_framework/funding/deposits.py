"""The deposit lifecycle: follow a chain, confirm, screen, credit exactly once, and show every step.

Each deposit moves through visible stages (:class:`~exchange_framework.funding.store.Stage`)::

    seen -> confirming (n of N) -> screening -> credited | held (for review) | rejected
                     \\-> orphaned (a reorg removed its block before the credit; it comes back if re-mined)

One :class:`DepositTracker` follows one chain adapter. :meth:`DepositTracker.poll` does one round: find reorgs
by walking the parent-hash chain back from the last processed block, scan new blocks for transfers to watched
addresses, then confirm, screen and credit what is deep enough. Credits are engine ``CreditFunds`` commands with
the deterministic reference ``dep:<chain>:<txid>:<index>`` and the custody account the coins arrived in
(:func:`deposit_custody`: ``omnibus:deposit:<chain>``, until a sweep moves them to the hot wallet), sent through
the ``submit`` callable; the store marks a credit as attempted before sending it, so after a crash the same
reference is sent again and the engine's duplicate-reference refusal is taken as "already credited". A credited
deposit whose block a reorg removes is never un-credited: an alert is recorded for an operator.

Screening calls ``screen`` (the kernel wires the ``screen_deposit`` hooks to it); a missing screener, an exception
or a non-decision holds the deposit (fail closed). If the adapter raises (node down, an answer that does not make
sense), the round stops, the tracker reports itself paused with the error, and the next poll resumes; every
write is a short transaction, so nothing is lost or done twice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec
import pluggy

from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.commands import Command, CreditFunds, custody_account
from exchange_framework.engine.events import Event, FundsCredited, FundsRejected
from exchange_framework.funding.store import (
    OPEN_STAGES,
    Deposit,
    DepositRow,
    DepositStore,
    Stage,
    add_alert,
    add_chain_alert,
    add_history,
    delete_headers_above,
    deposit_reference,
    insert_address,
    insert_header,
    prune_headers_below,
    save_row,
)
from exchange_framework.interfaces import (
    BlockHeader,
    ChainAdapter,
    Decision,
    DepositAddress,
    DepositRequest,
    Outcome,
    ScannedBlock,
    Transfer,
)
from exchange_framework.plugins import run_screening
from exchange_framework.types import RejectReason

__all__ = [
    "ALERT_CREDITED_REORGED",
    "ALERT_CREDITING_REORGED",
    "ALERT_DEEP_REORG",
    "ALERT_REINCLUDED",
    "DepositTracker",
    "PollResult",
    "Screener",
    "Submit",
    "TrackerStatus",
    "deposit_custody",
    "hook_screener",
]

Submit = Callable[[Command], Sequence[Event]]
"""Sequence one engine command and return the events it caused (``lambda c: shard.execute([c])``)."""

Screener = Callable[[DepositRequest], Decision | None]
"""Screen a deposit before its credit (the kernel's ``screen_deposit`` pipeline)."""


def hook_screener(pm: pluggy.PluginManager, config: ExchangeConfig) -> Screener:
    """Return a screener that runs every plugin's ``screen_deposit`` hook (strictest wins, none or an error: hold)."""

    def screen(request: DepositRequest) -> Decision:
        return run_screening(pm, "screen_deposit", required=True, config=config, request=request)

    return screen


def deposit_custody(adapter: ChainAdapter) -> str:
    """The custody account a chain's deposits arrive in: ``omnibus:<tier>:<chain>`` with the adapter's optional
    ``deposit_tier`` attribute ("deposit" unless deposits land in the hot wallet itself).

    Raise ``ValueError`` if the chain's name cannot name a custody account (lowercase letters, digits, ``._-``).
    """
    return custody_account(str(getattr(adapter, "deposit_tier", "deposit")), adapter.name)


ALERT_CREDITED_REORGED = "credited-deposit-reorged-out"
ALERT_CREDITING_REORGED = "deposit-reorged-out-while-crediting"
ALERT_REINCLUDED = "credited-deposit-reincluded"
ALERT_DEEP_REORG = "reorg-deeper-than-tracked-history"


@dataclass
class _Move:
    row: DepositRow
    stage: Stage
    confirmations: int
    note: str
    reasons: tuple[str, ...] | None = None
    newly_credited: bool = False


class NodeFault(Exception):
    """The adapter answered something that cannot be right (heights out of order, a malformed transfer)."""


class PollResult(msgspec.Struct, frozen=True):
    """What one :meth:`DepositTracker.poll` did."""

    height: int | None  # the highest block processed (None before the first)
    tip: int | None  # the node's tip as last seen
    new_blocks: int = 0
    reorged_blocks: int = 0
    credited: int = 0
    paused: bool = False
    error: str = ""


class TrackerStatus(msgspec.Struct, frozen=True):
    """The tracker's health for the admin console: where it is, and why it is paused if it is."""

    chain: str
    height: int | None
    tip: int | None
    paused: bool
    error: str
    error_since_ns: int | None
    last_poll_ns: int | None


class DepositTracker:
    """Follows one chain's deposits into the engine.

    ``required_confirmations`` defaults to the adapter's. ``start_height`` is where the first poll starts when the
    store has no history for this chain (default: the node's tip then). ``keep_headers`` bounds the parent-hash
    history kept for reorg detection; a reorg deeper than that raises an alert.
    """

    def __init__(
        self,
        adapter: ChainAdapter,
        store: DepositStore,
        *,
        submit: Submit,
        screen: Screener | None,
        required_confirmations: int | None = None,
        start_height: int | None = None,
        batch_blocks: int = 100,
        keep_headers: int = 1_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        required = adapter.required_confirmations if required_confirmations is None else required_confirmations
        if not isinstance(required, int) or required < 1:
            raise ValueError(f"required_confirmations must be a positive integer, got {required!r}")
        if keep_headers <= required:
            raise ValueError("keep_headers must exceed required_confirmations")
        self.adapter = adapter
        self.chain = adapter.name
        self.custody = deposit_custody(adapter)
        self.store = store
        self.submit = submit
        self.screen = screen
        self.required = required
        self.start_height = start_height
        self.batch_blocks = batch_blocks
        self.keep_headers = keep_headers
        self.clock = clock
        self._lock = threading.Lock()  # one poll at a time
        self._tip: int | None = None
        self._error = ""
        self._error_since: int | None = None
        self._last_poll: int | None = None
        self._resume_from: int | None = None  # after a reorg deeper than the kept headers

    # -- addresses -----------------------------------------------------------------------------------------------

    def deposit_address(self, account: int) -> DepositAddress:
        """Return ``account``'s deposit address on this chain, watching it from now on (idempotent)."""
        known = self.store.deposit_address(self.chain, account)
        if known is not None:
            return known
        start: BlockHeader | None = None
        if self.store.tip(self.chain) is None and self._resume_from is None:
            # Nothing scanned yet: the first scan would start at the node's tip of the first poll, which may come
            # after a payment to this address. Start no later than the tip now; without a node, no address (fail
            # closed). Without a configured start, the tip's header is recorded as the scan's starting point with
            # the address, so a restart before the first poll starts there too (nothing can pay an address in a
            # block mined before it was handed out).
            tip = self.adapter.tip_height()
            if not isinstance(tip, int) or isinstance(tip, bool) or tip < 0:
                raise NodeFault(f"tip height {tip!r} is not a block height")
            if self.start_height is None:
                start = self.adapter.block_header(tip)
                if not isinstance(start, BlockHeader) or start.height != tip:
                    self.start_height = tip  # the chain moved under us: this process starts there at least
                    start = None
            elif tip < self.start_height:
                self.start_height = tip
        address = self.adapter.deposit_address(account)
        if not isinstance(address, DepositAddress) or not self.adapter.validate_address(address.address):
            raise NodeFault(f"{self.chain} adapter derived an invalid deposit address {address!r}")
        with self.store.transaction() as db:
            if start is not None and self.store.tip(self.chain) is None:
                insert_header(db, self.chain, start)
            insert_address(db, self.chain, account, address)
        stored = self.store.deposit_address(self.chain, account)
        assert stored is not None
        return stored

    # -- status --------------------------------------------------------------------------------------------------

    def status(self) -> TrackerStatus:
        """Return where the tracker is and whether it is paused by a node fault."""
        tip = self.store.tip(self.chain)
        return TrackerStatus(
            chain=self.chain,
            height=tip.height if tip is not None else None,
            tip=self._tip,
            paused=bool(self._error),
            error=self._error,
            error_since_ns=self._error_since,
            last_poll_ns=self._last_poll,
        )

    # -- one round -----------------------------------------------------------------------------------------------

    def poll(self) -> PollResult:
        """Do one round (reorg check, scan, confirm, screen, credit); never raises for node or engine faults."""
        with self._lock:
            self._last_poll = self.clock()
            counts = {"new": 0, "reorged": 0, "credited": 0}
            try:
                self._round(counts)
            except Exception as exc:  # fail closed: stop here, report, resume at the next poll
                if not self._error:
                    self._error_since = self.clock()
                self._error = f"{type(exc).__name__}: {exc}"
            else:
                self._error, self._error_since = "", None
            tip = self.store.tip(self.chain)
            return PollResult(
                height=tip.height if tip is not None else None,
                tip=self._tip,
                new_blocks=counts["new"],
                reorged_blocks=counts["reorged"],
                credited=counts["credited"],
                paused=bool(self._error),
                error=self._error,
            )

    def run(self, stop: threading.Event, interval: float = 2.0) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set (for a background thread)."""
        while not stop.is_set():
            self.poll()
            stop.wait(interval)

    def _round(self, counts: dict[str, int]) -> None:
        tip = self.adapter.tip_height()
        if not isinstance(tip, int) or isinstance(tip, bool) or tip < 0:
            raise NodeFault(f"tip height {tip!r} is not a block height")
        self._tip = tip
        for _ in range(8):  # a reorg while scanning sends us back here; a chain that keeps changing waits a poll
            counts["reorged"] += self._follow_reorg()
            if self._scan_to(tip, counts):
                break
        else:
            raise NodeFault("the chain kept reorganising during the scan")
        self._evaluate(counts)

    # -- reorgs --------------------------------------------------------------------------------------------------

    def _follow_reorg(self) -> int:
        """Walk back from the last processed block to the last one still on the node's best chain; roll back."""
        ours = self.store.tip(self.chain)
        if ours is None:
            return 0
        lowest = self.store.lowest_height(self.chain)
        assert lowest is not None
        height = ours.height
        while height >= lowest:
            stored = self.store.header(self.chain, height)
            theirs = self.adapter.block_header(height)
            if theirs is not None and not isinstance(theirs, BlockHeader):
                raise NodeFault(f"block_header({height}) returned {theirs!r}")
            if stored is not None and theirs is not None and theirs.hash == stored.hash:
                break
            height -= 1
        if height == ours.height:
            return 0
        self._roll_back(height, deep=height < lowest)
        return ours.height - height

    def _roll_back(self, fork: int, *, deep: bool) -> None:
        now = self.clock()
        with self.store.transaction() as db:
            for row in self.store.rows(self.chain, above=fork):
                if row.stage is Stage.ORPHANED or row.reorged_after_credit:
                    continue
                row.updated_ns = now
                if row.stage is Stage.CREDITED:
                    row.reorged_after_credit = True
                    save_row(db, row)
                    add_alert(
                        db,
                        row,
                        ALERT_CREDITED_REORGED,
                        f"block {row.block_height} ({row.block_hash}) left the best chain after the deposit was "
                        f"credited under {deposit_reference(row.chain, row.txid, row.index)}; it was not "
                        "un-credited: check the chain and decide",
                    )
                    continue
                if row.credit_attempted:
                    add_alert(
                        db,
                        row,
                        ALERT_CREDITING_REORGED,
                        f"block {row.block_height} left the best chain while the credit was being sent; the engine "
                        "may hold the credit: check the reference",
                    )
                row.stage = Stage.ORPHANED
                row.credit_attempted = False
                save_row(db, row)
                add_history(db, row, 0, f"block {row.block_height} ({row.block_hash[:16]}) left the best chain")
            if deep:
                add_chain_alert(
                    db,
                    self.chain,
                    ALERT_DEEP_REORG,
                    f"the chain reorganised below the oldest kept header (height {fork + 1}); deposits from that "
                    "height on are re-scanned: check credits below it by hand",
                    now,
                )
                self._resume_from = fork + 1
            delete_headers_above(db, self.chain, fork)

    # -- scanning ------------------------------------------------------------------------------------------------

    def _scan_to(self, tip: int, counts: dict[str, int]) -> bool:
        """Scan blocks up to ``tip``; return False if a reorg was met on the way (the caller re-checks)."""
        ours = self.store.tip(self.chain)
        if ours is None and self._resume_from is not None:
            start = self._resume_from
        elif ours is None:
            start = tip if self.start_height is None else self.start_height
        else:
            start = ours.height + 1
        version = self.store.watched_version(self.chain)
        watched = self.store.watched(self.chain)
        addresses = {address for address, _memo in watched}
        while start <= tip:
            while True:  # an address handed out during the scan call is in the next try: no deposit slips past
                blocks = self.adapter.scan(start, addresses, max_blocks=self.batch_blocks)
                latest = self.store.watched_version(self.chain)
                if latest == version:
                    break
                version, watched = latest, self.store.watched(self.chain)
                addresses = {address for address, _memo in watched}
            if not isinstance(blocks, list) or not blocks:
                raise NodeFault(f"scan({start}) returned no blocks although the tip is {tip}")
            linked: list[ScannedBlock] = []
            parent = self.store.header(self.chain, start - 1)
            fault: NodeFault | None = None
            for expected, block in enumerate(blocks, start):
                try:
                    self._check_block(block, expected)
                except NodeFault as exc:
                    fault = exc  # keep the good blocks before it, then pause
                    break
                if parent is not None and parent.hash != block.header.parent_hash:
                    break  # the chain changed under us
                linked.append(block)
                parent = block.header
            with self.store.transaction() as db:  # the batch at once: one fsync, all or nothing
                for block in linked:
                    self._record_block(db, block, watched, addresses)
            counts["new"] += len(linked)
            if fault is not None:
                raise fault
            if len(linked) < len(blocks):
                return False
            start = blocks[-1].header.height + 1
        return True

    def _check_block(self, block: object, height: int) -> None:
        if not isinstance(block, ScannedBlock) or not isinstance(block.header, BlockHeader):
            raise NodeFault(f"scan returned {block!r}, not a ScannedBlock")
        header = block.header
        if header.height != height or not header.hash or not isinstance(header.hash, str):
            raise NodeFault(f"scan returned block {header!r} where height {height} was expected")
        for transfer in block.transfers:
            if not (
                isinstance(transfer, Transfer)
                and isinstance(transfer.txid, str)
                and transfer.txid
                and type(transfer.index) is int
                and transfer.index >= 0
                and type(transfer.amount) is int
                and transfer.amount > 0
                and isinstance(transfer.asset, str)
                and transfer.asset
            ):
                raise NodeFault(f"block {height} has a malformed transfer {transfer!r}")

    def _record_block(
        self, db: sqlite3.Connection, block: ScannedBlock, watched: dict[tuple[str, str], int], addresses: set[str]
    ) -> None:
        header = block.header
        now = self.clock()
        insert_header(db, self.chain, header)
        prune_headers_below(db, self.chain, header.height - self.keep_headers + 1)
        for transfer in block.transfers:
            # a memo picks the account on a shared address; a per-account address ignores any memo
            account = watched.get((transfer.address, transfer.memo), watched.get((transfer.address, "")))
            reasons: tuple[str, ...] = ()
            if account is None:
                if transfer.address not in addresses:
                    continue  # not ours
                account = 0
                reasons = (f"no account has memo {transfer.memo!r} on this shared address",)
            existing = self.store.row(self.chain, transfer.txid, transfer.index)
            if existing is not None and existing.stage is not Stage.ORPHANED and not existing.reorged_after_credit:
                continue  # already recorded from this block (a re-scan after a crash)
            if existing is not None:  # back on the best chain after a reorg
                row = existing
                row.block_height, row.block_hash, row.updated_ns = header.height, header.hash, now
                if row.stage is Stage.CREDITED:
                    row.reorged_after_credit = False
                    save_row(db, row)
                    add_alert(db, row, ALERT_REINCLUDED, f"the credited deposit is back in block {header.height}")
                    continue
                row.stage, row.reasons = (Stage.HELD if row.account == 0 else Stage.SEEN), reasons
                save_row(db, row)
                add_history(db, row, 1, f"back on the best chain in block {header.height}")
                continue
            row = DepositRow(
                chain=self.chain,
                txid=transfer.txid,
                index=transfer.index,
                account=account,
                asset=transfer.asset,
                amount=transfer.amount,
                address=transfer.address,
                memo=transfer.memo,
                source_addresses=tuple(transfer.source_addresses),
                block_height=header.height,
                block_hash=header.hash,
                required=self.required,
                stage=Stage.HELD if account == 0 else Stage.SEEN,
                reasons=reasons,
                credit_attempted=False,
                reorged_after_credit=False,
                first_seen_ns=now,
                updated_ns=now,
            )
            save_row(db, row)
            add_history(db, row, 1, f"in block {header.height}")

    # -- confirming, screening, crediting ------------------------------------------------------------------------

    def _evaluate(self, counts: dict[str, int]) -> None:
        ours = self.store.tip(self.chain)
        if ours is None:
            return
        moves: list[_Move] = []
        to_credit: list[tuple[DepositRow, int]] = []
        for row in self.store.rows(self.chain, sorted(OPEN_STAGES)):
            assert row.block_height is not None
            confirmations = ours.height - row.block_height + 1
            if confirmations < self.required:
                if row.stage is not Stage.CONFIRMING:
                    moves.append(_Move(row, Stage.CONFIRMING, confirmations, f"{confirmations} of {self.required}"))
                continue
            if not row.credit_attempted:
                decision = self._screen(row)
                if decision.outcome is Outcome.HOLD:
                    reasons = decision.reasons or ("held",)
                    moves.append(_Move(row, Stage.HELD, confirmations, "screening held it", reasons))
                    continue
                if decision.outcome is Outcome.REJECT:
                    moves.append(_Move(row, Stage.REJECTED, confirmations, "screening rejected it", decision.reasons))
                    continue
                row.credit_attempted = True  # durable before the command is sent: a crash re-sends, never skips
                note = "screening allowed it; crediting"
                moves.append(_Move(row, Stage.SCREENING, confirmations, note, decision.reasons))
            to_credit.append((row, confirmations))
        self._apply(moves)
        outcomes: list[_Move] = []
        try:
            for row, confirmations in to_credit:
                outcome = self._credit(row, confirmations)
                outcomes.append(outcome)
                counts["credited"] += outcome.newly_credited
        finally:  # record what the engine answered, even if a later credit failed
            self._apply(outcomes)

    def _screen(self, row: DepositRow) -> Decision:
        if self.screen is None:
            return Decision.hold("no deposit screening is configured")
        request = DepositRequest(
            account=row.account,
            asset=row.asset,
            chain=row.chain,
            amount=row.amount,
            address=row.address,
            txid=row.txid,
            source_addresses=row.source_addresses,
        )
        try:
            decision = self.screen(request)
        except Exception as exc:
            return Decision.hold(f"deposit screening failed: {type(exc).__name__}: {exc}")
        if not isinstance(decision, Decision):
            return Decision.hold(f"deposit screening gave no decision ({decision!r})")
        return decision

    def _credit(self, row: DepositRow, confirmations: int) -> _Move:
        """Send the credit and return the stage change the engine's answer calls for (not yet recorded)."""
        reference = deposit_reference(row.chain, row.txid, row.index)
        credit = CreditFunds(
            account=row.account, asset=row.asset, amount=row.amount, reference=reference, custody=self.custody
        )
        events = self.submit(credit)
        for event in events:
            if isinstance(event, FundsCredited) and event.reference == reference:
                return _Move(row, Stage.CREDITED, confirmations, f"credited at sequence {event.seq}", None, True)
            if isinstance(event, FundsRejected) and event.reference == reference:
                if event.reason == RejectReason.DUPLICATE_REFERENCE:
                    return _Move(row, Stage.CREDITED, confirmations, "already credited (the engine has the reference)")
                row.credit_attempted = False
                reason = f"the engine refused the credit: {RejectReason(event.reason).name}"
                return _Move(row, Stage.HELD, confirmations, reason, (reason,))
        raise NodeFault(f"the engine returned no outcome for credit {reference}")

    def _apply(self, moves: Sequence[_Move]) -> None:
        if not moves:
            return
        now = self.clock()
        with self.store.transaction() as db:
            for move in moves:
                row = move.row
                row.stage = move.stage
                if move.reasons is not None:
                    row.reasons = move.reasons
                row.updated_ns = now
                save_row(db, row)
                add_history(db, row, move.confirmations, move.note)

    def _move(
        self, row: DepositRow, stage: Stage, confirmations: int, note: str, reasons: tuple[str, ...] | None = None
    ) -> None:
        self._apply([_Move(row, stage, confirmations, note, reasons)])

    # -- operator decisions --------------------------------------------------------------------------------------

    def resolve_held(self, txid: str, index: int, *, approve: bool, note: str, account: int | None = None) -> Deposit:
        """Credit (``approve``) or reject a held deposit after review; ``account`` attributes an unmatched memo.

        Raise ``ValueError`` if the deposit is not held, is not at depth on the best chain, or (approving) has no
        account. The credit goes through the same idempotent path as automatic ones.
        """
        with self._lock:
            row = self.store.row(self.chain, txid, index)
            if row is None or row.stage is not Stage.HELD:
                raise ValueError(f"deposit {txid}:{index} on {self.chain} is not held")
            ours = self.store.tip(self.chain)
            assert row.block_height is not None
            confirmations = ours.height - row.block_height + 1 if ours is not None else 0
            if not approve:
                self._move(row, Stage.REJECTED, confirmations, f"rejected by an operator: {note}", (note,))
            else:
                if account is not None:
                    row.account = account
                if row.account <= 0:
                    raise ValueError("this deposit has no account: pass account= to attribute it")
                if confirmations < self.required:
                    raise ValueError(f"the deposit has {confirmations} of {self.required} confirmations: wait")
                row.credit_attempted = True
                self._move(row, Stage.SCREENING, confirmations, f"approved by an operator: {note}", (note,))
                self._apply([self._credit(row, confirmations)])
            view = self.store.deposit(self.chain, txid, index)
            assert view is not None
            return view
