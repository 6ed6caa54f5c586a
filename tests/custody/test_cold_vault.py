"""The SLIP-39 cold vault: the official test vectors, splits and recoveries, and the ceremony CLI."""

from __future__ import annotations

import itertools
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_framework.cli import main
from exchange_framework.custody.cold import (
    ColdVaultError,
    GroupSpec,
    ShareRecovery,
    generate_master_secret,
    parse_groups,
    recover_secret,
    split_secret,
    vault_xprv,
    vault_xpub,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "slip39_vectors.json").read_text(encoding="utf-8"))
PASSPHRASE = b"TREZOR"  # the passphrase of every SLIP-39 reference vector


def test_all_45_reference_vectors_are_there() -> None:
    assert len(VECTORS) == 45
    assert sum(1 for v in VECTORS if v[2]) == 15  # valid cases; the other 30 must be refused


@pytest.mark.parametrize(
    ("description", "mnemonics", "secret_hex", "xprv"), VECTORS, ids=[v[0].split(".")[0] for v in VECTORS]
)
def test_slip39_reference_vectors(description: str, mnemonics: list[str], secret_hex: str, xprv: str) -> None:
    if secret_hex:
        secret = recover_secret(mnemonics, passphrase=PASSPHRASE)
        assert secret.hex() == secret_hex, description
        assert vault_xprv(secret) == xprv, description  # the master secret used as a BIP32 seed
    else:
        with pytest.raises(ColdVaultError, match="cannot recover the secret"):
            recover_secret(mnemonics, passphrase=PASSPHRASE)


@pytest.mark.parametrize(
    ("description", "mnemonics", "secret_hex"),
    [(v[0], v[1], v[2]) for v in VECTORS if v[2]],
    ids=[v[0].split(".")[0] for v in VECTORS if v[2]],
)
def test_share_recovery_agrees_with_the_vectors(description: str, mnemonics: list[str], secret_hex: str) -> None:
    recovery = ShareRecovery()
    for words in mnemonics:
        if recovery.is_complete():
            break
        recovery.add(words)
    assert recovery.is_complete() and recovery.needed == 0
    assert recovery.recover(PASSPHRASE).hex() == secret_hex


def test_every_qualifying_subset_recovers_and_no_smaller_one_does() -> None:
    secret = generate_master_secret(128)
    groups = [GroupSpec(2, 3), GroupSpec(1, 1), GroupSpec(3, 5)]
    shares = split_secret(secret, group_threshold=2, groups=groups, passphrase=b"vault", iteration_exponent=0)
    assert [len(g) for g in shares] == [3, 1, 5]
    for first, second in itertools.combinations(range(3), 2):
        for a in itertools.combinations(shares[first], groups[first].threshold):
            chosen = [*a, *shares[second][: groups[second].threshold]]
            assert recover_secret(chosen, passphrase=b"vault") == secret
    with pytest.raises(ColdVaultError):
        recover_secret([*shares[0][:2], *shares[2][:2]], passphrase=b"vault")  # group 3 short of its threshold
    with pytest.raises(ColdVaultError):
        recover_secret(shares[2][:3], passphrase=b"vault")  # one group only


def test_a_wrong_passphrase_gives_another_vault() -> None:
    secret = generate_master_secret(256)
    shares = split_secret(
        secret, group_threshold=1, groups=[GroupSpec(2, 3)], passphrase=b"right", iteration_exponent=0
    )
    wrong = recover_secret(shares[0][:2], passphrase=b"wrong")
    assert wrong != secret and vault_xpub(wrong) != vault_xpub(secret)


def test_share_recovery_reports_progress_and_refuses_strangers_and_repeats() -> None:
    shares = split_secret(
        generate_master_secret(128), group_threshold=2, groups=[GroupSpec(2, 3), GroupSpec(2, 3)], iteration_exponent=0
    )
    other = split_secret(generate_master_secret(128), group_threshold=1, groups=[GroupSpec(2, 3)], iteration_exponent=0)
    recovery = ShareRecovery()
    assert recovery.add(shares[0][0]) == "group 1: 1 of 2 shares; groups complete: 0 of 2 needed"
    with pytest.raises(ColdVaultError, match="was given already"):
        recovery.add(shares[0][0])
    with pytest.raises(ColdVaultError, match="does not belong"):
        recovery.add(other[0][0])
    with pytest.raises(ColdVaultError, match="not a valid SLIP-39 mnemonic"):
        recovery.add("academic acid acrobat")
    assert recovery.add(shares[0][2]) == "group 1: 2 of 2 shares; groups complete: 1 of 2 needed"
    with pytest.raises(ColdVaultError, match="1 more group"):
        recovery.recover()
    recovery.add(shares[1][1])
    recovery.add(shares[1][0].upper())  # case and spacing do not matter
    assert recovery.is_complete()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group_threshold": 3, "groups": [GroupSpec(2, 3)]}, "group threshold must be 1 to 1"),
        ({"group_threshold": 1, "groups": [GroupSpec(1, 3)]}, "forbids a 1-of-N group"),
        ({"group_threshold": 1, "groups": [GroupSpec(4, 3)]}, "threshold <= count"),
        ({"group_threshold": 1, "groups": []}, "at least one group"),
        ({"group_threshold": 1, "groups": [GroupSpec(2, 3)], "iteration_exponent": 16}, "0 to 15"),
    ],
)
def test_bad_split_parameters_are_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ColdVaultError, match=message):
        split_secret(b"\x01" * 16, **kwargs)  # type: ignore[arg-type]


