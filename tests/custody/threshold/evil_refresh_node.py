"""A signer node that deals a bad refresh sub-share to node 4 for key ids starting with ``evil-refresh``.

Run as ``python evil_refresh_node.py serve --config FILE``: the real node, with the refresh dealer's round 2 wrapped
(its commitments stay honest, so the sub-share fails the receiver's commitment check).
"""

from __future__ import annotations

import sys

from exchange_threshold.node import main
from exchange_threshold.refresh import RefreshPackage, RefreshParticipant

_honest_round2 = RefreshParticipant.round2


def _round2(self: RefreshParticipant, packages: dict[int, RefreshPackage]) -> tuple[dict[int, int], bytes]:
    outgoing, transcript = _honest_round2(self, packages)
    if b"\x00evil-refresh" in self.context and 4 in outgoing:
        outgoing[4] = (outgoing[4] + 1) % self.suite.order
    return outgoing, transcript


RefreshParticipant.round2 = _round2  # type: ignore[method-assign,assignment]

if __name__ == "__main__":
    sys.exit(main())
