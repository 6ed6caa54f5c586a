"""A signer node that misbehaves on request (fault injection).

It returns a wrong signature share for payloads starting with ``MISBEHAVE``, and a DKG round-1 package with a
broken proof of knowledge for key ids starting with ``evil-dkg``; in threshold ECDSA it corrupts the DKLs23 messages it
sends in round 2 for digests starting with ``MISBEHAVE`` and key ids starting with ``evil-ecdsa``.

Run as ``python evil_node.py serve --config FILE``: the real node, with FROST's share computation wrapped.
"""

from __future__ import annotations

import base64
import sys

import exchange_threshold.frost as frost
from exchange_threshold.dkg import DkgParticipant, Round1Package
from exchange_threshold.ecdsa_node import EcdsaService
from exchange_threshold.node import main

_honest = frost.sign_share


def _sign_share(*args, **kwargs):  # type: ignore[no-untyped-def]
    z = _honest(*args, **kwargs)
    suite, message = args[0], args[5]
    return (z + 1) % suite.order if message.startswith(b"MISBEHAVE") else z


frost.sign_share = _sign_share
_honest_round1 = DkgParticipant.round1


def _round1(self: DkgParticipant) -> Round1Package:
    package = _honest_round1(self)
    if b"\x00evil-dkg" not in self.context:
        return package
    return Round1Package(package.identifier, package.commitments, package.proof_r, package.proof_mu + 1)


DkgParticipant.round1 = _round1  # type: ignore[method-assign]

_honest_outgoing = EcdsaService._outgoing


def _outgoing(self, sid, session, rnd, out):  # type: ignore[no-untyped-def]
    """Threshold ECDSA: corrupt one byte of each (still validly sealed) DKLs23 message this node sends in round 2."""
    if rnd == 2 and (session.payload.startswith(b"MISBEHAVE") or session.key_id.startswith("evil-ecdsa")):
        for m in out["msgs"]:
            payload = bytearray(base64.b64decode(m["payload"]))
            payload[len(payload) // 2] ^= 1
            m["payload"] = base64.b64encode(bytes(payload)).decode()
    return _honest_outgoing(self, sid, session, rnd, out)


EcdsaService._outgoing = _outgoing  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
