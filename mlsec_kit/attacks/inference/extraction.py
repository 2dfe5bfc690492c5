"""Model extraction: steal a model through its prediction API (Tramèr et al. 2016).

Two attacks. **Equation solving** recovers a softmax regression *exactly*: the log-ratio of two returned
probabilities, ``log p_k(x) - log p_r(x) = (w_k - w_r)·x + (b_k - b_r)``, is linear in the query ``x`` because
the softmax's normaliser cancels, so ``num_features + 1`` well-chosen queries pin every difference down and a
least-squares solve over more queries recovers them to rounding error. Only differences are identifiable: adding
one vector to every row of ``W`` (and one number to every entry of ``b``) leaves every probability unchanged
(the softmax's shift invariance), so the attack returns the unique representative whose rows sum to zero.
Regressing each ``log p_k`` on ``x`` directly lands on the same class of solutions: the normaliser
``log Z(x)`` is common to every class, so its least-squares fit shifts every row by the same vector; what fails
is fitting the probabilities themselves (not linear in ``x``) or comparing raw weights with the victim's.
**Learning-based extraction** trains a substitute on the victim's answers to ``num_queries`` inputs; it needs no
knowledge of the victim's architecture and works from labels alone, at a price in queries.

A ``query`` is any callable from a batch of inputs to probabilities ``(N, K)``: a function around a model, a
defended API (:func:`~mlsec_kit.attacks.inference.inversion.defended_query`), or the chapter-4
:class:`~mlsec_kit.attacks.evasion.Oracle`, which also counts the queries.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..evasion._validate import check_int, check_positive
from ..evasion.oracle import labels_of
from ._checks import sum_tolerance

__all__ = ["extract_softmax_regression", "extract_by_training", "agreement", "agreement_curve",
           "check_probabilities"]

Query = Callable[[torch.Tensor], torch.Tensor]


def check_probabilities(probs: object, *, num_rows: int, num_classes: Optional[int] = None,
                        sum_atol: float = 0.05, name: str = "query") -> torch.Tensor:
    """Check that a query's answer is a batch of probability vectors and return it.

    Raises ``ValueError`` naming ``name`` when the answer is labels ``(N,)`` (an attack that needs scores
    cannot use a label-only API), has the wrong shape, holds values outside ``[0, 1]``, or has a row that does
    not sum to 1 within ``sum_atol`` (logits, or an API that does not return probabilities).

    Args:
        probs: the answer to check.
        num_rows: the number of queries it answers.
        num_classes: the expected number of columns, or ``None`` to accept any.
        sum_atol: how far a row may sum from 1, > 0.
        name: the argument named in the error.

    Returns:
        ``probs`` itself.

    Shape:
        ``probs`` ``(num_rows, num_classes)`` in ``[0, 1]``.
    """
    if not isinstance(probs, torch.Tensor):
        raise ValueError(f"{name} must return a torch tensor of probabilities, got {type(probs).__name__}")
    if probs.dim() == 1 or not probs.is_floating_point():
        raise ValueError(f"{name} returned labels (shape {tuple(probs.shape)}, dtype {probs.dtype}), but this "
                         "attack needs scores: probabilities of shape (N, num_classes)")
    expected = (num_rows, num_classes if num_classes is not None else probs.shape[-1])
    if probs.dim() != 2 or tuple(probs.shape) != expected:
        raise ValueError(f"{name} must return probabilities of shape {expected} (num_queries, num_classes), "
                         f"got {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or probs.min() < -1e-6 or probs.max() > 1 + 1e-6:
        raise ValueError(f"{name} must return probabilities in [0, 1], got values in "
                         f"[{probs.min().item():.4g}, {probs.max().item():.4g}]")
    worst = (probs.sum(1) - 1).abs().max().item()
    if worst > sum_atol:
        raise ValueError(f"{name} must return probabilities whose rows sum to 1 (within sum_atol={sum_atol}), "
                         f"got a row off by {worst:.4g}; pass softmax outputs, not logits")
    return probs


def extract_softmax_regression(query: Query, *, num_features: int, num_classes: int, num_queries: int,
                               clip_min: float = 0.0, clip_max: float = 1.0, sum_atol: Optional[float] = None,
                               device: Optional[torch.device | str] = None,
                               generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Recover a softmax regression ``p(x) = softmax(W x + b)`` from its probabilities by equation solving.

    Tramèr, Zhang, Juels, Reiter & Ristenpart, "Stealing Machine Learning Models via Prediction APIs",
    USENIX Security 2016 (equation-solving attacks; 650 queries recover a 64-feature, 10-class digits model).

    The ``num_queries`` inputs are drawn uniformly from ``[clip_min, clip_max]^num_features`` and sent in one
    batch. For each class ``k`` the equations ``log p_k - log p_r = (w_k - w_r)·x + (b_k - b_r)`` against a
    reference class ``r`` (the class with the most non-zero answers) are solved by least squares in float64.
    An answer of exactly 0 (underflow, or a probability rounded away) gives no equation and is skipped; with
    fewer than ``num_features + 1`` equations left a class's solve is underdetermined and the minimum-norm
    solution is returned, so heavy rounding degrades the result instead of failing. Fewer than
    ``num_features + 1`` queries make every solve underdetermined: that warns (``UserWarning``).

    Args:
        query: the victim's API: maps inputs ``(N, num_features)`` to probabilities ``(N, num_classes)``
            (the kit's ``logistic_regression`` flattens its input, so an image model accepts flat rows as is).
        num_features: input dimension ``d``, an int >= 1.
        num_classes: number of classes ``K``, an int >= 2.
        num_queries: inputs sent, an int >= 1 (at least ``d + 1`` for an exact recovery).
        clip_min: smallest input value the API accepts.
        clip_max: largest input value the API accepts, > ``clip_min``.
        sum_atol: how far a row of the answer may sum from 1, > 0. ``None`` derives it from the API's rounding:
            ``max(num_classes * 0.5 * 10**-decimals, 1e-3)`` for a
            :func:`~mlsec_kit.attacks.inference.inversion.defended_query` with ``decimals`` (or an ``Oracle``
            with ``output="rounded"``), else 1e-3; pass it for an API that rounds without saying so.
        device: where the query inputs are sent (the victim's device; default the CPU). They are drawn on the
            CPU either way, so the result does not depend on the device.
        generator: CPU ``torch.Generator`` for the query inputs.

    Returns:
        ``(W, b)``, float64, normalised so that ``W.sum(0) == 0`` and ``b.sum() == 0``: the victim's
        parameters minus their mean row (the only part the probabilities determine).

    Shape:
        ``W`` ``(num_classes, num_features)``, ``b`` ``(num_classes,)``.
    """
    if not callable(query):
        raise TypeError(f"query must be callable (inputs -> probabilities), got {type(query).__name__}")
    check_int("num_features", num_features, minimum=1)
    check_int("num_classes", num_classes, minimum=2)
    check_int("num_queries", num_queries, minimum=1)
    tolerance = sum_tolerance(query, num_classes, sum_atol)
    if not clip_min < clip_max:
        raise ValueError(f"clip_min must be < clip_max, got [{clip_min}, {clip_max}]")
    if num_queries < num_features + 1:
        warnings.warn(f"num_queries={num_queries} < num_features + 1 = {num_features + 1}: each class's system of "
                      "equations is under-determined and the minimum-norm solution is returned, not the model",
                      UserWarning, stacklevel=2)
    x = torch.rand(num_queries, num_features, generator=generator) * (clip_max - clip_min) + clip_min
    with torch.no_grad():
        answer = query(x.to(device) if device is not None else x)
    probs = check_probabilities(answer, num_rows=num_queries, num_classes=num_classes, sum_atol=tolerance)
    log_p = probs.detach().to("cpu", torch.float64).clamp_min(0).log()       # 0 -> -inf: no equation
    A = torch.cat([x.double(), torch.ones(num_queries, 1, dtype=torch.float64)], dim=1)
    ref = int(torch.isfinite(log_p).sum(0).argmax())
    theta = torch.zeros(num_classes, num_features + 1, dtype=torch.float64)
    for k in range(num_classes):
        if k == ref:
            continue
        rows = torch.isfinite(log_p[:, k]) & torch.isfinite(log_p[:, ref])
        if rows.any():
            rhs = (log_p[rows, k] - log_p[rows, ref]).unsqueeze(1)
            theta[k] = torch.linalg.lstsq(A[rows], rhs, driver="gelsd").solution.squeeze(1)
    # The shift invariance: theta is known only up to a common row (here theta[ref] = 0 by construction).
    # Report the representative with zero-sum rows, which does not depend on the reference chosen.
    theta = theta - theta.mean(0, keepdim=True)
    return theta[:, :num_features].contiguous(), theta[:, num_features].contiguous()


