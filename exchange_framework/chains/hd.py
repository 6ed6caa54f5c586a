"""Deposit keys from an extended public key: BIP32 non-hardened child derivation, public material only.

A chain adapter is configured with an ``xpub`` (or ``tpub``) exported from the custody side; everything here works
on public keys, so the exchange's watch-only hosts never hold a private key. Derivation is done by ``bip-utils``
(a maintained implementation checked against the BIP32 test vectors); this module fixes the path convention:
account ``a`` pays to child ``0/a`` of the configured key (:func:`account_path`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from bip_utils import Bip32KeyNetVersions, Bip32Slip10Secp256k1
from bip_utils.bip.bip32 import Bip32Const

__all__ = [
    "HARDENED",
    "HdError",
    "account_path",
    "derive_public_key",
    "derive_xpub",
    "validate_xpub",
]

HARDENED = 0x8000_0000
_NET_VERSIONS: tuple[Bip32KeyNetVersions, ...] = (
    Bip32Const.MAIN_NET_KEY_NET_VERSIONS,
    Bip32Const.TEST_NET_KEY_NET_VERSIONS,
)


class HdError(ValueError):
    """An extended key or derivation path is unusable; the message says what to supply instead."""


def _parse(xpub: str) -> Bip32Slip10Secp256k1:
    if not isinstance(xpub, str) or not xpub.startswith(("xpub", "tpub")):
        raise HdError(
            "expected an extended public key starting with 'xpub' or 'tpub' (export the account-level xpub from "
            f"the custody side; never configure an xprv), got {str(xpub)[:8]!r}..."
        )
    errors: list[str] = []
    for versions in _NET_VERSIONS:
        try:
            key = Bip32Slip10Secp256k1.FromExtendedKey(xpub, versions)
        except Exception as exc:  # bip-utils raises several unrelated types for bad input
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if not key.IsPublicOnly():
            raise HdError("the extended key is private: configure its xpub instead")
        return key
    raise HdError(f"not a valid extended public key ({errors[-1]})")


def validate_xpub(xpub: str) -> None:
    """Raise :class:`HdError` unless ``xpub`` is a well-formed secp256k1 extended public key."""
    _parse(xpub)


def _child(xpub: str, path: Sequence[int]) -> Bip32Slip10Secp256k1:
    for index in path:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < HARDENED:
            raise HdError(
                f"path index {index!r} is not a non-hardened index (0 to {HARDENED - 1}); "
                "hardened children cannot be derived from a public key"
            )
    if not path:
        return _parse_cached(xpub)
    return _branch(xpub, tuple(path[:-1])).ChildKey(path[-1])


@functools.lru_cache(maxsize=64)
def _parse_cached(xpub: str) -> Bip32Slip10Secp256k1:
    return _parse(xpub)


@functools.lru_cache(maxsize=256)
def _branch(xpub: str, path: tuple[int, ...]) -> Bip32Slip10Secp256k1:
    # the parents of deposit keys (such as 0 below the account xpub) are derived once, not per address
    key = _parse_cached(xpub)
    for index in path:
        key = key.ChildKey(index)
    return key


def derive_public_key(xpub: str, path: Sequence[int]) -> bytes:
    """Return the 33-byte compressed secp256k1 public key at non-hardened ``path`` below ``xpub``."""
    key = _child(xpub, path)
    return bytes(key.PublicKey().RawCompressed().ToBytes())


def derive_xpub(xpub: str, path: Sequence[int]) -> str:
    """Return the extended public key at non-hardened ``path`` below ``xpub`` (same network version bytes)."""
    key = _child(xpub, path)
    return str(key.PublicKey().ToExtended())


def account_path(account: int) -> tuple[int, int]:
    """Return the derivation path of ``account``'s deposit key: external chain 0, child index = account id.

    Raise :class:`HdError` for an account id that is not a non-hardened index (1 to 2**31 - 1).
    """
    if not isinstance(account, int) or isinstance(account, bool) or not 0 < account < HARDENED:
        raise HdError(f"account {account!r} cannot have a derived deposit address: ids must be 1 to {HARDENED - 1}")
    return (0, account)
