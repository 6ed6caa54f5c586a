"""The transaction monitor: engine events in, alerts with evidence out, scored and queued for review.

Feed it like any read model: ``node.add_listener(monitor.on_batch)`` (``(ts_ns, events)``, the journal's timestamp
of the batch). It is idempotent by ``seq`` (events at or below the last seq it applied are skipped, so replaying a
journal changes nothing) and deterministic (the same events give the same alerts, in the same order).

What it reads from the events:

- ``FundsCredited`` — a deposit (reference ``dep:<chain>:<txid>:<index>``), or the receiving leg of an internal
  transfer when the reference is ``xfer:<id>``;
- ``HeldFundsDebited`` (reference ``wd:<id>``) and ``FundsDebited`` — a withdrawal, or the sending leg of an
  internal transfer when the reference is ``xfer:<id>`` (the two legs pair on the reference);
- ``Trade`` — both sides: what each account gave and received, and who the counterparty was.

Layering: the engine has no account-to-account transfer command today, so the internal hops it can see are
trades between two customer accounts (value can move between them at any price they agree on, or by one side
giving up a spread) and ``xfer:`` transfer pairs if an operator's tooling posts them. A chain starts at a deposit;
each trade or transfer with a non-exempt counterparty within ``layering_hop_s`` of the chain's last hop extends it
to that counterparty; a withdrawal by the last account of a chain through ``layering_min_accounts`` distinct accounts,
within ``layering_window_s`` of the deposit, is an alert. Exempt the exchange's own market makers
(``exempt_accounts``), or every customer who traded with them would be one hop away from every other.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import msgspec

from exchange_framework.compliance.cases import Subject
from exchange_framework.compliance.monitoring.features import AccountStats, extract, value
from exchange_framework.compliance.monitoring.rules import (
    ACCOUNT_RULES,
    NS,
    Alert,
    MonitoringParams,
    Movement,
    MovementKind,
    Rule,
    make_alert,
)
from exchange_framework.engine.events import Event, FundsCredited, FundsDebited, HeldFundsDebited, Trade
from exchange_framework.interfaces import Decision
from exchange_framework.types import Side

if TYPE_CHECKING:
    from exchange_framework.compliance.cases import CaseStore
    from exchange_framework.compliance.monitoring.model import ScoringModel
    from exchange_framework.config import ExchangeConfig, MonitoringSettings

__all__ = ["Monitor", "PartyResolver", "default_party", "params_from_settings", "record_alert"]

PartyResolver = Callable[[str], str | None]  # a deposit / withdrawal reference -> its payer / destination, if known
MAX_CHAINS = 16  # layering chains remembered per account (the most recent)
TRANSFER_PREFIX = "xfer:"


class _Chain:
    __slots__ = ("accounts", "evidence", "last_ns", "start_ns")

    def __init__(self, accounts: tuple[int, ...], evidence: tuple[Movement, ...], start_ns: int, last_ns: int):
        self.accounts = accounts
        self.evidence = evidence
        self.start_ns = start_ns
        self.last_ns = last_ns


def params_from_settings(settings: MonitoringSettings) -> MonitoringParams:
    """The rule parameters of a ``[compliance.monitoring]`` table."""
    fields = settings.model_dump(exclude={"model", "exempt_accounts", "reporting_threshold"})
    return MonitoringParams(
        reporting_threshold=dict(settings.reporting_threshold),
        exempt_accounts=frozenset(settings.exempt_accounts),
        **fields,
    )


def default_party(reference: str) -> str:
    """A deposit ``dep:<chain>:<txid>:<index>`` counts as its transaction; anything else as its reference."""
    if reference.startswith("dep:") and reference.count(":") >= 3:
        return reference.rsplit(":", 1)[0]
    return reference


class Monitor:
    """Per-account rolling activity, typology rules, model scores and the review queue.

    ``markets`` maps a market symbol to its (base, quote) assets. ``model`` (optional) scores every alert;
    ``cases`` (optional) gets a case per alert via :meth:`CaseStore.record`; ``party`` resolves a deposit or
    withdrawal reference to its external payer or destination address when the wallet knows it (fan-in/out count
    distinct parties; without it each deposit transaction / withdrawal counts as its own party).
    """

    def __init__(
        self,
        markets: Mapping[str, tuple[str, str]],
        params: MonitoringParams | None = None,
        *,
        model: ScoringModel | None = None,
        cases: CaseStore | None = None,
        party: PartyResolver | None = None,
    ) -> None:
        self.markets = dict(markets)
        self.params = params or MonitoringParams()
        self.model = model
        self.cases = cases
        self.party = party
        self.last_seq = 0
        self.alerts: list[Alert] = []
        self.unrecorded: list[Alert] = []  # alerts whose case could not be written yet (retried every batch)
        self._lock = threading.Lock()
        self._case_lock = threading.Lock()
        self._recent: dict[int, deque[Movement]] = {}
        self._stats: dict[int, AccountStats] = {}
        self._chains: dict[int, list[_Chain]] = {}
        self._last_alert: dict[tuple[Rule, int], int] = {}  # (rule, account) -> trigger seq of its last alert
        self._pending_transfers: dict[str, Movement] = {}
        p = self.params
        self._horizon_ns = NS * max(
            p.structuring_window_s, p.rapid_window_s, p.layering_window_s, p.fan_in_window_s, p.fan_out_window_s
        )

    @classmethod
    def for_config(
        cls, config: ExchangeConfig, *, cases: CaseStore | None = None, party: PartyResolver | None = None
    ) -> Monitor:
        """A monitor for the exchange ``config`` describes: its markets, ``[compliance.monitoring]`` thresholds, and
        the model it names (``"builtin"``: the packaged one; a path is relative to the config file; unset: none).

        Raise :class:`~exchange_framework.compliance.monitoring.model.ModelError` if the named model cannot be used.
        """
        settings = config.compliance.monitoring
        params = params_from_settings(settings)
        model = None
        if settings.model is not None:
            from exchange_framework.compliance.monitoring.model import DEFAULT_MODEL_DIR, load

            model = load(DEFAULT_MODEL_DIR if settings.model == "builtin" else config.resolve_path(settings.model))
        markets = {symbol: (spec.base, spec.quote) for symbol, spec in config.engine_markets().items()}
        return cls(markets, params, model=model, cases=cases, party=party)

    # -- input ------------------------------------------------------------------------------------------------------

    def on_batch(self, ts_ns: int, events: Sequence[Event]) -> list[Alert]:
        """Apply one journal batch (the node listener signature); return the alerts it raised.

        With a case store, each alert's case is written after the batch is applied; if writing fails the error is
        raised (the node logs it) and the alert stays in :attr:`unrecorded`, retried first on the next batch.
        """
        with self._lock:
            start = self.last_seq
            raised: list[Alert] = []
            for event in events:
                if event.seq <= start:
                    continue  # already applied: replays change nothing
                for movement in self._movements(ts_ns, event):
                    raised.extend(self._apply(movement))
                self.last_seq = max(self.last_seq, event.seq)
        self._record_cases(raised)
        return raised

    def feed(self, batches: Iterable[tuple[int, Sequence[Event]]]) -> list[Alert]:
        """Apply many ``(ts_ns, events)`` batches in order; return every alert raised."""
        out: list[Alert] = []
        for ts_ns, events in batches:
            out.extend(self.on_batch(ts_ns, events))
        return out

    def queue(self, *, limit: int | None = None) -> list[Alert]:
        """The review queue: alerts highest score first (unscored last), then oldest first, then by id."""
        with self._lock:
            ordered = sorted(
                self.alerts,
                key=lambda a: (a.score is None, -(a.score or 0.0), a.ts_ns, a.id),
            )
        return ordered if limit is None else ordered[:limit]

    # -- events -> movements ----------------------------------------------------------------------------------------

    def _movements(self, ts: int, ev: Event) -> list[Movement]:
        if isinstance(ev, Trade):
            base, quote = self.markets.get(ev.market) or tuple(ev.market.split("-", 1))  # BASE-QUOTE symbols
            if ev.taker_side is Side.BUY:
                buyer, seller, buyer_fee, seller_fee = ev.taker_account, ev.maker_account, ev.taker_fee, ev.maker_fee
            else:
                buyer, seller, buyer_fee, seller_fee = ev.maker_account, ev.taker_account, ev.maker_fee, ev.taker_fee
            ref = f"trade:{ev.market}:{ev.trade_id}"
            return [
                Movement(ev.seq, ts, MovementKind.TRADE, buyer, quote, ev.quote_amount, ref, seller, base,
                         ev.base_amount - buyer_fee),
                Movement(ev.seq, ts, MovementKind.TRADE, seller, base, ev.base_amount, ref, buyer, quote,
                         ev.quote_amount - seller_fee),
            ]  # fmt: skip
        if isinstance(ev, FundsCredited):
            if ev.reference.startswith(TRANSFER_PREFIX):
                sent = self._pending_transfers.pop(ev.reference, None)
                source = sent.account if sent is not None else 0
                out = [Movement(ev.seq, ts, MovementKind.TRANSFER_IN, ev.account, ev.asset, ev.amount, ev.reference,
                                source)]  # fmt: skip
                if sent is not None:
                    out.insert(0, Movement(sent.seq, sent.ts_ns, MovementKind.TRANSFER_OUT, sent.account, sent.asset,
                                           sent.amount, sent.reference, ev.account))  # fmt: skip
                return out
            party = self._party(ev.reference)
            return [Movement(ev.seq, ts, MovementKind.DEPOSIT, ev.account, ev.asset, ev.amount, ev.reference,
                             party=party)]  # fmt: skip
        if isinstance(ev, FundsDebited) and ev.reference.startswith(TRANSFER_PREFIX):
            self._pending_transfers[ev.reference] = Movement(
                ev.seq, ts, MovementKind.TRANSFER_OUT, ev.account, ev.asset, ev.amount, ev.reference
            )
            return []
        if isinstance(ev, HeldFundsDebited | FundsDebited):
            return [Movement(ev.seq, ts, MovementKind.WITHDRAWAL, ev.account, ev.asset, ev.amount, ev.reference,
                             party=self._party(ev.reference))]  # fmt: skip
        return []

    def _party(self, reference: str) -> str:
        found = self.party(reference) if self.party is not None else None
        return found or default_party(reference)

    # -- state and rules --------------------------------------------------------------------------------------------

    def _apply(self, m: Movement) -> list[Alert]:
        recent = self._recent.setdefault(m.account, deque())
        recent.append(m)
        while recent and recent[0].ts_ns < m.ts_ns - self._horizon_ns:
            recent.popleft()
        stats = self._stats.get(m.account)
        if stats is None:
            stats = self._stats[m.account] = AccountStats(first_seen_ns=m.ts_ns)
        out: list[Alert] = []
        for rule in ACCOUNT_RULES if m.kind is not MovementKind.TRADE else ():  # no account rule fires on a trade
            alert = rule(m, self._fresh(rule.__name__, m.account, recent), self.params)
            if alert is not None:
                out.append(self._raise(alert, stats))
        layering = self._layering(m)
        if layering is not None:
            out.append(self._raise(layering, stats))
        self._count(m, stats)
        return out

    def _fresh(self, rule_name: str, account: int, recent: Iterable[Movement]) -> list[Movement]:
        # Evidence already used by this rule's last alert on the account cannot raise another alert.
        after = self._last_alert.get((Rule(rule_name), account), 0)
        return [m for m in recent if m.seq > after]

    def _count(self, m: Movement, stats: AccountStats) -> None:
        if m.kind is MovementKind.DEPOSIT:
            stats.deposits += 1
            stats.deposited_value += value(m.asset, m.amount, self.params)
        elif m.kind is MovementKind.WITHDRAWAL:
            stats.withdrawals += 1
            stats.withdrawn_value += value(m.asset, m.amount, self.params)
        elif m.kind is MovementKind.TRADE:
            stats.trades += 1
            stats.counterparties.add(m.counterparty)
        else:
            stats.counterparties.add(m.counterparty)

    def _layering(self, m: Movement) -> Alert | None:
        p = self.params
        if m.kind is MovementKind.DEPOSIT:
            self._add_chain(m.account, _Chain((m.account,), (m,), m.ts_ns, m.ts_ns))
            return None
        if m.kind in (MovementKind.TRADE, MovementKind.TRANSFER_OUT):
            # the trade's other leg is applied too (the counterparty's own movement): each side extends its chains
            # to the other, so a trade in either direction is a hop
            other = m.counterparty
            if other in p.exempt_accounts or m.account in p.exempt_accounts or other == m.account:
                return None
            hop_from, window_from = m.ts_ns - p.layering_hop_s * NS, m.ts_ns - p.layering_window_s * NS
            extended = [
                _Chain((*chain.accounts, other), (*chain.evidence, m), chain.start_ns, m.ts_ns)
                for chain in self._chains.get(m.account, ())
                if chain.last_ns >= hop_from and chain.start_ns >= window_from and other not in chain.accounts
            ]
            if extended:
                self._add_chains(other, extended)
            return None
        if m.kind is not MovementKind.WITHDRAWAL:
            return None
        after = self._last_alert.get((Rule.LAYERING, m.account), 0)
        best: _Chain | None = None
        for chain in self._chains.get(m.account, ()):
            if len(chain.accounts) < p.layering_min_accounts or chain.evidence[0].seq <= after:
                continue
            if m.ts_ns - chain.start_ns > p.layering_window_s * NS or m.ts_ns - chain.last_ns > p.layering_hop_s * NS:
                continue
            if best is None or (len(chain.accounts), -chain.start_ns) > (len(best.accounts), -best.start_ns):
                best = chain
        if best is None:
            return None
        hops = len(best.accounts) - 1
        return make_alert(
            Rule.LAYERING,
            m,
            [*best.evidence, m],
            p,
            f"deposit moved through {len(best.accounts)} accounts ({hops} internal hops) and withdrawn within "
            f"{(m.ts_ns - best.start_ns) // NS}s",
            {"chain_accounts": len(best.accounts)},
            accounts=best.accounts,
        )

    def _add_chain(self, account: int, chain: _Chain) -> None:
        self._add_chains(account, [chain])

    def _add_chains(self, account: int, new: list[_Chain]) -> None:
        """Append ``new`` (same ``last_ns``, distinct account paths) to ``account``'s chains: chains older than the
        window and chains along the same path are dropped, and only the newest :data:`MAX_CHAINS` kept. The same
        result as adding them one at a time (each addition removes at most one chain and adds one), in one pass."""
        chains = self._chains.setdefault(account, [])
        horizon = new[0].last_ns - self.params.layering_window_s * NS
        paths = {c.accounts for c in new}
        chains[:] = [c for c in chains if c.start_ns >= horizon and c.accounts not in paths]
        chains.extend(new)
        if len(chains) > MAX_CHAINS:
            del chains[: len(chains) - MAX_CHAINS]

    def _raise(self, alert: Alert, stats: AccountStats) -> Alert:
        features = extract(alert, stats, self.params)
        score = self.model.score(features) if self.model is not None else None
        alert = msgspec.structs.replace(alert, features=features, score=score)
        self._last_alert[(alert.rule, alert.account)] = alert.trigger_seq
        stats.alerts += 1
        self.alerts.append(alert)
        return alert

    # -- cases -------------------------------------------------------------------------------------------------------

    def _record_cases(self, raised: Sequence[Alert]) -> None:
        if self.cases is None:
            return
        with self._case_lock:  # one writer at a time, so no alert is recorded twice
            self.unrecorded.extend(raised)
            while self.unrecorded:  # in order; a failure keeps this alert and the rest for the next batch
                record_alert(self.cases, self.unrecorded[0])
                del self.unrecorded[0]


def record_alert(cases: CaseStore, alert: Alert) -> bool:
    """Open (or add to) the account's monitoring case for ``alert``: a HOLD decision by provider ``monitoring``.

    The case's reference is ``monitoring:<account>``, so every alert on one account lands on its open case. Its
    subject is ``monitoring`` when :class:`~exchange_framework.compliance.cases.Subject` has that member, else the
    kind of the alert's triggering movement (``deposit`` or ``withdrawal``). The decision is not ``frozen``: a
    monitoring case is for review and blocks no funds by itself. An alert already on a case (a node restarted and
    replayed its journal into a fresh monitor) is not recorded again: return False then, True if recorded.
    """
    trigger = next((m for m in alert.evidence if m.seq == alert.trigger_seq and m.account == alert.account), None)
    subject = getattr(Subject, "MONITORING", None)
    if subject is None:
        subject = (
            Subject.DEPOSIT if trigger is not None and trigger.kind is MovementKind.DEPOSIT else Subject.WITHDRAWAL
        )
    score = "unscored" if alert.score is None else f"score {alert.score:.3f}"
    reasons = (
        f"monitoring: {alert.rule.value}: {alert.summary}",
        f"alert {alert.id}, {score}",
        "evidence seqs " + ",".join(str(s) for s in sorted({m.seq for m in alert.evidence})),
        "parameters " + json.dumps(alert.parameters, sort_keys=True),
    )
    details = {
        "source": "monitoring",
        "rule": alert.rule.value,
        "alert": alert.id,
        "score": "" if alert.score is None else f"{alert.score:.6f}",
        "evidence": msgspec.json.encode(alert.evidence).decode(),
    }
    reference = f"monitoring:{alert.account}"
    marker = f"alert {alert.id},"
    for case in cases.find(subject, reference):
        if any(r.startswith(marker) for d in case.decisions if d.provider == "monitoring" for r in d.reasons):
            return False
    decision = Decision.hold(*reasons, provider="monitoring")
    cases.record(subject, reference, alert.account, [decision], details)
    return True
