"""exchange custody key create|show|list: keys of the hot-wallet signer, with every creation audited."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework.audit import AuditLog, verify
from exchange_framework.cli import main
from exchange_framework.config import load_config
from exchange_framework.custody.keystore import SoftwareKeystore
from exchange_framework.custody.signing import verify_signature
from exchange_framework.interfaces import KeyScheme, SigningRequest

PASSPHRASE_ENV = "TEST_CLI_KEYSTORE_PASSPHRASE"
SETTINGS = f"""
[plugins.settings.software_keystore]
passphrase_env = "{PASSPHRASE_ENV}"
kdf_memory_kib = 256
kdf_iterations = 1
kdf_lanes = 1
"""


@pytest.fixture
def config_path(write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PASSPHRASE_ENV, "cli passphrase")
    return write_config(SETTINGS + "\n[audit]\nfsync = false\n")


def _run(config_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config_path), "custody", "key", *args])
    return result.exit_code, result.output


def test_create_show_and_list_keys_with_an_audit_trail(config_path: Path) -> None:
    code, output = _run(config_path, "create", "hot-eth", "--scheme", "secp256k1", "--actor", "alice")
    assert code == 0, output
    key_id, scheme, public_hex = output.split()
    assert (key_id, scheme, len(bytes.fromhex(public_hex))) == ("hot-eth", "secp256k1", 33)
    assert _run(config_path, "create", "hot-sol", "--scheme", "ed25519", "--actor", "bob")[0] == 0

    assert _run(config_path, "show", "hot-eth") == (0, f"hot-eth secp256k1 {public_hex}\n")
    code, listing = _run(config_path, "list")
    assert code == 0 and listing.splitlines()[0].split() == ["KEY", "SCHEME", "PUBLIC", "KEY"]
    assert [line.split()[:2] for line in listing.splitlines()[1:]] == [["hot-eth", "secp256k1"], ["hot-sol", "ed25519"]]

    # The key the CLI made is the one the exchange signs with.
    config = load_config(config_path)
    keystore = SoftwareKeystore.from_settings(config.plugin_settings("software_keystore"), config.root)
    digest = hashlib.sha256(b"w").digest()
    signature = keystore.sign(SigningRequest("w1", "hot-eth", "ethereum", digest, KeyScheme.SECP256K1))
    assert verify_signature(KeyScheme.SECP256K1, bytes.fromhex(public_hex), digest, signature)

    report = verify(config.audit_path())
    assert report.ok and report.entries == 4
    with AuditLog.open(config.audit_path()) as log:
        entries = list(log.entries(action="custody.key."))
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("alice", "custody.key.create", "software:hot-eth"),
        ("alice", "custody.key.created", "software:hot-eth"),
        ("bob", "custody.key.create", "software:hot-sol"),
        ("bob", "custody.key.created", "software:hot-sol"),
    ]
    assert entries[1].details == {"scheme": "secp256k1", "public_key": public_hex}


def test_a_refused_creation_is_audited_and_changes_no_key(config_path: Path) -> None:
    code, output = _run(config_path, "create", "hot-1", "--scheme", "ed25519", "--actor", "alice")
    assert code == 0
    code, again = _run(config_path, "create", "hot-1", "--scheme", "secp256k1", "--actor", "mallory")
    assert code == 1 and "exists already" in again
    assert _run(config_path, "show", "hot-1")[1] == output  # the same key, same public key
    config = load_config(config_path)
    with AuditLog.open(config.audit_path()) as log:
        actions = [(e.actor, e.action) for e in log.entries()]
    assert actions[-2:] == [("mallory", "custody.key.create"), ("mallory", "custody.key.create_failed")]


def test_no_audit_log_means_no_key(config_path: Path) -> None:
    config = load_config(config_path)
    config.audit_path().parent.mkdir(parents=True)
    config.audit_path().mkdir()  # a directory where the log file should be: the log cannot be opened
    code, output = _run(config_path, "create", "hot-1", "--scheme", "secp256k1", "--actor", "alice")
    assert code == 1 and "the audit log cannot be written, so nothing was done" in output
    assert not (config.root / "var" / "keystore" / "keys" / "hot-1.json").exists()


def test_unknown_keys_and_signers_are_clear_errors(config_path: Path, write_config: Callable[..., Path]) -> None:
    code, output = _run(config_path, "show", "nope")
    assert code == 1 and "no key 'nope'" in output
    other = write_config(SETTINGS + '\n[backends]\nkeystore = "vault9000"\n', name="other.toml")
    code, output = _run(other, "list")
    assert code == 1 and "keystore = 'vault9000'" in output and "registered: software" in output
