"""The double-entry ledger: the system of record for customer money."""
