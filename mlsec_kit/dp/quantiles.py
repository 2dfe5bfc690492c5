"""A private median (any quantile) with the exponential mechanism (Smith 2011; McSherry and Talwar 2007).

Sort the clipped values ``L = z_0 <= z_1 <= ... <= z_n <= z_{n+1} = U``. The gap ``[z_i, z_{i+1})`` has
``i`` values below it; its utility ``-|i - q n|`` says how far that rank is from the target. Choose a gap
with probability ``∝ (z_{i+1} - z_i) · exp(ε u_i / 2)`` and return a uniform point inside it: this is the
exponential mechanism over the *continuum* [L, U] with the rank utility, whose sensitivity is 1.

Privacy: ε-DP under replace-one neighbours (n public: one replaced value moves each rank by at most 1) and
under add/remove neighbours (n then changes by one, and ``|i - q n|`` moves by at most ``max(q, 1 - q) <= 1``).
The bounds L and U must not be chosen from the data.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

from ._validate import Neighbours, TensorLike, as_float_tensor, check_bounds, check_epsilon, check_generator
from .mechanisms import _charge

if TYPE_CHECKING:
    from .budget import PrivacyBudget

__all__ = ["private_quantile", "quantile_interval_probabilities"]


def _check_q(q: float) -> float:
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
        raise ValueError(f"q must be a quantile level in [0, 1], got {q!r}")
    return float(q)


def quantile_interval_probabilities(values: TensorLike, *, q: float = 0.5, lower: float, upper: float,
                                    epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The gaps the private quantile chooses from and their probabilities.

    Args:
        values: the data, 1-D; clipped to [lower, upper] first.
        q: quantile level in [0, 1] (0.5: the median).
        lower, upper: public bounds, lower < upper.
        epsilon: privacy budget, > 0.

    Returns:
        ``(edges, probs)``: ``edges`` float64 ``(n + 2,)`` (the sorted clipped values framed by the bounds),
        ``probs`` float64 ``(n + 1,)``, the probability of each gap ``[edges[i], edges[i+1])``.
    """
    x = as_float_tensor(values, name="values").double()
    if x.dim() != 1 or x.numel() == 0:
        raise ValueError(f"values must be a non-empty 1-D tensor, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("values must be finite (map missing values to a public default before calling)")
    q, (lo, hi), epsilon = _check_q(q), check_bounds(lower, upper), check_epsilon(epsilon)
    n = x.numel()
    z = torch.cat([torch.tensor([lo], dtype=torch.float64, device=x.device), x.clamp(lo, hi).sort().values,
                   torch.tensor([hi], dtype=torch.float64, device=x.device)])
    ranks = torch.arange(n + 1, dtype=torch.float64, device=x.device)
    utility = -(ranks - q * n).abs()
    log_w = torch.log(z[1:] - z[:-1]) + epsilon * utility / 2  # empty gaps get weight 0 (log 0 = -inf)
    return z, torch.softmax(log_w, dim=0)


def private_quantile(values: TensorLike, *, q: float = 0.5, lower: float, upper: float, epsilon: float,
                     size: int = 1, neighbours: Optional[Neighbours] = None, budget: Optional["PrivacyBudget"] = None,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """ε-DP estimates of the ``q``-quantile of ``values`` in [lower, upper] (exponential mechanism).

    Privacy: ε-DP per draw, under replace-one and add/remove neighbours (see the module docstring);
    ``size`` draws cost ``size · ε`` together.

    Args:
        values: the data, 1-D, finite.
        q: quantile level in [0, 1].
        lower, upper: public bounds chosen without looking at the data.
        epsilon: privacy budget per draw, > 0.
        size: independent draws, >= 1 (for simulations).
        neighbours: the analysis's relation, ``"add_remove"`` or ``"replace"`` (the guarantee holds under
            both; it is needed only to charge a budget).
        budget: if given, ``size · ε`` is charged to it before anything is drawn.
        generator: source of randomness.

    Returns:
        float64 tensor ``(size,)`` in [lower, upper].

    Shape:
        ``values`` ``(n,)`` -> ``(size,)``.
    """
    check_generator(generator)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    z, probs = quantile_interval_probabilities(values, q=q, lower=lower, upper=upper, epsilon=epsilon)
    _charge(budget, neighbours, size * epsilon, 0.0, "private_quantile")
    dev = generator.device if generator is not None else z.device
    gap = torch.multinomial(probs.to(dev), size, replacement=True, generator=generator).to(z.device)
    u = torch.rand(size, generator=generator, dtype=torch.float64, device=dev).to(z.device)
    return z[gap] + u * (z[gap + 1] - z[gap])
