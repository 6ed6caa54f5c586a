"""The running commands of the ``exchange`` CLI: demo, replay and bench, end to end in a temporary directory."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import click.testing
import pytest
from click.testing import CliRunner

from exchange_framework.cli import main
from exchange_framework.sequencer.file_journal import FILE_MAGIC, HEADER

JOURNAL = "var/demo/commands.journal"
SNAPSHOTS = "var/demo/snapshots"

Run = Callable[..., click.testing.Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke ``exchange`` in an empty directory under tmp_path (so the config is the demo, data in ./var/demo).

    (click's ``isolated_filesystem`` is deprecated since click 8.5, hence a plain chdir.)
    """
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("EXCHANGE_CONFIG", raising=False)
    monkeypatch.delenv("EXCHANGE_TRACE_HOOKS", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> click.testing.Result:
        return runner.invoke(main, list(args))

    return invoke


def ok(result: click.testing.Result) -> click.testing.Result:
    assert result.exception is None, result.output
    assert result.exit_code == 0, result.output
    return result


def field(output: str, label: str) -> str:
    """The value printed after ``label`` (``state hash``, ``events hash``...) on its own line."""
    match = re.search(rf"^\s*{label}\s+(\S+)\s*$", output, re.MULTILINE)
    assert match is not None, f"no {label!r} line in:\n{output}"
    return match.group(1)


def state_hash_of(result: click.testing.Result) -> str:
    value = field(result.output, "state hash")
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    return value


def replay_json(run: Run, *args: str) -> dict[str, object]:
    data = json.loads(ok(run("replay", "--json", *args)).stdout)
    assert isinstance(data, dict)
    return data


def assert_clean_failure(result: click.testing.Result, exit_code: int, *messages: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), "a handled error, not an exception"
    assert "Traceback" not in result.output
    for message in messages:
        assert message in result.output


# -- exchange simulate -------------------------------------------------------------------------------------------------


def test_demo_trades_then_resumes_and_replays_to_its_state(run: Run) -> None:
    first = ok(run("simulate", "--orders", "500"))
    out = first.output
    assert "Demo Exchange — BTC-USDT simulation" in out
    assert "resumed at sequence" not in out
    trades = re.findall(r"^\s+#\d+\s+(?:BUY|SELL)\s+[\d.]+ BTC @\s+[\d.]+ USDT", out, re.MULTILINE)
    assert trades and f"Last {len(trades)} trades" in out
    assert "Order book BTC-USDT" in out and "— spread " in out
    assert "commands journalled  540 (this run: 500," in out  # 40 funding credits, then the orders
    assert Path(JOURNAL).is_file()
    assert (Path(SNAPSHOTS) / "snapshot-00000000000000000540.snap").is_file()
    first_hash = state_hash_of(first)

    second = ok(run("simulate", "--orders", "500"))
    assert "resumed at sequence 540:" in second.output
    assert "commands journalled  1040 (this run: 500," in second.output
    second_hash = state_hash_of(second)
    assert second_hash != first_hash

    replayed = ok(run("replay", JOURNAL))
    assert "replayed      1040 commands" in replayed.output
    assert state_hash_of(replayed) == second_hash


def test_demo_fresh_starts_over(run: Run) -> None:
    first_hash = state_hash_of(ok(run("simulate", "--orders", "500")))
    ok(run("simulate", "--orders", "200"))
    fresh = ok(run("simulate", "--orders", "500", "--fresh"))
    assert "resumed at sequence" not in fresh.output
    assert "commands journalled  540 (this run: 500," in fresh.output
    assert state_hash_of(fresh) == first_hash, "same seed, same start: same exchange"
    assert sorted(p.name for p in Path(SNAPSHOTS).iterdir()) == ["snapshot-00000000000000000540.snap"]


def test_demo_is_deterministic_across_data_dirs(run: Run) -> None:
    one = ok(run("simulate", "--orders", "500", "--data-dir", "one"))
    two = ok(run("simulate", "--orders", "500", "--data-dir", "two"))
    assert state_hash_of(one) == state_hash_of(two)
    replays = [ok(run("replay", f"{d}/commands.journal")).output for d in ("one", "two")]
    assert field(replays[0], "events hash") == field(replays[1], "events hash")


def test_demo_rejects_an_unknown_market(run: Run) -> None:
    result = run("simulate", "--market", "NOPE")
    assert_clean_failure(result, 2, "'NOPE' is not an open market; choose one of: BTC-USDT, ETH-USDT")
    assert not Path("var").exists(), "nothing is created for a bad command line"
    assert_clean_failure(run("simulate", "--orders", "-1"), 2, "--orders")


def test_demo_on_another_market(run: Run) -> None:
    result = ok(run("simulate", "--orders", "300", "--market", "ETH-USDT", "--mid-price", "3000"))
    assert "Demo Exchange — ETH-USDT simulation" in result.output
    assert "Order book ETH-USDT" in result.output
    assert state_hash_of(ok(run("replay", JOURNAL))) == state_hash_of(result)


# -- exchange replay -----------------------------------------------------------------------------------------------


def test_replay_is_byte_for_byte_deterministic(run: Run) -> None:
    demo_hash = state_hash_of(ok(run("simulate", "--orders", "500")))
    first = ok(run("replay", JOURNAL))
    second = ok(run("replay", JOURNAL))
    assert field(first.output, "state hash") == field(second.output, "state hash") == demo_hash
    assert field(first.output, "events hash") == field(second.output, "events hash")
    assert first.stdout == second.stdout

    data = replay_json(run, JOURNAL)
    assert data["last_seq"] == 540
    assert data["state_sha256"] == demo_hash
    assert data["events_sha256"] == field(first.output, "events hash")
    assert isinstance(data["events"], int) and data["events"] >= 540
    assert data["from_snapshot"] is False
    assert replay_json(run, JOURNAL) == data


def test_replay_from_snapshots_gives_the_same_state(run: Run) -> None:
    ok(run("simulate", "--orders", "500"))
    demo_hash = state_hash_of(ok(run("simulate", "--orders", "300")))  # snapshots at 540 and 840
    full = replay_json(run, JOURNAL)
    assert full["state_sha256"] == demo_hash

    text = ok(run("replay", "--snapshots", SNAPSHOTS, JOURNAL))
    assert state_hash_of(text) == demo_hash
    from_newest = replay_json(run, "--snapshots", SNAPSHOTS, JOURNAL)
    assert from_newest["state_sha256"] == demo_hash
    assert (from_newest["last_seq"], from_newest["events"], from_newest["from_snapshot"]) == (840, 0, True)

    (Path(SNAPSHOTS) / "snapshot-00000000000000000840.snap").unlink()  # now: the snapshot at 540 + 300 records
    from_older = replay_json(run, "--snapshots", SNAPSHOTS, JOURNAL)
    assert from_older["state_sha256"] == demo_hash
    assert from_older["last_seq"] == 840
    assert 300 <= int(str(from_older["events"])) < int(str(full["events"]))


def test_replay_of_a_file_that_is_not_a_journal(run: Run) -> None:
    Path("notes.txt").write_text("hello, this is not a journal\n")
    result = run("replay", "notes.txt")
    assert_clean_failure(result, 1, "notes.txt is not a journal file of this format")
    assert Path("notes.txt").read_text() == "hello, this is not a journal\n"
    assert_clean_failure(run("replay", "missing.journal"), 2, "does not exist")


def test_replay_of_a_corrupt_journal(run: Run) -> None:
    ok(run("simulate", "--orders", "500"))
    data = bytearray(Path(JOURNAL).read_bytes())
    data[len(FILE_MAGIC) + HEADER.size + 2] ^= 0xFF  # the first record's payload: valid records follow it
    Path(JOURNAL).write_bytes(bytes(data))
    assert_clean_failure(run("replay", JOURNAL), 1, "corrupt journal", "record seq 1")


def test_replay_with_snapshots_of_another_journal(run: Run) -> None:
    ok(run("simulate", "--orders", "200", "--data-dir", "short"))
    ok(run("simulate", "--orders", "500", "--data-dir", "long"))
    result = run("replay", "--snapshots", "long/snapshots", "short/commands.journal")
    assert_clean_failure(result, 1, "the newest snapshot is at seq 540 but the journal ends at seq 240")


@pytest.mark.parametrize("damage", ["torn tail", "empty file"])
def test_replay_does_not_modify_the_file_it_checks(run: Run, damage: str) -> None:
    if damage == "torn tail":
        ok(run("simulate", "--orders", "100"))
        path = Path(JOURNAL)
        path.write_bytes(path.read_bytes() + b"\x00" * 10)  # what a crash in mid-write may leave
    else:
        path = Path("empty.journal")
        path.touch()
    before = path.read_bytes()
    run("replay", str(path))
    assert path.read_bytes() == before


# -- exchange bench ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("benchmark", ["engine", "pipeline"])
def test_bench_writes_its_figures_as_json(run: Run, benchmark: str, tmp_path: Path) -> None:
    extra = ["--dir", str(tmp_path / "bench-tmp")] if benchmark == "pipeline" else []
    if extra:
        (tmp_path / "bench-tmp").mkdir()
    result = ok(run("bench", benchmark, "--ops", "2000", "--json", "out.json", *extra))
    assert f"{benchmark}: 2,000 commands in " in result.output
    assert "commands/s" in result.output and "wrote out.json" in result.output
    figures = json.loads(Path("out.json").read_text())
    assert figures["benchmark"] == benchmark
    assert figures["ops"] == 2000
    for key in ("ops_per_s", "p50_us", "p99_us", "p999_us"):
        value = figures[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert value > 0, key
    assert re.fullmatch(r"[0-9a-f]{64}", figures["state_hash"])
    if extra:
        assert list((tmp_path / "bench-tmp").iterdir()) == [], "the temporary journal is removed"


def test_bench_state_is_reproducible(run: Run) -> None:
    hashes = []
    for name in ("a.json", "b.json"):
        ok(run("bench", "engine", "--ops", "2000", "--seed", "5", "--json", name))
        hashes.append(json.loads(Path(name).read_text())["state_hash"])
    assert hashes[0] == hashes[1], "the same seed gives the same final state"


# -- exchange --help -----------------------------------------------------------------------------------------------


def test_help_lists_the_commands(run: Run) -> None:
    result = ok(run("--help"))
    commands = result.output.split("Commands:", 1)[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.startswith("  ") and line.strip()}
    assert {"demo", "simulate", "replay", "bench", "plugins", "config"} <= listed
    bench = ok(run("bench", "--help"))
    assert "engine" in bench.output and "pipeline" in bench.output
