"""``exchange threshold status|refresh|repair`` through the plugin's command, against the five node processes."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from exchange_threshold.signer import ThresholdSigner

from exchange_framework.audit import AuditLog, verify
from exchange_framework.cli import main
from exchange_framework.config import load_config
from exchange_framework.interfaces import KeyScheme

from .conftest import ENV, PASSPHRASE, Cluster

pytestmark = pytest.mark.slow


def _config(cluster: Cluster, write_config: Callable[..., Path], ports: dict[int, int] | None = None) -> Path:
    nodes = ", ".join(
        f'{{ identifier = {n.identifier}, host = "{n.host}", port = {(ports or {}).get(n.identifier, n.port)}, '
        f'public_key = "{n.public_key}" }}'
        for n in cluster.nodes.values()
    )
    return write_config(
        f"""
        [plugins]
        modules = ["exchange_threshold.plugin"]
        [plugins.settings.threshold]
        path = "{cluster.root / "coordinator"}"
        passphrase_env = "{ENV}"
        refresh_interval_hours = 24
        nodes = [{nodes}]
        """
    )


def _runner(path: Path) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, ["--config", str(path), "threshold", *args])

    invoke.config_path = path  # type: ignore[attr-defined]
    return invoke


@pytest.fixture
def exchange(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, write_config: Callable[..., Path]
) -> Callable[..., Result]:
    monkeypatch.setenv(ENV, PASSPHRASE)
    return _runner(_config(cluster, write_config))


def _audit(exchange: Callable[..., Result]) -> list[tuple[str, str, dict[str, object]]]:
    config = load_config(exchange.config_path)  # type: ignore[attr-defined]
    assert verify(config.audit_path()).ok
    with AuditLog.open(config.audit_path()) as log:
        return [(e.actor, e.action, dict(e.details)) for e in log.entries(action="custody.threshold.")]


def test_status_refresh_and_repair_from_the_command_line(cluster: Cluster, exchange: Callable[..., Result]) -> None:
    signer: ThresholdSigner = cluster.signer()
    public_key = signer.create_key("cli-key", KeyScheme.ED25519)
    shown = exchange("status", "cli-key")
    assert shown.exit_code == 0, shown.output
    assert shown.output.split("\n")[1].split() == ["cli-key", "0", "-", "no", "-"]  # just created: not due
    done = exchange("refresh", "cli-key", "--actor", "alice")
    assert done.exit_code == 0, done.output
    assert "cli-key: epoch 1, prepared by [1, 2, 3, 4, 5]" in done.output
    assert signer.public_key("cli-key") == public_key and signer.key_state("cli-key").epoch == 1
    assert exchange("refresh", "--due", "--actor", "cron").output.strip() == "no key to refresh"
    shown = exchange("status", "cli-key", "--nodes")
    assert shown.exit_code == 0, shown.output
    row = shown.output.split("\n")[1]
    assert row.startswith("cli-key") and "1:1 2:1 3:1 4:1 5:1" in row
    repaired = exchange("repair", "cli-key", "3", "--actor", "alice")
    assert repaired.exit_code == 0, repaired.output
    assert "node 3 holds epoch 1" in repaired.output
    bad = exchange("repair", "cli-key", "9", "--actor", "alice")
    assert bad.exit_code == 1 and "not a configured participant" in bad.output
    entries = _audit(exchange)
    assert [(actor, action) for actor, action, _ in entries] == [
        ("alice", "custody.threshold.refresh"),
        ("alice", "custody.threshold.refreshed"),
        ("alice", "custody.threshold.repair"),
        ("alice", "custody.threshold.repaired"),
        ("alice", "custody.threshold.repair"),
        ("alice", "custody.threshold.repair_failed"),
    ]
    assert entries[1][2]["epoch"] == 1 and list(entries[1][2]["prepared"]) == [1, 2, 3, 4, 5]  # type: ignore[call-overload]
    assert (entries[3][2]["node"], entries[3][2]["epoch"], len(entries[3][2]["helpers"])) == (3, 1, 3)  # type: ignore[arg-type]


def _settings(cluster: Cluster, **extra: object) -> dict[str, object]:
    return {"nodes": [n.model_dump() for n in cluster.nodes.values()], **extra}


def test_refresh_due_follows_the_interval(cluster: Cluster) -> None:
    signer = ThresholdSigner(cluster.coordinator_store, list(cluster.nodes.values()), refresh_interval_hours=24)
    signer.create_key("due-key", KeyScheme.ED25519)
    created = signer.key_state("due-key").created_at
    assert created is not None
    assert not signer.refresh_due("due-key", now=created + 23 * 3600)
    assert signer.refresh_due("due-key", now=created + 24 * 3600)
    signer.refresh("due-key")
    refreshed = signer.key_state("due-key").refreshed_at
    assert refreshed is not None and not signer.refresh_due("due-key", now=refreshed + 3600)
    assert signer.refresh_due("due-key", now=refreshed + 24 * 3600)
    assert ThresholdSigner.from_settings(_settings(cluster), cluster.root).refresh_interval_hours == 168  # weekly
    assert (
        ThresholdSigner.from_settings(_settings(cluster, refresh_interval_hours=1), cluster.root).refresh_interval_hours
        == 1
    )
    with pytest.raises(ValueError, match="refresh_interval_hours"):
        ThresholdSigner.from_settings(_settings(cluster, refresh_interval_hours=0), cluster.root)


def test_a_failed_refresh_is_audited_changes_nothing_and_exits_non_zero(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, write_config: Callable[..., Path]
) -> None:
    monkeypatch.setenv(ENV, PASSPHRASE)
    cluster.signer().create_key("cli-fail", KeyScheme.ED25519)
    with socket.socket() as s:  # a port nothing listens on: nodes 3, 4 and 5 unreachable
        s.bind(("127.0.0.1", 0))
        closed = int(s.getsockname()[1])
    exchange = _runner(_config(cluster, write_config, {3: closed, 4: closed, 5: closed}))
    failed = exchange("refresh", "cli-fail", "--actor", "bob")
    assert failed.exit_code == 1 and "only 2 could" in failed.output and "keep their current shares" in failed.output
    assert cluster.signer().key_state("cli-fail").epoch == 0
    assert [(a, action) for a, action, _ in _audit(exchange)][-2:] == [
        ("bob", "custody.threshold.refresh"),
        ("bob", "custody.threshold.refresh_failed"),
    ]
    unknown = exchange("refresh", "no-such-key", "--actor", "bob")
    assert unknown.exit_code == 1 and "no key 'no-such-key'" in unknown.output
