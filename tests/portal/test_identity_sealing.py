"""API-key secrets and two-factor seeds are sealed in the identity database; a copy of the database reveals none."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from exchange_framework.identity import IdentityStore, Scope
from exchange_framework.identity.sealing import KEY_ENV, SealedSecretError, SecretSealer, sealing_key_for

PASSWORD = "correct horse battery staple"


def _store(path: Path, **kwargs: object) -> IdentityStore:
    store = IdentityStore(f"sqlite:///{path}", **kwargs)  # type: ignore[arg-type]
    store.create_schema()
    return store


def test_secrets_are_not_in_the_database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = _store(tmp_path / "identity.db")
    user = store.create_user("alice@example.com", PASSWORD)
    key = store.create_api_key(user.id, scopes=[Scope.READ, Scope.TRADE])
    store.set_totp_secret(user.id, "JBSWY3DPEHPK3PXP")
    store.close()

    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("identity.db"))
    assert key.key.encode() in raw  # the public half is stored as is
    assert key.secret.encode() not in raw
    assert b"JBSWY3DPEHPK3PXP" not in raw

    key_file = tmp_path / "identity.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    reopened = _store(tmp_path / "identity.db")
    assert reopened.api_key(key.key) is not None
    assert reopened.api_key(key.key).secret == key.secret  # type: ignore[union-attr]
    assert reopened.totp_secret(user.id) == "JBSWY3DPEHPK3PXP"
    assert [k.secret for k in reopened.api_keys(user.id)] == [key.secret]


def test_a_different_key_cannot_open_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    store = _store(tmp_path / "identity.db")
    user = store.create_user("alice@example.com", PASSWORD)
    store.create_api_key(user.id)
    store.close()
    (tmp_path / "identity.key").write_text(os.urandom(32).hex())
    with pytest.raises(SealedSecretError, match="does not open with this key"):
        _store(tmp_path / "identity.db").api_keys(user.id)


def test_a_sealed_value_moved_to_another_row_does_not_open(tmp_path: Path) -> None:
    store = _store(tmp_path / "identity.db", sealing_key=bytes(32))
    alice = store.create_user("alice@example.com", PASSWORD)
    mallory = store.create_user("mallory@example.com", PASSWORD)
    store.set_totp_secret(alice.id, "ALICESEED")
    store.set_totp_secret(mallory.id, "MALLORYSEED")
    store.close()
    with sqlite3.connect(tmp_path / "identity.db") as db:  # copy alice's sealed seed onto mallory's row
        (sealed,) = db.execute("SELECT totp_secret FROM users WHERE id = ?", (alice.id,)).fetchone()
        db.execute("UPDATE users SET totp_secret = ? WHERE id = ?", (sealed, mallory.id))
    reopened = _store(tmp_path / "identity.db", sealing_key=bytes(32))
    assert reopened.totp_secret(alice.id) == "ALICESEED"
    with pytest.raises(SealedSecretError):
        reopened.totp_secret(mallory.id)


def test_plaintext_from_an_older_version_is_sealed_at_start(tmp_path: Path) -> None:
    store = _store(tmp_path / "identity.db", sealing_key=bytes(32))
    user = store.create_user("alice@example.com", PASSWORD)
    store.close()
    with sqlite3.connect(tmp_path / "identity.db") as db:  # what an older version wrote
        db.execute(
            "INSERT INTO api_keys (key, secret, account, label, scopes, allowed_ips, created_ns, revoked) "
            "VALUES ('k' , 'plainsecret', ?, '', 'read', '', 1, 0)",
            (user.id,),
        )
        db.execute("UPDATE users SET totp_secret = 'PLAINSEED' WHERE id = ?", (user.id,))
    reopened = _store(tmp_path / "identity.db", sealing_key=bytes(32))
    assert reopened.api_key("k").secret == "plainsecret"  # type: ignore[union-attr]
    assert reopened.totp_secret(user.id) == "PLAINSEED"
    raw = (tmp_path / "identity.db").read_bytes()
    assert b"plainsecret" not in raw and b"PLAINSEED" not in raw


def test_where_the_key_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "ab" * 32)
    assert sealing_key_for(f"sqlite:///{tmp_path / 'x.db'}") == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "x.key").exists()
    monkeypatch.setenv(KEY_ENV, "not hex")
    with pytest.raises(SealedSecretError, match="64 hex digits"):
        sealing_key_for("sqlite://")
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(SealedSecretError, match=KEY_ENV):
        sealing_key_for("postgresql://db.internal/identity")
    assert len(sealing_key_for("sqlite://")) == 32
    with pytest.raises(SealedSecretError, match="32 bytes"):
        SecretSealer(b"short")
