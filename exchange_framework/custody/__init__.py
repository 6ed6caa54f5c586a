"""Custody: signing helpers and signers (this package), the policy engine, cold-vault ceremonies."""
