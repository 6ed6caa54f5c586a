"""The encrypted software keystore: conformance, encryption at rest, wrong passphrase, tampering, atomic writes."""

from __future__ import annotations

import hashlib
import json
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_framework.custody.conformance import CHECKS, Check, run_check, run_conformance
from exchange_framework.custody.keystore import (
    KdfCost,
    KeystoreCorruptError,
    KeystoreError,
    SoftwareKeystore,
    WrongPassphraseError,
    _write_new,
)
from exchange_framework.custody.signing import hot_wallet_signer, verify_signature
from exchange_framework.interfaces import (
    CustodySigner,
    KeyExistsError,
    KeyScheme,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)
from exchange_framework.plugins import collect_registered, make_plugin_manager

PASSPHRASE_ENV = "TEST_KEYSTORE_PASSPHRASE"
CHEAP = KdfCost(memory_kib=256, iterations=1, lanes=1)  # tests only: the default is 64 MiB, t=3, p=4
DIGEST = hashlib.sha256(b"withdraw 0.5 BTC to bc1q...").digest()


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "correct horse battery staple"
    monkeypatch.setenv(PASSPHRASE_ENV, value)
    return value


@pytest.fixture
def keystore(tmp_path: Path, passphrase: str) -> SoftwareKeystore:
    return SoftwareKeystore(tmp_path / "keystore", passphrase_env=PASSPHRASE_ENV, kdf=CHEAP)


def _reopen(keystore: SoftwareKeystore) -> SoftwareKeystore:
    return SoftwareKeystore(keystore.directory, passphrase_env=PASSPHRASE_ENV, kdf=CHEAP)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
@pytest.mark.parametrize("scheme", sorted(KeyScheme))
def test_the_software_keystore_passes_the_conformance_kit(
    keystore: SoftwareKeystore, check: Check, scheme: KeyScheme
) -> None:
    assert isinstance(keystore, CustodySigner)
    run_check(check, keystore, scheme)


def test_run_conformance_runs_every_check_for_both_schemes(keystore: SoftwareKeystore) -> None:
    ran = run_conformance(keystore)
    assert "secp256k1_low_s_and_recovery_id/secp256k1" in ran
    assert "secp256k1_low_s_and_recovery_id/ed25519" not in ran
    assert len(ran) == 2 * len(CHECKS) - 1


def test_keys_survive_a_restart_and_sign_with_the_same_key(keystore: SoftwareKeystore) -> None:
    public_key = keystore.create_key("hot-btc", KeyScheme.SECP256K1)
    again = _reopen(keystore)
    assert again.public_key("hot-btc") == public_key
    assert again.key_ids() == ["hot-btc"]
    signature = again.sign(SigningRequest("w1", "hot-btc", "bitcoin", DIGEST, KeyScheme.SECP256K1))
    assert verify_signature(KeyScheme.SECP256K1, public_key, DIGEST, signature)


def test_the_secret_is_not_on_disk_in_the_clear(keystore: SoftwareKeystore) -> None:
    keystore.create_key("hot-eth", KeyScheme.SECP256K1)
    keystore.create_key("hot-sol", KeyScheme.ED25519)
    for key_id in ("hot-eth", "hot-sol"):
        _, _, secret = keystore._load(key_id)
        assert len(secret) == 32
        for path in keystore.directory.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert secret not in data and secret.hex().encode() not in data
    record = json.loads((keystore.directory / "keys" / "hot-eth.json").read_text())
    assert set(record) == {"format", "version", "key_id", "scheme", "public_key", "nonce", "ciphertext"}
    assert len(bytes.fromhex(record["ciphertext"])) == 32 + 16  # the secret and the GCM tag
    header = json.loads((keystore.directory / "keystore.json").read_text())
    assert header["kdf"]["name"] == "argon2id" and header["kdf"]["memory_kib"] == CHEAP.memory_kib


