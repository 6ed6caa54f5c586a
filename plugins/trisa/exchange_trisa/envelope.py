"""Sealing and opening TRISA SecureEnvelopes.

Sealing (as TRISA specifies): the serialised ``Payload`` is encrypted with a fresh 32-byte key under AES-256-GCM
(the 12-byte nonce appended after the ciphertext and tag), the ciphertext is signed with HMAC-SHA256 under a fresh
32-byte secret, and the key and the secret are each encrypted to the recipient's RSA public key with RSA-OAEP
(SHA-512 for both the hash and MGF1). ``public_key_signature`` names the recipient key
(``SHA256:<base64 of the SHA-256 of its DER SubjectPublicKeyInfo>``).

Opening reverses it and checks the HMAC before decrypting; any mismatch raises :class:`EnvelopeError` (a travel rule
message that does not open is never acted on).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange_trisa.wire import Payload, SecureEnvelope

__all__ = [
    "ENCRYPTION_ALGORITHM",
    "HMAC_ALGORITHM",
    "EnvelopeError",
    "key_signature",
    "load_private_key",
    "open",
    "seal",
]

ENCRYPTION_ALGORITHM = "AES256-GCM"
HMAC_ALGORITHM = "HMAC-SHA256"
_NONCE = 12
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA512()), algorithm=hashes.SHA512(), label=None)


class EnvelopeError(ValueError):
    """A SecureEnvelope that cannot be opened (wrong key, tampered payload, unknown algorithm)."""


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Load an RSA private key from PEM (PKCS#1 or PKCS#8, whichever the label claims)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError:  # a PKCS#8 body under an "RSA PRIVATE KEY" label, as some TRISA fixtures have
        body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
        key = serialization.load_der_private_key(base64.b64decode(body), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise EnvelopeError("TRISA sealing keys are RSA keys")
    return key


def key_signature(public_key: rsa.RSAPublicKey) -> str:
    """The ``public_key_signature`` naming a sealing key."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def seal(payload: Any, recipient: rsa.RSAPublicKey, *, envelope_id: str, timestamp: str | None = None) -> Any:
    """Seal a ``Payload`` message for ``recipient``; return the ``SecureEnvelope`` message."""
    key, secret = os.urandom(32), os.urandom(32)
    nonce = os.urandom(_NONCE)
    ciphertext = AESGCM(key).encrypt(nonce, payload.SerializeToString(), None) + nonce
    return SecureEnvelope(
        id=envelope_id,
        payload=ciphertext,
        encryption_key=recipient.encrypt(key, _OAEP),
        encryption_algorithm=ENCRYPTION_ALGORITHM,
        hmac=hmac.new(secret, ciphertext, hashlib.sha256).digest(),
        hmac_secret=recipient.encrypt(secret, _OAEP),
        hmac_algorithm=HMAC_ALGORITHM,
        timestamp=timestamp or datetime.now(UTC).isoformat(),
        sealed=True,
        public_key_signature=key_signature(recipient),
    )


def open(envelope: Any, key: rsa.RSAPrivateKey) -> Any:
    """Open a sealed ``SecureEnvelope`` with our private key; return its ``Payload`` message."""
    if not envelope.sealed:
        raise EnvelopeError("the envelope is not sealed")
    if envelope.encryption_algorithm != ENCRYPTION_ALGORITHM or envelope.hmac_algorithm != HMAC_ALGORITHM:
        raise EnvelopeError(
            f"unsupported algorithms {envelope.encryption_algorithm!r}/{envelope.hmac_algorithm!r}: "
            f"expected {ENCRYPTION_ALGORITHM}/{HMAC_ALGORITHM}"
        )
    try:
        data_key = key.decrypt(envelope.encryption_key, _OAEP)
        secret = key.decrypt(envelope.hmac_secret, _OAEP)
    except ValueError:
        raise EnvelopeError("the envelope was not sealed for this key") from None
    ciphertext = bytes(envelope.payload)
    if not hmac.compare_digest(hmac.new(secret, ciphertext, hashlib.sha256).digest(), bytes(envelope.hmac)):
        raise EnvelopeError("the payload's HMAC does not match: it was altered")
    if len(data_key) != 32 or len(ciphertext) <= _NONCE:
        raise EnvelopeError("the envelope's key or payload has the wrong length")
    try:
        plaintext = AESGCM(data_key).decrypt(ciphertext[-_NONCE:], ciphertext[:-_NONCE], None)
    except InvalidTag:
        raise EnvelopeError("the payload does not decrypt") from None
    return Payload.FromString(plaintext)
