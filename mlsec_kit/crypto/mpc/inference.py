"""Secure inference: a trained logistic regression or polynomial-activation MLP evaluated on secret-shared inputs.

Party 0 is the model owner: it secret-shares its weights once (phase ``"setup"``), or keeps them public with
``private_weights=False``. The last party is the data owner: it shares its inputs, the parties evaluate the network
on shares (linear layers by matrix Beaver triples, or locally with public weights; activations by square pairs)
and open the logits to the data owner only. This is the two-/three-server setting of SecureML (Mohassel & Zhang
2017) and CrypTen (Knott et al. 2021) with a trusted dealer for the preprocessing.

Accepted models: ``nn.Sequential`` (nested ones are flattened) of ``nn.Flatten``, ``nn.Linear``, ``nn.Identity``,
``nn.Dropout`` (the identity at inference), ``nn.ReLU`` (secure comparison, :mod:`.compare`: 9 rounds per layer;
exact for inputs ``|x| < 2^19`` with the defaults) and square activations (any module whose class is named
``Square`` and computes ``x * x``, such as :class:`mlsec_kit.models.Square` or :class:`SquareActivation` here: one
round).

Tolerance (:func:`error_bound`): with ``f`` fractional bits, every encoding (inputs, weights, biases) is off by at
most ``δ = 2^-(f+1)`` (the bound uses each value's actual rounding error) and every truncation by less than ``t``
ulp (``t = 1`` local, ``2`` dealer; 1 ulp = ``2^-f``). A linear layer with input error ``e`` has output error at
most ``|W~| e + |W~ - W| |x| + t 2^-f + |b~ - b|`` (``W~`` the encoded weights, at most ``(|W| + δ) e + δ Σ|x|
+ t 2^-f + δ``); a square, ``e (2|x| + e) + t 2^-f``; a ReLU, computed exactly on the encoded values and
1-Lipschitz, keeps ``e``. Propagated through the network from the inputs' rounding errors, this bounds
``|secure - plaintext|`` per logit, except with the truncation failure probability.

Where the bound does not hold, and what is done about it (the simulation knows the plaintext, so it can check;
a real deployment cannot see the values and must bound its inputs instead):

* a product whose ring value ``|v| 2^(2f)`` (``v`` the real value before truncation) reaches ``2^62`` overflows the
  ring or makes the truncation fail with probability >= 1/4; a ReLU input with ``|x| >= 2^(COMPARE_BITS - 1 - f)``
  (``2^19`` with the defaults) gets a wrong sign. :func:`error_bound` returns ``inf`` for the logits of such an
  input row, and :func:`secure_predict` refuses the input with a ``ValueError``.
* below that, each truncation of a ring value ``V`` fails (is off by about ``2^(64-f)`` after truncation) with
  probability ``|V| / 2^64 = |v| 2^(2f-64)`` (SecureML, Mohassel & Zhang 2017, Theorem 1, measured in the tests).
  :func:`truncation_failure_probability` sums it over the truncated elements of each row (a union bound):
  negligible with the defaults on digits (about ``10^-9`` per row), but it grows as ``2^(2f)``, so ``f > 20``
  makes failures likely for ordinary models (``f = 24`` already fails on the digits MLP).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from .compare import COMPARE_BITS, relu
from .network import MessageLog, Network, SharedTensor
from .protocol import add, add_public, matmul, matmul_public, square
from .ring import DEFAULT_FRAC_BITS, _encode, check_frac_bits, check_generator, check_parties, decode, encode

__all__ = ["SquareActivation", "SecureModel", "SecureLogReg", "SecureMLP", "SecurePrediction", "secure_predict",
           "error_bound", "truncation_failure_probability", "model_layers"]

_IDENTITY = (nn.Identity, nn.Dropout)


class SquareActivation(nn.Module):
    """``x * x``: a polynomial activation that secret sharing (and homomorphic encryption) can evaluate."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def _is_square(m: nn.Module) -> bool:
    return type(m).__name__ in ("Square", "SquareActivation")


