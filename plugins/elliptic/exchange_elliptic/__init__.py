"""Elliptic AML API v2 screening for the exchange framework: wallets, transactions, HMAC-signed requests."""

from exchange_elliptic.client import EllipticClient, EllipticError, Settings, sign

__all__ = ["EllipticClient", "EllipticError", "Settings", "sign"]
__version__ = "0.1.0"
