"""A decision-based black-box attack: HopSkipJump, which needs nothing but the top-1 label.

Why HopSkipJump rather than the Boundary Attack (Brendel et al. 2018): both walk along the decision boundary
from a far-away adversarial start, but HopSkipJump estimates the boundary's normal from the labels of random
probes and steps along it, which takes one to two orders of magnitude fewer queries for the same distance.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ._validate import check_inputs, check_int, check_norm, check_positive
from .oracle import Oracle, check_oracle, labels_of

__all__ = ["hop_skip_jump"]


class _Budgeted:
    """Label queries for the rows of the attacked batch, each row charged once, none past ``max_queries``."""

    def __init__(self, oracle: Oracle, y: torch.Tensor, max_queries: int, clip_min: float, clip_max: float):
        self.oracle, self.y, self.max_queries = oracle, y, max_queries
        self.clip = (clip_min, clip_max)
        self.used = torch.zeros(len(y), dtype=torch.int64, device=y.device)

    def left(self, rows: torch.Tensor) -> torch.Tensor:
        return self.max_queries - self.used[rows]

    def adversarial(self, points: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Is each point misclassified? ``rows`` (one per point) says which example it belongs to."""
        answer = self.oracle(points.clamp(*self.clip), index=rows.cpu())
        self.used += torch.bincount(rows, minlength=len(self.used))
        return labels_of(answer) != self.y[rows]


def _dist(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    diff = (a - b).flatten(1)
    return diff.norm(dim=1) if norm == "l2" else diff.abs().amax(1)


def _blend(x0: torch.Tensor, x_adv: torch.Tensor, alpha: torch.Tensor, norm: str) -> torch.Tensor:
    """L2: the point a fraction ``alpha`` of the way from ``x0`` to ``x_adv``; Linf: ``x_adv`` clipped to the
    Linf ball of radius ``alpha`` around ``x0``."""
    a = alpha.view(-1, *([1] * (x0.dim() - 1)))
    if norm == "l2":
        return (1 - a) * x0 + a * x_adv
    return torch.maximum(torch.minimum(x_adv, x0 + a), x0 - a)


def _binary_search(q: _Budgeted, x0, x_adv, rows, norm: str, theta: float) -> torch.Tensor:
    """Move each (adversarial) ``x_adv`` towards its ``x0`` onto the boundary, to within ``theta``."""
    if norm == "l2":
        high, threshold = torch.ones(len(rows), device=x0.device), torch.full((len(rows),), theta, device=x0.device)
    else:
        high = _dist(x_adv, x0, "linf")
        threshold = torch.clamp(high * theta, max=theta)
    low = torch.zeros_like(high)
    while True:
        open_ = ((high - low) > threshold) & (q.left(rows) > 0)
        if not open_.any():
            return _blend(x0, x_adv, high, norm)
        i = open_.nonzero().squeeze(1)
        mid = (high[i] + low[i]) / 2
        hit = q.adversarial(_blend(x0[i], x_adv[i], mid, norm), rows[i])
        high[i] = torch.where(hit, mid, high[i])
        low[i] = torch.where(hit, low[i], mid)


def _gradient_direction(q: _Budgeted, x_b, rows, num_evals: int, delta: torch.Tensor, norm: str, generator):
    """Monte Carlo estimate of the boundary normal at each ``x_b`` from the labels of random probes (eq. 14)."""
    m, shape = len(rows), x_b.shape[1:]
    k = torch.clamp(q.left(rows), max=num_evals)  # probes each example can still pay for
    noise = torch.randn((m, num_evals, *shape), generator=generator) if norm == "l2" else \
        torch.rand((m, num_evals, *shape), generator=generator) * 2 - 1
    noise = noise.to(x_b.device, x_b.dtype)
    noise = noise / noise.flatten(2).norm(dim=2).view(m, num_evals, *([1] * len(shape)))
    d = delta.view(m, 1, *([1] * len(shape)))
    probes = (x_b[:, None] + d * noise).clamp(*q.clip)
    noise = (probes - x_b[:, None]) / d
    paid = torch.arange(num_evals, device=x_b.device)[None] < k[:, None]  # (m, num_evals)
    sign = torch.zeros(m, num_evals, device=x_b.device, dtype=x_b.dtype)
    sign[paid] = q.adversarial(probes[paid], rows[:, None].expand(m, num_evals)[paid]).to(x_b.dtype) * 2 - 1
    count = paid.sum(1).clamp_min(1).to(x_b.dtype)
    mean = sign.sum(1) / count
    centred = torch.where(mean.abs()[:, None] == 1, sign, (sign - mean[:, None]) * paid)  # baseline, as the authors
    grad = (centred.view(m, num_evals, *([1] * len(shape))) * noise).sum(1) / count.view(-1, *([1] * len(shape)))
    if norm == "l2":
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * len(shape)))
    return grad.sign()


