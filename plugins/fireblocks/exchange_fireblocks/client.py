"""The Fireblocks API calls the plugin makes, through Fireblocks' official SDK (``fireblocks`` on PyPI).

The SDK signs every request as Fireblocks documents: headers ``X-API-Key`` and ``Authorization: Bearer <JWT>``, the
JWT signed RS256 with the API user's private key and carrying ``uri`` (path and query), ``nonce``, ``iat``, ``exp``,
``sub`` (the API key) and ``bodyHash`` (hex SHA-256 of the body). Endpoints used:

- ``POST /v1/transactions`` (with ``externalTxId`` and an ``Idempotency-Key`` header),
- ``GET /v1/transactions/{txId}`` and ``GET /v1/transactions/external_tx_id/{externalTxId}``,
- ``GET /v1/vault/accounts_paged`` (cursor ``paging.after``).

Every failure (HTTP error, timeout, connection refused, an answer the SDK cannot read) raises
:class:`FireblocksError`, whose message never holds a key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import pydantic
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fireblocks import rest
from fireblocks.bearer_token_provider import BearerTokenProvider
from fireblocks.client import Fireblocks
from fireblocks.client_configuration import ClientConfiguration
from fireblocks.exceptions import ApiException, NotFoundException, OpenApiException
from fireblocks.models.create_vault_account_request import CreateVaultAccountRequest
from fireblocks.models.destination_transfer_peer_path import DestinationTransferPeerPath
from fireblocks.models.extra_parameters import ExtraParameters
from fireblocks.models.one_time_address import OneTimeAddress
from fireblocks.models.source_transfer_peer_path import SourceTransferPeerPath
from fireblocks.models.transaction_operation import TransactionOperation
from fireblocks.models.transaction_request import TransactionRequest
from fireblocks.models.transaction_request_amount import TransactionRequestAmount
from fireblocks.models.transaction_response import TransactionResponse
from fireblocks.models.transfer_peer_path_type import TransferPeerPathType
from fireblocks.models.vault_account import VaultAccount

__all__ = ["FireblocksApi", "FireblocksError", "NotFoundError"]

T = TypeVar("T")


class FireblocksError(Exception):
    """Fireblocks could not be asked, refused the request, or answered something unreadable."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status Fireblocks answered, if it answered


class NotFoundError(FireblocksError):
    """Fireblocks answered 404: there is no such object."""


def _detail(exc: ApiException) -> str:
    body = (exc.body or "").strip() if isinstance(exc.body, str) else ""
    return body[:200] or str(exc.reason or "")


