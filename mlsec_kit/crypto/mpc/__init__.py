"""Secure multiparty computation from scratch: additive secret sharing over Z_{2^64} with fixed-point encoding,
simulated parties with a trusted dealer (Beaver triples, truncation pairs, comparison masks), and secure inference
of logistic regression and small MLPs (square or ReLU activations).

* :mod:`.ring`: :func:`encode` / :func:`decode`, :func:`share` / :func:`reconstruct`.
* :mod:`.network`: :class:`Party`, :class:`Dealer`, :class:`Network`, :class:`MessageLog`, :class:`SharedTensor`.
* :mod:`.protocol`: the operations on shares (Beaver products, truncation, polynomials).
* :mod:`.compare`: :func:`relu`, :func:`greater_equal` (secure comparison with a dealer's bit-decomposed mask).
* :mod:`.inference`: :class:`SecureLogReg`, :class:`SecureMLP`, :func:`secure_predict`, :func:`error_bound`,
  :func:`truncation_failure_probability`.

A simulation for teaching: all parties run in one process and the dealer is trusted; nothing here is hardened
against side channels or malicious parties. For real work use a maintained framework (CrypTen, MP-SPDZ).
"""
from .compare import COMPARE_BITS, greater_equal, greater_equal_zero, relu, sign_bit
from .inference import (SecureLogReg, SecureMLP, SecureModel, SecurePrediction, error_bound, secure_predict,
                        truncation_failure_probability)
from .network import PHASES, TRUNCATIONS, Dealer, Message, MessageLog, Network, Party, SharedTensor
from .protocol import (SIGMOID3, add, add_public, beaver_product, matmul, matmul_public, mul, mul_public, neg,
                       polynomial, sigmoid_approx, square, sub, truncate)
from .ring import (DEFAULT_FRAC_BITS, DEFAULT_HEADROOM, RING_BITS, decode, encode, max_abs, random_ring,
                   reconstruct, share)

__all__ = [
    "RING_BITS", "DEFAULT_FRAC_BITS", "DEFAULT_HEADROOM", "encode", "decode", "max_abs", "random_ring", "share",
    "reconstruct",
    "Message", "MessageLog", "Party", "Dealer", "Network", "SharedTensor", "TRUNCATIONS", "PHASES",
    "SIGMOID3", "add", "sub", "neg", "add_public", "mul_public", "mul", "beaver_product", "square", "matmul_public",
    "matmul", "truncate", "polynomial", "sigmoid_approx",
    "COMPARE_BITS", "sign_bit", "greater_equal_zero", "greater_equal", "relu",
    "SecureModel", "SecureLogReg", "SecureMLP", "SecurePrediction", "secure_predict", "error_bound",
    "truncation_failure_probability",
]
