"""Chainalysis screening for the exchange framework: KYT transfers and withdrawal attempts, and the Sanctions API."""

from exchange_chainalysis.client import ChainalysisClient, ChainalysisError, Settings

__all__ = ["ChainalysisClient", "ChainalysisError", "Settings"]
__version__ = "0.1.0"
