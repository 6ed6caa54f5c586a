from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from exchange_framework import cli
from exchange_framework.cli import BUILTIN_COMMANDS, main

FAKE = "tests.plugins.fake_everything"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., click.testing.Result]:
    """Invoke ``exchange`` in an empty directory, so that the default config is the packaged demo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXCHANGE_CONFIG", raising=False)
    monkeypatch.delenv("EXCHANGE_TRACE_HOOKS", raising=False)

    def invoke(*args: str) -> click.testing.Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_help_reads_well(run: Callable[..., click.testing.Result]) -> None:
    result = run("--help")
    assert result.exit_code == 0
    for text in ("Usage: exchange", "--config", "plugins", "config", "Examples:", "exchange config check"):
        assert text in result.output


def test_version(run: Callable[..., click.testing.Result]) -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert "exchange, version 0.1.0" in result.output


def test_builtin_commands_are_real_click_commands() -> None:
    for spec in BUILTIN_COMMANDS:
        module, _, attribute = spec.partition(":")
        assert isinstance(getattr(__import__(module, fromlist=[attribute]), attribute), click.Command)


def test_a_broken_builtin_entry_is_an_error(
    run: Callable[..., click.testing.Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "BUILTIN_COMMANDS", [*BUILTIN_COMMANDS, "exchange_framework.cli:no_such_command"])
    with pytest.raises(RuntimeError, match=r"'exchange_framework\.cli:no_such_command' does not name a click command"):
        run("--help")


def test_plugins_lists_nothing_but_defaults_by_default(run: Callable[..., click.testing.Result]) -> None:
    result = run("plugins")
    assert result.exit_code == 0
    assert "No plugins installed besides the built-in defaults" in result.output


def test_plugins_all_shows_the_defaults_as_a_table(run: Callable[..., click.testing.Result]) -> None:
    result = run("plugins", "--all")
    assert result.exit_code == 0
    header, *rows = result.output.splitlines()
    assert header.split() == ["NAME", "SOURCE", "VERSION", "STATUS", "HOOKS"]
    assert any(row.split()[:2] == ["exchange_framework.default_journal", "builtin"] for row in rows)
    assert "register_journal_backends" in result.output


def test_plugins_json(run: Callable[..., click.testing.Result]) -> None:
    result = run("plugins", "--json", "--all")
    assert result.exit_code == 0
    (entry,) = [e for e in json.loads(result.output) if e["name"] == "exchange_framework.default_journal"]
    assert entry == {
        "name": "exchange_framework.default_journal",
        "source": "builtin",
        "version": "0.1.0",
        "hooks": ["register_journal_backends"],
        "status": "loaded",
    }
    assert json.loads(run("plugins", "--json").output) == []


def test_plugins_shows_config_modules(
    run: Callable[..., click.testing.Result], write_config: Callable[..., Path]
) -> None:
    path = write_config(f'[plugins]\nmodules = ["{FAKE}"]\n')
    result = run("--config", str(path), "plugins")
    assert result.exit_code == 0
    (row,) = result.output.splitlines()[1:]
    assert row.split()[:3] == [FAKE, "config", "0.0.1"]
    assert "screen_withdrawal" in row


def test_plugins_with_a_bad_config_exits_2(
    run: Callable[..., click.testing.Result], write_config: Callable[..., Path]
) -> None:
    path = write_config('status = "paused"\n')
    result = run("--config", str(path), "plugins")
    assert result.exit_code == 2
    assert 'markets."BTC-USDT".status = "paused"' in result.stderr


def test_plugins_with_a_plugin_error_exits_1(
    run: Callable[..., click.testing.Result], write_config: Callable[..., Path]
) -> None:
    path = write_config('[plugins]\ndisabled = ["nonexistent"]\n')
    result = run("--config", str(path), "plugins")
    assert result.exit_code == 1
    assert "'nonexistent', which is not a known plugin" in result.stderr


def test_config_check_summarises_the_demo_in_engine_units(run: Callable[..., click.testing.Result]) -> None:
    result = run("config", "check")
    assert result.exit_code == 0, result.output
    assert "demo/exchange.toml: OK (Demo Exchange)" in result.output
    assert "BTC-USDT  BTC/USDT  open  tick 0.1  lot 0.00001" in result.output
    assert "base_per_lot=1000 quote_per_tick_lot=1 min_qty=1 max_qty=100000000 max_price=100000000" in result.output
    assert "min_notional=1000000 maker_fee_ppm=1000 taker_fee_ppm=2000" in result.output


def test_config_check_json(run: Callable[..., click.testing.Result]) -> None:
    result = run("config", "check", "--json")
    data = json.loads(result.output)
    assert data["assets"]["ETH"] == {"symbol": "ETH", "decimals": 18}
    assert data["markets"]["ETH-USDT"]["base_per_lot"] == 10**14


def test_config_check_a_good_file(run: Callable[..., click.testing.Result], write_config: Callable[..., Path]) -> None:
    path = write_config()
    result = run("config", "check", str(path))
    assert result.exit_code == 0
    assert f"{path}: OK (Test Exchange)" in result.output


def test_config_check_a_bad_file_prints_each_problem_and_exits_2(
    run: Callable[..., click.testing.Result], write_config: Callable[..., Path]
) -> None:
    path = write_config("maker_fee = 0.01\n[assets.ETH]\ndecimals = 99\n", name="bad.toml")
    result = run("config", "check", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1] == f"2 problems found in {path}"
    assert any(line.startswith(f"{path}: assets.ETH.decimals = 99: ") for line in lines)


def test_config_check_uses_the_global_config_option(
    run: Callable[..., click.testing.Result], write_config: Callable[..., Path]
) -> None:
    path = write_config(text="[brand]\nname = 1\n")
    result = run("--config", str(path), "config", "check")
    assert result.exit_code == 2
    assert f"{path}: brand.name = 1: must be a valid string" in result.stderr


def test_config_check_a_missing_file(run: Callable[..., click.testing.Result], tmp_path: Path) -> None:
    result = run("config", "check", str(tmp_path / "absent.toml"))
    assert result.exit_code == 2
    assert "absent.toml: file not found" in result.stderr


def test_local_exchange_toml_is_the_default(
    run: Callable[..., click.testing.Result], write_config: Callable[..., Path]
) -> None:
    write_config()  # tmp_path/exchange.toml, and the fixture made tmp_path the working directory
    result = run("config", "check")
    assert "OK (Test Exchange)" in result.output


def test_hook_register_commands(run: Callable[..., click.testing.Result], write_config: Callable[..., Path]) -> None:
    path = write_config(f'[plugins]\nmodules = ["{FAKE}"]\n')
    result = run("--config", str(path), "hello", "exchange")
    assert result.exit_code == 0
    assert result.output == "hello, exchange\n"
    assert "hello" in run("--config", str(path), "--help").output
    # a plugin command may not replace a built-in one
    assert "shadowed!" not in run("--config", str(path), "plugins").output


def test_unknown_command_with_a_broken_config_explains_why(
    run: Callable[..., click.testing.Result], write_config: Callable[..., Path]
) -> None:
    path = write_config('status = "paused"\n')
    result = run("--config", str(path), "hello")
    assert result.exit_code == 2
    assert "plugin commands could not be loaded" in result.stderr