def test_parse_groups() -> None:
    assert parse_groups("2of3, 3/5,1of1") == [GroupSpec(2, 3), GroupSpec(3, 5), GroupSpec(1, 1)]
    with pytest.raises(ColdVaultError, match="write each group as MofN"):
        parse_groups("2-3")


# -- the ceremony CLI ---------------------------------------------------------------------------------------------


def test_ceremony_split_then_recover_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_PASSPHRASE", "ceremony passphrase")
    runner = CliRunner()
    out = tmp_path / "shares"
    result = runner.invoke(
        main,
        [
            "custody", "ceremony", "split", "--groups", "2of3,3of5", "--group-threshold", "2", "--bits", "128",
            "--iteration-exponent", "0", "--out", str(out), "--passphrase-env", "VAULT_PASSPHRASE",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "checking shares" in result.stderr
    files = sorted(out.iterdir())
    assert len(files) == 8 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    xpub = next(line.split(": ")[1] for line in result.stdout.splitlines() if line.startswith("vault xpub: "))

    chosen = [out / "share-group1-member3.txt", out / "share-group1-member1.txt"]
    chosen += [out / f"share-group2-member{m}.txt" for m in (5, 2, 4)]
    args = ["custody", "ceremony", "recover", "--passphrase-env", "VAULT_PASSPHRASE", "--expect-xpub", xpub]
    result = runner.invoke(main, [*args, *itertools.chain.from_iterable(("--share-file", str(f)) for f in chosen)])
    assert result.exit_code == 0, result.output
    assert f"vault xpub: {xpub}" in result.stdout
    assert "groups complete: 2 of 2 needed" in result.stderr
    assert "master secret" not in result.stdout

    monkeypatch.setenv("VAULT_PASSPHRASE", "not the passphrase")
    result = runner.invoke(main, [*args, *itertools.chain.from_iterable(("--share-file", str(f)) for f in chosen)])
    assert result.exit_code == 1
    assert "does not match --expect-xpub" in result.output


def test_ceremony_recover_from_stdin_and_show_secret() -> None:
    secret = bytes(range(16))
    shares = split_secret(secret, group_threshold=1, groups=[GroupSpec(2, 3)], iteration_exponent=0)
    runner = CliRunner()
    result = runner.invoke(
        main, ["custody", "ceremony", "recover", "--show-secret"], input=f"{shares[0][1]}\n\n{shares[0][2]}\n"
    )
    assert result.exit_code == 0, result.output
    assert f"master secret: {secret.hex()}" in result.stdout
    assert f"vault xpub: {vault_xpub(secret)}" in result.stdout


def test_ceremony_recover_with_too_few_shares_fails() -> None:
    shares = split_secret(
        generate_master_secret(128), group_threshold=1, groups=[GroupSpec(3, 5)], iteration_exponent=0
    )
    result = CliRunner().invoke(main, ["custody", "ceremony", "recover"], input="\n".join(shares[0][:2]) + "\n")
    assert result.exit_code == 1
    assert "not enough shares: 1 more group(s)" in result.output


def test_ceremony_split_rejects_bad_groups_and_missing_passphrase_variable() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["custody", "ceremony", "split", "--groups", "1of3", "--group-threshold", "1"])
    assert result.exit_code == 2 and "forbids a 1-of-N group" in result.output
    result = runner.invoke(
        main,
        ["custody", "ceremony", "split", "--groups", "2of3", "--group-threshold", "1", "--passphrase-env", "NOPE_X"],
    )
    assert result.exit_code == 2 and "NOPE_X: the variable is not set" in result.output
