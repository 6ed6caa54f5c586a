"""Signing for deposit addresses: the keys sweeps spend with, derived from each chain's deposit root (an xprv).

Deposit addresses are non-hardened BIP32 children of a chain's xpub (:mod:`exchange_framework.chains.hd`); sweeping
their coins into the hot wallet needs the matching private keys. :class:`DepositKeys` holds one extended private
key per chain, checks that it is the one behind the chain adapter's xpub, and signs a sweep's digests with the
child key at the adapter's ``deposit_key_path(account)``. It is a :class:`~exchange_framework.interfaces.CustodySigner`
(key ids ``deposit/<chain>/<account>``), so every sweep passes the custody policy engine before it signs, as
withdrawals do.

Limit: this is a software boundary like the software keystore (the root key lives in this process's memory while
the wallet runs). The roots come from ``EXCHANGE_DEPOSIT_XPRV_<CHAIN>`` environment variables, or a development
chain's published root (``dev_deposit_xprv``). Keeping the root in an HSM needs additive-tweak signing (BIP32
non-hardened child = parent + tweak), which no signer offers yet.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import coincurve
from bip_utils import Bip32KeyNetVersions, Bip32Slip10Secp256k1
from bip_utils.bip.bip32 import Bip32Const

from exchange_framework.custody.signing import check_request, verify_secp256k1
from exchange_framework.interfaces import (
    ChainAdapter,
    KeyExistsError,
    KeyScheme,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)

__all__ = ["XPRV_ENV_PREFIX", "DepositKeys", "deposit_key_id", "deposit_roots_from_env"]

XPRV_ENV_PREFIX = "EXCHANGE_DEPOSIT_XPRV_"
_KEY_ID = re.compile(r"deposit/([a-z0-9][a-z0-9._-]*)/([0-9]{1,10})\Z")
_VERSIONS: tuple[Bip32KeyNetVersions, ...] = (
    Bip32Const.MAIN_NET_KEY_NET_VERSIONS,
    Bip32Const.TEST_NET_KEY_NET_VERSIONS,
)


def deposit_key_id(chain: str, account: int) -> str:
    """The key id of ``account``'s deposit key on ``chain``: ``deposit/<chain>/<account>``."""
    return f"deposit/{chain}/{account}"


def _parse_xprv(xprv: str, chain: str) -> Bip32Slip10Secp256k1:
    for versions in _VERSIONS:
        try:
            key = Bip32Slip10Secp256k1.FromExtendedKey(xprv, versions)
        except Exception:  # bip-utils raises several types for a string that is not this kind of key
            continue
        if not key.IsPublicOnly():
            return key
    raise ValueError(f"the deposit root of {chain} is not an extended private key (xprv/tprv)")


def deposit_roots_from_env(
    adapters: Mapping[str, ChainAdapter], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each chain's deposit root: ``EXCHANGE_DEPOSIT_XPRV_<CHAIN>`` (chain name upper-cased, ``-``/``.`` as ``_``),
    else the adapter's ``dev_deposit_xprv`` (development chains only); chains with neither are left out."""
    env = os.environ if env is None else env
    roots: dict[str, str] = {}
    for name, adapter in adapters.items():
        variable = XPRV_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())
        value = env.get(variable) or getattr(adapter, "dev_deposit_xprv", "")
        if value:
            roots[name] = str(value)
    return roots


class DepositKeys:
    """A custody signer for the keys behind deposit addresses (see the module docstring)."""

    name = "deposit-keys"
    schemes = frozenset({KeyScheme.SECP256K1})

    def __init__(self, adapters: Mapping[str, ChainAdapter], roots: Mapping[str, str]) -> None:
        self._adapters = dict(adapters)
        self._roots: dict[str, Bip32Slip10Secp256k1] = {}
        for chain, xprv in roots.items():
            adapter = self._adapters.get(chain)
            if adapter is None or not hasattr(adapter, "deposit_key_path"):
                raise ValueError(f"{chain}: no chain adapter of that name derives deposit keys (deposit_key_path)")
            key = _parse_xprv(xprv, chain)
            xpub = str(getattr(adapter, "xpub", ""))
            if str(key.PublicKey().ToExtended()) != xpub and not self._is_parent_of(key, xpub):
                raise ValueError(f"{chain}: the deposit root does not match the adapter's xpub; refusing to use it")
            self._roots[chain] = key

    @staticmethod
    def _is_parent_of(key: Bip32Slip10Secp256k1, xpub: str) -> bool:
        """Whether ``xpub`` is ``key``'s own public key in other network version bytes (tpub vs xpub)."""
        try:
            public = Bip32Slip10Secp256k1.FromExtendedKey(xpub, _VERSIONS[1])
        except Exception:
            try:
                public = Bip32Slip10Secp256k1.FromExtendedKey(xpub, _VERSIONS[0])
            except Exception:
                return False
        return bool(
            public.PublicKey().RawCompressed().ToBytes() == key.PublicKey().RawCompressed().ToBytes()
            and public.ChainCode().ToBytes() == key.ChainCode().ToBytes()
        )

    def chains(self) -> list[str]:
        """The chains whose deposit addresses this signer can sweep."""
        return sorted(self._roots)

    def _private(self, key_id: str) -> bytes:
        match = _KEY_ID.match(key_id) if isinstance(key_id, str) else None
        if match is None or match.group(1) not in self._roots:
            raise UnknownKeyError(f"no deposit key {key_id!r} (known chains: {', '.join(self.chains()) or 'none'})")
        chain, account = match.group(1), int(match.group(2))
        path = self._adapters[chain].deposit_key_path(account)  # type: ignore[attr-defined]
        key = self._roots[chain]
        for index in path:
            key = key.ChildKey(index)
        return bytes(key.PrivateKey().Raw().ToBytes())

    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        """Deposit keys are derived, never created: raise :class:`KeyExistsError` for a known id."""
        self._private(key_id)
        raise KeyExistsError(f"{key_id} is derived from the chain's deposit root; it cannot be created")

    def key_scheme(self, key_id: str) -> KeyScheme:
        """secp256k1 for every deposit key (raise :class:`UnknownKeyError` for an unknown one)."""
        self._private(key_id)
        return KeyScheme.SECP256K1

    def public_key(self, key_id: str) -> bytes:
        """The 33-byte compressed public key of a deposit key."""
        return bytes(coincurve.PrivateKey(self._private(key_id)).public_key.format(compressed=True))

    def sign(self, request: SigningRequest) -> bytes:
        """Sign a 32-byte digest with the deposit key ``request.key_id``: 65 bytes ``r || s || v``, low-S, verified."""
        check_request(request, KeyScheme.SECP256K1)
        private = coincurve.PrivateKey(self._private(request.key_id))
        signature = bytes(private.sign_recoverable(request.payload, hasher=None))
        if not verify_secp256k1(private.public_key.format(compressed=True), request.payload, signature):
            raise SigningRefusedError(f"the signature for {request.request_id!r} does not verify: not returned")
        return signature
