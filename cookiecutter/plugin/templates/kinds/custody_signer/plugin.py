"""{{ cookiecutter.plugin_name.strip() }}: a custody signer whose keys live in this process's memory.

A development signer: its keys are created inside it and die with the process, so it suits tests and local
exchanges only. For production keep the same checks and replace :class:`InMemorySigner`'s key table with a session
on your HSM, KMS or threshold signers, where keys are generated and stay. The kernel's policy engine approves every
request before a signer sees it; the signer checks again what it can (defence in depth), verifies each signature
before returning it, and raises a :class:`~exchange_framework.interfaces.SigningError` when in doubt, so the kernel
holds the withdrawal. Settings, in ``exchange.toml``::

    [plugins.settings.{{ cookiecutter.__slug }}]
    chains = ["bitcoin", "ethereum"]    # chains it signs for; [] for any
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import coincurve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from exchange_framework import hookimpl
from exchange_framework.config import ExchangeConfig
from exchange_framework.custody.signing import check_request, sign_verified
from exchange_framework.interfaces import (
    KeyExistsError,
    KeyScheme,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)

PLUGIN_NAME = "{{ cookiecutter.__slug }}"
SETTINGS = f"[plugins.settings.{PLUGIN_NAME}]"

PrivateKey = coincurve.PrivateKey | Ed25519PrivateKey


class InMemorySigner:
    """Creates secp256k1 and Ed25519 keys in memory and signs approved requests with them."""

    schemes = frozenset({KeyScheme.SECP256K1, KeyScheme.ED25519})

    def __init__(self, chains: Iterable[str] = (), *, name: str = PLUGIN_NAME) -> None:
        self.name = name
        self.chains = frozenset(chains)
        self._keys: dict[str, tuple[KeyScheme, PrivateKey]] = {}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> InMemorySigner:
        """Build the signer from the plugin's settings table; raise ``ValueError`` naming a bad key."""
        unknown = sorted(set(settings) - {"chains"})
        if unknown:
            raise ValueError(f"{SETTINGS}: unknown key {unknown[0]!r}; known keys: chains")
        chains = settings.get("chains", [])
        if not isinstance(chains, list) or not all(isinstance(chain, str) and chain for chain in chains):
            raise ValueError(f'{SETTINGS} chains must be a list of chain names, such as ["bitcoin"], not {chains!r}')
        return cls(chains)

    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        """Generate a key of ``scheme`` under ``key_id`` and return its public key; never replace a key."""
        if scheme not in self.schemes:
            raise SigningRefusedError(f"{self.name} cannot create {scheme!r} keys")
        if key_id in self._keys:
            raise KeyExistsError(f"{self.name} already holds a key {key_id!r}; keys are never replaced")
        key: PrivateKey = coincurve.PrivateKey() if scheme is KeyScheme.SECP256K1 else Ed25519PrivateKey.generate()
        self._keys[key_id] = (scheme, key)
        return self.public_key(key_id)

    def key_scheme(self, key_id: str) -> KeyScheme:
        """Return the scheme of ``key_id``."""
        return self._key(key_id)[0]

    def public_key(self, key_id: str) -> bytes:
        """Return the public key of ``key_id``: 33 bytes compressed (secp256k1) or 32 bytes raw (Ed25519)."""
        _, key = self._key(key_id)
        if isinstance(key, coincurve.PrivateKey):
            return bytes(key.public_key.format(compressed=True))
        return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, request: SigningRequest) -> bytes:
        """Check ``request`` again, sign its payload and return the signature, verified against the public key.

        Refuse a chain outside the configured ones, a payload that does not suit the key (a secp256k1 key signs
        only 32-byte digests) and a request that expects another scheme.
        """
        if self.chains and request.chain not in self.chains:
            raise SigningRefusedError(f"{self.name} does not sign for chain {request.chain!r}")
        scheme, key = self._key(request.key_id)
        check_request(request, scheme)
        if isinstance(key, coincurve.PrivateKey):
            secp_key = key

            def raw_sign() -> bytes:
                return bytes(secp_key.sign_recoverable(request.payload, hasher=None))[:64]  # r || s

        else:
            ed_key = key

            def raw_sign() -> bytes:
                return ed_key.sign(request.payload)

        what = f"{self.name} key {request.key_id!r}"
        return sign_verified(scheme, self.public_key(request.key_id), request.payload, raw_sign, what=what)

    def _key(self, key_id: str) -> tuple[KeyScheme, PrivateKey]:
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(f"{self.name} holds no key {key_id!r}") from None


@hookimpl
def startup(config: ExchangeConfig) -> None:
    """Check the plugin's settings as the exchange starts: a mistake stops the start with a clear error."""
    InMemorySigner.from_settings(config.plugin_settings(PLUGIN_NAME))


@hookimpl
def register_custody_signers(config: ExchangeConfig) -> list[InMemorySigner]:
    """Register the signer, under the plugin's name."""
    return [InMemorySigner.from_settings(config.plugin_settings(PLUGIN_NAME))]