class FireblocksApi:
    """A Fireblocks workspace's API, as the plugin uses it (amounts cross as decimal strings, never floats)."""

    def __init__(self, *, base_url: str, api_key: str, secret_key: str, timeout_seconds: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout_seconds)
        # ClientConfiguration holds the key: it stays inside this object and is never logged or put in an error.
        try:
            private_key = serialization.load_pem_private_key(secret_key.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError):
            raise FireblocksError("the Fireblocks API private key is not an unencrypted PEM private key") from None
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise FireblocksError("the Fireblocks API private key must be an RSA key (Fireblocks signs RS256)")
        configuration = ClientConfiguration(api_key=api_key, secret_key=secret_key, base_path=self.base_url)
        self._sdk = Fireblocks(configuration)
        api_client = self._sdk._api_client
        # Sign with the key loaded once: given the PEM text, PyJWT parses and checks the RSA key on every request
        # (over 100 ms each on this machine; a few ms with the loaded key). PyJWT takes a key object where the SDK's
        # annotation says str.
        api_client.token_provider = BearerTokenProvider(api_key, private_key)  # type: ignore[arg-type]
        # No transport-level retries: urllib3 would resend a timed-out request with the same JWT, whose nonce
        # Fireblocks refuses the second time. A failed call raises, and the caller retries with a fresh token.
        api_client.configuration.retries = 0
        api_client.rest_client = rest.RESTClientObject(api_client.configuration)

    def close(self) -> None:
        """Release the SDK's connections and threads."""
        self._sdk._api_client.close()  # the SDK's documented shutdown is the client's close(); no public wrapper

    def _call(self, what: str, request: Callable[[], Any]) -> Any:
        try:
            return request().result(timeout=self.timeout * 3).data
        except NotFoundException as exc:
            raise NotFoundError(f"{what}: not found ({_detail(exc)})", status=404) from None
        except ApiException as exc:
            message = f"{what}: Fireblocks answered HTTP {exc.status}: {_detail(exc)}"
            raise FireblocksError(message, status=exc.status) from None
        except (urllib3.exceptions.HTTPError, TimeoutError, OSError) as exc:
            raise FireblocksError(f"{what}: Fireblocks could not be reached: {type(exc).__name__}") from None
        except (OpenApiException, pydantic.ValidationError, ValueError) as exc:
            raise FireblocksError(f"{what}: unreadable answer: {type(exc).__name__}: {str(exc)[:200]}") from None

    def create_transfer(
        self,
        *,
        external_tx_id: str,
        asset_id: str,
        amount: str,
        source_vault_id: str,
        destination_address: str,
        destination_tag: str = "",
        note: str = "",
    ) -> tuple[str, str]:
        """Ask Fireblocks to send ``amount`` (a decimal string) of ``asset_id`` to an address; return (id, status).

        ``external_tx_id`` makes the request unique: Fireblocks refuses a second transaction with the same one, and
        the same value is the ``Idempotency-Key``, so a retried request answers like the first.
        """
        request = TransactionRequest(
            operation=TransactionOperation.TRANSFER,
            assetId=asset_id,
            amount=TransactionRequestAmount(amount),
            source=SourceTransferPeerPath(type=TransferPeerPathType.VAULT_ACCOUNT, id=source_vault_id),
            destination=DestinationTransferPeerPath(
                type=TransferPeerPathType.ONE_TIME_ADDRESS,
                oneTimeAddress=OneTimeAddress(address=destination_address, tag=destination_tag or None),
            ),
            externalTxId=external_tx_id,
            note=note or None,
        )
        created = self._call(
            f"create transaction {external_tx_id}",
            lambda: self._sdk.transactions.create_transaction(
                transaction_request=request, idempotency_key=external_tx_id, _request_timeout=self.timeout
            ),
        )
        if not created.id or not created.status:
            raise FireblocksError(f"create transaction {external_tx_id}: the answer has no id or status")
        return created.id, created.status

    def transaction(self, tx_id: str) -> TransactionResponse:
        """Return one transaction by its Fireblocks id."""
        found: TransactionResponse = self._call(
            f"transaction {tx_id}",
            lambda: self._sdk.transactions.get_transaction(tx_id=tx_id, _request_timeout=self.timeout),
        )
        return found

    def transaction_by_external_id(self, external_tx_id: str) -> TransactionResponse | None:
        """Return the transaction created with ``external_tx_id``, or None if there is none."""
        try:
            found: TransactionResponse = self._call(
                f"transaction with external id {external_tx_id}",
                lambda: self._sdk.transactions.get_transaction_by_external_id(
                    external_tx_id=external_tx_id, _request_timeout=self.timeout
                ),
            )
        except NotFoundError:
            return None
        return found

    def _vault_page(self, after: str | None, limit: int, name_prefix: str | None) -> Any:
        return self._sdk.vaults.get_paged_vault_accounts(
            name_prefix=name_prefix, after=after, limit=limit, _request_timeout=self.timeout
        )

    def vault_accounts(self, *, page_size: int = 200, name_prefix: str | None = None) -> list[VaultAccount]:
        """Return every vault account of the workspace (or those named ``name_prefix``...), following the pages."""
        accounts: list[VaultAccount] = []
        after: str | None = None
        for _ in range(10_000):
            page = self._call("vault accounts", functools.partial(self._vault_page, after, page_size, name_prefix))
            accounts.extend(page.accounts or [])
            after = page.paging.after if page.paging is not None else None
            if not after:
                return accounts
        raise FireblocksError("vault accounts: the pages never end")

    # -- raw signing (the custody signer) ---------------------------------------------------------------------------

    def create_vault_account(self, name: str) -> str:
        """Create a vault account (hidden in the console) named ``name``; return its id."""
        request = CreateVaultAccountRequest(name=name, hiddenOnUI=True)
        created: VaultAccount = self._call(
            f"create vault account {name}",
            lambda: self._sdk.vaults.create_vault_account(
                create_vault_account_request=request, idempotency_key=f"vault-{name}", _request_timeout=self.timeout
            ),
        )
        if not created.id:
            raise FireblocksError(f"create vault account {name}: the answer has no id")
        return created.id

    def activate_asset(self, vault_account_id: str, asset_id: str) -> None:
        """Create the ``asset_id`` wallet of a vault account (which derives its key)."""
        self._call(
            f"create {asset_id} wallet in vault {vault_account_id}",
            lambda: self._sdk.vaults.create_vault_account_asset(
                vault_account_id=vault_account_id, asset_id=asset_id, _request_timeout=self.timeout
            ),
        )

    def public_key(self, vault_account_id: str, asset_id: str) -> tuple[str, str]:
        """Return (algorithm, compressed public key in hex) of a vault account's ``asset_id`` wallet (address 0/0)."""
        info = self._call(
            f"public key of {asset_id} in vault {vault_account_id}",
            lambda: self._sdk.vaults.get_public_key_info_for_address(
                vault_account_id=vault_account_id,
                asset_id=asset_id,
                change=0,
                address_index=0,
                compressed=True,
                _request_timeout=self.timeout,
            ),
        )
        if not info.public_key or not info.algorithm:
            raise FireblocksError(f"public key of {asset_id} in vault {vault_account_id}: no key in the answer")
        return info.algorithm, info.public_key

    def create_raw_signing(self, *, external_tx_id: str, vault_account_id: str, asset_id: str, content: str) -> str:
        """Ask Fireblocks to sign ``content`` (hex) with a vault account's ``asset_id`` key; return the transaction id.

        A ``RAW`` transaction: Fireblocks' policy must allow raw signing from the vault, and the signature comes back
        in the transaction's ``signedMessages`` once it is ``COMPLETED``.
        """
        request = TransactionRequest(
            operation=TransactionOperation.RAW,
            assetId=asset_id,
            source=SourceTransferPeerPath(type=TransferPeerPathType.VAULT_ACCOUNT, id=vault_account_id),
            extraParameters=ExtraParameters(rawMessageData={"messages": [{"content": content}]}),
            externalTxId=external_tx_id,
            note=f"exchange signing request {external_tx_id}",
        )
        created = self._call(
            f"create raw signing {external_tx_id}",
            lambda: self._sdk.transactions.create_transaction(
                transaction_request=request, idempotency_key=external_tx_id, _request_timeout=self.timeout
            ),
        )
        if not created.id:
            raise FireblocksError(f"create raw signing {external_tx_id}: the answer has no id")
        tx_id: str = created.id
        return tx_id
