"""Cryptographic defences: homomorphic encryption (``he``, TenSEAL-backed) and a from-scratch toy scheme (``toy``).

``mlsec_kit.crypto.he`` needs ``tenseal`` and is imported on its own (``from mlsec_kit.crypto import he``), so that
importing this package does not load TenSEAL.
"""
from . import toy
from .toy import (PaillierPrivateKey, PaillierPublicKey, is_probable_prime, paillier_add, paillier_decrypt,
                  paillier_encrypt, paillier_keygen, paillier_mul_scalar, paillier_rerandomize, random_bits,
                  random_prime)

__all__ = [
    "toy",
    "PaillierPublicKey", "PaillierPrivateKey", "paillier_keygen", "paillier_encrypt", "paillier_decrypt",
    "paillier_add", "paillier_mul_scalar", "paillier_rerandomize", "random_prime", "random_bits", "is_probable_prime",
]
