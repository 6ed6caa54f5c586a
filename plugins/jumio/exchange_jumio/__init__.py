"""Jumio KYX platform identity verification as the exchange framework's ``jumio`` KYC provider."""

from exchange_jumio.client import JumioClient, JumioError, Settings, execution_decision

__all__ = ["JumioClient", "JumioError", "Settings", "execution_decision"]