def model_layers(model: nn.Module) -> list[nn.Module]:
    """The model's layers in order, nested ``nn.Sequential`` flattened; refuses layers MPC cannot evaluate here."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    out: list[nn.Module] = []
    for m in mods:
        if isinstance(m, nn.Sequential):
            out += model_layers(m)
        elif isinstance(m, (nn.Linear, nn.Flatten, nn.ReLU)) or _is_square(m):
            out.append(m)
        elif isinstance(m, _IDENTITY):
            continue
        else:
            raise ValueError(f"model has a layer of type {type(m).__name__}; accepted: Linear, Flatten, Identity, "
                             f"Dropout, ReLU and square activations")
    if not any(isinstance(m, nn.Linear) for m in out):
        raise ValueError("model must contain at least one nn.Linear layer")
    return out


class SecureModel:
    """A model whose layers the parties of ``network`` evaluate on shares.

    Args:
        model: a trained model (:func:`model_layers` says which); not modified.
        network: the parties.
        owner: index of the model owner, who shares the weights (phase ``"setup"``).
        private_weights: share the weights (secret-by-secret products) or publish them (local products).
    """

    def __init__(self, model: nn.Module, network: Network, *, owner: int = 0, private_weights: bool = True):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a Network, got {type(network).__name__}")
        network._check_party(owner, "owner")
        self.layers = model_layers(model)
        self.network, self.private_weights = network, bool(private_weights)
        self._params: list[Optional[tuple]] = []
        saved, network.phase = network.phase, "setup"
        try:
            for m in self.layers:
                if isinstance(m, nn.Linear):
                    w = m.weight.detach().to(torch.float64).cpu().t().contiguous()
                    b = None if m.bias is None else m.bias.detach().to(torch.float64).cpu()
                    if self.private_weights:
                        w = network.share(w, owner=owner)
                        b = None if b is None else network.share(b, owner=owner)
                    self._params.append((w, b))
                else:
                    self._params.append(None)
        finally:
            network.phase = saved

    def forward(self, x: SharedTensor) -> SharedTensor:
        """The logits, shared. Shape: ``x`` ``(N, *input_shape)`` → ``(N, num_classes)``."""
        self.network._check_mine(x, "x")
        if len(x.shape) < 2:
            raise ValueError(f"x must have a batch dimension, shape (N, *input_shape), got {tuple(x.shape)}")
        h = x
        for m, params in zip(self.layers, self._params):
            if isinstance(m, nn.Flatten):
                h = h.reshape(h.shape[0], -1)
            elif isinstance(m, nn.Linear):
                if len(h.shape) != 2 or h.shape[1] != m.in_features:
                    raise ValueError(f"x does not fit the model: a Linear layer expects {m.in_features} features, "
                                     f"got shape {tuple(h.shape)}")
                w, b = params
                h = matmul(h, w) if self.private_weights else matmul_public(h, w)
                if b is not None:
                    h = add(h, _broadcast(b, h.shape)) if self.private_weights else add_public(h, b)
            elif isinstance(m, nn.ReLU):
                h = relu(h)
            else:
                h = square(h)
        return h

    __call__ = forward


def _broadcast(x: SharedTensor, shape) -> SharedTensor:
    """Each party expands its own share (local: the shares of a repeated value are the repeated shares)."""
    return x.network._local(lambda p: p.share_of(x.handle).expand(shape).clone(), shape)


class SecureLogReg(SecureModel):
    """A (multinomial) logistic regression on shares: exactly one ``nn.Linear`` (plus ``Flatten``); the logits,
    not the probabilities, are computed (the softmax/sigmoid is monotone, so the data owner's argmax needs no MPC)."""

    def __init__(self, model: nn.Module, network: Network, **kwargs):
        n_lin = sum(isinstance(m, nn.Linear) for m in model_layers(model))
        if n_lin != 1 or any(_is_square(m) or isinstance(m, nn.ReLU) for m in model_layers(model)):
            raise ValueError(f"model must be a logistic regression (one Linear layer, no activation), got {n_lin} "
                             f"Linear layers; use SecureMLP")
        super().__init__(model, network, **kwargs)


class SecureMLP(SecureModel):
    """A multi-layer perceptron with square or ReLU activations on shares."""


@dataclass
class SecurePrediction:
    """Result of :func:`secure_predict`.

    Attributes:
        logits: float64 ``(N, num_classes)``, as opened to the data owner.
        rounds: online communication rounds (input sharing, evaluation, output).
        bytes: bytes sent online, all parties together.
        seconds: wall-clock time of the whole simulated protocol (setup, dealer and online, one process).
        offline_bytes: bytes the dealer sent.
        setup_bytes: bytes the model owner sent to share its weights.
        tolerance: :func:`error_bound` per logit.
        log: the full :class:`MessageLog`.
        failure_probability: :func:`truncation_failure_probability` per input row: the probability (union bound)
            that some truncation failed, in which case ``tolerance`` does not hold for that row.
    """
    logits: torch.Tensor
    rounds: int
    bytes: int
    seconds: float
    offline_bytes: int
    setup_bytes: int
    tolerance: torch.Tensor
    log: MessageLog = field(repr=False)
    failure_probability: Optional[torch.Tensor] = field(default=None, repr=False)


def secure_predict(model: nn.Module, x: torch.Tensor, *, parties: int = 2, generator: torch.Generator,
                   frac_bits: int = DEFAULT_FRAC_BITS, private_weights: bool = True,
                   truncation: str = "auto", record_payloads: bool = True) -> SecurePrediction:
    """Evaluate ``model`` on ``x`` by MPC among ``parties`` simulated parties (party 0 owns the model, the last
    party owns ``x`` and receives the logits).

    Args:
        model: logistic regression or MLP with square or ReLU activations (:func:`model_layers`); not modified.
        x: inputs ``(N, *input_shape)``, real; not modified.
        parties: 2 or more (2: SecureML's two servers; 3: a three-party setting with dealer truncation).
        generator: seeded generator for every share and dealer value.
        frac_bits: fixed-point fractional bits.
        private_weights: share the weights (default) or publish them to the parties.
        truncation: ``"auto"``, ``"local"`` (2 parties) or ``"dealer"``.
        record_payloads: keep every message's content in the log (:class:`Network`); ``False`` for timing.

    Returns:
        :class:`SecurePrediction`; ``logits`` equal ``model(x)`` (in float64) within ``tolerance``, except with
        probability ``failure_probability`` per row.

    Raises:
        ValueError: bad arguments; an ``x`` (with this model and ``frac_bits``) for which the computation leaves
            the ring's or the comparison's range (module docstring): the bound would not hold.
    """
    check_parties(parties)
    check_generator(generator)
    check_frac_bits(frac_bits)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    layers = model_layers(model)
    truncation_used = ("local" if parties == 2 else "dealer") if truncation == "auto" else truncation
    if truncation_used not in ("local", "dealer"):
        raise ValueError(f"truncation must be one of ('auto', 'local', 'dealer'), got {truncation!r}")
    encode(x.detach().to(torch.float64).cpu(), frac_bits=frac_bits)  # the input range first: its own message
    check = _propagate(model, x, frac_bits=frac_bits, truncation=truncation_used)
    if check.problem is not None:
        raise ValueError(f"x is beyond the range secure_predict can evaluate this model in with frac_bits = "
                         f"{frac_bits}: {check.problem}; the result would not be within the stated tolerance "
                         f"(scale the inputs down or lower frac_bits)")
    start = time.perf_counter()
    net = Network(parties, generator=generator, frac_bits=frac_bits, truncation=truncation,
                  record_payloads=record_payloads)
    n_lin = sum(isinstance(m, nn.Linear) for m in layers)
    cls = SecureLogReg if n_lin == 1 and not any(_is_square(m) or isinstance(m, nn.ReLU) for m in layers) \
        else SecureMLP
    secure = cls(model, net, owner=0, private_weights=private_weights)
    xs = net.share(x.detach().to(torch.float64).cpu(), owner=parties - 1)
    logits = net.reveal(secure(xs), to=parties - 1)
    seconds = time.perf_counter() - start
    return SecurePrediction(logits=logits, rounds=net.log.rounds, bytes=net.log.total_bytes(phase="online"),
                            seconds=seconds, offline_bytes=net.log.total_bytes(phase="offline"),
                            setup_bytes=net.log.total_bytes(phase="setup"), tolerance=check.bound, log=net.log,
                            failure_probability=check.failure)


@dataclass
class _Propagation:
    bound: torch.Tensor                # (N, classes) error bound, inf for rows out of range
    failure: torch.Tensor              # (N,) union bound on a truncation failure in the row
    problem: Optional[str]             # why some row is out of range, or None


def _propagate(model: nn.Module, x: torch.Tensor, *, frac_bits: int, truncation: str) -> _Propagation:
    """The error bound, the rows out of range and the truncation failure probability, from plaintext values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    check_frac_bits(frac_bits)
    if truncation not in ("local", "dealer"):
        raise ValueError(f"truncation must be 'local' or 'dealer', got {truncation!r}")
    layers = model_layers(model)
    if x.dim() < 2:
        raise ValueError(f"x must have a batch dimension, shape (N, *input_shape), got {tuple(x.shape)}")
    t = (1.0 if truncation == "local" else 2.0) * 2.0 ** -frac_bits
    ring_scale = 2.0 ** (2 * frac_bits)          # a product's ring value is its real value times 2^(2f)
    relu_limit = 2.0 ** (COMPARE_BITS - 1 - frac_bits)

    def fixed(v: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The value on the fixed-point grid and its rounding error (at most 2^-(f+1))."""
        v = v.detach().to(torch.float64).cpu()
        on_grid = decode(_encode(v, frac_bits=frac_bits, headroom=0, name=name), frac_bits=frac_bits)
        return on_grid, (on_grid - v).abs()

    h = x.detach().to(torch.float64).cpu()
    e = fixed(h, "x")[1]
    n = h.shape[0]
    bad = torch.zeros(n, dtype=torch.bool)
    failure = torch.zeros(n, dtype=torch.float64)
    problems: list[str] = []

    def truncated(v_abs: torch.Tensor, what: str) -> None:
        """Record the truncation of values of magnitude at most ``v_abs`` (N, ...)."""
        ring = (v_abs * ring_scale).reshape(n, -1)
        over = (ring >= 2.0 ** 62).any(1)
        if over.any():
            problems.append(f"{what} reaches |v| = {v_abs.max().item():.4g}, whose ring value |v| 2^(2f) is "
                            f">= 2^62 (overflow or a likely truncation failure)")
        bad.logical_or_(over)
        failure.add_((ring / 2.0 ** 64).clamp(max=1.0).sum(1))

    for i, m in enumerate(layers):
        if isinstance(m, nn.Flatten):
            h, e = h.reshape(n, -1), e.reshape(n, -1)
        elif isinstance(m, nn.Linear):
            if h.dim() != 2 or h.shape[1] != m.in_features:
                raise ValueError(f"x does not fit the model: a Linear layer expects {m.in_features} features, got "
                                 f"shape {tuple(h.shape)}")
            w = m.weight.detach().to(torch.float64).cpu()
            w_fx, dw = fixed(w, f"the weight of layer {i} of model")
            # the ring product W~ x~ before truncation: |W~ x~| <= |W~ x| + |W~| e
            truncated((h @ w_fx.t()).abs() + e @ w_fx.abs().t(), f"the product of layer {i} ({type(m).__name__})")
            # W~x~ - Wx = W~(x~ - x) + (W~ - W)x, then one truncation, then the bias's rounding
            e = e @ w_fx.abs().t() + h.abs() @ dw.t() + t
            h = h @ w.t()
            if m.bias is not None:
                e = e + fixed(m.bias, f"the bias of layer {i} of model")[1]
                h = h + m.bias.detach().to(torch.float64).cpu()
        elif isinstance(m, nn.ReLU):
            over = ((h.abs() + e) >= relu_limit).reshape(n, -1).any(1)
            if over.any():
                problems.append(f"the input of layer {i} (ReLU) reaches |x| = {(h.abs() + e).max().item():.4g}, "
                                f"beyond the secure comparison's exact range 2^(COMPARE_BITS - 1 - frac_bits) = "
                                f"{relu_limit:g}")
            bad.logical_or_(over)
            h = h.clamp_min(0)
        else:
            # the ring square x~^2 before truncation; x~^2 - x^2 = (x~ - x)(x~ + x), then one truncation
            truncated((h.abs() + e) ** 2, f"the square of layer {i}")
            e = e * (2 * h.abs() + e) + t
            h = h * h
    e = e.reshape(n, -1)
    e[bad] = torch.inf
    return _Propagation(bound=e, failure=failure.clamp(max=1.0), problem="; ".join(problems) or None)


def error_bound(model: nn.Module, x: torch.Tensor, *, frac_bits: int = DEFAULT_FRAC_BITS,
                truncation: str = "local") -> torch.Tensor:
    """A bound on ``|secure logits - plaintext logits|`` per logit from fixed-point rounding and truncation
    (module docstring), holding except with the truncation failure probability
    (:func:`truncation_failure_probability`).

    Args:
        model: as for :func:`secure_predict`.
        x: inputs ``(N, *input_shape)``.
        frac_bits: fractional bits.
        truncation: ``"local"`` (less than 1 ulp per truncation) or ``"dealer"`` (less than 2 ulp).

    Returns:
        float64 ``(N, num_classes)``; ``inf`` for every logit of an input row whose products reach ``2^62`` in the
        ring or whose ReLU inputs leave the comparison's exact range (module docstring).
    """
    return _propagate(model, x, frac_bits=frac_bits, truncation=truncation).bound


def truncation_failure_probability(model: nn.Module, x: torch.Tensor, *, frac_bits: int = DEFAULT_FRAC_BITS
                                   ) -> torch.Tensor:
    """Per input row, a bound on the probability that one of the truncations of :func:`secure_predict` fails.

    A truncation of the ring value ``V`` of a product fails with probability ``|V| / 2^64`` (for local and dealer
    truncation alike; Mohassel & Zhang 2017, Theorem 1), leaving the result off by about ``2^(64 - f)``; the sum of
    these over the row's truncated elements (computed from the plaintext values) is the union bound returned.

    Args:
        model, x, frac_bits: as for :func:`secure_predict`.

    Returns:
        float64 ``(N,)`` in ``[0, 1]`` (1 for rows whose products leave the ring, where :func:`error_bound` is inf).
    """
    p = _propagate(model, x, frac_bits=frac_bits, truncation="local")
    return torch.where(torch.isinf(p.bound).any(1), torch.ones_like(p.failure), p.failure)
