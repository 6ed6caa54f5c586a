"""Our node's answers to incoming TRISA transfers: open the envelope, check the beneficiary is ours, reply.

A transfer is accepted only when the envelope opens with our sealing key, carries an IVMS101 identity and names a
beneficiary address one of our customers holds; the reply is the payload, stamped ``received_at`` and sealed to the
sender's key (learnt by ``KeyExchange`` under the sender's verified certificate name). Anything else gets an
unsealed reply carrying a TRISA error code, and nothing is recorded as accepted. The same envelope id from the
same peer gets the same decision again (senders retry).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exchange_trisa import envelope, identity
from exchange_trisa.store import IncomingTransfer, TransferStore
from exchange_trisa.transport import signing_key_message
from exchange_trisa.wire import ErrorCode, SecureEnvelope, SigningKey, TransferState, TrisaError

__all__ = ["IncomingTransfer", "Receiver", "error_envelope"]

_log = logging.getLogger(__name__)


def error_envelope(envelope_id: str, code: int, message: str, *, retry: bool = False) -> Any:
    """An unsealed reply carrying a TRISA error (a rejection, or a retryable fault when ``retry``)."""
    return SecureEnvelope(
        id=envelope_id,
        error=TrisaError(code=code, message=message, retry=retry),
        timestamp=datetime.now(UTC).isoformat(),
        transfer_state=TransferState.REJECTED if not retry else TransferState.UNSPECIFIED,
    )


class Receiver:
    """Answers ``Transfer`` and ``KeyExchange`` calls for our node.

    ``is_customer(address)`` says whether a wallet address belongs to one of our customers. With a ``store``, every
    answer is kept there (and survives a restart); ``received`` holds this process's answers. ``replies(envelope,
    peer)`` sees every envelope first and returns our acknowledgement when it answers one of our own transfers
    (:meth:`exchange_trisa.provider.TrisaProvider.handle_reply`), ``None`` otherwise.
    """

    def __init__(
        self,
        *,
        sealing_key: rsa.RSAPrivateKey,
        is_customer: Callable[[str], bool],
        store: TransferStore | None = None,
        replies: Callable[[Any, str], Any] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.sealing_key = sealing_key
        self.is_customer = is_customer
        self.store = store
        self.replies = replies
        self.clock = clock
        self.peer_keys: dict[str, rsa.RSAPublicKey] = {}
        self.received: dict[tuple[str, str], IncomingTransfer] = {}
        self._lock = threading.Lock()

    def key_exchange(self, request: Any, peer: str) -> Any:
        """Remember ``peer``'s sealing key and answer with ours."""
        try:
            key = serialization.load_der_public_key(bytes(request.data))
        except ValueError:
            key = None
        if not isinstance(key, rsa.RSAPublicKey) or request.revoked or not peer:
            return SigningKey(revoked=True)  # nothing usable was offered: offer nothing back
        with self._lock:
            self.peer_keys[peer] = key
        return signing_key_message(self.sealing_key.public_key())

    def transfer(self, request: Any, peer: str) -> Any:
        """Decide on an incoming ``SecureEnvelope`` from ``peer`` and return the reply envelope."""
        eid = request.id
        if not eid or not peer:
            return error_envelope(eid, ErrorCode.BAD_REQUEST, "an envelope id and a client certificate are required")
        if self.replies is not None:
            acknowledgement = self.replies(request, peer)
            if acknowledgement is not None:
                return acknowledgement
        with self._lock:
            earlier = self.received.get((peer, eid))
            sender_key = self.peer_keys.get(peer)
        if earlier is None and self.store is not None:
            earlier = self.store.incoming(peer, eid)
        if request.HasField("error"):
            return error_envelope(eid, ErrorCode.BAD_REQUEST, "error envelopes are not answered")
        try:
            payload = envelope.open(request, self.sealing_key)
        except envelope.EnvelopeError as exc:
            return error_envelope(eid, ErrorCode.ENVELOPE_DECODE_FAIL, f"the envelope does not open: {exc}")
        if sender_key is None:
            return error_envelope(
                eid, ErrorCode.INVALID_KEY, "no sealing key from you: call KeyExchange first", retry=True
            )
        if earlier is not None and not earlier.accepted:
            return error_envelope(eid, earlier.code, earlier.message)
        try:
            ivms = identity.decode(payload.identity)
        except Exception as exc:  # any decoding failure is the sender's
            return self._refuse(peer, eid, ErrorCode.UNPARSEABLE_IDENTITY, f"the identity does not parse: {exc}")
        accounts = tuple(identity.beneficiary_accounts(ivms))
        originators = tuple(identity.names(ivms.originator.originator_persons))
        if not originators:
            return self._refuse(peer, eid, ErrorCode.MISSING_FIELDS, "the originator's name is missing")
        if not accounts:
            return self._refuse(peer, eid, ErrorCode.MISSING_FIELDS, "the beneficiary's account number is missing")
        if not all(self.is_customer(a) for a in accounts):
            return self._refuse(
                peer, eid, ErrorCode.UNKNOWN_WALLET_ADDRESS, "the beneficiary address is not one of our customers'"
            )
        self._keep(IncomingTransfer(eid, peer, True, 0, "accepted", accounts, originators))
        payload.received_at = datetime.now(UTC).isoformat()
        reply = envelope.seal(payload, sender_key, envelope_id=eid)
        reply.transfer_state = TransferState.ACCEPTED
        return reply

    def _refuse(self, peer: str, eid: str, code: int, message: str) -> Any:
        _log.info("TRISA transfer %s from %s refused: %s", eid, peer, message)
        self._keep(IncomingTransfer(eid, peer, False, code, message))
        return error_envelope(eid, code, message)

    def _keep(self, record: IncomingTransfer) -> None:
        if self.store is not None:
            self.store.put_incoming(record, self.clock())
        with self._lock:
            self.received[(record.peer, record.envelope_id)] = record
