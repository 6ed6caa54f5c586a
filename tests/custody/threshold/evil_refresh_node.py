"""A signer node that deals bad refresh sub-shares: to node 4 for key ids starting with ``evil-refresh``, to nodes
3, 4 and 5 for key ids starting with ``evil-refresh-many``.

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
    victims = [3, 4, 5] if b"\x00evil-refresh-many" in self.context else [4]
    if b"\x00evil-refresh" in self.context:
        for j in victims:
            if j in outgoing:
                outgoing[j] = (outgoing[j] + 1) % self.suite.order
    return outgoing, transcript


RefreshParticipant.round2 = _round2  # type: ignore[method-assign,assignment]

if __name__ == "__main__":
    sys.exit(main())
