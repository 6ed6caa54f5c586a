"""The screening pipeline's case recording, called by :func:`~exchange_framework.plugins.run_screening`.

``run_screening`` asks every plugin separately (a plugin that raises or answers garbage becomes a hold without
hiding the others' answers), combines the answers (strictest wins, silence holds) and hands them here: whenever the
combined decision is not an allow, a compliance case is opened (or added to) with every plugin's decision, so every
hold and rejection reaches an operator. Recording never changes the decision: a failure to record is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from exchange_framework.compliance.cases import Case, CaseStore, Subject
from exchange_framework.config import ExchangeConfig
from exchange_framework.interfaces import (
    Decision,
    DepositRequest,
    OnboardingRequest,
    Outcome,
    WithdrawalRequest,
)

__all__ = ["KERNEL_PROVIDER", "record_screening", "subject_of"]

_log = logging.getLogger(__name__)

KERNEL_PROVIDER = "kernel"  # the provider named on decisions the kernel makes itself (no answer, an error)

Request = DepositRequest | WithdrawalRequest | OnboardingRequest


def subject_of(request: Request) -> tuple[Subject, str, int, dict[str, str]]:
    """Return a screened request's case subject, reference, account and details."""
    if isinstance(request, DepositRequest):
        details = {
            "asset": request.asset,
            "chain": request.chain,
            "amount": str(request.amount),
            "address": request.address,
            "txid": request.txid,
            "source_addresses": ", ".join(request.source_addresses),
        }
        return Subject.DEPOSIT, f"{request.chain}:{request.txid}:{request.address}", int(request.account), details
    if isinstance(request, WithdrawalRequest):
        details = {
            "asset": request.asset,
            "chain": request.chain,
            "amount": str(request.amount),
            "address": request.address,
            "withdrawal_id": str(request.withdrawal_id),
        }
        return Subject.WITHDRAWAL, str(request.withdrawal_id), int(request.account), details
    details = {"country": request.country, **{str(k): str(v) for k, v in request.details.items()}}
    return Subject.ONBOARDING, str(request.account), int(request.account), details


def case_decisions(answers: Sequence[tuple[str, Decision | None]]) -> list[Decision]:
    """Return the decisions a case records: each plugin's answer named after its provider (or the plugin).

    If no plugin had an opinion, the kernel's own hold stands in for them.
    """
    decisions = [
        d if d.provider else Decision(d.outcome, d.reasons, plugin or KERNEL_PROVIDER)
        for plugin, d in answers
        if d is not None
    ]
    if not decisions:
        decisions.append(Decision.hold("no screening provider gave a decision", provider=KERNEL_PROVIDER))
    return decisions


def record_screening(
    hook_name: str, kwargs: Mapping[str, Any], answers: Sequence[tuple[str, Decision | None]], decision: Decision
) -> Case | None:
    """Open (or add to) a case when ``decision`` (the combined answer of a ``screen_*`` hook) is not an allow.

    ``kwargs`` are the hook's arguments (``config`` and ``request``), ``answers`` each plugin's name and answer. Does
    nothing without an exchange config (a bare plugin manager) or for an allow; never raises: returns the case, or
    None if none was recorded.
    """
    config, request = kwargs.get("config"), kwargs.get("request")
    if decision.outcome is Outcome.ALLOW or not isinstance(config, ExchangeConfig):
        return None
    if not isinstance(request, DepositRequest | WithdrawalRequest | OnboardingRequest):
        return None
    try:
        subject, reference, account, details = subject_of(request)
        return CaseStore.for_config(config).record(subject, reference, account, case_decisions(answers), details)
    except Exception:  # the decision stands either way: a hold stays a hold without its case
        _log.exception("could not record a compliance case for %s", hook_name)
        return None
