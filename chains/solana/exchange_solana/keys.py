"""Offline operator helper: per-account deposit addresses by SLIP-10 *hardened* Ed25519 derivation.

Ed25519 has no public (non-hardened) derivation, so the exchange cannot derive per-account addresses from a public
key the way BIP32 xpubs allow. An operator who wants per-account addresses runs this on the offline machine that
holds the seed, at ``m/44'/501'/<account>'/0'`` (the path Solana wallets use), and puts the resulting public
addresses (never the seed) in ``[plugins.settings.solana] account_addresses``. Funds at those addresses are swept
with keys derived the same way, offline. The default is memo deposits to one shared address instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from bip_utils import Bip32Slip10Ed25519
from solders.pubkey import Pubkey

__all__ = ["account_path", "slip10_addresses"]


def account_path(account: int) -> str:
    """The SLIP-10 path of ``account``'s deposit key: ``m/44'/501'/<account>'/0'``."""
    if account < 0 or account >= 2**31:
        raise ValueError(f"account {account} is outside 0 .. 2**31 - 1")
    return f"m/44'/501'/{account}'/0'"


def slip10_addresses(seed: bytes, accounts: Iterable[int]) -> dict[int, str]:
    """Base58 addresses of ``accounts`` under a BIP39 ``seed`` (run offline; only the addresses leave)."""
    root = Bip32Slip10Ed25519.FromSeed(seed)
    out: dict[int, str] = {}
    for account in accounts:
        public = root.DerivePath(account_path(account)).PublicKey().RawCompressed().ToBytes()[1:]
        out[account] = str(Pubkey.from_bytes(public))
    return out
