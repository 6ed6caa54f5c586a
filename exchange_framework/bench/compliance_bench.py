"""Compliance figures: screening latency inside a withdrawal, and transaction monitoring throughput.

``screening``: the withdrawal's screening step exactly as the wallet runs it
(``run_screening(pm, "screen_withdrawal", config=..., request=...)`` on a worker thread via ``asyncio.to_thread``),
with the exchange's real plugins (the demo configuration's) and the built-in OFAC screener holding an SDN list of
full size: a seeded synthetic list in OFAC's CSV layout (``--entries`` entries, about 1.3 aliases each, one
digital currency address in ten entries), or a real list given with ``--sdn DIR``. Clean destinations are timed
(the common path: an allow, no case), then destinations on the list (a frozen hold that writes its case durably),
then applicants' names through ``screen_onboarding`` (the fuzzy matcher over every name and alias).

``monitoring``: engine events through the transaction monitor's rules, then rules and the packaged scoring model,
in journal order, from the seeded synthetic histories the model was trained on (generated in chunks of 60 days,
shifted in time and accounts so one monitor sees one long history; generation is not timed). Those histories are
a quarter illicit, so they alert far more often than a real exchange: the alert count is part of the figure.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from exchange_framework.bench.stats import percentile_us, summary

__all__ = ["run_monitoring", "run_screening", "write_sdn_list"]

_CONSONANTS = "BCDFGHJKLMNPRSTVWZ"
_VOWELS = "AEIOUY"


def _word(rng: random.Random) -> str:
    letters = [rng.choice(_VOWELS if i % 2 else _CONSONANTS) for i in range(rng.randint(4, 9))]
    return "".join(letters)


def _eth_address(rng: random.Random) -> str:
    return "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40))


def write_sdn_list(directory: Path, entries: int, seed: int = 1) -> list[str]:
    """Write a seeded synthetic SDN list of ``entries`` entries in OFAC's legacy CSV layout; return its addresses."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    sdn, alt, addresses = [], [], []
    alt_num = 0
    for uid in range(1, entries + 1):
        individual = rng.random() < 0.55
        name = f"{_word(rng)}, {_word(rng)} {_word(rng)}" if individual else f"{_word(rng)} {_word(rng)} LTD."
        remarks = "-0-"
        if rng.random() < 0.1:
            address = _eth_address(rng)
            addresses.append(address)
            remarks = f'"Digital Currency Address - ETH {address}."'
        kind = '"individual"' if individual else "-0- "
        sdn.append(f'{uid},"{name}",{kind},"SDGT",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,{remarks}')
        for _ in range(rng.choice((0, 1, 1, 2, 2))):
            alt_num += 1
            alias = f"{_word(rng)}, {_word(rng)}" if individual else f"{_word(rng)} {_word(rng)}"
            alt.append(f'{uid},{alt_num},"aka","{alias}",-0- ')
    (directory / "sdn.csv").write_text("\r\n".join(sdn) + "\r\n", encoding="utf-8")
    (directory / "alt.csv").write_text("\r\n".join(alt) + "\r\n", encoding="utf-8")
    return addresses


def _latency(samples: list[int]) -> dict[str, float]:
    samples.sort()
    return {
        "p50_us": percentile_us(samples, 0.50),
        "p99_us": percentile_us(samples, 0.99),
        "p999_us": percentile_us(samples, 0.999),
        "max_us": samples[-1] / 1_000 if samples else 0.0,
    }


