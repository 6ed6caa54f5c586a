"""The cold vault: a master secret that exists only as SLIP-39 Shamir shares, split and recovered offline.

Uses ``shamir-mnemonic``, Trezor's reference implementation of SLIP-0039, rather than our own secret sharing. A
ceremony (``exchange custody ceremony split``) makes a random master secret, splits it into groups of mnemonic
shares (say 2 of 3 groups, each 3 of 5 people), checks the shares recover it, and shows the vault's public identity:
the BIP32 extended public key of the master secret used as a seed, from which a watch-only cold wallet derives its
deposit addresses. Recovery (``exchange custody ceremony recover``) takes shares one at a time, reports which
groups are complete, and checks the recovered secret against that identity.

Keep ``iteration_exponent`` small (the PBKDF2 work is 10,000 * 2^e iterations per round): 1 by default.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bip_utils import Bip32Slip10Secp256k1
from shamir_mnemonic import MnemonicError, Share, combine_mnemonics, generate_mnemonics
from shamir_mnemonic.recovery import RecoveryState

__all__ = [
    "ColdVaultError",
    "GroupSpec",
    "ShareRecovery",
    "generate_master_secret",
    "parse_groups",
    "recover_secret",
    "split_secret",
    "vault_xprv",
    "vault_xpub",
]

MAX_ITERATION_EXPONENT = 15  # SLIP-39 allows 0-15; each step doubles the work
_GROUP_RE = re.compile(r"\s*(\d+)\s*(?:of|/)\s*(\d+)\s*")


class ColdVaultError(Exception):
    """A split or recovery could not be done; the message says what to change. Nothing secret is in it."""


@dataclass(frozen=True)
class GroupSpec:
    """One group of shares: any ``threshold`` of its ``count`` members reconstruct the group's part."""

    threshold: int
    count: int

    def __str__(self) -> str:
        return f"{self.threshold}of{self.count}"


def parse_groups(text: str) -> list[GroupSpec]:
    """Parse ``"2of3,3of5"`` (or ``"2/3,3/5"``) into group specs; raise :class:`ColdVaultError` if malformed."""
    groups: list[GroupSpec] = []
    for part in text.split(","):
        match = _GROUP_RE.fullmatch(part)
        if match is None:
            raise ColdVaultError(f"cannot read group {part.strip()!r}: write each group as MofN, such as 3of5")
        groups.append(GroupSpec(int(match[1]), int(match[2])))
    return groups


