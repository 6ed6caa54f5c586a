"""Fireblocks' MPC keys as a kernel custody signer, through raw signing (``operation: RAW``).

The kernel's own withdrawal path (a chain adapter builds the transaction, the policy engine approves, a signer signs,
the adapter assembles and broadcasts) can use Fireblocks' keys with this signer: each key id is a vault account of
that name holding one signing asset's wallet (``signing_assets``: an ECDSA asset such as ETH for secp256k1, an EdDSA
asset such as SOL for Ed25519), and signing is a ``RAW`` transaction carrying the digest (secp256k1) or the message
(Ed25519) as hex. Fireblocks' policy must allow raw signing from those vaults: it is off by default.

Every signature is checked against the key's public key before it is returned (secp256k1: normalised to low-S, the
recovery id found, verified; Ed25519: verified). Raw signing requests are idempotent: the ``externalTxId`` is made
from the request id, key and payload, so a retry finds the first request instead of signing again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from exchange_fireblocks.client import FireblocksApi, FireblocksError
from exchange_fireblocks.custody import TransferState, state_of
from exchange_fireblocks.settings import Settings
from exchange_framework.custody.signing import check_request, finish_secp256k1, public_key_size, verify_ed25519
from exchange_framework.interfaces import (
    KeyExistsError,
    KeyScheme,
    SignatureInvalidError,
    SigningError,
    SigningRefusedError,
    SigningRequest,
    UnknownKeyError,
)

__all__ = ["ALGORITHMS", "FireblocksSigner"]

# The algorithm Fireblocks names for each scheme's keys.
ALGORITHMS = {KeyScheme.SECP256K1: "MPC_ECDSA_SECP256K1", KeyScheme.ED25519: "MPC_EDDSA_ED25519"}


class FireblocksSigner:
    """A :class:`~exchange_framework.interfaces.CustodySigner` whose keys are Fireblocks vault accounts."""

    name = "fireblocks"

    def __init__(
        self,
        settings: Settings,
        *,
        api_factory: Callable[[], FireblocksApi],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.assets = {KeyScheme(scheme): asset for scheme, asset in settings.signing_assets.items()}
        self.schemes = frozenset(self.assets)
        self._api_factory = api_factory
        self._api: FireblocksApi | None = None
        self._lock = threading.Lock()
        self._public_keys: dict[str, tuple[KeyScheme, bytes]] = {}
        self.sleep = sleep
        self.clock = clock

    @property
    def api(self) -> FireblocksApi:
        """The API client, made (and the keys read) on first use."""
        with self._lock:
            if self._api is None:
                self._api = self._api_factory()
            return self._api

    def close(self) -> None:
        """Release the API client."""
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    # -- keys -----------------------------------------------------------------------------------------------------

    def _vault(self, key_id: str) -> tuple[str, set[str]] | None:
        """Return (vault account id, its asset ids) of the vault named ``key_id``, or None."""
        named = [account for account in self.api.vault_accounts(name_prefix=key_id) if account.name == key_id]
        if len(named) > 1:
            raise SigningError(f"{len(named)} Fireblocks vault accounts are named {key_id!r}: rename all but one")
        if not named or not named[0].id:
            return None
        return named[0].id, {asset.id for asset in named[0].assets or [] if asset.id}

    def _signing_asset(self, key_id: str, assets: set[str]) -> tuple[KeyScheme, str]:
        found = [(scheme, asset) for scheme, asset in self.assets.items() if asset in assets]
        if not found:
            raise UnknownKeyError(f"Fireblocks vault {key_id!r} has no signing asset wallet ({self._asset_list()})")
        if len(found) > 1:
            raise SigningError(f"Fireblocks vault {key_id!r} holds several signing assets: keep one per key")
        return found[0]

    def _asset_list(self) -> str:
        return ", ".join(f"{asset} for {scheme}" for scheme, asset in sorted(self.assets.items()))

    def _read_public_key(self, key_id: str, vault_id: str, scheme: KeyScheme) -> bytes:
        algorithm, hex_key = self.api.public_key(vault_id, self.assets[scheme])
        if algorithm != ALGORITHMS[scheme]:
            raise SigningError(f"Fireblocks reports a {algorithm} key for {key_id!r}, not {ALGORITHMS[scheme]}")
        try:
            public_key = bytes.fromhex(hex_key)
        except ValueError:
            raise SigningError(f"the public key Fireblocks reports for {key_id!r} is not hex") from None
        if len(public_key) != public_key_size(scheme):
            raise SigningError(f"the {scheme} public key of {key_id!r} has {len(public_key)} bytes")
        self._public_keys[key_id] = (scheme, public_key)
        return public_key

    def _key(self, key_id: str) -> tuple[KeyScheme, bytes, str]:
        try:
            found = self._vault(key_id)
            if found is None:
                raise UnknownKeyError(f"no Fireblocks vault account is named {key_id!r}")
            vault_id, assets = found
            scheme, _asset = self._signing_asset(key_id, assets)
            cached = self._public_keys.get(key_id)
            public_key = cached[1] if cached is not None else self._read_public_key(key_id, vault_id, scheme)
        except FireblocksError as exc:
            raise SigningError(f"Fireblocks could not be asked about key {key_id!r}: {exc}") from None
        return scheme, public_key, vault_id

    def create_key(self, key_id: str, scheme: KeyScheme) -> bytes:
        """Create the vault account ``key_id`` with the scheme's signing asset; return its public key."""
        if scheme not in self.assets:
            raise SigningRefusedError(f"no Fireblocks signing asset is configured for {scheme} ({self._asset_list()})")
        try:
            found = self._vault(key_id)
            if found is not None and any(asset in found[1] for asset in self.assets.values()):
                raise KeyExistsError(f"Fireblocks vault account {key_id!r} exists already: keys are never replaced")
            vault_id = found[0] if found is not None else self.api.create_vault_account(key_id)
            self.api.activate_asset(vault_id, self.assets[scheme])  # completes a vault an interrupted create left
            return self._read_public_key(key_id, vault_id, scheme)
        except FireblocksError as exc:
            raise SigningError(f"Fireblocks could not create key {key_id!r}: {exc}") from None

    def key_scheme(self, key_id: str) -> KeyScheme:
        """Return the scheme of ``key_id`` (from the signing asset its vault holds)."""
        return self._key(key_id)[0]

    def public_key(self, key_id: str) -> bytes:
        """Return the public key of ``key_id`` as Fireblocks reports it (compressed for secp256k1)."""
        return self._key(key_id)[1]

    # -- signing --------------------------------------------------------------------------------------------------

    def external_id(self, request: SigningRequest) -> str:
        """The ``externalTxId`` of a signing request: the same for a retry of the same request, key and payload."""
        digest = hashlib.sha256(f"{request.key_id}\0".encode() + request.payload).hexdigest()[:24]
        return f"sign-{request.request_id}-{digest}"

    def sign(self, request: SigningRequest) -> bytes:
        """Have Fireblocks sign ``request`` with the key's vault; return the verified signature.

        Raise :class:`SigningRefusedError` when Fireblocks refuses (policy, approvers) and :class:`SigningError` when
        it cannot be asked or has not signed within ``sign_timeout_seconds``; nothing doubtful is ever returned.
        """
        scheme, public_key, vault_id = self._key(request.key_id)
        check_request(request, scheme)
        external = self.external_id(request)
        content = request.payload.hex()
        try:
            existing = self.api.transaction_by_external_id(external)
            tx_id = existing.id if existing is not None and existing.id else None
            if tx_id is None:
                tx_id = self.api.create_raw_signing(
                    external_tx_id=external, vault_account_id=vault_id, asset_id=self.assets[scheme], content=content
                )
            deadline = self.clock() + self.settings.sign_timeout_seconds
            while True:
                tx = self.api.transaction(tx_id)
                state = state_of(tx.status)
                if state is TransferState.COMPLETED or state in (TransferState.REFUSED, TransferState.FAILED):
                    break
                if self.clock() >= deadline:
                    raise SigningError(f"Fireblocks has not signed {external} yet ({tx.status}): the withdrawal waits")
                self.sleep(self.settings.poll_interval_seconds)
        except FireblocksError as exc:
            raise SigningError(f"Fireblocks could not sign {external}: {exc}") from None
        if state is not TransferState.COMPLETED:
            raise SigningRefusedError(f"Fireblocks did not sign {external}: {tx.status} {tx.sub_status or ''}".strip())
        signed = [m for m in tx.signed_messages or [] if (m.content or "").lower() == content]
        if len(signed) != 1 or signed[0].signature is None or not signed[0].signature.full_sig:
            raise SignatureInvalidError(f"Fireblocks completed {external} without one signature of the payload")
        try:
            raw = bytes.fromhex(signed[0].signature.full_sig)
        except ValueError:
            raise SignatureInvalidError(f"the signature of {external} is not hex") from None
        if scheme is KeyScheme.SECP256K1:
            return finish_secp256k1(public_key, request.payload, raw)  # low-S, recovery id, verified or raises
        if not verify_ed25519(public_key, request.payload, raw):
            raise SignatureInvalidError(f"the Ed25519 signature of {external} does not verify against the key")
        return raw
