"""``exchange custody``: hot-wallet keys (``key create|show|list``) and cold-vault ceremonies (``ceremony ...``).

Key creation is recorded in the audit log before and after it happens. Run ceremonies on an offline machine. The
passphrase, if any, comes from an environment variable named with ``--passphrase-env``, never from the command
line (it would land in the shell history).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from exchange_framework.cli import format_table, state
from exchange_framework.custody.cold import (
    MAX_ITERATION_EXPONENT,
    ColdVaultError,
    ShareRecovery,
    generate_master_secret,
    parse_groups,
    recover_secret,
    split_secret,
    vault_xpub,
)
from exchange_framework.interfaces import CustodySigner, KeyScheme, SigningError

_PASSPHRASE_ENV = click.option(
    "--passphrase-env",
    metavar="VAR",
    help="Environment variable holding the SLIP-39 passphrase (default: no passphrase).",
)


def _passphrase(variable: str | None) -> bytes:
    if variable is None:
        return b""
    value = os.environ.get(variable)
    if value is None:
        raise click.UsageError(f"--passphrase-env {variable}: the variable is not set")
    return value.encode("utf-8")


@click.group()
def custody() -> None:
    """Custody operations: hot-wallet keys and cold-vault ceremonies."""


# -- hot-wallet keys ----------------------------------------------------------------------------------------------


@custody.group()
def key() -> None:
    """Keys of the hot-wallet signer selected by [backends] keystore (software keystore, HSM, ...)."""


def _signer(ctx: click.Context) -> CustodySigner:
    from exchange_framework.custody.signing import hot_wallet_signer

    run = state(ctx)
    config = run.config_or_exit()
    try:
        return hot_wallet_signer(run.plugin_manager(), config)
    except SigningError as exc:
        raise click.ClickException(str(exc)) from None


@key.command(name="create")
@click.argument("key_id")
@click.option("--scheme", type=click.Choice([s.value for s in KeyScheme]), required=True, help="Signature scheme.")
@click.option("--actor", required=True, help="Who creates the key (recorded in the audit log).")
@click.pass_context
def key_create(ctx: click.Context, key_id: str, scheme: str, actor: str) -> None:
    """Generate a new key inside the hot-wallet signer and print its public key (hex).

    The request is written to the audit log first (no audit log, no key), the result after.
    """
    from exchange_framework.audit import AuditError, AuditFormatError, AuditLog

    signer = _signer(ctx)
    config = state(ctx).config_or_exit()
    target = f"{signer.name}:{key_id}"
    try:
        log = AuditLog.from_config(config)
    except (AuditError, OSError) as exc:
        raise click.ClickException(f"the audit log cannot be written, so nothing was done: {exc}") from None

    def audit(action: str, details: dict[str, str]) -> None:
        try:
            log.append(actor=actor, action=action, target=target, details=details)
        except (AuditError, AuditFormatError, OSError) as exc:
            raise click.ClickException(f"the audit log cannot be written ({action}): {exc}") from None

    with log:
        audit("custody.key.create", {"scheme": scheme})
        try:
            public_key = signer.create_key(key_id, KeyScheme(scheme))
        except SigningError as exc:
            audit("custody.key.create_failed", {"error": str(exc)})
            raise click.ClickException(str(exc)) from None
        audit("custody.key.created", {"scheme": scheme, "public_key": public_key.hex()})
    click.echo(f"{key_id} {scheme} {public_key.hex()}")


@key.command(name="show")
@click.argument("key_id")
@click.pass_context
def key_show(ctx: click.Context, key_id: str) -> None:
    """Print a key's scheme and public key (hex)."""
    signer = _signer(ctx)
    try:
        click.echo(f"{key_id} {signer.key_scheme(key_id)} {signer.public_key(key_id).hex()}")
    except SigningError as exc:
        raise click.ClickException(str(exc)) from None


@key.command(name="list")
@click.pass_context
def key_list(ctx: click.Context) -> None:
    """List the signer's keys with their schemes and public keys (signers that can enumerate keys)."""
    signer = _signer(ctx)
    key_ids = getattr(signer, "key_ids", None)
    if key_ids is None:
        raise click.ClickException(f"signer {signer.name!r} cannot list its keys; use exchange custody key show KEY_ID")
    try:
        rows = [(k, str(signer.key_scheme(k)), signer.public_key(k).hex()) for k in key_ids()]
    except SigningError as exc:
        raise click.ClickException(str(exc)) from None
    if not rows:
        click.echo(f"no keys in signer {signer.name!r}")
        return
    click.echo("\n".join(format_table(["KEY", "SCHEME", "PUBLIC KEY"], rows)))


# -- cold-vault ceremonies ----------------------------------------------------------------------------------------


@custody.group()
def ceremony() -> None:
    """Cold-vault ceremonies: split a new master secret into SLIP-39 shares, or recover it from them."""


