"""Cryptographic defences: homomorphic encryption (``he``, TenSEAL-backed)."""
