"""Cryptographic defences: homomorphic encryption (``he``, TenSEAL-backed) and a from-scratch toy scheme (``toy``).

``mlsec_kit.crypto.he`` needs ``tenseal``; it is imported on first use of ``mlsec_kit.crypto.he``, not here.
"""
from . import toy

__all__ = ["toy"]
