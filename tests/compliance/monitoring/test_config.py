"""``[compliance.monitoring]``: integer thresholds validated at load, a monitor built from the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange_framework.compliance.monitoring import Monitor, Rule
from exchange_framework.compliance.monitoring.model import ModelError
from exchange_framework.config import ConfigError, ExchangeConfig, parse_config
from tests.compliance.monitoring.events import Journal

# The demo's config without its own [compliance.monitoring] table (the last table in the file): each test sets one.
DEMO = (
    (Path(__file__).parents[3] / "exchange_framework" / "demo" / "exchange.toml")
    .read_text()
    .split("\n[compliance.monitoring]\n")[0]
)


def config(table: str, tmp_path: Path) -> ExchangeConfig:
    return parse_config(DEMO + "\n[compliance.monitoring]\n" + table, root=tmp_path)


def test_a_monitor_from_the_config_uses_its_thresholds_markets_and_model(tmp_path: Path) -> None:
    cfg = config(
        "reporting_threshold = { USDT = 10_000_000_000 }\nstructuring_min_count = 2\nexempt_accounts = [1]\n"
        'model = "builtin"\n',
        tmp_path,
    )
    monitor = Monitor.for_config(cfg)
    assert monitor.params.structuring_min_count == 2 and monitor.params.exempt_accounts == frozenset({1})
    assert monitor.markets["BTC-USDT"] == ("BTC", "USDT") and monitor.model is not None
    j = Journal()
    j.deposit(0, 7, 9_500_000_000, asset="USDT")
    j.deposit(60, 7, 9_900_000_000, asset="USDT")
    alerts = monitor.feed(j.batches)
    assert [a.rule for a in alerts] == [Rule.STRUCTURING] and alerts[0].score is not None
    assert alerts[0].parameters["reporting_threshold"] == 10_000_000_000


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('structuring_min_count = "3"', "structuring_min_count"),  # strings are not coerced
        ("structuring_min_count = 1", "structuring_min_count"),
        ("reporting_threshold = { USDT = 0 }", "reporting_threshold"),
        ("reporting_threshold = { USDT = 1.5 }", "reporting_threshold"),
        ("rapid_window = 60", "rapid_window"),  # a misspelt key is an error, not ignored
    ],
)
def test_bad_thresholds_are_refused_at_load(tmp_path: Path, table: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        config(table + "\n", tmp_path)


def test_a_model_path_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    cfg = config('model = "no-such-model"\n', tmp_path)
    with pytest.raises(ModelError, match="cannot read"):
        Monitor.for_config(cfg)
    assert Monitor.for_config(config("", tmp_path)).model is None
