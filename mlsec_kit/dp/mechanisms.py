"""The basic mechanisms of differential privacy, each a pure function whose privacy cost is stated here.

Every function draws its randomness from ``generator`` (a ``torch.Generator``) when one is passed, so the
same seed gives the same output; noise is drawn in float64 on the generator's device (or the input's, when
no generator is given) and the result is returned on the input's device, in its floating dtype (float64
for Python numbers and integer tensors).

**Neighbouring relation.** A mechanism's guarantee holds under the relation its ``sensitivity`` was computed
for. Declare it with ``neighbours`` (``"add_remove"`` or ``"replace"``): it is checked against the ``budget``
the mechanism charges (if any) and, for the exponential mechanism and report noisy max, decides whether the
monotone shortcut is sound. Left at ``None`` it is the caller's word that ``sensitivity`` is right for the
analysis's relation. With ``budget=`` the cost is charged *before* any noise is drawn, so an over-budget
call releases nothing.

A note on floating point: these samplers are textbook samplers. Like every naive floating-point sampler
they leak through the pattern of their low-order bits (Mironov 2012; see the chapter), so use a hardened
library (diffprivlib's ``Snapping``, a discrete mechanism) for a real release.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import torch

from ._validate import (Neighbours, TensorLike, as_float_tensor, check_epsilon, check_generator,
                        check_neighbours, check_sensitivity, noise_device)
from .calibration import analytic_gaussian_sigma, classic_gaussian_sigma, laplace_scale

if TYPE_CHECKING:
    from .budget import PrivacyBudget

__all__ = ["randomized_response", "randomized_response_keep_probability", "randomized_response_estimate",
           "laplace", "gaussian", "analytic_gaussian", "exponential", "exponential_probabilities",
           "report_noisy_max"]


def _charge(budget: Optional["PrivacyBudget"], neighbours: Optional[str], epsilon: float, delta: float,
            label: str) -> None:
    """Validate ``neighbours`` and charge ``budget`` (if given) before anything is drawn."""
    if neighbours is not None:
        check_neighbours(neighbours)
    if budget is None:
        return
    from .budget import PrivacyBudget
    if not isinstance(budget, PrivacyBudget):
        raise TypeError(f"budget must be a PrivacyBudget or None, got {type(budget).__name__}")
    if neighbours is None:
        raise ValueError(f"{label}: pass neighbours='add_remove' or 'replace' (the relation its sensitivity is "
                         "computed for) to charge a budget")
    budget.spend(epsilon=epsilon, delta=delta, neighbours=neighbours, label=label)


def randomized_response_keep_probability(*, epsilon: float) -> float:
    """The probability ``p = e^ε / (1 + e^ε)`` that ε-DP randomized response reports the true bit.

    Privacy: arithmetic on the public ε, no data involved."""
    epsilon = check_epsilon(epsilon)
    return 1.0 / (1.0 + math.exp(-epsilon))


def randomized_response(bits: torch.Tensor, *, epsilon: float,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Randomized response (Warner 1965): report each bit truthfully with probability ``e^ε / (1 + e^ε)``,
    flipped otherwise.

    Privacy: ε-local-DP for each respondent: changing one respondent's bit (replace-one, the number of
    respondents public) changes the probability of any joint report by a factor of at most ``e^ε``, since
    ``P[report r | bit b] / P[report r | bit 1-b] <= e^ε`` and the entries are flipped independently
    (local model: no one, not even the curator, sees the true bits). Independence is essential: flipping a
    fixed number of entries gives the right marginals and no privacy at all.

    Args:
        bits: a tensor of 0s and 1s (bool or integer), any shape.
        epsilon: privacy budget per respondent, > 0 (``ln 3``: the two-coin protocol of Dwork and Roth 2014,
            Sec. 3.2; Warner's 1965 spinner allowed any p).
        generator: source of randomness.

    Returns:
        The reported bits, same shape, dtype and device as ``bits``.

    Shape:
        ``bits`` ``(*)`` in {0, 1} -> reports ``(*)`` in {0, 1}.
    """
    if not isinstance(bits, torch.Tensor) or bits.is_floating_point() or bits.is_complex():
        raise TypeError(f"bits must be a bool or integer torch tensor, got "
                        f"{bits.dtype if isinstance(bits, torch.Tensor) else type(bits).__name__}")
    if bits.numel() and not bool(((bits == 0) | (bits == 1)).all()):
        raise ValueError("bits must hold only 0 and 1")
    check_generator(generator)
    keep = randomized_response_keep_probability(epsilon=epsilon)
    u = torch.rand(bits.shape, generator=generator, dtype=torch.float64, device=noise_device(bits, generator))
    flip = (u >= keep).to(bits.device)
    return torch.where(flip, 1 - bits.long(), bits.long()).to(bits.dtype)


