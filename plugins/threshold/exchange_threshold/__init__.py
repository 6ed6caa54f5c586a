"""Threshold custody signing for the exchange framework: FROST (RFC 9591) with a dealerless DKG across signer nodes."""
