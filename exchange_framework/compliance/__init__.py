"""The compliance gateway: screening cases, the built-in OFAC sanctions list and its matchers.

- :mod:`~exchange_framework.compliance.cases`: the case store operators work through (the admin console's API).
- :mod:`~exchange_framework.compliance.pipeline`: a case for every hold or rejection that screening returns.
- :mod:`~exchange_framework.compliance.ofac`: the SDN list (CSV and XML), address and fuzzy name screening.
- :mod:`~exchange_framework.compliance.refresh`: keeping the list current, starting from the last good copy.
- :mod:`~exchange_framework.compliance.kyc`: the configured KYC provider, asked fail-closed; verdicts to KYC tiers.
- :mod:`~exchange_framework.compliance.limits`: daily withdrawal limits per KYC tier.
- :mod:`~exchange_framework.compliance.onboarding`: applicants screened at sign-up and KYC; frozen and held accounts.
- :mod:`~exchange_framework.compliance.sar`: SAR-style reports of cases (FinCEN SAR parts I-V).
- :mod:`~exchange_framework.compliance.retention`: purging closed records past ``[compliance.retention]``.
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
from exchange_framework.compliance.onboarding import (
    AccountFrozenError,
    Applicant,
    OnboardingGate,
    Standing,
    frozen_accounts,
)

__all__ = [
    "CASES_FILENAME",
    "FROZEN_REASON",
    "AccountFrozenError",
    "Applicant",
    "Case",
    "CaseDecision",
    "CaseError",
    "CaseEvent",
    "CaseStatus",
    "CaseStore",
    "KycSetupError",
    "LimitError",
    "OnboardingGate",
    "Resolution",
    "Standing",
    "Subject",
    "TierPolicy",
    "apply_verdict",
    "check_withdrawal",
    "frozen_accounts",
    "kyc_provider",
    "kyc_verdict",
]
