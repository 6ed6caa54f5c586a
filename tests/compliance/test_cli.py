"""``exchange compliance``: list status and refresh, ad-hoc screening, and working cases from the terminal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_framework.audit.log import AuditLog
from exchange_framework.cli import main
from exchange_framework.compliance import CaseStore, Subject
from exchange_framework.config import load_config
from exchange_framework.interfaces import Decision

DATA = Path(__file__).parent / "data" / "ofac"


@pytest.fixture
def run(write_config: Callable[..., Path], tmp_path: Path) -> Callable[..., Result]:
    path = write_config(f'[compliance.ofac]\nsource = "{DATA}"\n')

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, ["--config", str(path), "compliance", *args], catch_exceptions=False)

    return invoke


def test_ofac_status_and_refresh(run: Callable[..., Result]) -> None:
    result = run("ofac", "--refresh")
    assert result.exit_code == 0, result.output
    shown = dict(line.split("  ", 1) for line in result.output.splitlines())
    assert shown["entries"].strip() == "17" and shown["loaded from"].strip() == "download"
    status = json.loads(run("ofac", "--json").output)
    assert status["loaded"] and status["addresses"] == 26


def test_screening_from_the_terminal(run: Callable[..., Result]) -> None:
    hit = run("screen", "bc1qvhnfknw852ephxyc5hm4q520zmvf9maphetc9z")
    assert hit.exit_code == 1 and "SDN entry 48603" in hit.output
    assert run("screen", "0x9858EfFD232B4033E47d90003D41EC34EcaEda94").exit_code == 0
    name = run("screen", "--name", "Dmitry Khoroshev")
    assert name.exit_code == 1 and "Jaro-Winkler" in name.output
    assert run("screen", "--name", "Dimitri Koroshev", "--threshold", "0.97").exit_code == 0


def test_cases_are_listed_shown_escalated_and_resolved_with_an_audit_trail(
    run: Callable[..., Result], write_config: Callable[..., Path]
) -> None:
    config = load_config(write_config(f'[compliance.ofac]\nsource = "{DATA}"\n'))
    store = CaseStore.for_config(config)
    case = store.record(Subject.WITHDRAWAL, "12", 1001, [Decision.hold("sanctions hit: frozen", "x", provider="ofac")])
    listing = run("cases")
    assert listing.exit_code == 0 and "withdrawal" in listing.output and "hold frozen" in listing.output
    shown = run("case", str(case.id))
    assert "ofac: hold" in shown.output and "sanctions hit: frozen" in shown.output
    refused = run("resolve", str(case.id), "--operator", "bob", "--resolution", "confirmed", "--note", " ")
    assert refused.exit_code == 1 and "write a note" in refused.output
    assert run("escalate", str(case.id), "--operator", "alice", "--note", "real hit?").exit_code == 0
    done = run("resolve", str(case.id), "--operator", "bob", "--resolution", "confirmed", "--note", "reported")
    assert done.exit_code == 0 and "closed" in done.output
    assert run("cases").output.count("withdrawal") == 0
    assert json.loads(run("cases", "--all", "--json").output)[0]["resolution"] == "confirmed"
    actions = [entry.action for entry in AuditLog.from_config(config).entries()]
    assert actions[-2:] == ["compliance.case.escalate", "compliance.case.resolve"]
    assert run("case", "999").exit_code == 1


def test_without_a_list_the_commands_say_what_to_configure(write_config: Callable[..., Path]) -> None:
    path = write_config()
    result = CliRunner().invoke(main, ["--config", str(path), "compliance", "ofac"])
    assert result.exit_code == 1 and "[compliance.ofac] source" in result.output