@ceremony.command()
@click.option("--groups", "groups_text", required=True, metavar="MofN,...", help="Groups of shares, e.g. 3of5,2of3.")
@click.option("--group-threshold", type=int, required=True, help="How many groups are needed to recover.")
@click.option("--bits", type=click.Choice(["128", "256"]), default="256", show_default=True, help="Secret size.")
@click.option(
    "--iteration-exponent",
    type=click.IntRange(0, MAX_ITERATION_EXPONENT),
    default=1,
    show_default=True,
    help="PBKDF2 work factor: 10,000 * 2^e iterations per round.",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Write one file per share.")
@_PASSPHRASE_ENV
def split(
    groups_text: str,
    group_threshold: int,
    bits: str,
    iteration_exponent: int,
    out_dir: Path | None,
    passphrase_env: str | None,
) -> None:
    """Make a new random master secret, split it into shares, check they recover it, print the vault's xpub.

    \b
    Example: 2 of 3 groups, each of 3 of 5 people:
      exchange custody ceremony split --groups 3of5,3of5,3of5 --group-threshold 2 --out shares/
    """
    passphrase = _passphrase(passphrase_env)
    try:
        groups = parse_groups(groups_text)
        secret = generate_master_secret(int(bits))
        mnemonics = split_secret(
            secret,
            group_threshold=group_threshold,
            groups=groups,
            passphrase=passphrase,
            iteration_exponent=iteration_exponent,
        )
    except ColdVaultError as exc:
        raise click.UsageError(str(exc)) from None
    shares = [(g, m, words) for g, group in enumerate(mnemonics, 1) for m, words in enumerate(group, 1)]
    written: list[str] = []
    with click.progressbar(length=len(shares) + 1, label="checking shares", file=sys.stderr) as bar:
        check = ShareRecovery()
        for g, m, words in shares:
            check.add(words)  # every share decodes and belongs to this set
            if out_dir is not None:
                out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                path = out_dir / f"share-group{g}-member{m}.txt"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(words + "\n")
                written.append(str(path))
            bar.update(1)
        # Recover from the smallest qualifying set: the first groups, the first members of each.
        minimal = [
            w
            for group, spec in list(zip(mnemonics, groups, strict=True))[:group_threshold]
            for w in group[: spec.threshold]
        ]
        if recover_secret(minimal, passphrase=passphrase) != secret:
            raise click.ClickException("the shares do not recover the secret: do not use them")
        bar.update(1)
    xpub = vault_xpub(secret)
    if out_dir is None:
        for g, m, words in shares:
            click.echo(f"group {g} member {m}: {words}")
    else:
        click.echo(f"wrote {len(written)} share files to {out_dir} (mode 0600): give each to its holder")
    spec = ", ".join(str(g) for g in groups)
    click.echo(f"groups: {spec}; any {group_threshold} of {len(groups)} groups recover the secret")
    click.echo(f"vault xpub: {xpub}")
    click.echo("write the xpub down: recovery checks against it, and watch-only cold wallets derive addresses from it")


@ceremony.command()
@click.option(
    "--share-file",
    "share_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A file holding one share (repeat); default: read shares from standard input, one per line.",
)
@click.option("--expect-xpub", metavar="XPUB", help="The vault xpub recorded at the split: the recovery must match it.")
@click.option("--show-secret", is_flag=True, help="Print the recovered master secret in hex (offline machines only).")
@_PASSPHRASE_ENV
def recover(
    share_files: tuple[Path, ...], expect_xpub: str | None, show_secret: bool, passphrase_env: str | None
) -> None:
    """Recover the master secret from shares, report progress per group, and print the vault's xpub."""
    passphrase = _passphrase(passphrase_env)
    if share_files:
        mnemonics = [path.read_text(encoding="utf-8").strip() for path in share_files]
    else:
        text = sys.stdin.read()
        mnemonics = [line.strip() for line in text.splitlines() if line.strip()]
    if not mnemonics:
        raise click.UsageError("no shares given: pass --share-file FILE (repeat) or one share per line on stdin")
    recovery = ShareRecovery()
    with click.progressbar(mnemonics, label="reading shares", file=sys.stderr) as bar:
        for words in bar:
            if recovery.is_complete():
                break  # extra shares are not needed
            try:
                line = recovery.add(words)
            except ColdVaultError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(line, err=True)
    if not recovery.is_complete():
        raise click.ClickException(f"not enough shares: {recovery.needed} more group(s) must be completed")
    try:
        secret = recovery.recover(passphrase)
    except ColdVaultError as exc:
        raise click.ClickException(str(exc)) from None
    xpub = vault_xpub(secret)
    click.echo(f"vault xpub: {xpub}")
    if expect_xpub is not None and expect_xpub.strip() != xpub:
        raise click.ClickException(
            "the recovered vault does not match --expect-xpub: a wrong passphrase, or shares of another vault"
        )
    if show_secret:
        click.echo(f"master secret: {secret.hex()}")


# -- tier bands and sweeps (exchange_framework/cli/custody_tiers.py) ------------------------------------------------

from exchange_framework.cli.custody_tiers import tiers  # noqa: E402  (its own module; added to the group here)

custody.add_command(tiers)
