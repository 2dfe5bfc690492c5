"""Homomorphic encryption with TenSEAL (CKKS and BFV): parameters checked against the HE Standard, client and
server roles, encrypted inference and training.

Import needs ``tenseal`` (``pip install mlsec-kit[tenseal]``).
"""
from .params import (HE_STANDARD_MAX_LOGQ, POLY_MODULUS_DEGREES, HEContext, bfv_chain, bfv_context,
                     check_parameters, ckks_chain, ckks_context, describe_context, max_total_bits)
from .roles import Client, Server, Wire, check_depth, depth_left, polyval_depth
from .inference import (EncryptedLogReg, EncryptedMLP, EncryptedPrediction, PolyFit, encrypted_predict,
                        poly_sigmoid)
from .training import EncryptedTraining, encrypted_logreg_fit, poly_logreg_fit

__all__ = [
    "HE_STANDARD_MAX_LOGQ", "POLY_MODULUS_DEGREES", "HEContext", "ckks_chain", "ckks_context", "bfv_chain",
    "bfv_context", "check_parameters", "describe_context", "max_total_bits",
    "Client", "Server", "Wire", "depth_left", "check_depth", "polyval_depth",
    "EncryptedLogReg", "EncryptedMLP", "EncryptedPrediction", "PolyFit", "encrypted_predict", "poly_sigmoid",
    "EncryptedTraining", "encrypted_logreg_fit", "poly_logreg_fit",
]
