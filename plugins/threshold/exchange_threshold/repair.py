"""Share repair (enrolment): ``t`` helper nodes give a node that missed a refresh, or lost its share, its share back.

The repairable threshold scheme of Laing and Stinson (2017), as FROST implementations offer it: to rebuild the share
``s_r = f(r)`` of node ``r`` from the helpers ``H`` (``|H| = t``, ``r`` not in ``H``):

1. :func:`repair_split`: each helper ``i`` computes ``delta_i = lambda_i(r) * s_i`` with ``lambda_i(r)`` the Lagrange
   coefficient of ``i`` over ``H`` evaluated at ``r`` (not at 0), splits it into ``t`` uniformly random parts that
   sum to ``delta_i``, keeps one and sends one to each other helper (encrypted end to end);
2. :func:`repair_sum`: each helper ``j`` adds the parts it holds, ``sigma_j = sum_i delta_ij``, and sends
   ``sigma_j`` to ``r`` (encrypted end to end);
3. ``r`` adds them: ``sum_j sigma_j = sum_i lambda_i(r) * s_i = f(r) = s_r``, and checks ``G*s_r`` against its
   public verifying share before keeping it.

Each helper only ever sees random parts (one of them its own), ``r`` only sees ``t`` random values summing to its
own share, the coordinator relaying the messages only sees ciphertexts: nobody learns the group secret or another
node's share. The scheme tolerates no misbehaving helper silently: a wrong part gives a share that fails the check,
and the repair is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from exchange_threshold.groups import Ciphersuite

__all__ = ["RepairError", "check_repair_set", "repair_coefficient", "repair_split", "repair_sum"]


class RepairError(ValueError):
    """A repair cannot proceed: a bad helper set, or the rebuilt share does not match its verifying share."""


def check_repair_set(helpers: Sequence[int], target: int, threshold: int) -> None:
    """Raise :class:`RepairError` unless ``helpers`` are ``threshold`` distinct identifiers, ``target`` not one."""
    if len(set(helpers)) != len(helpers) or len(helpers) != threshold:
        raise RepairError(f"a repair needs exactly {threshold} distinct helpers, got {list(helpers)}")
    if target in helpers or not 0 < target < 2**16 or any(not 0 < h < 2**16 for h in helpers):
        raise RepairError("the node being repaired cannot help itself; identifiers are 1..65535")


def repair_coefficient(suite: Ciphersuite, helper: int, helpers: Iterable[int], target: int) -> int:
    """``lambda_helper(target)``: the Lagrange coefficient of ``helper`` over ``helpers``, evaluated at ``target``."""
    q = suite.order
    numerator, denominator = 1, 1
    for j in helpers:
        if j != helper:
            numerator = numerator * (target - j) % q
            denominator = denominator * (helper - j) % q
    return numerator * pow(denominator, -1, q) % q


def repair_split(suite: Ciphersuite, helper: int, helpers: Sequence[int], target: int, share: int) -> dict[int, int]:
    """Step 1 for ``helper``: ``lambda_helper(target) * share`` split into one random part per helper (itself too)."""
    check_repair_set(helpers, target, len(helpers))
    if helper not in helpers:
        raise RepairError(f"node {helper} is not one of the helpers {list(helpers)}")
    q = suite.order
    delta = repair_coefficient(suite, helper, helpers, target) * share % q
    ordered = sorted(helpers)
    parts = {j: secrets.randbelow(q) for j in ordered[:-1]}
    parts[ordered[-1]] = (delta - sum(parts.values())) % q
    return parts


def repair_sum(suite: Ciphersuite, values: Iterable[int]) -> int:
    """Steps 2 and 3: the sum of the parts (a helper's ``sigma``), or of the sigmas (the repaired share)."""
    return sum(values) % suite.order