def generate_master_secret(bits: int = 256) -> bytes:
    """Return a new random master secret of ``bits`` (128 or 256) from the operating system's CSPRNG."""
    if bits not in (128, 256):
        raise ColdVaultError(f"a master secret is 128 or 256 bits, not {bits}")
    return secrets.token_bytes(bits // 8)


def split_secret(
    master_secret: bytes,
    *,
    group_threshold: int,
    groups: Sequence[GroupSpec],
    passphrase: bytes = b"",
    iteration_exponent: int = 1,
    extendable: bool = True,
) -> list[list[str]]:
    """Split ``master_secret`` into SLIP-39 mnemonics: one list of share mnemonics per group, in group order.

    Any ``group_threshold`` groups, each with its own member threshold reached, recover the secret (with the same
    ``passphrase``). Raise :class:`ColdVaultError` for parameters SLIP-39 does not allow.
    """
    if not 0 <= iteration_exponent <= MAX_ITERATION_EXPONENT:
        raise ColdVaultError(f"iteration_exponent must be 0 to {MAX_ITERATION_EXPONENT}, not {iteration_exponent}")
    if not groups:
        raise ColdVaultError("give at least one group, such as 3of5")
    if not 1 <= group_threshold <= len(groups):
        raise ColdVaultError(
            f"the group threshold must be 1 to {len(groups)} (the number of groups), not {group_threshold}"
        )
    for index, group in enumerate(groups, start=1):
        if not 1 <= group.threshold <= group.count <= 16:
            raise ColdVaultError(f"group {index} ({group}): need 1 <= threshold <= count <= 16")
        if group.threshold == 1 and group.count > 1:
            raise ColdVaultError(
                f"group {index} ({group}): SLIP-39 forbids a 1-of-N group with N > 1 (every member would hold the "
                "whole part); use 1of1 for a single holder"
            )
    try:
        mnemonics: list[list[str]] = generate_mnemonics(
            group_threshold,
            [(group.threshold, group.count) for group in groups],
            master_secret,
            passphrase,
            extendable,
            iteration_exponent,
        )
    except (MnemonicError, ValueError) as exc:
        raise ColdVaultError(f"cannot split the secret: {exc}") from None
    return mnemonics


def recover_secret(mnemonics: Iterable[str], *, passphrase: bytes = b"") -> bytes:
    """Combine SLIP-39 mnemonics into the master secret; raise :class:`ColdVaultError` if they cannot.

    A wrong passphrase cannot be detected (SLIP-39 gives a different, valid-looking secret): compare the result with
    the vault's recorded identity (:func:`vault_xpub`).
    """
    try:
        return bytes(combine_mnemonics([_normalise(m) for m in mnemonics], passphrase))
    except (MnemonicError, ValueError) as exc:
        raise ColdVaultError(f"cannot recover the secret: {exc}") from None


def vault_xpub(master_secret: bytes) -> str:
    """Return the BIP32 master extended public key of ``master_secret`` used as a seed: the vault's identity."""
    return str(Bip32Slip10Secp256k1.FromSeed(master_secret).PublicKey().ToExtended())


def vault_xprv(master_secret: bytes) -> str:
    """Return the BIP32 master extended private key of ``master_secret`` (only ever on the offline machine)."""
    return str(Bip32Slip10Secp256k1.FromSeed(master_secret).PrivateKey().ToExtended())


class ShareRecovery:
    """Collects shares one at a time, as a recovery ceremony receives them, and says when there are enough."""

    def __init__(self) -> None:
        self._state = RecoveryState()
        self.accepted = 0

    def add(self, mnemonic: str) -> str:
        """Add one share; return a line describing progress. Raise :class:`ColdVaultError` for a bad share."""
        try:
            share = Share.from_mnemonic(_normalise(mnemonic))
        except (MnemonicError, ValueError) as exc:
            raise ColdVaultError(f"share {self.accepted + 1} is not a valid SLIP-39 mnemonic: {exc}") from None
        if share in self._state:
            raise ColdVaultError(
                f"that share (group {share.group_index + 1}, member {share.index + 1}) was given already"
            )
        try:
            self._state.add_share(share)
        except MnemonicError as exc:
            raise ColdVaultError(f"that share does not belong with the others: {exc}") from None
        self.accepted += 1
        done, needed = self._state.group_status(share.group_index)
        params = share.common_parameters()
        return (
            f"group {share.group_index + 1}: {done} of {needed} shares; groups complete: "
            f"{self._state.groups_complete()} of {params.group_threshold} needed"
        )

    @property
    def needed(self) -> int:
        """Return how many more groups must be completed (0 when the secret can be recovered)."""
        params = self._state.parameters
        if params is None:
            return 1
        return max(0, int(params.group_threshold) - int(self._state.groups_complete()))

    def is_complete(self) -> bool:
        """Return whether enough shares are in to recover the secret."""
        return bool(self._state.is_complete())

    def recover(self, passphrase: bytes = b"") -> bytes:
        """Return the master secret; raise :class:`ColdVaultError` if the shares are not enough or do not agree."""
        if not self.is_complete():
            raise ColdVaultError(f"not enough shares yet: {self.needed} more group(s) must be completed")
        try:
            return bytes(self._state.recover(passphrase))
        except (MnemonicError, ValueError) as exc:
            raise ColdVaultError(f"cannot recover the secret: {exc}") from None


def _normalise(mnemonic: str) -> str:
    return " ".join(mnemonic.lower().split())
