"""Shares at rest, the node command line, the plugin registration, and no process holding the group secret."""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from exchange_threshold import frost
from exchange_threshold.groups import ED25519_SHA512
from exchange_threshold.node import key_share_from_json
from exchange_threshold.signer import ThresholdSigner
from exchange_threshold.store import SealedStore, StoreError

from exchange_framework.config import load_config
from exchange_framework.custody.signing import hot_wallet_signer, verify_signature
from exchange_framework.interfaces import KeyScheme, SigningRequest
from exchange_framework.plugins import make_plugin_manager

from .conftest import ENV, FAST_KDF, IDS, PASSPHRASE, Cluster


def test_records_are_sealed_and_bound_to_their_name(tmp_path: Path) -> None:
    store = SealedStore(tmp_path / "s", b"right", kdf=FAST_KDF)
    secret = b"share 0123456789abcdef"
    assert store.put("keys/a/b", secret) and not store.put("keys/a/b", b"other")  # never replaced
    assert store.get("keys/a/b") == secret and store.get("keys/a/c") is None
    sealed = (tmp_path / "s" / "keys" / "a" / "b.sealed").read_bytes()
    assert secret not in sealed
    with pytest.raises(StoreError, match="wrong passphrase"):
        SealedStore(tmp_path / "s", b"wrong")
    (tmp_path / "s" / "keys" / "a" / "c.sealed").write_bytes(sealed)  # moved to another name
    with pytest.raises(StoreError, match="failed authentication"):
        SealedStore(tmp_path / "s", b"right").get("keys/a/c")
    (tmp_path / "s" / "keys" / "a" / "b.sealed").write_bytes(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(StoreError, match="failed authentication"):
        store.get("keys/a/b")
    with pytest.raises(StoreError, match="invalid record name"):
        store.get("../escape")


@pytest.mark.slow
def test_no_node_or_coordinator_holds_the_group_secret(cluster: Cluster) -> None:
    key_id = "secret-check"
    public_key = cluster.signer().create_key(key_id, KeyScheme.ED25519)
    shares = {}
    stored: dict[str, list[bytes]] = {}
    for i in IDS:
        store = SealedStore(cluster.root / f"node{i}", PASSPHRASE.encode())
        names = store.names(f"keys/{key_id}")
        assert names == [f"keys/{key_id}/{public_key.hex()}"]
        data = store.get(names[0])
        assert data is not None
        shares[i] = key_share_from_json(data)
        stored[f"node{i}"] = [store.get(n) or b"" for n in ["identity", *store.names(f"keys/{key_id}")]]
        assert (cluster.root / f"node{i}" / "keys" / key_id / f"{public_key.hex()}.sealed").read_bytes().find(
            data
        ) == -1  # sealed at rest
    coordinator = cluster.coordinator_store
    stored["coordinator"] = [coordinator.get(f"keys/{key_id}") or b"", coordinator.get("identity") or b""]
    suite = ED25519_SHA512
    secret = (
        sum(frost.lagrange_coefficient(suite, i, (1, 2, 3)) * shares[i].secret_share for i in (1, 2, 3)) % suite.order
    )
    assert suite.base_mul(secret) == public_key  # the shares the processes hold are of this key
    forms = [suite.serialize_scalar(secret), suite.serialize_scalar(secret).hex().encode()]
    for owner, records in stored.items():
        for record in records:
            assert all(form not in record for form in forms), f"{owner} holds the group secret"
    for i in IDS:
        assert shares[i].secret_share != secret
    for pair in itertools.combinations(IDS, 2):  # two shares do not give it either
        assert (
            sum(frost.lagrange_coefficient(suite, i, pair) * shares[i].secret_share for i in pair) % suite.order
            != secret
        )
    # across a proactive refresh: new shares of the same secret, held and stored nowhere whole either
    assert cluster.signer().refresh(key_id).epoch == 1
    refreshed = {}
    for i in IDS:
        store = SealedStore(cluster.root / f"node{i}", PASSPHRASE.encode())
        assert store.names(f"keys/{key_id}") == [f"keys/{key_id}/{public_key.hex()}.1"]  # the old share is deleted
        data = store.get(f"keys/{key_id}/{public_key.hex()}.1")
        assert data is not None and all(form not in data for form in forms)
        refreshed[i] = key_share_from_json(data)
        assert refreshed[i].secret_share not in (shares[i].secret_share, secret)
    assert all(form not in (coordinator.get(f"epochs/{key_id}/1") or b"") for form in forms)
    new_secret = sum(frost.lagrange_coefficient(suite, i, (3, 4, 5)) * refreshed[i].secret_share for i in (3, 4, 5))
    assert new_secret % suite.order == secret


def test_node_init_prints_its_identity_and_refuses_bad_configs(tmp_path: Path) -> None:
    env = {**os.environ, ENV: PASSPHRASE}
    init = [
        sys.executable,
        "-m",
        "exchange_threshold.node",
        "init",
        "--dir",
        str(tmp_path / "n"),
        "--passphrase-env",
        ENV,
    ]
    done = subprocess.run(
        [*init, "--kdf-memory-kib", "256", "--kdf-iterations", "1"], env=env, capture_output=True, text=True, check=True
    )
    key = done.stdout.strip()
    assert len(bytes.fromhex(key)) == 32
    again = subprocess.run(init, env=env, capture_output=True, text=True, check=True)
    assert again.stdout.strip() == key  # the identity is created once
    no_passphrase = subprocess.run(init, env={k: v for k, v in env.items() if k != ENV}, capture_output=True, text=True)
    assert no_passphrase.returncode == 2 and ENV in no_passphrase.stderr
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"identifier": 1, "dir": "n", "coordinator_keys": [], "peers": {}}))
    serve = subprocess.run(
        [sys.executable, "-m", "exchange_threshold.node", "serve", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert serve.returncode == 2 and "pin at least one coordinator key" in serve.stderr


def test_the_distribution_declares_its_entry_point() -> None:
    found = [ep for ep in importlib.metadata.entry_points(group="exchange_framework") if ep.name == "threshold"]
    assert {(ep.value, ep.dist.name if ep.dist else None) for ep in found} == {
        ("exchange_threshold.plugin", "exchange-threshold")
    }


def test_bad_settings_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[plugins\.settings\.threshold\] nodes: Field required"):
        ThresholdSigner.from_settings({}, tmp_path)
    node = {"identifier": 1, "host": "h", "port": 1, "public_key": "00" * 32}
    with pytest.raises(ValueError, match="threshold <= nodes"):
        ThresholdSigner.from_settings({"nodes": [node, {**node, "identifier": 2}]}, tmp_path)


@pytest.mark.slow
def test_the_plugin_registers_the_signer(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, write_config: Callable[..., Path]
) -> None:
    monkeypatch.setenv(ENV, PASSPHRASE)
    nodes = ", ".join(
        f'{{ identifier = {n.identifier}, host = "{n.host}", port = {n.port}, public_key = "{n.public_key}" }}'
        for n in cluster.nodes.values()
    )
    config = load_config(
        write_config(
            "\n".join(
                [
                    "[backends]",
                    'keystore = "threshold"',
                    "[plugins]",
                    'modules = ["exchange_threshold.plugin"]',
                    "[plugins.settings.threshold]",
                    f'path = "{cluster.root / "coordinator"}"',
                    f'passphrase_env = "{ENV}"',
                    "threshold = 3",
                    f"nodes = [{nodes}]",
                ]
            )
        )
    )
    pm = make_plugin_manager(config)
    pm.hook.startup.call_historic(kwargs={"config": config})
    signer = hot_wallet_signer(pm, config)
    assert isinstance(signer, ThresholdSigner) and signer.name == "threshold"
    public_key = signer.create_key("via-plugin", KeyScheme.ED25519)
    signature = signer.sign(SigningRequest("w1", "via-plugin", "solana", b"message", KeyScheme.ED25519))
    assert verify_signature(KeyScheme.ED25519, public_key, b"message", signature)
