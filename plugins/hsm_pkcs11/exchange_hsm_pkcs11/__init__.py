"""PKCS#11 HSM custody signer for the exchange (SoftHSM2 in tests; Thales Luna or any vendor in production)."""

from exchange_hsm_pkcs11.signer import HsmSettings, Pkcs11Signer

__all__ = ["HsmSettings", "Pkcs11Signer"]
__version__ = "0.1.0"