def run_screening(
    withdrawals: int = 10_000,
    *,
    entries: int = 18_000,
    listed: int = 200,
    names: int = 300,
    sdn: Path | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """Time the withdrawal screening step (and onboarding name screening) with a full-size SDN list loaded."""
    from exchange_framework.config import DEMO_CONFIG, load_config
    from exchange_framework.default_sanctions import keeper_for
    from exchange_framework.interfaces import Outcome, WithdrawalRequest
    from exchange_framework.node import with_data_dir
    from exchange_framework.plugins import make_plugin_manager
    from exchange_framework.plugins import run_screening as screen

    rng = random.Random(seed + 1_000_003)  # not the list's own sequence: clean addresses must not be listed ones
    with tempfile.TemporaryDirectory(prefix="bench-screening-") as tmp:
        root = Path(tmp)
        listed_addresses = write_sdn_list(root / "sdn", entries, seed) if sdn is None else []
        base = with_data_dir(load_config(DEMO_CONFIG), root / "data")
        ofac = base.compliance.ofac.model_copy(update={"source": str(sdn or root / "sdn")})
        config = base.model_copy(update={"compliance": base.compliance.model_copy(update={"ofac": ofac})})
        config._source = base._source
        pm = make_plugin_manager(config)
        started = time.perf_counter()
        keeper = keeper_for(config)
        if keeper is None or keeper.current is None:
            raise RuntimeError(f"the SDN list did not load: {keeper.status.last_error if keeper else 'no source'}")
        sdn_list = keeper.current
        load_s = time.perf_counter() - started
        if sdn is not None:
            listed_addresses = [hit.address for hit in sdn_list.addresses() if hit.address.startswith("0x")]

        def request(n: int, address: str) -> WithdrawalRequest:
            return WithdrawalRequest(n, 1001 + n % 500, "ETH", "ethereum", 10**17, address)

        def once(n: int, address: str) -> tuple[int, Outcome]:
            t0 = time.perf_counter_ns()
            decision = screen(pm, "screen_withdrawal", config=config, request=request(n, address))
            return time.perf_counter_ns() - t0, decision.outcome

        for n in range(200):  # warm-up
            once(n, _eth_address(rng))
        clean = [_eth_address(rng) for _ in range(withdrawals)]
        direct: list[int] = []
        t_start = time.perf_counter()
        for n, address in enumerate(clean):
            took, outcome = once(n, address)
            if outcome is not Outcome.ALLOW:
                raise RuntimeError(f"a clean destination was not allowed: {outcome}")
            direct.append(took)
        direct_s = time.perf_counter() - t_start

        async def through_thread() -> list[int]:  # as the wallet runs it: await asyncio.to_thread(run_screening, ...)
            out = []
            for n, address in enumerate(clean):
                t0 = time.perf_counter_ns()
                await asyncio.to_thread(screen, pm, "screen_withdrawal", config=config, request=request(n, address))
                out.append(time.perf_counter_ns() - t0)
            return out

        threaded = asyncio.run(through_thread())
        held: list[int] = []
        for n, address in enumerate(listed_addresses[:listed]):
            took, outcome = once(withdrawals + n, address)
            if outcome is not Outcome.HOLD:
                raise RuntimeError(f"a listed destination was not held: {outcome}")
            held.append(took)
        from exchange_framework.interfaces import OnboardingRequest

        name_samples: list[int] = []
        hits = 0
        threshold = float(config.compliance.ofac.name_threshold)
        for _ in range(names):
            name = f"{_word(rng).title()} {_word(rng).title()}"
            t0 = time.perf_counter_ns()
            found = sdn_list.screen_name(name, threshold=threshold)
            name_samples.append(time.perf_counter_ns() - t0)
            hits += bool(found)
        onboarding = OnboardingRequest(account=1, country="DE", details={"full_name": "Alice Example"})
        t0 = time.perf_counter_ns()
        screen(pm, "screen_onboarding", config=config, request=onboarding)
        one_onboarding_us = (time.perf_counter_ns() - t0) / 1_000
        result = summary(
            "withdrawal screening (OFAC, full-size list)",
            withdrawals,
            direct_s,
            direct,
            sdn_entries=len(sdn_list.entries),
            sdn_names_and_aliases=sum(1 + len(e.aliases) for e in sdn_list.entries),
            sdn_addresses=sdn_list.address_count,
            sdn_source="synthetic (seeded)" if sdn is None else str(sdn),
            list_load_s=round(load_s, 2),
            via_thread=_latency(threaded),
            listed_hold_with_case=_latency(held) | {"n": len(held)},
            name_screening=_latency(name_samples) | {"n": names, "hits": hits},
            onboarding_hook_us=round(one_onboarding_us, 1),
        )
        return result


def _chunks(events: int, customers: int, seed: int) -> Iterator[tuple[int, list[Any]]]:
    """Synthetic history batches until ``events`` events: 60-day chunks shifted in time, seq and accounts."""
    from exchange_framework.compliance.monitoring.synthetic import MARKET_MAKER, generate
    from exchange_framework.engine.events import FundsCredited, FundsHeld, HeldFundsDebited, Trade

    produced = seq_offset = 0
    chunk = 0
    day_ns = 86_400 * 10**9
    while produced < events:
        history = generate(seed + chunk, customers)
        shift_ns = chunk * 61 * day_ns
        account_offset = chunk * 1_000_000

        def moved(account: int, offset: int = account_offset) -> int:
            return account if account == MARKET_MAKER else account + offset

        for ts, batch in history.batches:
            out: list[Any] = []
            for event in batch:
                seq = event.seq + seq_offset
                if isinstance(event, Trade):
                    out.append(msgspec.structs.replace(event, seq=seq, maker_account=moved(event.maker_account),
                                                       taker_account=moved(event.taker_account)))  # fmt: skip
                elif isinstance(event, FundsCredited | FundsHeld | HeldFundsDebited):
                    out.append(msgspec.structs.replace(event, seq=seq, account=moved(event.account)))
                else:
                    out.append(msgspec.structs.replace(event, seq=seq))
            produced += len(out)
            yield ts + shift_ns, out
            if produced >= events:
                return
        seq_offset += history.batches[-1][1][-1].seq
        chunk += 1


def run_monitoring(
    events: int = 1_000_000, *, customers: int = 10_000, seed: int = 1, score: bool = True
) -> dict[str, Any]:
    """Events/s through the monitor's rules (and, with ``score``, the packaged model): generation is not timed."""
    from exchange_framework.compliance.monitoring import Monitor
    from exchange_framework.compliance.monitoring.model import DEFAULT_MODEL_DIR, load
    from exchange_framework.compliance.monitoring.synthetic import MARKETS, PARAMS

    def measure(model: Any) -> tuple[float, float, int, int, list[int]]:
        monitor = Monitor(MARKETS, PARAMS, model=model)
        busy = cpu = 0.0
        count = alerts = 0
        per_batch: list[int] = []
        for ts, batch in _chunks(events, customers, seed):
            c0 = time.process_time()
            t0 = time.perf_counter_ns()
            alerts += len(monitor.on_batch(ts, batch))
            took = time.perf_counter_ns() - t0
            cpu += time.process_time() - c0
            busy += took / 1e9
            count += len(batch)
            per_batch.append(took)
        return busy, cpu, count, alerts, per_batch

    rules_s, rules_cpu, count, rules_alerts, per_event = measure(None)
    result = summary(
        "transaction monitoring (rules)",
        count,
        rules_s,
        per_event,
        cpu_seconds=round(rules_cpu, 3),
        events_per_cpu_s=round(count / rules_cpu) if rules_cpu else 0,
        alerts=rules_alerts,
        alerts_per_1k_events=round(1000 * rules_alerts / max(count, 1), 2),
        customers_per_chunk=customers,
    )
    if score:
        model = load(DEFAULT_MODEL_DIR)
        scored_s, scored_cpu, _count, scored_alerts, per_event_scored = measure(model)
        scored = summary("transaction monitoring (rules + scoring)", count, scored_s, per_event_scored)
        result["with_scoring"] = {
            key: scored[key] for key in ("seconds", "ops_per_s", "p50_us", "p99_us", "p999_us")
        } | {
            "cpu_seconds": round(scored_cpu, 3),
            "events_per_cpu_s": round(count / scored_cpu) if scored_cpu else 0,
            "alerts_scored": scored_alerts,
        }
    return result