def test_key_files_are_private_and_no_temporary_file_is_left(keystore: SoftwareKeystore) -> None:
    keystore.create_key("hot-1", KeyScheme.ED25519)
    files = [p for p in keystore.directory.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == ["hot-1.json", "keystore.json"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_wrong_passphrase_is_a_clear_error_and_writes_nothing(
    keystore: SoftwareKeystore, monkeypatch: pytest.MonkeyPatch
) -> None:
    keystore.create_key("hot-1", KeyScheme.SECP256K1)
    before = _snapshot(keystore.directory)
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong horse")
    locked = _reopen(keystore)
    for call in (
        lambda: locked.public_key("hot-1"),
        lambda: locked.sign(SigningRequest("w1", "hot-1", "bitcoin", DIGEST)),
        lambda: locked.create_key("hot-2", KeyScheme.SECP256K1),
    ):
        with pytest.raises(WrongPassphraseError, match=f"passphrase in \\${PASSPHRASE_ENV} does not open"):
            call()
    assert _snapshot(keystore.directory) == before


def test_a_missing_passphrase_names_the_variable(keystore: SoftwareKeystore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(KeystoreError, match=f"set the environment variable {PASSPHRASE_ENV}"):
        keystore.create_key("hot-1", KeyScheme.SECP256K1)
    assert not keystore.directory.exists()


def _edit(path: Path, **changes: str) -> None:
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def _flip_hex(value: str, index: int = 0) -> str:
    return value[:index] + ("1" if value[index] == "0" else "0") + value[index + 1 :]


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "public_key"])
def test_a_tampered_key_file_is_refused(keystore: SoftwareKeystore, field: str) -> None:
    keystore.create_key("hot-1", KeyScheme.SECP256K1)
    path = keystore.directory / "keys" / "hot-1.json"
    record = json.loads(path.read_text())
    _edit(path, **{field: _flip_hex(record[field], 5)})
    fresh = _reopen(keystore)
    with pytest.raises(KeystoreCorruptError, match="failed authentication"):
        fresh.public_key("hot-1")
    with pytest.raises(KeystoreCorruptError):
        fresh.sign(SigningRequest("w1", "hot-1", "bitcoin", DIGEST))


def test_a_public_key_swapped_for_another_valid_key_is_refused(keystore: SoftwareKeystore) -> None:
    # The attack that matters: redirect deposits by replacing the public key with one the attacker holds.
    keystore.create_key("hot-1", KeyScheme.SECP256K1)
    attacker = keystore.create_key("attacker", KeyScheme.SECP256K1)
    _edit(keystore.directory / "keys" / "hot-1.json", public_key=attacker.hex())
    with pytest.raises(KeystoreCorruptError, match="failed authentication"):
        _reopen(keystore).public_key("hot-1")


def test_a_key_file_copied_under_another_id_is_refused(keystore: SoftwareKeystore) -> None:
    keystore.create_key("hot-1", KeyScheme.SECP256K1)
    keys = keystore.directory / "keys"
    (keys / "hot-2.json").write_bytes((keys / "hot-1.json").read_bytes())
    with pytest.raises(KeystoreCorruptError, match="holds key 'hot-1'"):
        keystore.public_key("hot-2")
    _edit(keys / "hot-2.json", key_id="hot-2")  # relabelled inside too: the associated data still binds the id
    with pytest.raises(KeystoreCorruptError, match="failed authentication"):
        keystore.public_key("hot-2")


def test_a_scheme_changed_in_the_file_is_refused(keystore: SoftwareKeystore) -> None:
    keystore.create_key("hot-1", KeyScheme.ED25519)
    _edit(keystore.directory / "keys" / "hot-1.json", scheme="secp256k1")
    with pytest.raises(KeystoreCorruptError):
        keystore.key_scheme("hot-1")


def test_a_key_file_from_another_keystore_is_refused(tmp_path: Path, keystore: SoftwareKeystore) -> None:
    other = SoftwareKeystore(tmp_path / "other", passphrase_env=PASSPHRASE_ENV, kdf=CHEAP)
    other.create_key("hot-1", KeyScheme.SECP256K1)
    keystore.create_key("mine", KeyScheme.SECP256K1)
    (keystore.directory / "keys" / "hot-1.json").write_bytes((other.directory / "keys" / "hot-1.json").read_bytes())
    with pytest.raises(KeystoreCorruptError, match="another key or keystore"):
        keystore.public_key("hot-1")


def test_truncated_files_are_reported_as_damaged(keystore: SoftwareKeystore) -> None:
    keystore.create_key("hot-1", KeyScheme.SECP256K1)
    key_file = keystore.directory / "keys" / "hot-1.json"
    key_file.write_bytes(key_file.read_bytes()[:40])
    with pytest.raises(KeystoreCorruptError, match="is damaged"):
        keystore.public_key("hot-1")
    header = keystore.directory / "keystore.json"
    header.write_bytes(header.read_bytes()[:30])
    with pytest.raises(KeystoreCorruptError, match=r"keystore\.json is damaged"):
        _reopen(keystore).create_key("hot-2", KeyScheme.SECP256K1)


def test_weakened_kdf_parameters_in_the_header_do_not_open_the_keystore(keystore: SoftwareKeystore) -> None:
    keystore.create_key("hot-1", KeyScheme.SECP256K1)
    header_path = keystore.directory / "keystore.json"
    header = json.loads(header_path.read_text())
    header["kdf"]["iterations"] = 2
    header_path.write_text(json.dumps(header))
    with pytest.raises(WrongPassphraseError, match=r"or its keystore\.json was altered"):
        _reopen(keystore).public_key("hot-1")


def test_keys_are_never_replaced_even_by_a_racing_writer(keystore: SoftwareKeystore) -> None:
    results: list[object] = []

    def create() -> None:
        try:
            results.append(keystore.create_key("contested", KeyScheme.SECP256K1))
        except KeyExistsError as exc:
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [r for r in results if isinstance(r, bytes)]
    assert len(created) == 1 and sum(isinstance(r, KeyExistsError) for r in results) == 3
    assert keystore.public_key("contested") == created[0]


def test_write_new_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f.json"
    assert _write_new(path, b"first")
    assert not _write_new(path, b"second")
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]


