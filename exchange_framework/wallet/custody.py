"""The wallet's own custody on chain: which addresses it controls per tier and chain, and what they hold.

The running wallet records the hot wallet's address on each chain in ``custody.db`` (beside the journal), and the
deposit tracker records every deposit address it hands out in ``deposits.db``. :func:`custody_report` asks each
chain adapter that can tell (an optional ``balance(address, asset) -> int`` method) what those addresses hold, and
reports it per ledger custody account (``omnibus:hot:<chain>``, ``omnibus:deposit:<chain>``) for reconciliation.
It needs no signer and no running exchange, so ``exchange ledger check`` runs it from the stores alone.

Deposit addresses also hold coins the ledger does not owe anyone (yet): deposits still confirming, held for review
or rejected. Those amounts are recorded in ``deposits.db`` and left out of the deposit tier's report (they are
never swept), so the report is what the ledger's deposit account should show.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from os import PathLike

import msgspec
import pluggy

from exchange_framework.config import ExchangeConfig
from exchange_framework.engine.commands import custody_account
from exchange_framework.funding.deposits import deposit_custody
from exchange_framework.funding.store import DepositStore, Stage
from exchange_framework.interfaces import ChainAdapter, CustodyBalance
from exchange_framework.plugins import collect_registered
from exchange_framework.sqlite_file import SqliteFile

__all__ = [
    "REPORT_SOURCE",
    "UNOWED_STAGES",
    "CustodyStore",
    "SweepRow",
    "SweepStage",
    "assets_of",
    "custody_report",
    "in_flight",
    "read_balances",
    "stored_custody_report",
    "unowed",
]

REPORT_SOURCE = "wallet"
UNOWED_STAGES = (Stage.SEEN, Stage.CONFIRMING, Stage.SCREENING, Stage.HELD, Stage.REJECTED)
"""Deposits in these stages are on chain at their address but not (yet) on the ledger."""


class SweepStage:
    """Where a deposit sweep stands (plain strings, stored as they are)."""

    BUILT = "built"  # built and checked; nothing signed yet
    SIGNED = "signed"  # signed and stored; not yet sent
    BROADCAST = "broadcast"  # sent; waiting for the chain's confirmation depth
    COMPLETED = "completed"  # at depth and recorded on the ledger (MoveCustody)
    FAILED = "failed"  # could not be built or was dropped by the network: an operator looks at it
    OPEN = (BUILT, SIGNED, BROADCAST)


class SweepRow(msgspec.Struct):
    """One sweep of a deposit address into the hot wallet; amounts in atomic units."""

    id: int
    chain: str
    account: int
    address: str
    asset: str
    amount: int
    fee: int
    fee_asset: str
    destination: str
    stage: str
    unsigned: bytes | None = None
    signed: bytes | None = None
    txid: str = ""
    confirmations: int = 0
    error: str = ""
    reasons: list[str] = msgspec.field(default_factory=list)
    created_ns: int = 0
    updated_ns: int = 0

    @property
    def reference(self) -> str:
        """The ledger reference of this sweep's ``MoveCustody`` (used once)."""
        return f"sweep:{self.chain}:{self.id}"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS custody_addresses (
    chain TEXT NOT NULL, tier TEXT NOT NULL, address TEXT NOT NULL, PRIMARY KEY (chain, tier, address));
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY, chain TEXT NOT NULL, account INTEGER NOT NULL, address TEXT NOT NULL,
    asset TEXT NOT NULL, amount TEXT NOT NULL, fee TEXT NOT NULL, fee_asset TEXT NOT NULL, destination TEXT NOT NULL,
    stage TEXT NOT NULL, unsigned BLOB, signed BLOB, txid TEXT NOT NULL DEFAULT '',
    confirmations INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', reasons TEXT NOT NULL DEFAULT '[]',
    created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sweeps_stage ON sweeps (stage, id);
