"""Who may do what: users (password, two-factor, role, KYC tier), their API keys with scopes, and portal sessions."""

from exchange_framework.identity.store import (
    ApiKeyInfo,
    IdentityError,
    IdentityStore,
    Scope,
    SessionInfo,
    UserInfo,
)

__all__ = ["ApiKeyInfo", "IdentityError", "IdentityStore", "Scope", "SessionInfo", "UserInfo"]
