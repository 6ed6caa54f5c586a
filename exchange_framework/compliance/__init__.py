"""The compliance gateway: screening cases, the built-in OFAC sanctions list and its matchers.

- :mod:`~exchange_framework.compliance.cases`: the case store operators work through (the admin console's API).
- :mod:`~exchange_framework.compliance.pipeline`: a case for every hold or rejection that screening returns.
- :mod:`~exchange_framework.compliance.ofac`: the SDN list (CSV and XML), address and fuzzy name screening.
- :mod:`~exchange_framework.compliance.refresh`: keeping the list current, starting from the last good copy.
- :mod:`~exchange_framework.compliance.kyc`: the configured KYC provider, asked fail-closed; verdicts to KYC tiers.
- :mod:`~exchange_framework.compliance.limits`: daily withdrawal limits per KYC tier.
"""

from exchange_framework.compliance.cases import (
    CASES_FILENAME,
    FROZEN_REASON,
    Case,
    CaseDecision,
    CaseError,
    CaseEvent,
    CaseStatus,
    CaseStore,
    Resolution,
    Subject,
)
from exchange_framework.compliance.kyc import KycSetupError, apply_verdict, kyc_provider, kyc_verdict
from exchange_framework.compliance.limits import LimitError, TierPolicy, check_withdrawal

__all__ = [
    "CASES_FILENAME",
    "FROZEN_REASON",
    "Case",
    "CaseDecision",
    "CaseError",
    "CaseEvent",
    "CaseStatus",
    "CaseStore",
    "KycSetupError",
    "LimitError",
    "Resolution",
    "Subject",
    "TierPolicy",
    "apply_verdict",
    "check_withdrawal",
    "kyc_provider",
    "kyc_verdict",
]