def randomized_response_estimate(reports: torch.Tensor, *, epsilon: float) -> torch.Tensor:
    """The unbiased estimate of the fraction of 1s from ε-randomized-response reports.

    With ``p = e^ε / (1 + e^ε)``, a report is 1 with probability ``π p + (1 - π)(1 - p)`` when a fraction π
    of the true bits are 1, so ``(mean(reports) - (1 - p)) / (2p - 1)`` has expectation π. It can fall
    outside [0, 1]; clipping it would bias it.

    Privacy: post-processing of the reports (each ε-DP for its respondent's bit), so free.

    Args:
        reports: the reported bits, any shape (all entries pooled).
        epsilon: the budget the reports were made with, > 0.

    Returns:
        A float64 scalar tensor on the reports' device.

    Shape:
        ``reports`` ``(*)`` in {0, 1} -> ``()``.
    """
    if not isinstance(reports, torch.Tensor) or reports.numel() == 0:
        raise ValueError("reports must be a non-empty torch tensor of 0s and 1s")
    p = randomized_response_keep_probability(epsilon=epsilon)
    return (reports.double().mean() - (1 - p)) / (2 * p - 1)


def _add_noise(value: TensorLike, scale: float, generator: Optional[torch.Generator], kind: str) -> torch.Tensor:
    check_generator(generator)
    x = as_float_tensor(value)
    dev = noise_device(x, generator)
    if kind == "laplace":  # the difference of two Exp(1) variables is Laplace(0, 1)
        e = torch.empty((2, *x.shape), dtype=torch.float64, device=dev).exponential_(generator=generator)
        noise = e[0] - e[1]
    else:
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64, device=dev)
    return (x.double() + scale * noise.to(x.device)).to(x.dtype)


