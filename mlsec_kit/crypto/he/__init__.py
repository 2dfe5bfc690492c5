"""Homomorphic encryption for machine learning, backed by TenSEAL (CKKS)."""
from mlsec_kit.crypto.he.inference import (EncryptedLogReg, EncryptedMLP, EncryptedPrediction, PolyFit,
                                           encrypted_predict, poly_sigmoid)
from mlsec_kit.crypto.he.training import EncryptedTraining, encrypted_logreg_fit, poly_logreg_fit

__all__ = ["EncryptedLogReg", "EncryptedMLP", "EncryptedPrediction", "PolyFit", "encrypted_predict", "poly_sigmoid",
           "EncryptedTraining", "encrypted_logreg_fit", "poly_logreg_fit"]
