"""The TRISA travel rule provider: which withdrawals need it, finding the beneficiary's VASP, sending, answers.

``required`` converts the withdrawal's amount (integer atomic units) into cents of the jurisdiction's threshold
currency with the configured reference price, in exact integers; no price means required (fail closed).
``send`` is idempotent by withdrawal: the envelope id is derived from our common name and the withdrawal id, the
record is written before the envelope goes out, and a final answer is never asked for again. The counterparty is
the VASP configured for the destination address, looked up in the directory; an address with no known VASP (an
unhosted wallet, or a VASP outside TRISA) follows ``unknown_vasp``: ``hold`` (default) for an operator,
``reject``, or ``allow``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exchange_framework.interfaces import Decision, WithdrawalRequest
from exchange_framework.money import format_atomic
from exchange_trisa import envelope, identity
from exchange_trisa.directory import Counterparty, CounterpartyDirectory
from exchange_trisa.receiver import error_envelope
from exchange_trisa.store import OutgoingTransfer, TransferStore
from exchange_trisa.thresholds import Threshold, requires_travel_rule
from exchange_trisa.transport import TransportError, TrisaClient
from exchange_trisa.wire import PENDING_TYPE, ErrorCode, Payload, Pending, SecureEnvelope, Transaction, TransferState

__all__ = ["UNKNOWN_VASP_POLICIES", "TrisaProvider", "parse_prices", "value_in_cents"]

UNKNOWN_VASP_POLICIES = ("hold", "reject", "allow")
_FINAL = frozenset({"accepted", "rejected", "unknown_vasp"})


def parse_prices(prices: Mapping[str, object]) -> dict[str, tuple[int, int]]:
    """``{asset: "<price of one whole unit in the threshold currency>"}`` as exact integer ratios."""
    found: dict[str, tuple[int, int]] = {}
    for asset, text in prices.items():
        try:
            price = Decimal(str(text))
        except InvalidOperation:
            price = Decimal("NaN")
        if not price.is_finite() or price <= 0:
            where = f"[plugins.settings.trisa.reference_prices] {asset} = {text!r}"
            raise ValueError(f'{where}: write the price of one {asset} as a positive decimal string, e.g. "3000.00"')
        found[asset] = price.as_integer_ratio()
    return found


def value_in_cents(amount: int, decimals: int, price: tuple[int, int]) -> int:
    """``amount`` atomic units at ``price`` (per whole unit) in whole cents, in integers only.

    Rounded down, which keeps the threshold comparison exact: a value reaches a threshold of whole cents exactly
    when its whole cents do.
    """
    numerator, denominator = price
    return (amount * numerator * 100) // (denominator * 10**decimals)


class TrisaProvider:
    """A :class:`~exchange_framework.interfaces.TravelRuleProvider` over the TRISA network."""

    name = "trisa"

    def __init__(
        self,
        *,
        common_name: str,
        vasp_name: str,
        client: TrisaClient,
        directory: CounterpartyDirectory,
        sealing_key: rsa.RSAPrivateKey,
        store: TransferStore,
        thresholds: Mapping[str, Threshold],
        jurisdiction: str,
        prices: Mapping[str, tuple[int, int]],
        decimals: Mapping[str, int],
        addresses: Mapping[str, str],
        unknown_vasp: str = "hold",
        retry_seconds: float = 10.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if unknown_vasp not in UNKNOWN_VASP_POLICIES:
            raise ValueError(f"unknown_vasp = {unknown_vasp!r}: use one of {', '.join(UNKNOWN_VASP_POLICIES)}")
        self.common_name = common_name
        self.vasp_name = vasp_name
        self.client = client
        self.directory = directory
        self.sealing_key = sealing_key
        self.store = store
        self.thresholds = thresholds
        self.jurisdiction = jurisdiction
        self.prices = prices
        self.decimals = decimals
        self.addresses = addresses
        self.unknown_vasp = unknown_vasp
        self.retry_ns = int(retry_seconds * 1e9)  # between attempts for one transfer (no answer, or pending)
        self.clock = clock
        self._keys: dict[str, rsa.RSAPublicKey] = {}  # counterparties' sealing keys, by common name
        self._lock = threading.Lock()
        self._records_lock = threading.Lock()

    def required(self, withdrawal: WithdrawalRequest) -> bool:
        """Whether the withdrawal's value reaches the jurisdiction's threshold (no price or decimals: yes)."""
        threshold = self.thresholds.get(self.jurisdiction)
        price = self.prices.get(withdrawal.asset)
        decimals = self.decimals.get(withdrawal.asset)
        if threshold is None or price is None or decimals is None:
            return True
        cents = value_in_cents(withdrawal.amount, decimals, price)
        return requires_travel_rule(self.thresholds, self.jurisdiction, cents, threshold.currency)

    def envelope_id(self, withdrawal_id: int) -> str:
        """The envelope id of a withdrawal's transfer (the same on every attempt)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"trisa://{self.common_name}/withdrawal/{withdrawal_id}"))

    def send(self, withdrawal: WithdrawalRequest, originator: Mapping[str, str]) -> str:
        """Send the sealed identity to the beneficiary's VASP unless it already answered; return the envelope id.

        Raises :class:`~exchange_trisa.transport.TransportError` or
        :class:`~exchange_trisa.directory.DirectoryError` when the directory or the counterparty cannot be reached.
        """
        eid = self.envelope_id(withdrawal.withdrawal_id)
        record = self.store.get(eid)
        if record is not None and record.state in _FINAL:
            return eid
        if record is not None and self.clock() - record.updated_ns < self.retry_ns:
            return eid  # asked recently: give the counterparty time
        counterparty, why = self._counterparty(withdrawal)
        if counterparty is None:
            self._save(OutgoingTransfer(eid, withdrawal.withdrawal_id, "", "unknown_vasp", 0, why))
            return eid
        record = record or OutgoingTransfer(eid, withdrawal.withdrawal_id, counterparty.common_name, "unsent")
        record.attempts += 1
        self._save(record)  # before the envelope goes out
        if record.state in _FINAL:  # a later reply decided meanwhile
            return eid
        try:
            key = self._key_for(counterparty)
            sealed = envelope.seal(self._payload(withdrawal, originator, counterparty), key, envelope_id=eid)
            reply = self.client.transfer(counterparty.endpoint, sealed, name=counterparty.common_name)
            self._record_reply(record, reply)
        except Exception as exc:  # shown while it waits; the next attempt comes after retry_seconds
            record.message = str(exc)
            self._save(record)
            raise
        return eid

    def status(self, reference: str) -> Decision:
        """The counterparty's answer as a decision: accepted allows, rejected rejects, anything else holds."""
        record = self.store.get(reference)
        who = record.counterparty if record else ""
        if record is None or record.state == "unsent":
            last = f" ({record.message})" if record is not None and record.message else ""
            return Decision.hold(f"not yet delivered to {who or 'the counterparty'}{last}", provider=self.name)
        if record.state == "accepted":
            return Decision.allow(f"accepted by {who}", provider=self.name)
        if record.state == "rejected":
            return Decision.reject(
                f"{who} refused the transfer (TRISA error {record.code}: {record.message})", provider=self.name
            )
        if record.state == "pending":
            return Decision.hold(f"{who} has not decided yet ({record.message})", provider=self.name)
        why = record.message
        if self.unknown_vasp == "reject":
            return Decision.reject(why, provider=self.name)
        if self.unknown_vasp == "allow":
            return Decision.allow(
                f"{why}; sent without a travel rule exchange (unknown_vasp = allow)", provider=self.name
            )
        return Decision.hold(f"{why}: held for review", provider=self.name)

    # -- helpers
    def _counterparty(self, withdrawal: WithdrawalRequest) -> tuple[Counterparty | None, str]:
        """The beneficiary's VASP: configured for the address, else as the customer declared it (a common name, or
        a name the directory finds exactly one VASP for); else ``None`` and why."""
        configured = self.addresses.get(withdrawal.address)
        if configured:
            found = self.directory.lookup(configured)
            return found, "" if found else f"the directory has no VASP {configured!r} (configured for this address)"
        declared = withdrawal.beneficiary_vasp
        if not declared:
            return None, "no TRISA VASP is known for this address (an unhosted wallet or a VASP outside TRISA)"
        found = self.directory.lookup(declared)
        if found is not None:
            return found, ""
        matches = self.directory.search(declared)
        if len(matches) == 1:
            return self.directory.lookup(matches[0].common_name) or matches[0], ""
        many = f"{len(matches)} VASPs match" if matches else "no VASP matches"
        return None, f"the declared VASP {declared!r} is not one TRISA VASP ({many} in the directory)"

    def _save(self, record: OutgoingTransfer) -> None:
        """Write ``record`` unless a final answer is already stored: a final answer never changes, whichever of
        the wallet's send and a counterparty's later reply (on a server thread) gets there first."""
        with self._records_lock:
            stored = self.store.get(record.envelope_id)
            if stored is not None and stored.state in _FINAL:
                record.state, record.code, record.message = stored.state, stored.code, stored.message
                return
            record.updated_ns = self.clock()
            self.store.put(record)

    def _key_for(self, counterparty: Counterparty) -> rsa.RSAPublicKey:
        """The counterparty's sealing key; our key goes to it by ``KeyExchange`` once per process."""
        with self._lock:
            key = self._keys.get(counterparty.common_name)
        if key is None:
            exchanged = self.client.key_exchange(
                counterparty.endpoint, self.sealing_key.public_key(), name=counterparty.common_name
            )
            key = exchanged
            if counterparty.sealing_key:  # the directory's certificate key wins over what the peer says
                published = serialization.load_der_public_key(counterparty.sealing_key)
                if not isinstance(published, rsa.RSAPublicKey):
                    raise TransportError(f"{counterparty.common_name}'s directory signing key is not an RSA key")
                key = published
            with self._lock:
                self._keys[counterparty.common_name] = key
        return key

    def _payload(self, withdrawal: WithdrawalRequest, originator: Mapping[str, str], counterparty: Counterparty) -> Any:
        ivms = identity.identity_payload(
            originator,
            originator_address=f"{self.common_name}:{originator.get('account', withdrawal.account)}",
            beneficiary_address=withdrawal.address,
            originating_vasp=self.vasp_name,
            beneficiary_vasp=counterparty.name,
            beneficiary_name=withdrawal.beneficiary_name,
        )
        whole = format_atomic(withdrawal.amount, self.decimals.get(withdrawal.asset, 0), trim=True)
        transaction = Transaction(
            originator=ivms.originator.account_numbers[0],
            beneficiary=withdrawal.address,
            amount=float(Decimal(whole)),  # TRISA's wire type is a double; the exact amount is in extra_json
            network=withdrawal.chain,
            asset_type=withdrawal.asset,
            timestamp=datetime.now(UTC).isoformat(),
            extra_json=json.dumps({"amount": whole, "withdrawal": withdrawal.withdrawal_id}),
        )
        payload = Payload(sent_at=datetime.now(UTC).isoformat())
        payload.identity.Pack(ivms)
        payload.transaction.Pack(transaction)
        return payload

    def _record_reply(self, record: OutgoingTransfer, reply: Any) -> None:
        if reply.id != record.envelope_id:
            raise TransportError(f"{record.counterparty} answered envelope {reply.id!r}, not {record.envelope_id!r}")
        if reply.HasField("error"):  # an error envelope carries no payload
            code, message = int(reply.error.code), reply.error.message
            if reply.error.retry or code in ErrorCode.RETRYABLE:
                with self._lock:  # e.g. it lost our key: exchange keys again next time
                    self._keys.pop(record.counterparty, None)
                raise TransportError(f"{record.counterparty} asks to retry: TRISA error {code}: {message}")
            record.state, record.code, record.message = "rejected", code, message
        else:
            opened = envelope.open(reply, self.sealing_key)  # a reply that does not open is never acted on (raises)
            state = int(reply.transfer_state)
            if state in (TransferState.ACCEPTED, TransferState.COMPLETED):
                record.state, record.message = "accepted", "accepted"
            elif state == TransferState.REJECTED:
                record.state, record.code, record.message = "rejected", ErrorCode.REJECTED, "rejected"
            else:
                record.state, record.message = "pending", _pending_message(opened, state)
        self._save(record)

    def handle_reply(self, reply: Any, peer: str) -> Any | None:
        """Take a counterparty's later answer to one of our transfers (TRISA's asynchronous reply: a ``Transfer``
        to our node with our envelope id) and return our acknowledgement.

        ``None`` when the envelope answers none of ``peer``'s transfers (it is then a new incoming transfer). An
        answer that does not open, or asks to retry, changes nothing. A final answer is kept: later ones for the
        same envelope get the same acknowledgement.
        """
        record = self.store.get(reply.id) if reply.id and peer else None
        if record is None or record.counterparty != peer:
            return None
        if record.state not in _FINAL:
            try:
                self._record_reply(record, reply)
            except envelope.EnvelopeError as exc:
                return error_envelope(reply.id, ErrorCode.ENVELOPE_DECODE_FAIL, f"the reply does not open: {exc}")
            except TransportError as exc:
                return error_envelope(reply.id, ErrorCode.BAD_REQUEST, str(exc), retry=True)
        states = {"accepted": TransferState.ACCEPTED, "rejected": TransferState.REJECTED}
        return SecureEnvelope(
            id=reply.id,
            timestamp=datetime.now(UTC).isoformat(),
            transfer_state=states.get(record.state, TransferState.PENDING),
        )


def _pending_message(payload: Any, state: int) -> str:
    """What a pending reply says: its ``Pending`` message and deadline, or its transfer state."""
    if payload.transaction.type_url != PENDING_TYPE:
        return f"transfer state {state}"
    pending = Pending.FromString(payload.transaction.value)
    deadline = f"; it will reply by {pending.reply_not_after}" if pending.reply_not_after else ""
    return (pending.message or "pending") + deadline