def laplace(value: TensorLike, *, sensitivity: float, epsilon: float, neighbours: Optional[Neighbours] = None,
            budget: Optional["PrivacyBudget"] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The Laplace mechanism (Dwork, McSherry, Nissim and Smith 2006): ``value + Lap(sensitivity / epsilon)``.

    Privacy: ε-DP under the relation ``neighbours`` when ``sensitivity`` bounds the L1 norm of the change of
    ``value`` between neighbouring datasets under it; independent noise is added to each entry. The noise
    scale depends on nothing but ``sensitivity`` and ``epsilon`` (never on the data).

    Args:
        value: the exact query answer: a tensor or a number.
        sensitivity: L1 sensitivity Δ₁ of the query under ``neighbours``, >= 0.
        epsilon: privacy budget, > 0.
        neighbours: the relation Δ₁ is computed for (``None``: the caller vouches for it).
        budget: charged ``(epsilon, 0)`` under ``neighbours`` before the noise is drawn.
        generator: source of randomness.

    Returns:
        The noisy answer, same shape and device as ``value``.

    Shape:
        ``value`` ``(*)`` -> ``(*)``; each entry's noise has density ``exp(-|z|/b) / 2b``, ``b = Δ₁/ε``.
    """
    scale = laplace_scale(sensitivity=sensitivity, epsilon=epsilon)
    check_generator(generator)
    _charge(budget, neighbours, float(epsilon), 0.0, "laplace")
    return _add_noise(value, scale, generator, "laplace")


def gaussian(value: TensorLike, *, sensitivity: float, epsilon: float, delta: float,
             neighbours: Optional[Neighbours] = None, budget: Optional["PrivacyBudget"] = None,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The Gaussian mechanism with the classic calibration ``σ = sqrt(2 ln(1.25/δ)) Δ₂/ε`` (Dwork and Roth 2014).

    Privacy: (ε, δ)-DP (ε ≤ 1) under the relation ``neighbours`` when ``sensitivity`` bounds the L2 norm of
    the change of ``value`` under it. For ε > 1, or for less noise, use :func:`analytic_gaussian`.

    Args:
        value: the exact query answer: a tensor or a number.
        sensitivity: L2 sensitivity Δ₂ under ``neighbours``, >= 0.
        epsilon: privacy budget in (0, 1].
        delta: in (0, 1).
        neighbours: the relation Δ₂ is computed for (``None``: the caller vouches for it).
        budget: charged ``(epsilon, delta)`` under ``neighbours`` before the noise is drawn.
        generator: source of randomness.

    Returns:
        ``value + N(0, σ²)`` entry-wise, same shape and device as ``value``.

    Shape:
        ``value`` ``(*)`` -> ``(*)``.
    """
    sigma = classic_gaussian_sigma(sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    check_generator(generator)
    _charge(budget, neighbours, float(epsilon), float(delta), "gaussian")
    return _add_noise(value, sigma, generator, "gaussian")


def analytic_gaussian(value: TensorLike, *, sensitivity: float, epsilon: float, delta: float,
                      neighbours: Optional[Neighbours] = None, budget: Optional["PrivacyBudget"] = None,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The analytic Gaussian mechanism (Balle and Wang 2018): the least Gaussian noise that is (ε, δ)-DP.

    Privacy: (ε, δ)-DP for every ε > 0 under the relation ``neighbours`` when ``sensitivity`` bounds the L2
    norm of the change of ``value`` under it.

    Args:
        value: the exact query answer: a tensor or a number.
        sensitivity: L2 sensitivity Δ₂ under ``neighbours``, >= 0.
        epsilon: privacy budget, > 0.
        delta: in (0, 1).
        neighbours: the relation Δ₂ is computed for (``None``: the caller vouches for it).
        budget: charged ``(epsilon, delta)`` under ``neighbours`` before the noise is drawn.
        generator: source of randomness.

    Returns:
        ``value + N(0, σ²)`` with σ from :func:`~mlsec_kit.dp.calibration.analytic_gaussian_sigma`.

    Shape:
        ``value`` ``(*)`` -> ``(*)``.
    """
    sigma = analytic_gaussian_sigma(sensitivity=sensitivity, epsilon=epsilon, delta=delta)
    check_generator(generator)
    _charge(budget, neighbours, float(epsilon), float(delta), "analytic_gaussian")
    return _add_noise(value, sigma, generator, "gaussian")


def _check_scores(scores: TensorLike) -> torch.Tensor:
    s = as_float_tensor(scores, name="scores")
    if s.dim() == 0 or s.shape[-1] == 0:
        raise ValueError(f"scores must have a last dimension of at least one candidate, got shape {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("scores must be finite")
    return s


def _check_monotonic(monotonic: bool, neighbours: Optional[str]) -> int:
    """The factor 1 (monotone utilities) or 2 in ``exp(ε u / (factor Δ))``."""
    if not isinstance(monotonic, (bool,)):
        raise TypeError(f"monotonic must be a bool, got {type(monotonic).__name__}")
    if monotonic and neighbours is not None and check_neighbours(neighbours) == "replace":
        raise ValueError("monotonic=True needs neighbours='add_remove': replacing a record can raise one "
                         "candidate's utility and lower another's (a count moves from one candidate to another), "
                         "so exp(eps u / sensitivity) has log-ratio 2 eps under replace-one; use monotonic=False")
    return 1 if monotonic else 2


def exponential_probabilities(scores: TensorLike, *, sensitivity: float, epsilon: float,
                              monotonic: bool = False, neighbours: Optional[Neighbours] = None) -> torch.Tensor:
    """The exponential mechanism's selection probabilities, ``∝ exp(ε u / (2Δ))`` (``exp(ε u / Δ)`` if monotonic).

    Args:
        scores: utilities ``u`` of the candidates, last dimension.
        sensitivity: the most one record changes any candidate's utility under ``neighbours``, >= 0
            (0: always the best).
        epsilon: privacy budget, > 0.
        monotonic: whether neighbouring datasets move all utilities in the same direction (counts under
            add/remove; refused with ``neighbours="replace"``, where it would cost 2ε).
        neighbours: the relation ``sensitivity`` is computed for (``None``: the caller vouches for it).

    Returns:
        float64 probabilities summing to 1 over the last dimension (not a release: sampling from them is
        ε-DP under ``neighbours``, see :func:`exponential`).

    Shape:
        ``scores`` ``(*, K)`` -> ``(*, K)``.
    """
    s = _check_scores(scores).double()
    sensitivity, epsilon = check_sensitivity(sensitivity), check_epsilon(epsilon)
    factor = _check_monotonic(monotonic, neighbours)
    if sensitivity == 0:
        return torch.nn.functional.one_hot(s.argmax(-1), s.shape[-1]).double()
    return torch.softmax(s * (epsilon / (factor * sensitivity)), dim=-1)


def exponential(scores: TensorLike, *, sensitivity: float, epsilon: float, monotonic: bool = False,
                neighbours: Optional[Neighbours] = None, budget: Optional["PrivacyBudget"] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The exponential mechanism (McSherry and Talwar 2007): pick candidate ``k`` with probability
    ``∝ exp(ε u_k / (2Δ))``.

    Privacy: ε-DP under the relation ``neighbours`` when ``sensitivity`` bounds how much one record changes
    any candidate's utility under it (each row of ``scores`` is one release; draws are independent).

    Args:
        scores: utilities of the candidates (last dimension); leading dimensions are independent draws.
        sensitivity: Δ under ``neighbours``, >= 0.
        epsilon: privacy budget, > 0.
        monotonic: utilities move together between neighbours (halves the noise: ``exp(ε u / Δ)``); only
            under add/remove, refused with ``neighbours="replace"``.
        neighbours: the relation Δ is computed for (``None``: the caller vouches for it).
        budget: charged ``(epsilon, 0)`` under ``neighbours`` before drawing (once, whatever the batch shape).
        generator: source of randomness.

    Returns:
        The chosen index, int64, on the scores' device.

    Shape:
        ``scores`` ``(*, K)`` -> ``(*)`` in ``[0, K)``.
    """
    check_generator(generator)
    s = _check_scores(scores)
    probs = exponential_probabilities(s, sensitivity=sensitivity, epsilon=epsilon, monotonic=monotonic,
                                      neighbours=neighbours)
    _charge(budget, neighbours, float(epsilon), 0.0, "exponential")
    flat = probs.reshape(-1, probs.shape[-1]).to(noise_device(s, generator))
    choice = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
    return choice.to(s.device)


def report_noisy_max(scores: TensorLike, *, sensitivity: float, epsilon: float, monotonic: bool = False,
                     neighbours: Optional[Neighbours] = None, budget: Optional["PrivacyBudget"] = None,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Report noisy max: add ``Lap(2Δ/ε)`` (``Lap(Δ/ε)`` if monotonic, e.g. counts) to each score and return
    the index of the largest (Dwork and Roth 2014, Section 3.3). Only the index is released.

    Privacy: ε-DP under the relation ``neighbours`` when ``sensitivity`` bounds how much one record changes
    any score under it.

    Args:
        scores: the exact scores (last dimension); leading dimensions are independent draws.
        sensitivity: Δ under ``neighbours``, >= 0.
        epsilon: privacy budget, > 0.
        monotonic: the scores move in the same direction between neighbours (add/remove only).
        neighbours: the relation Δ is computed for (``None``: the caller vouches for it).
        budget: charged ``(epsilon, 0)`` under ``neighbours`` before drawing (once, whatever the batch shape).
        generator: source of randomness.

    Returns:
        The index of the noisy maximum, int64, on the scores' device.

    Shape:
        ``scores`` ``(*, K)`` -> ``(*)`` in ``[0, K)``.
    """
    s = _check_scores(scores)
    sensitivity = check_sensitivity(sensitivity)
    factor = _check_monotonic(monotonic, neighbours)
    check_epsilon(epsilon)
    check_generator(generator)
    _charge(budget, neighbours, float(epsilon), 0.0, "report_noisy_max")
    noisy = laplace(s.double(), sensitivity=factor * sensitivity, epsilon=epsilon, generator=generator)
    return noisy.argmax(-1)