@pytest.mark.parametrize("key_id", ["", ".hidden", "../escape", "a/b", "x" * 129, "naïve"])
def test_bad_key_ids_are_refused(keystore: SoftwareKeystore, key_id: str) -> None:
    with pytest.raises(SigningRefusedError, match="is not allowed"):
        keystore.create_key(key_id, KeyScheme.SECP256K1)
    with pytest.raises(UnknownKeyError):
        keystore.public_key(key_id)


def test_an_unknown_scheme_is_refused(keystore: SoftwareKeystore) -> None:
    with pytest.raises(SigningRefusedError, match="no scheme 'p256'"):
        keystore.create_key("k", "p256")  # type: ignore[arg-type]


# -- the built-in plugin ------------------------------------------------------------------------------------------


def test_the_default_plugin_registers_the_software_signer(write_config: Callable[..., Path], passphrase: str) -> None:
    from exchange_framework.config import load_config

    config = load_config(
        write_config(
            f"""
            [plugins.settings.software_keystore]
            path = "var/my-keys"
            passphrase_env = "{PASSPHRASE_ENV}"
            kdf_memory_kib = 256
            kdf_iterations = 1
            kdf_lanes = 1
            """
        )
    )
    pm = make_plugin_manager(config)
    signer = hot_wallet_signer(pm, config)
    assert signer.name == "software" and isinstance(signer, SoftwareKeystore)
    assert "software" in collect_registered(pm, "register_custody_signers", config=config)
    signer.create_key("hot-1", KeyScheme.ED25519)
    assert (config.root / "var" / "my-keys" / "keys" / "hot-1.json").is_file()


def test_bad_keystore_settings_name_the_key() -> None:
    table = "[plugins.settings.software_keystore]"
    with pytest.raises(ValueError, match=re.escape(f"{table} passphrase: Extra inputs are not permitted")):
        SoftwareKeystore.from_settings({"passphrase": "never in the config"}, Path())
    with pytest.raises(ValueError, match=re.escape(f"{table} kdf_iterations: Input should be a valid integer")):
        SoftwareKeystore.from_settings({"kdf_iterations": "3"}, Path())
    with pytest.raises(ValueError, match="kdf_memory_kib >= 32"):
        SoftwareKeystore.from_settings({"kdf_memory_kib": 16, "kdf_lanes": 4}, Path())


def test_the_default_kdf_cost_is_rfc9106s_second_recommendation() -> None:
    assert KdfCost() == KdfCost(memory_kib=64 * 1024, iterations=3, lanes=4)


def test_something_other_than_a_signing_request_is_refused(keystore: SoftwareKeystore) -> None:
    keystore.create_key("hot-1", KeyScheme.SECP256K1)
    with pytest.raises(SigningRefusedError, match="expected a SigningRequest"):
        keystore.sign({"key_id": "hot-1", "payload": DIGEST})  # type: ignore[arg-type]


# -- property: tampering never yields a wrong key or a bad signature ----------------------------------------------


@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_bit_flipped_in_a_key_file_is_refused_or_harmless(
    tmp_path_factory: pytest.TempPathFactory, passphrase: str, data: st.DataObject
) -> None:
    directory = tmp_path_factory.mktemp("tamper")
    scheme = data.draw(st.sampled_from(sorted(KeyScheme)), label="scheme")
    keystore = SoftwareKeystore(directory, passphrase_env=PASSPHRASE_ENV, kdf=CHEAP)
    public_key = keystore.create_key("hot-1", scheme)
    path = directory / "keys" / "hot-1.json"
    raw = bytearray(path.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    path.write_bytes(bytes(raw))
    fresh = SoftwareKeystore(directory, passphrase_env=PASSPHRASE_ENV, kdf=CHEAP)
    payload = DIGEST if scheme is KeyScheme.SECP256K1 else b"message"
    try:
        assert fresh.public_key("hot-1") == public_key
        signature = fresh.sign(SigningRequest("w1", "hot-1", "chain", payload, scheme))
    except KeystoreCorruptError:
        return  # refused: the expected outcome for nearly every flip
    # A harmless flip (JSON whitespace, the case of a hex digit) must still sign with the original key.
    assert verify_signature(scheme, public_key, payload, signature)
