"""PATE: Private Aggregation of Teacher Ensembles (Papernot et al. 2017, 2018).

The private data is split into disjoint partitions and one *teacher* is trained on each. A *student* never sees
the private data: it labels public, unlabelled queries by a noisy vote of the teachers and trains on them. A
record sits in exactly one partition, so it can change one teacher's vote, which moves two of the vote counts
by one each (L1 sensitivity 2, L2 sensitivity √2); noisy aggregation of the counts is what is private.

* :func:`partition`, :func:`train_teachers`, :func:`teacher_votes`, :func:`noisy_argmax`, :func:`train_student`;
* LNMax (Papernot et al. 2017): ``argmax_j (n_j + Lap(b))`` with Laplace scale ``b = 1/γ``; each answer is
  pure ``ε₀ = 2/b``-DP (the paper's ``(2γ, 0)``);
* GNMax (Papernot et al. 2018): ``argmax_j (n_j + N(0, σ²))``; each answer is ``(α, α/σ²)``-RDP at every order
  (Prop. 8; the Gaussian mechanism with sensitivity √2);
* privacy cost: data-independent (the bounds above, composed) and data-dependent: when the teachers agree, the
  noisy answer is almost surely the plurality ``i*``, and an answer that is nearly fixed reveals little. With an
  upper bound ``q̃ >= Pr[answer != i*]`` (GNMax: ``q̃ = Σ_{i≠i*} ½ erfc((n_{i*} - n_i)/(2σ))``, Prop. 7; LNMax:
  ``q̃ = Σ_{i≠i*} (2 + γ Δ_i) / (4 e^{γ Δ_i})`` with ``Δ_i = n_{i*} - n_i``, 2017 Lemma 4), the 2018 paper's
  Theorem 6 (GNMax, with the higher orders of its Prop. 10) and the 2017 paper's Theorem 3 (LNMax) bound the
  per-answer RDP; :func:`pate_epsilon` / :func:`pate_laplace_epsilon` compose the answers and convert.

**The data-dependent ε is itself a function of the private votes.** Publishing it as is leaks; the 2018 paper
releases it through smooth sensitivity (not implemented here). The formulas follow the papers and their reference
code (``research/pate_2018/core.py`` in TF Privacy). Neighbours: add/remove (or replace) one record of the
private data, which changes at most one teacher.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from scipy.special import log_ndtr, logsumexp
from torch import nn

from ._validate import check_delta, check_generator, check_int
from .renyi import Orders, _orders, rdp_to_dp

__all__ = ["PATE_ORDERS", "MECHANISMS", "partition", "train_teachers", "teacher_votes", "noisy_argmax",
           "gnmax_log_q", "gnmax_rdp", "lnmax_log_q", "lnmax_rdp", "pate_epsilon", "pate_laplace_epsilon",
           "train_student"]

#: the orders of the 2018 paper's analysis (``research/pate_2018``): 2 to 100 by 0.5, then 100 log-spaced to 500
PATE_ORDERS = tuple(np.concatenate((np.arange(2, 100 + 1, 0.5), np.logspace(2, math.log10(500), num=100))))

#: the noisy-argmax mechanisms
MECHANISMS = ("laplace", "gaussian")


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _votes(votes: object) -> torch.Tensor:
    """``votes`` as an int64 tensor ``(N, C)`` of non-negative counts, ``C >= 2`` (same device)."""
    if isinstance(votes, np.ndarray):
        votes = torch.from_numpy(votes)
    if not isinstance(votes, torch.Tensor):
        raise TypeError(f"votes must be a torch tensor (N, C) of vote counts, got {type(votes).__name__}")
    if votes.dim() != 2 or votes.shape[0] == 0 or votes.shape[1] < 2:
        raise ValueError(f"votes must have shape (N, C) with N >= 1 queries and C >= 2 classes, "
                         f"got {tuple(votes.shape)}")
    if votes.dtype == torch.bool or votes.is_complex():
        raise ValueError(f"votes must hold integer counts, got dtype {votes.dtype}")
    if votes.is_floating_point():
        if not torch.isfinite(votes).all() or (votes != votes.round()).any():
            raise ValueError("votes must hold integer counts (whole numbers of teachers), got fractional values")
    if (votes < 0).any():
        raise ValueError("votes must hold counts >= 0")
    return votes.to(torch.int64)


def partition(n: int, num_teachers: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Split ``n`` records into ``num_teachers`` disjoint random parts of equal size ``n // num_teachers``.

    The ``n mod num_teachers`` records left over are used by no teacher (equal parts let the teachers train
    in one vectorised loop).

    Args:
        n: number of records, >= 1.
        num_teachers: number of parts, in [1, n].
        generator: the source of the random permutation.

    Returns:
        int64 tensor ``(num_teachers, n // num_teachers)`` of record indices; no index appears twice.
    """
    n = check_int("n", n)
    num_teachers = check_int("num_teachers", num_teachers)
    if num_teachers > n:
        raise ValueError(f"num_teachers must be in [1, n] = [1, {n}] (each teacher needs a record), "
                         f"got {num_teachers}")
    check_generator(generator)
    m = n // num_teachers
    return torch.randperm(n, generator=generator)[: m * num_teachers].view(num_teachers, m)