"""
_COLUMNS = (
    "id, chain, account, address, asset, amount, fee, fee_asset, destination, stage, unsigned, signed, txid, "
    "confirmations, error, reasons, created_ns, updated_ns"
)


def _sweep(values: Sequence[object]) -> SweepRow:
    (sid, chain, account, address, asset, amount, fee, fee_asset, destination, stage) = values[:10]
    (unsigned, signed, txid, confirmations, error, reasons, created_ns, updated_ns) = values[10:]
    return SweepRow(
        id=int(sid),  # type: ignore[call-overload]
        chain=str(chain),
        account=int(account),  # type: ignore[call-overload]
        address=str(address),
        asset=str(asset),
        amount=int(str(amount)),
        fee=int(str(fee)),
        fee_asset=str(fee_asset),
        destination=str(destination),
        stage=str(stage),
        unsigned=bytes(unsigned) if unsigned is not None else None,  # type: ignore[call-overload]
        signed=bytes(signed) if signed is not None else None,  # type: ignore[call-overload]
        txid=str(txid),
        confirmations=int(confirmations),  # type: ignore[call-overload]
        error=str(error),
        reasons=list(json.loads(str(reasons))),
        created_ns=int(created_ns),  # type: ignore[call-overload]
        updated_ns=int(updated_ns),  # type: ignore[call-overload]
    )


class CustodyStore(SqliteFile):
    """The wallet's custody addresses and deposit sweeps in one SQLite file (``":memory:"`` for a throwaway one)."""

    def __init__(self, path: str | PathLike[str]) -> None:
        super().__init__(path, _SCHEMA)

    # -- addresses
    def add_address(self, chain: str, tier: str, address: str) -> None:
        """Record that the wallet controls ``address`` in ``tier`` on ``chain`` (idempotent)."""
        custody_account(tier, chain)  # refuses a tier or chain that cannot name a custody account
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO custody_addresses (chain, tier, address) VALUES (?, ?, ?)",
                (chain, tier, address),
            )

    def addresses(self, chain: str, tier: str) -> list[str]:
        """The addresses recorded for ``tier`` on ``chain``."""
        rows = self._query(
            "SELECT address FROM custody_addresses WHERE chain = ? AND tier = ? ORDER BY address", (chain, tier)
        )
        return [str(r[0]) for r in rows]

    # -- sweeps
    def insert_sweep(
        self,
        *,
        chain: str,
        account: int,
        address: str,
        asset: str,
        amount: int,
        fee: int,
        fee_asset: str,
        destination: str,
        unsigned: bytes,
        now_ns: int,
    ) -> SweepRow:
        """Record a built sweep (stage ``built``) and return it with its id."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO sweeps (chain, account, address, asset, amount, fee, fee_asset, destination, stage, "
                "unsigned, created_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chain,
                    account,
                    address,
                    asset,
                    str(amount),
                    str(fee),
                    fee_asset,
                    destination,
                    SweepStage.BUILT,
                    unsigned,
                    now_ns,
                    now_ns,
                ),
            )
            sid = int(cursor.lastrowid or 0)
        row = self.sweep(sid)
        assert row is not None
        return row

    def save_sweep(self, row: SweepRow, now_ns: int) -> None:
        """Write ``row``'s mutable fields (stage, transaction, fee, error, reasons) durably."""
        row.updated_ns = now_ns
        with self.transaction() as db:
            db.execute(
                "UPDATE sweeps SET stage = ?, signed = ?, txid = ?, confirmations = ?, fee = ?, error = ?, "
                "reasons = ?, updated_ns = ? WHERE id = ?",
                (
                    row.stage,
                    row.signed,
                    row.txid,
                    row.confirmations,
                    str(row.fee),
                    row.error,
                    json.dumps(row.reasons),
                    now_ns,
                    row.id,
                ),
            )

    def sweep(self, sweep_id: int) -> SweepRow | None:
        """One sweep by id."""
        rows = self._query(f"SELECT {_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,))
        return _sweep(rows[0]) if rows else None

    def sweeps(self, *, stages: Collection[str] | None = None, limit: int = 100) -> list[SweepRow]:
        """Sweeps oldest first, optionally only those in ``stages``."""
        if stages is None:
            rows = self._query(f"SELECT {_COLUMNS} FROM sweeps ORDER BY id LIMIT ?", (limit,))
        else:
            marks = ", ".join("?" * len(stages))
            rows = self._query(
                f"SELECT {_COLUMNS} FROM sweeps WHERE stage IN ({marks}) ORDER BY id LIMIT ?", (*stages, limit)
            )
        return [_sweep(r) for r in rows]


def assets_of(adapter: ChainAdapter) -> set[str]:
    """The assets a chain adapter moves: its ``assets`` attribute, else its native coin and its ``tokens``."""
    declared = getattr(adapter, "assets", None)
    if declared:
        return set(declared)
    return {adapter.native_asset, *getattr(adapter, "tokens", {})}


def read_balances(adapter: ChainAdapter, addresses: Sequence[str], asset: str) -> list[int]:
    """What each of ``addresses`` holds of ``asset``: the adapter's optional batch ``balances(addresses, asset)``,
    else ``balance(address, asset)`` one by one."""
    if not addresses:
        return []
    many = getattr(adapter, "balances", None)
    if many is not None:
        found = [int(a) for a in many(list(addresses), asset)]
        if len(found) != len(addresses):
            raise ValueError(f"{adapter.name} answered {len(found)} balances for {len(addresses)} addresses")
        return found
    return [int(adapter.balance(a, asset)) for a in addresses]  # type: ignore[attr-defined]


def unowed(deposit_store: DepositStore, chain: str) -> dict[tuple[str, str], int]:
    """Per (deposit address, asset): what deposits not (yet) on the ledger hold there (see :data:`UNOWED_STAGES`)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for row in deposit_store.rows(chain, list(UNOWED_STAGES)):
        out[(row.address, row.asset)] += row.amount
    return dict(out)


def custody_report(
    adapters: Mapping[str, ChainAdapter],
    *,
    deposit_store: DepositStore | None,
    custody_store: CustodyStore | None,
    assets: Collection[str],
) -> list[CustodyBalance]:
    """What the wallet's hot and deposit addresses hold on chain, per custody account and asset.

    Only chains whose adapter has ``balance(address, asset)`` are reported; every asset such a chain moves (and the
    exchange knows) gets one line per hot wallet address (``wallet`` is the address, as ``[[custody.wallets]]``
    name them) and one for all deposit addresses together, zero included. Warm and cold wallets are reported by
    their custody plugins (``custody_balances``). Raises whatever the node raises: a reconciliation that cannot
    read the chain fails, never passes.
    """
    report: list[CustodyBalance] = []
    for name in sorted(adapters):
        adapter = adapters[name]
        if getattr(adapter, "balance", None) is None:
            continue
        moved = sorted(a for a in assets_of(adapter) if a in assets)
        hot = custody_store.addresses(name, "hot") if custody_store is not None else []
        deposit_addresses = (
            sorted({address for address, _memo in deposit_store.watched(name)}) if deposit_store is not None else []
        )
        not_owed = unowed(deposit_store, name) if deposit_store is not None else {}
        deposit_account = deposit_custody(adapter)
        hot_account = custody_account("hot", name)
        for asset in moved:
            for address, amount in zip(hot, read_balances(adapter, hot, asset), strict=True):
                report.append(CustodyBalance(REPORT_SOURCE, asset, address, amount, hot_account))
            amounts = read_balances(adapter, deposit_addresses, asset)
            held = sum(amounts) - sum(not_owed.get((a, asset), 0) for a in deposit_addresses)
            wallet = f"{len(deposit_addresses)} deposit addresses on {name}"
            report.append(CustodyBalance(REPORT_SOURCE, asset, wallet, held, deposit_account))
    return report


def stored_custody_report(
    config: ExchangeConfig, pm: pluggy.PluginManager, assets: Collection[str]
) -> list[CustodyBalance]:
    """:func:`custody_report` from the stores beside the journal (``deposits.db``, ``custody.db``) and the chain
    adapters the plugins register: what ``exchange ledger check`` uses, with no exchange running."""
    adapters: dict[str, ChainAdapter] = collect_registered(pm, "register_chain_adapters", config=config)
    if not adapters:
        return []
    data_dir = config.journal_path().parent
    deposit_path, custody_path = data_dir / "deposits.db", data_dir / "custody.db"
    deposit_store = DepositStore(deposit_path) if deposit_path.exists() else None
    custody_store = CustodyStore(custody_path) if custody_path.exists() else None
    try:
        return custody_report(adapters, deposit_store=deposit_store, custody_store=custody_store, assets=assets)
    finally:
        if deposit_store is not None:
            deposit_store.close()
        if custody_store is not None:
            custody_store.close()
        for adapter in adapters.values():  # opened here for this report: close their node connections
            close = getattr(adapter, "close", None)
            if close is not None:
                close()


def in_flight(config: ExchangeConfig) -> list[str]:
    """Transfers custody has sent but the ledger records only at depth, from the stores beside the journal: open
    sweeps (``custody.db``) and signed or broadcast withdrawals (``wallet.db``). A reconciliation difference taken
    while they are on their way may be them; one sentence each."""
    from exchange_framework.wallet.store import WalletStore
    from exchange_framework.wallet.types import WithdrawalStage

    data_dir = config.journal_path().parent
    lines: list[str] = []
    if (data_dir / "custody.db").exists():
        store = CustodyStore(data_dir / "custody.db")
        try:
            for sweep in store.sweeps(stages=(SweepStage.SIGNED, SweepStage.BROADCAST), limit=1_000):
                lines.append(
                    f"sweep {sweep.id} on {sweep.chain}: {sweep.amount} {sweep.asset} (fee {sweep.fee} "
                    f"{sweep.fee_asset}) from deposit address {sweep.address} to the hot wallet, {sweep.stage}, "
                    f"{sweep.confirmations} confirmations"
                )
        finally:
            store.close()
    if (data_dir / "wallet.db").exists():
        wallet = WalletStore(data_dir / "wallet.db")
        try:
            stages = [WithdrawalStage.SIGNED, WithdrawalStage.BROADCAST]
            for row in wallet.withdrawals(stages=stages, limit=1_000, oldest_first=True):
                lines.append(
                    f"withdrawal {row.id} on {row.chain}: {row.amount} {row.asset} (fee up to {row.fee}) out of "
                    f"the hot wallet, {row.stage.value}, {row.confirmations} confirmations"
                )
        finally:
            wallet.close()
    return lines
