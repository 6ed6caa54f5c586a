"""Who may do what in the admin console: one table of actions and the roles allowed each, one table of routes.

Least privilege: an administrator may do everything; a compliance officer reviews KYC, alerts, held deposits and
screening-held withdrawals; a custody officer approves withdrawals and reads custody balances; support looks users
up read-only. Customers (role ``user``) may do nothing here. Every route names exactly one action, and the server
checks the role on every request (:func:`allowed`), whatever the pages show.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTIONS",
    "ADMINISTRATOR",
    "COMPLIANCE",
    "CUSTODY",
    "OPERATOR_ROLES",
    "ROUTES",
    "SUPPORT",
    "AdminRoute",
    "allowed",
]

ADMINISTRATOR = "administrator"
COMPLIANCE = "compliance"
CUSTODY = "custody"
SUPPORT = "support"
OPERATOR_ROLES: tuple[str, ...] = (ADMINISTRATOR, COMPLIANCE, CUSTODY, SUPPORT)

_ALL = frozenset(OPERATOR_ROLES)

ACTIONS: dict[str, frozenset[str]] = {
    "dashboard.view": _ALL,
    "users.view": frozenset({ADMINISTRATOR, COMPLIANCE, SUPPORT}),
    "users.role": frozenset({ADMINISTRATOR}),
    "kyc.view": frozenset({ADMINISTRATOR, COMPLIANCE}),
    "kyc.decide": frozenset({ADMINISTRATOR, COMPLIANCE}),
    "withdrawals.view": frozenset({ADMINISTRATOR, COMPLIANCE, CUSTODY}),
    "withdrawals.approve": frozenset({ADMINISTRATOR, CUSTODY}),  # k-of-n custody approvals
    "withdrawals.screening": frozenset({ADMINISTRATOR, COMPLIANCE}),  # clear or reject a screening hold
    "deposits.view": frozenset({ADMINISTRATOR, COMPLIANCE}),
    "deposits.resolve": frozenset({ADMINISTRATOR, COMPLIANCE}),
    "alerts.view": frozenset({ADMINISTRATOR, COMPLIANCE}),
    "cases.decide": frozenset({ADMINISTRATOR, COMPLIANCE}),  # escalate or resolve a compliance case
    "cases.sar": frozenset({ADMINISTRATOR, COMPLIANCE}),  # export a SAR-style report, record its filing
    "markets.view": frozenset({ADMINISTRATOR}),
    "markets.status": frozenset({ADMINISTRATOR}),
    "fees.view": frozenset({ADMINISTRATOR}),
    "fees.override": frozenset({ADMINISTRATOR}),
    "custody.view": frozenset({ADMINISTRATOR, CUSTODY}),
    "audit.view": frozenset({ADMINISTRATOR, COMPLIANCE}),
    "audit.verify": frozenset({ADMINISTRATOR, COMPLIANCE}),
}


def allowed(role: str, action: str) -> bool:
    """Whether an account with ``role`` may perform ``action`` (an unknown action is allowed to nobody)."""
    return role in ACTIONS.get(action, frozenset())


@dataclass(frozen=True, slots=True)
class AdminRoute:
    """One admin route: its HTTP method, path (starlette syntax), the action it performs and its handler's name."""

    method: str
    path: str
    action: str
    handler: str


_W = "/admin/withdrawals/{withdrawal:int}"
ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute("GET", "/admin", "dashboard.view", "dashboard"),
    AdminRoute("GET", "/admin/users", "users.view", "users"),
    AdminRoute("GET", "/admin/users/{account:int}", "users.view", "user_detail"),
    AdminRoute("POST", "/admin/users/{account:int}/role", "users.role", "set_role"),
    AdminRoute("GET", "/admin/kyc", "kyc.view", "kyc_queue"),
    AdminRoute("POST", "/admin/kyc/{submission:int}/decide", "kyc.decide", "kyc_decide"),
    AdminRoute("GET", "/admin/withdrawals", "withdrawals.view", "withdrawals"),
    AdminRoute("POST", f"{_W}/approval", "withdrawals.approve", "withdrawal_approval"),
    AdminRoute("POST", f"{_W}/screening", "withdrawals.screening", "withdrawal_screening"),
    AdminRoute("GET", "/admin/deposits", "deposits.view", "deposits"),
    AdminRoute("POST", "/admin/deposits/decide", "deposits.resolve", "deposit_decide"),
    AdminRoute("GET", "/admin/alerts", "alerts.view", "alerts"),
    AdminRoute("POST", "/admin/cases/{case:int}/decide", "cases.decide", "case_decide"),
    AdminRoute("POST", "/admin/cases/{case:int}/assign", "cases.decide", "case_assign"),
    AdminRoute("POST", "/admin/cases/{case:int}/comment", "cases.decide", "case_comment"),
    AdminRoute("POST", "/admin/cases/{case:int}/sar", "cases.sar", "case_sar"),
    AdminRoute("POST", "/admin/cases/{case:int}/file", "cases.sar", "case_file"),
    AdminRoute("GET", "/admin/markets", "markets.view", "markets"),
    AdminRoute("POST", "/admin/markets/{market}/status", "markets.status", "market_status"),
    AdminRoute("GET", "/admin/fees", "fees.view", "fees"),
    AdminRoute("POST", "/admin/fees/override", "fees.override", "fee_override"),
    AdminRoute("GET", "/admin/custody", "custody.view", "custody"),
    AdminRoute("POST", "/admin/custody/sweeps/{sweep:int}", "withdrawals.approve", "sweep_decision"),  # tiers
    AdminRoute("GET", "/admin/audit", "audit.view", "audit"),
    AdminRoute("POST", "/admin/audit/verify", "audit.verify", "audit_verify"),
)