def train_teachers(make_model: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, *, num_teachers: int,
                   epochs: int, lr: float = 1e-3, batch_size: int = 64, optimizer: str = "adam",
                   weight_decay: float = 0.0, batched: bool = True,
                   generator: Optional[torch.Generator] = None):
    """Train one teacher per disjoint part of the private data ``(x, y)`` (:func:`partition`).

    The teachers are trained together, stacked and vectorised, by
    :func:`mlsec_kit.attacks.inference.train_shadow_models` with the partition as its membership mask; each
    teacher sees only its own part (tested).

    Args:
        make_model: builds one untrained classifier returning logits ``(N, C)``.
        x, y: the private data; ``y`` integer labels.
        num_teachers: ``T``, in [1, len(x)]; each teacher gets ``len(x) // T`` records.
        epochs, lr, batch_size, optimizer, weight_decay, batched: the training recipe (see
            ``train_shadow_models``).
        generator: the source of every random draw (partition, initialisations, batch orders).

    Returns:
        A :class:`~mlsec_kit.attacks.inference.ShadowModels`: ``.members[t]`` marks teacher ``t``'s records,
        ``.logits(x)`` runs every teacher, ``.model(t)`` gives one as a module.

    Shape:
        ``x``: ``(n, *input_shape)``, ``y``: ``(n,)``.
    """
    from ..attacks.inference.membership import _check_xy, train_shadow_models
    _check_xy(x, y)
    num_teachers = check_int("num_teachers", num_teachers)
    n = x.shape[0]
    if num_teachers > n:
        raise ValueError(f"num_teachers must be in [1, len(x)] = [1, {n}], got {num_teachers}")
    parts = partition(n, num_teachers, generator=generator)
    members = torch.zeros(num_teachers, n, dtype=torch.bool)
    members.scatter_(1, parts, True)
    return train_shadow_models(make_model, x, y, num_models=num_teachers, epochs=epochs, lr=lr,
                               batch_size=batch_size, optimizer=optimizer, weight_decay=weight_decay,
                               members=members.to(x.device), batched=batched, generator=generator)