def extract_by_training(query: Query, x_pool: torch.Tensor, *, model: nn.Module, num_queries: int,
                        epochs: int = 200, lr: float = 1e-2, batch_size: int = 64,
                        generator: Optional[torch.Generator] = None,
                        sum_atol: Optional[float] = None) -> nn.Module:
    """Learning-based extraction: train a substitute on the victim's answers to ``num_queries`` inputs.

    Tramèr et al. 2016 (retraining attacks); Papernot et al. 2017 train substitutes the same way. The attacker
    holds unlabelled inputs ``x_pool`` from the task's distribution, picks ``num_queries`` of them at random,
    asks the victim once per input, and fits ``model`` by cross-entropy: against the returned probabilities
    (soft labels) when the API gives scores, against the returned labels when it gives only labels. Rounded
    scores are renormalised to sum to 1; a row rounded entirely to 0 (``decimals=0`` and no class at 0.5 or more)
    carries no label and contributes nothing to the loss.

    Args:
        query: the victim's API: maps inputs ``(N, ...)`` to probabilities ``(N, K)`` or labels ``(N,)``.
        x_pool: the attacker's unlabelled inputs ``(M, ...)``; not modified.
        model: an (untrained) substitute returning logits ``(N, K)``; not modified: a trained copy is returned.
        num_queries: the query budget, an int in ``[1, M]``.
        epochs: passes over the queried set, an int >= 1.
        lr: Adam's learning rate, > 0.
        batch_size: minibatch size, an int >= 1.
        generator: CPU ``torch.Generator`` for the choice of queries and the minibatch order.
        sum_atol: how far a row of probabilities may sum from 1, > 0; ``None`` derives it from the API's
            rounding as :func:`extract_softmax_regression` does.

    Returns:
        The trained substitute (a deep copy of ``model``), in eval mode.

    Shape:
        ``x_pool`` ``(M, ...)`` → a model mapping ``(N, ...)`` to logits ``(N, K)``.
    """
    if not callable(query):
        raise TypeError(f"query must be callable (inputs -> probabilities or labels), got {type(query).__name__}")
    if not isinstance(x_pool, torch.Tensor) or not x_pool.is_floating_point() or x_pool.dim() < 2:
        raise ValueError("x_pool must be a floating-point tensor of inputs (M, ...), got "
                         f"{type(x_pool).__name__}{tuple(x_pool.shape) if isinstance(x_pool, torch.Tensor) else ''}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (the substitute), got {type(model).__name__}")
    check_int("num_queries", num_queries, minimum=1)
    if num_queries > len(x_pool):
        raise ValueError(f"num_queries must be in [1, {len(x_pool)}] (the size of x_pool), got {num_queries}")
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    if sum_atol is not None:
        sum_tolerance(query, 2, sum_atol)                                 # checks it
    chosen = torch.randperm(len(x_pool), generator=generator)[:num_queries].to(x_pool.device)
    x = x_pool[chosen].clone()
    with torch.no_grad():
        answer = query(x)
    if not isinstance(answer, torch.Tensor) or answer.shape[0] != num_queries or answer.dim() not in (1, 2):
        raise ValueError(f"query must return probabilities ({num_queries}, K) or labels ({num_queries},), got "
                         f"{tuple(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__}")
    if answer.dim() == 2:
        target = check_probabilities(answer, num_rows=num_queries,
                                     sum_atol=sum_tolerance(query, answer.shape[1], sum_atol)).detach()
        target = target / target.sum(1, keepdim=True).clamp_min(1e-12)    # rounded answers: renormalise
    else:
        target = answer.detach().long()
    substitute = copy.deepcopy(model).train()
    param = next(substitute.parameters(), None)
    target = target.to(x.device, param.dtype if param is not None and target.is_floating_point() else None)
    opt = torch.optim.Adam(substitute.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(num_queries, generator=generator).to(x.device)
        for i in range(0, num_queries, batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            F.cross_entropy(substitute(x[idx]), target[idx]).backward()   # soft or hard targets alike
            opt.step()
    return substitute.eval()


def _ask(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    if not isinstance(model, nn.Module):
        return model(x)
    modes = [(m, m.training) for m in model.modules()]
    try:
        return model.eval()(x)
    finally:
        for m, mode in modes:
            m.training = mode


@torch.no_grad()
def agreement(first: Callable[[torch.Tensor], torch.Tensor], second: Callable[[torch.Tensor], torch.Tensor],
              x: torch.Tensor) -> float:
    """Fraction of the inputs ``x`` on which two models (or APIs) predict the same label, in ``[0, 1]``.

    Each callable may return logits or probabilities ``(N, K)`` (the top-1 label is compared) or labels
    ``(N,)``. Tramèr et al. 2016 report extraction success this way, on test inputs and on uniform inputs.
    An ``nn.Module`` is asked in eval mode (dropout off, batch norm on its running statistics) and its mode is
    restored afterwards.

    Args:
        first: a model or API.
        second: another model or API.
        x: the inputs both are asked about.

    Returns:
        The fraction of rows of ``x`` with the same top-1 label.

    Shape:
        ``x`` ``(N, ...)``; each callable maps it to ``(N, K)`` scores or ``(N,)`` labels.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch of inputs (N, ...), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    a, b = labels_of(_ask(first, x)), labels_of(_ask(second, x))
    if a.shape != b.shape:
        raise ValueError(f"first and second must label every row of x, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return (a == b).float().mean().item()


def agreement_curve(query: Query, x_pool: torch.Tensor, x_eval: torch.Tensor, *, model: nn.Module,
                    budgets: Sequence[int], reference: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                    epochs: int = 200, lr: float = 1e-2, batch_size: int = 64,
                    generator: Optional[torch.Generator] = None,
                    sum_atol: Optional[float] = None) -> list[float]:
    """Agreement of a learned substitute with the victim, one :func:`extract_by_training` per query budget.

    Every budget starts from the same untrained ``model`` (a fresh copy each time) and from the same state of
    ``generator``: one permutation of ``x_pool`` is drawn, and budget ``n`` queries its first ``n`` inputs, so
    the query sets are nested and each point equals :func:`extract_by_training` run alone with the generator in
    that state, whatever the other budgets and their order. The generator is left as the last budget's run
    leaves it. Agreement is measured on ``x_eval`` against ``reference`` (the victim model itself, so the
    evaluation spends no queries; default ``query``).

    Args:
        query, x_pool, model, epochs, lr, batch_size, generator, sum_atol: as in :func:`extract_by_training`.
        x_eval: inputs on which agreement is measured ``(N, ...)``, disjoint from ``x_pool`` for an honest curve.
        budgets: query budgets, ints in ``[1, len(x_pool)]``.
        reference: the victim's labels or scores on ``x_eval`` come from here (default ``query``).

    Returns:
        One agreement in ``[0, 1]`` per budget, in the order of ``budgets``.

    Shape:
        ``x_pool`` ``(M, ...)``, ``x_eval`` ``(N, ...)`` → a list of ``len(budgets)`` floats.
    """
    budgets = list(budgets)
    if not budgets:
        raise ValueError("budgets must hold at least one query budget, got none")
    for n in budgets:
        check_int("budgets entries", n, minimum=1)
    reference = query if reference is None else reference
    if generator is None:   # a seed from torch's global generator, as an unseeded single run would draw
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,))))
    start = generator.get_state()
    curve = []
    for n in budgets:
        generator.set_state(start)   # the same permutation of x_pool for every budget: nested query sets
        stolen = extract_by_training(query, x_pool, model=model, num_queries=n, epochs=epochs, lr=lr,
                                     batch_size=batch_size, generator=generator, sum_atol=sum_atol)
        curve.append(agreement(reference, stolen, x_eval))
    return curve
