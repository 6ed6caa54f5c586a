"""TRISA travel rule: SecureEnvelope sealing and opening, and the payloads inside (exchange framework plugin)."""