@torch.no_grad()
def teacher_votes(teachers: Union[Sequence[nn.Module], object], x: torch.Tensor, *,
                  num_classes: Optional[int] = None, batch_size: int = 1024) -> torch.Tensor:
    """The teachers' vote histogram on each query: ``votes[i, c]`` = how many teachers label ``x[i]`` as ``c``.

    Args:
        teachers: the result of :func:`train_teachers`, or a sequence of classifiers returning logits.
        x: the (public) queries.
        num_classes: ``C``; ``None`` takes the number of logits.
        batch_size: queries per forward pass.

    Returns:
        int64 tensor ``(N, C)``; every row sums to the number of teachers.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise TypeError("x must be a floating-point torch tensor batch (N, ...)")
    batch_size = check_int("batch_size", batch_size)
    if hasattr(teachers, "logits") and hasattr(teachers, "members"):
        logits = teachers.logits(x, batch_size=batch_size)                                     # (T, N, K)
    else:
        if isinstance(teachers, nn.Module) or not isinstance(teachers, Sequence) or len(teachers) == 0 \
                or not all(isinstance(t, nn.Module) for t in teachers):
            raise TypeError("teachers must be the result of train_teachers or a non-empty sequence of nn.Module")
        from ..train import predict
        logits = torch.stack([predict(t, x, batch_size=batch_size) for t in teachers])
    k = logits.shape[-1]
    num_classes = k if num_classes is None else check_int("num_classes", num_classes, minimum=2)
    if num_classes < k:
        raise ValueError(f"num_classes must be >= the teachers' number of logits {k}, got {num_classes}")
    labels = logits.argmax(-1)                                                                 # (T, N)
    votes = torch.zeros(x.shape[0], num_classes, dtype=torch.int64, device=labels.device)
    votes.scatter_add_(1, labels.T, torch.ones_like(labels.T))
    return votes


def noisy_argmax(votes: torch.Tensor, *, mechanism: str = "gaussian", scale: float,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The noisy plurality label of each query: ``argmax_j (n_j + Z_j)`` with independent noise per count.

    ``mechanism="laplace"`` (LNMax, Papernot et al. 2017): ``Z_j ~ Lap(b)`` with ``b = scale`` (density
    ``e^{-|z|/b} / (2b)``; the paper's ``Lap(1/γ)``, so ``γ = 1/scale``); each answer is ``2/scale``-DP.
    ``mechanism="gaussian"`` (GNMax, Papernot et al. 2018): ``Z_j ~ N(0, σ²)`` with ``σ = scale``; each answer
    is ``(α, α/σ²)``-RDP. The noise is drawn on the CPU from ``generator`` and moved to the votes' device.

    Args:
        votes: ``(N, C)`` integer counts (:func:`teacher_votes`); not modified.
        mechanism: ``"laplace"`` or ``"gaussian"``.
        scale: ``b`` or ``σ``, > 0.
        generator: a CPU ``torch.Generator`` for reproducible answers.

    Returns:
        int64 tensor ``(N,)`` of labels.
    """
    v = _votes(votes)
    scale = _positive("scale", scale)
    check_generator(generator)
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}")
    shape = tuple(v.shape)
    if mechanism == "gaussian":
        noise = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    else:   # Laplace by inversion: -b sign(u) log(1 - 2|u|), u uniform on (-1/2, 1/2)
        u = torch.rand(shape, generator=generator, dtype=torch.float64) - 0.5
        noise = -scale * torch.sign(u) * torch.log1p(-2 * u.abs())
    return (v.to(torch.float64) + noise.to(v.device)).argmax(1)


