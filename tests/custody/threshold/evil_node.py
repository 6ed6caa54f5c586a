"""A signer node that returns a wrong signature share for payloads starting with ``MISBEHAVE`` (fault injection).

Run as ``python evil_node.py serve --config FILE``: the real node, with FROST's share computation wrapped.
"""

from __future__ import annotations

import sys

import exchange_threshold.frost as frost
from exchange_threshold.node import main

_honest = frost.sign_share


def _sign_share(*args, **kwargs):  # type: ignore[no-untyped-def]
    z = _honest(*args, **kwargs)
    suite, message = args[0], args[5]
    return (z + 1) % suite.order if message.startswith(b"MISBEHAVE") else z


frost.sign_share = _sign_share

if __name__ == "__main__":
    sys.exit(main())
