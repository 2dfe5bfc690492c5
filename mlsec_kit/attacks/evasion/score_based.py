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


def _dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``(n, n)``: row ``k`` is the k-th cosine, ``D @ D.T = I``."""
    k, i = torch.arange(n, dtype=torch.float64)[:, None], torch.arange(n, dtype=torch.float64)[None]
    mat = torch.cos(torch.pi * (2 * i + 1) * k / (2 * n)) * (2.0 / n) ** 0.5
    mat[0] /= 2 ** 0.5
    return mat


def _low_frequency_order(c: int, h: int, w: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """SimBA-DCT's order of the basis: frequencies ``(u, v)`` ring by ring, ``max(u, v) = 0, 1, 2, ...`` (lowest
    first), in a random order inside each ring, all channels of a ring together (the authors' ``block_order``
    with stride 1). Returns flat indices into ``(c, h, w)``."""
    ring = torch.maximum(torch.arange(h)[:, None], torch.arange(w)[None]).expand(c, h, w).flatten()
    key = ring.double() + torch.rand(c * h * w, generator=generator, dtype=torch.float64)  # random within a ring
    return key.argsort()


def simba(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
          alpha: Optional[float] = None, max_queries: int = 1000, basis: str = "pixel", order: Optional[str] = None,
          generator: Optional[torch.Generator] = None, clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    r"""Simple black-box attack, SimBA (Guo et al., ICML 2019), in the pixel or the DCT basis, Linf or L2.

    Walks through the vectors :math:`q` of an orthonormal basis, each once, in a random order. For each it
    queries :math:`x - lpha q`; if the true-class probability drops, the step is kept, otherwise it queries
    :math:`x + lpha q` and keeps that if the probability drops. So each direction costs one or two queries
    (plus one for the clean input), and no kept step ever raises :math:`p_y`.

    ``basis="pixel"`` (SimBA) uses the standard basis, one pixel at a time. ``basis="dct"`` (SimBA-DCT, the
    paper's stronger variant) uses the 2-D discrete cosine basis of each channel, visited from low to high
    frequency (random within each frequency ring): natural images' classifiers are most sensitive to smooth,
    low-frequency changes, so the first directions tried are the most promising ones.

    The paper's attack is an L2 attack. ``"l2"``: each step has L2 length ``alpha`` (default ``eps / 4``) and a
    step that would leave the L2 ball is not tried. ``"linf"`` is an adaptation: in the pixel basis the step is
    ``alpha = eps`` on one pixel, which moves once, so the result stays in the ball; in the DCT basis the step
    ``alpha * q`` (default ``alpha = eps * sqrt(H W) / 2``, so the step's largest pixel change is about ``eps``) is
    clipped to the Linf ball.

    Args:
        oracle: the victim behind a score oracle (``"scores"`` or ``"rounded"``); a label-only oracle raises.
        x: the clean inputs; ``(N, C, H, W)`` images for ``basis="dct"``.
        y: their true labels, ``(N,)`` int.
        eps: radius of the ball, >= 0.
        norm: ``"linf"`` or ``"l2"``.
        alpha: the L2 length of a step, >= 0; pixel ``"linf"`` ignores it (the step is ``eps``); the defaults are
            above.
        max_queries: most queries per example, >= 1.
        basis: ``"pixel"`` or ``"dct"``.
        order: the order of the basis vectors: ``"low-first"`` (the default for ``"dct"``: frequency rings from
            low to high, random inside each ring) or ``"random"`` (uniformly random, the only order of the pixel
            basis, and an ablation of SimBA-DCT).
        generator: source of the orders (a CPU ``torch.Generator``); ``None`` uses torch's global one.
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
    if basis not in ("pixel", "dct"):
        raise ValueError(f"basis must be 'pixel' or 'dct', got {basis!r}")
    order = order if order is not None else ("low-first" if basis == "dct" else "random")
    if order not in ("low-first", "random") or (basis == "pixel" and order != "random"):
        raise ValueError(f"order must be 'low-first' or 'random' (only 'random' for basis='pixel'), got {order!r}")
    if basis == "dct" and x.dim() != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W) for basis='dct', got {tuple(x.shape)}")
    n, d = x.shape[0], x[0].numel()
    if basis == "pixel":
        step = float(eps) if norm == "linf" else float(eps / 4 if alpha is None else alpha)
        order = torch.stack([torch.randperm(d, generator=generator) for _ in range(n)]).to(x.device)
    else:
        c, h, w = x.shape[1:]
        default = eps * (h * w) ** 0.5 / 2 if norm == "linf" else eps / 4
        step = float(default if alpha is None else alpha)
        draw = (lambda: _low_frequency_order(c, h, w, generator)) if order == "low-first" else \
            (lambda: torch.randperm(d, generator=generator))
        order = torch.stack([draw() for _ in range(n)]).to(x.device)
        dct_h, dct_w = _dct_matrix(h).to(x.device, x.dtype), _dct_matrix(w).to(x.device, x.dtype)
    x0 = x.detach().flatten(1)
    x_adv = x0.clone()
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
            coord, at = order[rows, t], torch.arange(len(rows), device=x.device)
            cand = x_adv[rows].clone()
            if basis == "pixel":
                cand[at, coord] += sign * step
            else:  # the basis image of frequency (u, v) in channel ch: an outer product of two cosines
                ch, u, v = coord // (h * w), coord // w % h, coord % w
                q = torch.zeros(len(rows), c, h, w, device=x.device, dtype=x.dtype)
                q[at, ch] = dct_h[u][:, :, None] * dct_w[v][:, None, :]
                cand += sign * step * q.flatten(1)
            cand = cand.clamp(clip_min, clip_max)
            if norm == "linf":
                cand = torch.maximum(torch.minimum(cand, x0[rows] + eps), x0[rows] - eps)
            moved = (cand != x_adv[rows]).any(1)
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


_MAX_REDRAWS = 100  # redraws of a window's signs before giving up on changing it (only eps == 0 gets there)


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
    window of side :math:`\sqrt{p\,HW}` rounded to the nearest integer, at least 1 and at most
    :math:`\min(H, W) - 1` (as the authors' code), and set the perturbation inside it to :math:`\pm\varepsilon`
    (one sign per channel), query, and keep the change when the margin
    :math:`s_y - \max_{j \ne y} s_j` of the returned scores drops. The area fraction :math:`p` starts at
    ``p_init`` and halves on the paper's schedule. The perturbation stays on the corners of the Linf ball,
    where the strongest perturbations live. A window whose new signs would leave the point unchanged is
    redrawn before it is queried, so every query asks about a new point; one query per step.

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
    for i in range(1, max_queries if eps > 0 else 1):  # with eps == 0 no window can change anything
        todo = (~done & (used < max_queries)).nonzero().squeeze(1)
        if not len(todo):
            break
        m = len(todo)
        side = max(min(int(round((_square_fraction(i, max_queries, p_init) * h * w) ** 0.5)), min(h, w) - 1), 1)
        top = torch.randint(0, h - side + 1, (m,), generator=generator).to(dev)
        left = torch.randint(0, w - side + 1, (m,), generator=generator).to(dev)
        inside_h = (grid_h >= top[:, None]) & (grid_h < top[:, None] + side)
        inside_w = (grid_w >= left[:, None]) & (grid_w < left[:, None] + side)
        window = (inside_h[:, None, :, None] & inside_w[:, None, None, :])
        cur = x_adv[todo] - x[todo]
        cand = (x[todo] + torch.where(window, eps * signs(m, c, 1, 1), cur)).clamp(clip_min, clip_max)
        # a window whose new signs equal the current ones leaves the point unchanged: redraw its signs (as the
        # authors' code does; ART does not, and queries the unchanged point) rather than pay a query for an
        # answer already known. With eps > 0 the opposite sign always changes a pixel, so each redraw succeeds
        # with probability >= 2^-C.
        same = (cand == x_adv[todo]).flatten(1).all(1)
        for _ in range(_MAX_REDRAWS):
            if not same.any():
                break
            r = same.nonzero().squeeze(1)
            cand[r] = (x[todo[r]] + torch.where(window[r], eps * signs(len(r), c, 1, 1), cur[r])).clamp(
                clip_min, clip_max)
            same[r] = (cand[r] == x_adv[todo[r]]).flatten(1).all(1)
        todo, cand = todo[~same], cand[~same]  # none left unless eps == 0: nothing to ask then
        if not len(todo):
            continue
        scores = oracle(cand, index=todo.cpu())
        used[todo] += 1
        loss = margin(scores, y[todo])
        better = loss < best[todo]
        kept = todo[better]
        x_adv[kept], best[kept] = cand[better], loss[better]
        done[kept] = scores[better].argmax(1) != y[kept]
    return x_adv