def _gap(v: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per query: the gaps ``n_{i*} - n_i`` to the plurality (``(N, C)``, float64) and a mask of the non-plurality
    classes (the first maximal count is the plurality)."""
    a = v.detach().cpu().numpy().astype(np.float64)
    top = a.argmax(1)
    rest = np.ones_like(a, dtype=bool)
    rest[np.arange(a.shape[0]), top] = False
    return a[np.arange(a.shape[0]), top][:, None] - a, rest


def gnmax_log_q(votes: torch.Tensor, *, sigma: float) -> np.ndarray:
    """``ln q̃`` per query for GNMax: ``q̃ = Σ_{i≠i*} ½ erfc((n_{i*} - n_i)/(2σ))`` (Papernot et al. 2018, Prop. 7),
    capped at ``1 - 1/C``.

    Each term is ``Pr[n_i + Z_i >= n_{i*} + Z_{i*}]`` (``Z_i - Z_{i*} ~ N(0, 2σ²)``); the union bound over the
    other classes bounds ``Pr[answer != i*]``. The plurality wins with probability at least ``1/C``.

    Returns:
        float64 array ``(N,)``, each ``<= 0``.
    """
    sigma = _positive("sigma", sigma)
    gap, rest = _gap(_votes(votes))
    log_terms = np.where(rest, log_ndtr(-gap / (math.sqrt(2) * sigma)), -np.inf)
    return np.minimum(logsumexp(log_terms, axis=1), math.log1p(-1 / gap.shape[1]))


def lnmax_log_q(votes: torch.Tensor, *, scale: float) -> np.ndarray:
    """``ln q̃`` per query for LNMax with Laplace scale ``b = 1/γ``:
    ``q̃ = Σ_{i≠i*} (2 + γΔ_i) / (4 e^{γΔ_i})``, ``Δ_i = n_{i*} - n_i`` (Papernot et al. 2017, Lemma 4: each
    term is exactly ``Pr[Lap(b) - Lap(b) >= Δ_i]``), capped at ``1 - 1/C``.

    Returns:
        float64 array ``(N,)``, each ``<= 0``.
    """
    g = _gap(_votes(votes))
    gamma_gap = g[0] / _positive("scale", scale)
    log_terms = np.where(g[1], np.log(2 + gamma_gap) - math.log(4) - gamma_gap, -np.inf)
    return np.minimum(logsumexp(log_terms, axis=1), math.log1p(-1 / gamma_gap.shape[1]))


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - e^x)`` for ``x <= 0``, accurate at both ends."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(x < -math.log(2), np.log1p(-np.exp(x)), np.log(-np.expm1(x)))


def _gnmax_data_dependent(log_q: float, sigma: float, a: np.ndarray) -> np.ndarray:
    """The 2018 paper's Theorem 6 for GNMax at orders ``a``, with ``μ₂ = σ √(ln 1/q̃)``, ``μ₁ = μ₂ + 1`` and
    ``ε_i = μ_i / σ²`` (Prop. 10), where it applies (``λ < μ₁``, ``μ₂ > 1``, ``q̃ e^{ε₂} < 1`` and
    ``q̃ <= e^{(μ₂-1)ε₂} / (μ₁/(μ₁-1) · μ₂/(μ₂-1))^{μ₂}``); the data-independent ``λ/σ²`` elsewhere:

    ``ρ_λ <= log((1-q̃) A^{λ-1} + q̃ B^{λ-1}) / (λ-1)``, ``A = (1-q̃) / (1 - (q̃ e^{ε₂})^{(μ₂-1)/μ₂})``,
    ``B = e^{ε₁} / q̃^{1/(μ₁-1)}``.
    """
    independent = a / sigma ** 2
    if log_q == -math.inf:
        return np.zeros_like(a)                 # the answer is fixed: nothing is revealed
    mu2 = sigma * math.sqrt(-log_q)
    mu1 = mu2 + 1
    eps1, eps2 = mu1 / sigma ** 2, mu2 / sigma ** 2
    mask = a < mu1
    if mu2 <= 1 or -log_q <= eps2 or not mask.any():
        return independent
    if log_q > (mu2 - 1) * eps2 - mu2 * (math.log(mu1 / (mu1 - 1)) + math.log(mu2 / (mu2 - 1))):
        return independent
    log_1q = float(_log1mexp(log_q))
    log_a = log_1q - float(_log1mexp((log_q + eps2) * (1 - 1 / mu2)))
    log_b = eps1 - log_q / (mu1 - 1)
    dependent = np.logaddexp(log_1q + (a - 1) * log_a, log_q + (a - 1) * log_b) / (a - 1)
    return np.where(mask, np.minimum(independent, dependent), independent)


def gnmax_rdp(votes: torch.Tensor, *, sigma: float, orders: Optional[Orders] = None,
              data_dependent: bool = True) -> np.ndarray:
    """Per-answer RDP of GNMax with noise ``σ``: ``α/σ²`` (data-independent, Papernot et al. 2018, Prop. 8), or
    the smaller data-dependent bound of Theorem 6 with ``q̃`` from :func:`gnmax_log_q`.

    Args:
        votes: ``(N, C)`` integer counts, one row per answered query.
        sigma: the GNMax noise std, > 0.
        orders: the orders α > 1; ``None`` takes :data:`PATE_ORDERS`.
        data_dependent: use the votes (True) or not.

    Returns:
        float64 array ``(N, len(orders))``; the data-dependent rows are never above the data-independent ones.
    """
    sigma = _positive("sigma", sigma)
    a = _orders(PATE_ORDERS if orders is None else orders)
    v = _votes(votes)
    if not isinstance(data_dependent, bool):
        raise TypeError(f"data_dependent must be a bool, got {type(data_dependent).__name__}")
    if not data_dependent:
        return np.tile(a / sigma ** 2, (v.shape[0], 1))
    return np.stack([_gnmax_data_dependent(float(lq), sigma, a) for lq in gnmax_log_q(v, sigma=sigma)])


def lnmax_rdp(votes: torch.Tensor, *, scale: float, orders: Optional[Orders] = None,
              data_dependent: bool = True) -> np.ndarray:
    """Per-answer RDP of LNMax with Laplace scale ``b``, whose answers are pure ``ε₀ = 2/b``-DP.

    Data-independent: ``min(ε₀, ε₀² α / 2)`` (pure DP bounds every Rényi divergence; ``ε₀``-DP implies
    ``ε₀²/2``-zCDP, Bun and Steinke 2016). Data-dependent, when ``q̃ <= 1/(e^{ε₀} + 1)`` (``q̃`` from
    :func:`lnmax_log_q`), also ``log((1-q̃) ((1-q̃)/(1-e^{ε₀} q̃))^{α-1} + q̃ e^{ε₀(α-1)}) / (α-1)``
    (Papernot et al. 2017, Thm 3, a bound on the moment of order ``λ = α - 1``).

    Returns:
        float64 array ``(N, len(orders))``.
    """
    eps0 = 2 / _positive("scale", scale)
    a = _orders(PATE_ORDERS if orders is None else orders)
    v = _votes(votes)
    if not isinstance(data_dependent, bool):
        raise TypeError(f"data_dependent must be a bool, got {type(data_dependent).__name__}")
    independent = np.minimum(eps0, eps0 ** 2 * a / 2)
    if not data_dependent:
        return np.tile(independent, (v.shape[0], 1))
    rows = []
    for lq in lnmax_log_q(v, scale=scale):
        if lq == -math.inf:
            rows.append(np.zeros_like(a))
        elif lq <= -math.log1p(math.exp(eps0)):
            log_1q = float(_log1mexp(lq))
            t1 = log_1q + (log_1q - float(_log1mexp(eps0 + lq))) * (a - 1)
            t2 = lq + eps0 * (a - 1)
            rows.append(np.minimum(independent, np.logaddexp(t1, t2) / (a - 1)))
        else:
            rows.append(independent)
    return np.stack(rows)


def pate_epsilon(votes: torch.Tensor, *, sigma: float, delta: float, orders: Optional[Orders] = None,
                 data_dependent: bool = True, conversion: str = "balle2020") -> float:
    """(ε, δ) of answering every query in ``votes`` with GNMax (noise ``σ``): the per-answer RDP
    (:func:`gnmax_rdp`) summed over the answers, converted at the best order.

    The 2018 paper converts with Mironov's bound (``conversion="mironov"``); the default is the tighter one
    used across the kit. With ``data_dependent=True`` the result depends on the private votes (see the module
    docstring).

    Args:
        votes: ``(N, C)`` integer counts of the answered queries.
        sigma: > 0.
        delta: in (0, 1).
        orders: the orders; ``None`` takes :data:`PATE_ORDERS`.
        data_dependent: Theorem 6 (True) or Prop. 8 (False).
        conversion: ``"balle2020"`` or ``"mironov"``.

    Returns:
        ε.
    """
    delta = check_delta(delta)
    a = _orders(PATE_ORDERS if orders is None else orders)
    rdp = gnmax_rdp(votes, sigma=sigma, orders=a, data_dependent=data_dependent).sum(0)
    return rdp_to_dp(orders=a, rdp=rdp, delta=delta, method=conversion)[0]


def pate_laplace_epsilon(votes: torch.Tensor, *, scale: float, delta: float, orders: Optional[Orders] = None,
                         data_dependent: bool = True, conversion: str = "balle2020") -> float:
    """(ε, δ) of answering every query in ``votes`` with LNMax (Laplace scale ``b``): the smaller of plain
    composition of the pure ``2/b`` per answer (``N · 2/b``, with δ = 0) and the composed RDP of
    :func:`lnmax_rdp` converted at ``delta``.

    Returns:
        ε.
    """
    delta = check_delta(delta)
    a = _orders(PATE_ORDERS if orders is None else orders)
    rdp = lnmax_rdp(votes, scale=scale, orders=a, data_dependent=data_dependent)
    pure = rdp.shape[0] * 2 / float(scale)
    return min(pure, rdp_to_dp(orders=a, rdp=rdp.sum(0), delta=delta, method=conversion)[0])


def train_student(make_model: Callable[[], nn.Module], x_public: torch.Tensor, labels: torch.Tensor, *,
                  epochs: int, lr: float = 1e-3, batch_size: int = 64, optimizer: str = "adam",
                  weight_decay: float = 0.0, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Train the student on the public queries labelled by the teachers' noisy votes (:func:`noisy_argmax`).

    The student's privacy is the aggregator's: it sees the private data only through the answered labels
    (post-processing). Semi-supervised training on the unlabelled rest (the 2017 paper's PATE-G) is not done here.

    Args:
        make_model: builds the untrained student; initialised from a seed drawn from ``generator``.
        x_public: the answered queries ``(N, ...)``.
        labels: their noisy labels ``(N,)``.
        epochs, lr, batch_size, optimizer, weight_decay: the recipe of :func:`mlsec_kit.train.fit`.
        generator: the source of the initialisation and of the batch order.

    Returns:
        The trained student, in eval mode.
    """
    from ..attacks.inference.membership import _check_xy, _fresh
    from ..train import fit
    _check_xy(x_public, labels, "x_public", "labels")
    check_generator(generator)
    epochs, batch_size = check_int("epochs", epochs), check_int("batch_size", batch_size)
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    model = _fresh(make_model, seed).to(x_public.device)
    loader_gen = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=generator)))
    dataset = torch.utils.data.TensorDataset(x_public, labels.to(torch.int64))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=loader_gen)
    fit(model, loader, epochs=epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay, progress=False)
    return model.eval()