def hop_skip_jump(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, *, norm: str = "l2", eps: Optional[float] = None,
                  steps: int = 40, max_queries: int = 1000, init_evals: int = 100, max_evals: int = 10_000,
                  init_trials: int = 100, generator: Optional[torch.Generator] = None, clip_min: float = 0.0,
                  clip_max: float = 1.0) -> torch.Tensor:
    r"""HopSkipJumpAttack, untargeted, L2 or Linf (Chen, Jordan & Wainwright, IEEE S&P 2020).

    Needs only the top-1 label. Starts from uniform noise that is misclassified and a binary search to the
    decision boundary between it and ``x``. Each of ``steps`` iterations then (1) estimates the boundary's
    normal from the labels of :math:`B_t = \min(\text{init\_evals}\sqrt{t+1}, \text{max\_evals})` random probes
    around the boundary point, (2) steps along it by a geometric search (halving from
    :math:`2\,d_t/\sqrt{t+1}` until the label is still wrong) and (3) binary-searches back to the boundary.
    The perturbation shrinks from iteration to iteration. All examples of the batch advance together.

    Args:
        oracle: the victim behind any oracle (only the top-1 label of its answer is used).
        x: the clean inputs.
        y: their true labels, ``(N,)`` int.
        norm: ``"l2"`` or ``"linf"``, the distance minimised.
        eps: with a budget >= 0, an example stops once it has an adversarial point within ``eps`` and is
            returned unchanged (``x``) if it never gets one; ``None`` minimises for the whole budget.
        steps: most iterations, >= 1.
        max_queries: most queries per example, >= 1 (initialisation included).
        init_evals: probes for the first gradient estimate, >= 1.
        max_evals: most probes per gradient estimate, >= init_evals.
        init_trials: most random starts drawn to find a misclassified one, >= 1.
        generator: source of every random draw (CPU); ``None`` uses torch's global one.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv``: the closest misclassified point found for each example (within ``eps`` when ``eps`` is
        given), or ``x`` itself where none was found; same shape, dtype and device as ``x``.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` (default ``[0, 1]``), ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_oracle(oracle)
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    norm = check_norm(norm)
    if eps is not None:
        check_positive("eps", eps, allow_zero=True)
    for name, value in (("steps", steps), ("max_queries", max_queries), ("init_evals", init_evals),
                        ("init_trials", init_trials)):
        check_int(name, value)
    check_int("max_evals", max_evals, minimum=init_evals)
    x0, n, d, dev = x.detach(), x.shape[0], x[0].numel(), x.device
    theta = d ** -1.5 if norm == "l2" else d ** -2.0
    q = _Budgeted(oracle, y, max_queries, clip_min, clip_max)
    rows_all = torch.arange(n, device=dev)
    found = q.adversarial(x0, rows_all)  # already misclassified: nothing to do
    best, best_dist = x0.clone(), torch.where(found, 0.0, float("inf")).to(dev)
    cur = x0.clone()
    start = found.clone()
    for _ in range(init_trials):  # a misclassified random start for the others
        i = (~start & (q.left(rows_all) > 0)).nonzero().squeeze(1)
        if not len(i):
            break
        noise = (torch.rand((len(i), *x.shape[1:]), generator=generator) * (clip_max - clip_min) + clip_min)
        noise = noise.to(dev, x.dtype)
        hit = q.adversarial(noise, i)
        cur[i[hit]], start[i[hit]] = noise[hit], True
    walk = start & ~found
    i = walk.nonzero().squeeze(1)
    if len(i):
        cur[i] = _binary_search(q, x0[i], cur[i], i, norm, theta)
        best[i], best_dist[i] = cur[i], _dist(cur[i], x0[i], norm)
    stop = lambda: best_dist <= (eps if eps is not None else -1.0)  # noqa: E731
    for t in range(steps):
        i = (walk & ~stop() & (q.left(rows_all) > 0)).nonzero().squeeze(1)
        if not len(i):
            break
        dist = _dist(cur[i], x0[i], norm)
        delta = torch.full_like(dist, 0.1 * (clip_max - clip_min)) if t == 0 else \
            (math.sqrt(d) if norm == "l2" else d) * theta * dist
        num_evals = min(int(init_evals * math.sqrt(t + 1)), max_evals)
        direction = _gradient_direction(q, cur[i], i, num_evals, delta.clamp_min(1e-12), norm, generator)
        size = 2 * dist / math.sqrt(t + 1)  # geometric step search: halve until still adversarial
        moved = torch.zeros(len(i), dtype=torch.bool, device=dev)
        new = cur[i].clone()
        for _ in range(25):
            j = (~moved & (q.left(i) > 0)).nonzero().squeeze(1)
            if not len(j):
                break
            size[j] = size[j] / 2
            cand = (cur[i[j]] + size[j].view(-1, *([1] * (x.dim() - 1))) * direction[j]).clamp(clip_min, clip_max)
            hit = q.adversarial(cand, i[j])
            new[j[hit]], moved[j[hit]] = cand[hit], True
        k = moved.nonzero().squeeze(1)
        if len(k):
            cur[i[k]] = _binary_search(q, x0[i[k]], new[k], i[k], norm, theta)
        dist = _dist(cur[i], x0[i], norm)
        better = dist < best_dist[i]
        best[i[better]], best_dist[i[better]] = cur[i[better]], dist[better]
    if eps is not None:
        best = torch.where(stop().view(-1, *([1] * (x.dim() - 1))), best, x0)
    return best.clamp(clip_min, clip_max)
