"""The travel rule (TRISA)."""
