"""Adding a trade's extended layering chains in one pass keeps exactly what adding them one at a time kept."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_framework.compliance.monitoring import MonitoringParams
from exchange_framework.compliance.monitoring.monitor import MAX_CHAINS, NS, Monitor, _Chain
from tests.compliance.monitoring.events import MARKETS

PARAMS = MonitoringParams()

NOW = 10**6 * NS

chain_specs = st.lists(
    st.tuples(st.lists(st.integers(1, 6), min_size=1, max_size=4, unique=True), st.integers(0, 10**5)),
    max_size=MAX_CHAINS + 6,
)


def _chain(accounts: list[int], age_s: int, last_ns: int = NOW) -> _Chain:
    return _Chain(tuple(accounts), (), last_ns - age_s * NS, last_ns)


def _state(monitor: Monitor) -> list[tuple[tuple[int, ...], int]]:
    return [(c.accounts, c.start_ns) for c in monitor._chains.get(7, [])]


@settings(max_examples=300, deadline=None)
@given(existing=chain_specs, added=chain_specs)
def test_one_pass_equals_one_at_a_time(
    existing: list[tuple[list[int], int]], added: list[tuple[list[int], int]]
) -> None:
    new = []
    seen: set[tuple[int, ...]] = set()
    for accounts, age_s in added:  # a trade extends distinct paths, all at the trade's time
        if tuple(accounts) not in seen:
            seen.add(tuple(accounts))
            new.append(_chain(accounts, age_s % (PARAMS.layering_window_s + 1)))
    if not new:
        return
    one_pass, stepwise = Monitor(MARKETS, PARAMS), Monitor(MARKETS, PARAMS)
    for monitor in (one_pass, stepwise):
        for accounts, age_s in existing:
            monitor._add_chain(7, _chain(accounts, age_s, NOW - NS))
    one_pass._add_chains(7, new)
    for chain in new:
        stepwise._add_chain(7, chain)
    assert _state(one_pass) == _state(stepwise)
    assert len(_state(one_pass)) <= MAX_CHAINS
