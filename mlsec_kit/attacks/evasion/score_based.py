"""Score-based black-box attacks: SimBA and the Square Attack.

Both see only the scores an :class:`~mlsec_kit.attacks.evasion.oracle.Oracle` returns, try a random change,
and keep it when the true class loses ground: random search, no gradients. Each example stops as soon as it
is misclassified or has spent ``max_queries``; ``oracle.queries`` says how many queries each one used.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._validate import check_inputs, check_int, check_norm, check_positive
from .oracle import Oracle, check_oracle

__all__ = ["simba", "square_attack", "margin"]


def margin(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``score_y - max_{j != y} score_j`` per example: > 0 while ``y`` wins, < 0 once another class does.

    Shape:
        ``scores`` ``(N, K)``, ``y`` ``(N,)`` → ``(N,)``.
    """
    true = scores.gather(1, y[:, None]).squeeze(1)
    other = scores.masked_fill(torch.nn.functional.one_hot(y, scores.shape[1]).bool(), float("-inf")).amax(1)
    return true - other


def simba(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
          alpha: Optional[float] = None, max_queries: int = 1000, generator: Optional[torch.Generator] = None,
          clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    r"""Simple black-box attack, SimBA, in the pixel basis (Guo et al., ICML 2019), Linf or L2.

    Visits the coordinates of each input in a random order, each once. For coordinate ``q`` it queries
    :math:`x - \alpha e_q`; if the true-class probability drops, the step is kept, otherwise it queries
    :math:`x + \alpha e_q` and keeps that if the probability drops. So each coordinate costs one or two
    queries (plus one for the clean input), and no kept step ever raises :math:`p_y`. For ``"linf"`` the step
    is ``alpha = eps`` and each coordinate moves once, so the result stays in the ball; for ``"l2"`` a step
    that would leave the L2 ball is not tried.

    Args:
        oracle: the victim behind a score oracle (``"scores"`` or ``"rounded"``); a label-only oracle raises.
        x: the clean inputs.
        y: their true labels, ``(N,)`` int.
        eps: radius of the ball, >= 0.
        norm: ``"linf"`` or ``"l2"``.
        alpha: step per coordinate, >= 0; ``"linf"`` ignores it (the step is ``eps``); ``"l2"`` defaults to
            ``eps / 4``.
        max_queries: most queries per example, >= 1.
        generator: source of the coordinate orders (a CPU ``torch.Generator``); ``None`` uses torch's global one.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv`` in the eps-ball and the input range; same shape, dtype and device as ``x``. The queries
        spent on example ``i`` are charged to ``oracle.queries[i]``.

    Shape:
        ``x`` ``(N, ...)`` in ``[clip_min, clip_max]`` (default ``[0, 1]``), ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_oracle(oracle, scores=True, attack="simba")
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    check_positive("eps", eps, allow_zero=True)
    norm = check_norm(norm)
    if alpha is not None:
        check_positive("alpha", alpha, allow_zero=True)
    check_int("max_queries", max_queries)
    step = float(eps) if norm == "linf" else float(eps / 4 if alpha is None else alpha)
    n, d = x.shape[0], x[0].numel()
    x0 = x.detach().flatten(1)
    x_adv = x0.clone()
    order = torch.stack([torch.randperm(d, generator=generator) for _ in range(n)]).to(x.device)
    rows_all = torch.arange(n, device=x.device)
    used = torch.ones(n, dtype=torch.int64, device=x.device)
    scores = oracle(x.detach(), index=rows_all.cpu())
    p_y = scores.gather(1, y[:, None]).squeeze(1)
    done = scores.argmax(1) != y
    for t in range(d):
        todo = ~done & (used < max_queries)
        for sign in (-1.0, 1.0):
            if not todo.any():
                break
            rows = todo.nonzero().squeeze(1)
            coord = order[rows, t]
            cand = x_adv[rows].clone()
            cand[torch.arange(len(rows)), coord] = (cand[torch.arange(len(rows)), coord] + sign * step).clamp(
                clip_min, clip_max)
            if norm == "linf":
                cand = torch.maximum(torch.minimum(cand, x0[rows] + eps), x0[rows] - eps)
            moved = cand[torch.arange(len(rows)), coord] != x_adv[rows, coord]
            if norm == "l2":
                moved &= (cand - x0[rows]).norm(dim=1) <= eps
            rows, cand = rows[moved], cand[moved]
            if len(rows):
                scores = oracle(cand.view(-1, *x.shape[1:]), index=rows.cpu())
                used[rows] += 1
                p_new = scores.gather(1, y[rows, None]).squeeze(1)
                better = p_new < p_y[rows]
                kept = rows[better]
                x_adv[kept], p_y[kept] = cand[better], p_new[better]
                done[kept] = scores[better].argmax(1) != y[kept]
                todo[kept] = False  # the first sign worked: do not try the second
            todo &= ~done & (used < max_queries)
    return x_adv.view_as(x).to(x.dtype)


def _square_fraction(i: int, max_queries: int, p_init: float) -> float:
    """The paper's schedule: the square's area fraction halves at fixed points of a 10,000-query run, rescaled."""
    it = int(i / max_queries * 10_000)
    for k, limit in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if it <= limit:
            return p_init / 2 ** k
    return p_init / 512


def square_attack(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, *, eps: float, max_queries: int = 1000,
                  p_init: float = 0.05, generator: Optional[torch.Generator] = None, clip_min: float = 0.0,
                  clip_max: float = 1.0) -> torch.Tensor:
    r"""Square Attack, Linf (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020).

    Starts from vertical stripes of :math:`\pm\varepsilon` (one query), then repeats: pick a random square
    window of side :math:`\lceil\sqrt{p\,HW}\rceil` and set the perturbation inside it to :math:`\pm\varepsilon`
    (one sign per channel), query, and keep the change when the margin
    :math:`s_y - \max_{j \ne y} s_j` of the returned scores drops. The area fraction :math:`p` starts at
    ``p_init`` and halves on the paper's schedule. The perturbation stays on the corners of the Linf ball,
    where the strongest perturbations live. One query per step.

    Args:
        oracle: the victim behind a score oracle (``"scores"`` or ``"rounded"``); a label-only oracle raises.
        x: clean images.
        y: their true labels, ``(N,)`` int.
        eps: the Linf budget, >= 0.
        max_queries: most queries per example, >= 1.
        p_init: the first window's fraction of the image area, in ``(0, 1]``.
        generator: source of the random windows and signs (CPU); ``None`` uses torch's global one.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        ``x_adv`` with ``||x_adv - x||_inf <= eps``, in range; same shape, dtype and device as ``x``.

    Shape:
        ``x`` ``(N, C, H, W)`` in ``[clip_min, clip_max]``, ``y`` ``(N,)`` → ``x_adv`` like ``x``.
    """
    check_oracle(oracle, scores=True, attack="square_attack")
    check_inputs(x, y, clip_min=clip_min, clip_max=clip_max)
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W) for the square attack, got {tuple(x.shape)}")
    check_positive("eps", eps, allow_zero=True)
    check_int("max_queries", max_queries)
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
        raise ValueError(f"p_init must be in (0, 1], got {p_init!r}")
    n, c, h, w = x.shape
    dev, x = x.device, x.detach()
    signs = lambda *shape: (torch.randint(0, 2, shape, generator=generator) * 2.0 - 1).to(dev, x.dtype)  # noqa: E731
    delta = eps * signs(n, c, 1, w).expand(n, c, h, w)
    x_adv = (x + delta).clamp(clip_min, clip_max)
    scores = oracle(x_adv, index=torch.arange(n))
    used = torch.ones(n, dtype=torch.int64, device=dev)
    best = margin(scores, y)
    done = scores.argmax(1) != y
    grid_h, grid_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    for i in range(1, max_queries):
        todo = (~done & (used < max_queries)).nonzero().squeeze(1)
        if not len(todo):
            break
        m = len(todo)
        side = min(max(int(round((_square_fraction(i, max_queries, p_init) * h * w) ** 0.5)), 1), h, w)
        top = torch.randint(0, h - side + 1, (m,), generator=generator).to(dev)
        left = torch.randint(0, w - side + 1, (m,), generator=generator).to(dev)
        inside_h = (grid_h >= top[:, None]) & (grid_h < top[:, None] + side)
        inside_w = (grid_w >= left[:, None]) & (grid_w < left[:, None] + side)
        window = (inside_h[:, None, :, None] & inside_w[:, None, None, :])
        cur = x_adv[todo] - x[todo]
        new = torch.where(window, eps * signs(m, c, 1, 1), cur)
        cand = (x[todo] + new).clamp(clip_min, clip_max)
        scores = oracle(cand, index=todo.cpu())
        used[todo] += 1
        loss = margin(scores, y[todo])
        better = loss < best[todo]
        kept = todo[better]
        x_adv[kept], best[kept] = cand[better], loss[better]
        done[kept] = scores[better].argmax(1) != y[kept]
    return x_adv
