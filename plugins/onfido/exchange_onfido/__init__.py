"""Onfido identity verification (API v3.6) as the exchange framework's ``onfido`` KYC provider."""

from exchange_onfido.client import OnfidoClient, OnfidoError, Settings, check_decision, verify_signature

__all__ = ["OnfidoClient", "OnfidoError", "Settings", "check_decision", "verify_signature"]
