"""Membership inference: was this example in the model's training set? Every attack returns a score per example,
higher = more likely a member; threshold it, or evaluate it with :mod:`mlsec_kit.attacks.inference.metrics`.

- :func:`loss_threshold_scores` (Yeom, Giacomelli, Fredrikson & Jha 2018, "Privacy risk in machine learning"):
  the score is minus the example's loss; :func:`global_threshold` fits one cut on reference data.
- :func:`calibrated_loss_scores` (Watson, Guo, Cormode & Sablayrolles 2022, "On the importance of difficulty
  calibration in membership inference attacks"): a per-example threshold, the loss that reference models which
  did *not* train on the example give it, so hard examples are no longer mistaken for non-members.
- :func:`train_shadow_models` trains many copies of a model, each on its own random half of a data pool, all at
  once (their weights stacked, one ``torch.func.vmap`` call per step) and records who trained on what.
- :func:`shadow_attack` (Shokri, Stronati, Song & Shmatikov 2017, "Membership inference attacks against machine
  learning models"): learn, per class, a classifier from a shadow model's output to "member or not".
- :func:`lira_online` and :func:`lira_offline` (Carlini, Chien, Nasr, Song, Terzis & Tramèr 2022, "Membership
  inference attacks from first principles"): fit a Gaussian to the logit-scaled confidence
  ``phi = log(p_y / (1 - p_y))`` that shadow models trained with (IN) and without (OUT) the example give it, and
  score the target model's ``phi`` by the likelihood ratio.

Inputs are never modified; every random draw goes through the ``generator`` argument (a CPU ``torch.Generator``).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ...train import make_optimizer, predict
from .metrics import _as_arrays, _roc_arrays, tpr_at_fpr

__all__ = ["per_example_loss", "loss_threshold_scores", "global_threshold", "calibrated_loss_scores",
           "scaled_confidence", "ShadowModels", "train_shadow_models", "lira_online", "lira_offline",
           "shadow_attack"]


# ---- argument checks: each error names the argument and its accepted range ---------------------------------
def _check_int(name: str, value: int, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_xy(x: torch.Tensor, y: torch.Tensor, xname: str = "x", yname: str = "y") -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{xname} must be a floating-point torch tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{xname} must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{yname} must be an integer torch tensor of labels")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{yname} must have shape ({x.shape[0]},) to match {xname}, got {tuple(y.shape)}")


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module returning logits, got {type(model).__name__}")


def _check_conf(name: str, t: torch.Tensor, dim: int) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch tensor")
    if t.dim() != dim or t.shape[-1] == 0:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")


def _check_mask(name: str, mask: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool torch tensor (True = the model trained on the example)")
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(mask.shape)}")
    return mask


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = predict(model, x)
    if not out.is_floating_point() or out.dim() != 2 or out.shape[1] < 2:
        raise ValueError(f"model must return logits of shape (N, K) with K >= 2, got {out.dtype} of shape "
                         f"{tuple(out.shape)} (labels or a single score cannot be scored)")
    return out


# ---- loss-based attacks ------------------------------------------------------------------------------------
@torch.no_grad()
def per_example_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The cross-entropy loss of ``model`` (in eval mode) on each example.

    Shape:
        ``x``: ``(N, *input_shape)``, ``y``: ``(N,)`` → ``(N,)``, values >= 0.
    """
    _check_model(model)
    _check_xy(x, y)
    return F.cross_entropy(_logits(model, x), y.to(torch.int64), reduction="none")


def loss_threshold_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Membership scores of the loss-threshold attack (Yeom et al. 2018): minus the per-example loss.

    A model fits its training examples better than unseen ones, so a low loss suggests a member. The attack needs
    only the loss (black-box access to probabilities and the true label).

    Args:
        model: the target classifier, returning logits ``(N, K)``.
        x: candidate examples.
        y: their true labels.

    Returns:
        ``-loss``, higher = more likely a member.

    Shape:
        ``x``: ``(N, *input_shape)``, ``y``: ``(N,)`` → ``(N,)``, values <= 0.
    """
    return -per_example_loss(model, x, y)


def global_threshold(reference_scores, reference_labels, *, fpr: Optional[float] = None) -> float:
    """One score cut for every example, fitted on reference data the attack is *not* evaluated on (Yeom et al.
    2018 use the mean training loss; here the cut is chosen on labelled reference scores, e.g. a shadow model's
    own members and non-members).

    Args:
        reference_scores: scores of examples whose membership the attacker knows.
        reference_labels: 1 for members, 0 for non-members.
        fpr: if given, in ``[0, 1]``: the lowest cut whose false-positive rate on the reference non-members is
            at most ``fpr``; ``None``: the cut of highest balanced accuracy on the reference data.

    Returns:
        The threshold: predict member iff ``score >= threshold``.

    Shape:
        ``reference_scores``, ``reference_labels``: ``(N,)``.
    """
    if fpr is not None:
        return tpr_at_fpr(reference_scores, reference_labels, fpr=fpr).threshold
    f, t, thr = _roc_arrays(*_as_arrays(reference_scores, reference_labels))
    return float(thr[int(np.argmax(t - f))])


def _check_reference(target: torch.Tensor, reference: torch.Tensor, mask: Optional[torch.Tensor],
                     names: tuple[str, str, str]) -> torch.Tensor:
    """Check a target's per-example values ``(N,)``, reference models' values ``(M, N)`` and the mask ``(M, N)``
    of which reference model trained on which example (``None``: none did); every error names the argument as
    the caller calls it (``names``). Returns the mask."""
    tname, rname, mname = names
    _check_conf(rname, reference, 2)
    if isinstance(target, torch.Tensor) and target.device != reference.device:
        raise ValueError(f"{tname} must be on the same device as {rname}, got {target.device} and "
                         f"{reference.device}")
    _check_conf(tname, target, 1)
    if reference.shape[1] != target.shape[0]:
        raise ValueError(f"{rname} must have shape (M, {target.shape[0]}) to match {tname}, got "
                         f"{tuple(reference.shape)}")
    if mask is None:
        return torch.zeros(reference.shape, dtype=torch.bool, device=reference.device)
    _check_mask(mname, mask, tuple(reference.shape))
    if mask.device != reference.device:
        raise ValueError(f"{mname} must be on the same device as {rname}, got {mask.device} and "
                         f"{reference.device}")
    return mask


def _out_mean(values: torch.Tensor, in_mask: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example mean of ``values`` over the models where ``in_mask`` is False, and how many there were."""
    out = ~in_mask
    count = out.sum(0)
    if (count == 0).any():
        raise ValueError(f"{name} leaves {(count == 0).sum().item()} example(s) without any OUT model; every "
                         "example needs at least one model that did not train on it")
    return (values * out).sum(0) / count, count


def calibrated_loss_scores(target_scores: torch.Tensor, reference_scores: torch.Tensor,
                           reference_in: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Difficulty-calibrated loss scores: a per-example threshold (Watson et al. 2022).

    The score is the target model's loss score minus the mean score that reference models which did not train on
    the example give it: an atypical example has a high loss under every model, a member only under the models
    that did not see it.

    Args:
        target_scores: :func:`loss_threshold_scores` of the target model.
        reference_scores: the same scores under ``R`` reference models (e.g. ``-ShadowModels.losses``).
        reference_in: which reference model trained on which example (``True`` = IN); those entries are left
            out of the mean. ``None``: no reference model trained on any of the examples.

    Returns:
        Calibrated scores, higher = more likely a member.

    Shape:
        ``target_scores``: ``(N,)``, ``reference_scores`` and ``reference_in``: ``(R, N)`` → ``(N,)``.
    """
    reference_in = _check_reference(target_scores, reference_scores, reference_in,
                                    ("target_scores", "reference_scores", "reference_in"))
    mean_out, _ = _out_mean(reference_scores, reference_in, "reference_in")
    return target_scores - mean_out


def scaled_confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The logit-scaled confidence ``phi = log(p_y / (1 - p_y))`` of the true class (Carlini et al. 2022).

    Computed as ``z_y - logsumexp_{j != y} z_j`` from the logits, so it stays finite where ``p_y`` rounds to 1
    in floating point. Its distribution over retrained models is close to Gaussian, which LiRA relies on.

    Shape:
        ``logits``: ``(..., N, K)`` with ``K >= 2``, ``y``: ``(N,)`` labels in ``[0, K)`` → ``(..., N)``.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch tensor")
    if logits.dim() < 2 or logits.shape[-1] < 2:
        raise ValueError(f"logits must have shape (..., N, K) with K >= 2, got {tuple(logits.shape)}")
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError("y must be an integer torch tensor of labels")
    k = logits.shape[-1]
    if y.shape != (logits.shape[-2],):
        raise ValueError(f"y must have shape ({logits.shape[-2]},) to match logits, got {tuple(y.shape)}")
    if y.numel() and (y.min().item() < 0 or y.max().item() >= k):
        raise ValueError(f"y must hold labels in [0, {k}), got values in [{y.min().item()}, {y.max().item()}]")
    onehot = F.one_hot(y.to(torch.int64), k).to(torch.bool).expand_as(logits)
    true = logits.masked_fill(~onehot, 0.0).sum(-1)
    others = torch.logsumexp(logits.masked_fill(onehot, float("-inf")), dim=-1)
    return true - others


# ---- shadow models, trained batched ------------------------------------------------------------------------
def _fresh(make_model: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """``make_model()`` initialised from ``seed``, leaving torch's global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
    _check_model(model)
    return model


class ShadowModels:
    """``M`` models of one architecture, their weights stacked along a first axis of size ``M``.

    Attributes:
        params, buffers: ``{name: tensor (M, *shape)}``, as ``torch.func.stack_module_state`` makes them.
        members: ``(M, n)`` bool; ``members[i, j]`` says whether model ``i`` trained on pool example ``j``.
        make_model: builds one (untrained) model of the architecture.
    """

    def __init__(self, make_model: Callable[[], nn.Module], params: dict[str, torch.Tensor],
                 buffers: dict[str, torch.Tensor], members: torch.Tensor) -> None:
        self.make_model = make_model
        self.params = {k: v.detach() for k, v in params.items()}
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        self.members = members
        self._base = _fresh(make_model).to("meta").eval()

    @property
    def num_models(self) -> int:
        return self.members.shape[0]

    def __len__(self) -> int:
        return self.num_models

    def model(self, i: int) -> nn.Module:
        """A standalone copy of model ``i`` (in eval mode), e.g. to serve as the target."""
        _check_int("i", i, minimum=0)
        if i >= self.num_models:
            raise ValueError(f"i must be in [0, {self.num_models}), got {i}")
        m = _fresh(self.make_model)
        state = {k: v[i] for k, v in {**self.params, **self.buffers}.items()}
        m.load_state_dict(state)
        return m.to(next(iter(self.params.values())).device).eval()

    @torch.no_grad()
    def logits(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Every model's logits on ``x``, in one vectorised call per batch.

        Shape:
            ``x``: ``(N, *input_shape)`` → ``(M, N, K)``.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
            raise TypeError("x must be a floating-point torch tensor batch (N, ...)")
        _check_int("batch_size", batch_size)
        run = vmap(lambda p, b, xb: functional_call(self._base, (p, b), (xb,)), in_dims=(0, 0, None))
        return torch.cat([run(self.params, self.buffers, x[i:i + batch_size])
                          for i in range(0, x.shape[0], batch_size)], dim=1)

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Every model's per-example cross-entropy. Shape: ``(N, ...)``, ``(N,)`` → ``(M, N)``."""
        _check_xy(x, y)
        z = self.logits(x)
        return F.cross_entropy(z.flatten(0, 1), y.to(torch.int64).repeat(self.num_models),
                               reduction="none").view(self.num_models, -1)

    def confidences(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Every model's :func:`scaled_confidence` on ``(x, y)``. Shape: ``(N, ...)``, ``(N,)`` → ``(M, N)``."""
        _check_xy(x, y)
        return scaled_confidence(self.logits(x), y)


def _plan(n: int, num_models: int, epochs: int, generator: Optional[torch.Generator],
          members: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every random draw of shadow training, made up front so the batched and the loop version share them:
    the membership mask ``(M, n)``, one initialisation seed per model, and each model's example order per epoch
    ``(epochs, M, m)`` (indices into the pool)."""
    if members is None:
        members = torch.zeros(num_models, n, dtype=torch.bool)
        for i in range(num_models):
            members[i, torch.randperm(n, generator=generator)[: n // 2]] = True
    else:
        members = _check_mask("members", members, (num_models, n)).cpu().clone()
    counts = members.sum(1)
    if counts.min().item() < 1 or (counts != counts[0]).any():
        raise ValueError(f"members must give every model the same number (>= 1) of examples, got counts "
                         f"{counts.unique().tolist()}")
    m = int(counts[0])
    seeds = torch.randint(0, 2 ** 62, (num_models,), generator=generator)
    own = torch.stack([members[i].nonzero().squeeze(1) for i in range(num_models)])     # (M, m)
    orders = torch.stack([torch.stack([own[i, torch.randperm(m, generator=generator)] for i in range(num_models)])
                          for _ in range(epochs)])
    return members, seeds, orders


def _init_models(make_model: Callable[[], nn.Module], seeds: torch.Tensor, device: torch.device) -> list[nn.Module]:
    """One model per seed, initialised from that seed without touching torch's global random state."""
    models = []
    for s in seeds.tolist():
        models.append(_fresh(make_model, s).to(device).train())
    return models


def train_shadow_models(make_model: Callable[[], nn.Module], x_pool: torch.Tensor, y_pool: torch.Tensor, *,
                        num_models: int, epochs: int, lr: float = 1e-3, batch_size: int = 64,
                        optimizer: str = "adam", weight_decay: float = 0.0, members: Optional[torch.Tensor] = None,
                        batched: bool = True, generator: Optional[torch.Generator] = None) -> ShadowModels:
    """Train ``num_models`` models, each on its own random half of the pool, all at once.

    The models' weights are stacked (``torch.func.stack_module_state``) and one ``vmap`` of ``functional_call``
    runs every model on its own batch in a single step, so ``M`` small models cost little more than one; the
    optimiser (Adam or SGD, elementwise) updates the stacked tensors, which is the same as updating each model
    on its own. ``batched=False`` trains them one after another with the same draws, for comparison (the
    results agree up to floating-point rounding; see ``benchmarks/shadow_batched.py``).

    Shadow models stand in for the target model in the attacks of Shokri et al. 2017 and Carlini et al. 2022:
    the attacker trains them with the target's recipe on data from the same distribution.

    Args:
        make_model: builds one untrained model returning logits ``(N, K)``; called once per model under its own
            seed. Batch norm is supported: each model's running statistics are its own slice of the stacked
            buffers and are updated in the batched run as in the loop (tested). A bias right before a batch
            norm has a gradient that is zero up to rounding, which Adam blows up to full-size steps, so such a
            bias drifts differently in the two versions: build those layers with ``bias=False``. Dropout draws
            differ between the batched and the loop version.
        x_pool, y_pool: the attacker's data; each model trains on ``len(x_pool) // 2`` of it.
        num_models: ``M >= 1``.
        epochs: passes over each model's half, >= 1.
        lr, batch_size, optimizer, weight_decay: the training recipe, as in :func:`mlsec_kit.train.fit`.
        members: optional ``(M, n)`` bool mask fixing who trains on what (every row the same count); ``None``
            draws a random half per model.
        batched: train all models in one vectorised loop (default) or one after another.
        generator: the source of every random draw (halves, initialisations, batch orders).

    Returns:
        A :class:`ShadowModels` on ``x_pool``'s device.

    Shape:
        ``x_pool``: ``(n, *input_shape)``, ``y_pool``: ``(n,)`` → ``members``: ``(M, n)``.
    """
    if not callable(make_model):
        raise TypeError("make_model must be a callable returning an nn.Module")
    _check_xy(x_pool, y_pool, "x_pool", "y_pool")
    _check_int("num_models", num_models)
    _check_int("epochs", epochs)
    _check_int("batch_size", batch_size)
    if x_pool.shape[0] < 2 and members is None:
        raise ValueError(f"x_pool must hold at least 2 examples to split in halves, got {x_pool.shape[0]}")
    if not isinstance(batched, bool):
        raise TypeError(f"batched must be a bool, got {type(batched).__name__}")
    members, seeds, orders = _plan(x_pool.shape[0], num_models, epochs, generator, members)
    models = _init_models(make_model, seeds, x_pool.device)
    y_pool = y_pool.to(torch.int64)
    orders = orders.to(x_pool.device)
    recipe = dict(optimizer=optimizer, lr=lr, weight_decay=weight_decay)
    if batched:
        params, buffers = _train_batched(models, x_pool, y_pool, orders, batch_size, recipe)
    else:
        params, buffers = _train_loop(models, x_pool, y_pool, orders, batch_size, recipe)
    return ShadowModels(make_model, params, buffers, members.to(x_pool.device))


def _train_batched(models, x_pool, y_pool, orders, batch_size, recipe):
    stacked, buffers = stack_module_state(models)
    params = {k: nn.Parameter(v.detach().clone()) for k, v in stacked.items()}
    opt = make_optimizer(nn.ParameterList(params.values()), **recipe)
    base = copy.deepcopy(models[0]).to("meta").train()

    def loss_of_one(p, b, xb, yb):
        return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    loss_of_all = vmap(loss_of_one, randomness="different")
    m = orders.shape[2]
    for epoch_order in orders:                                       # (M, m)
        for start in range(0, m, batch_size):
            idx = epoch_order[:, start:start + batch_size]           # (M, b): each model's own batch
            opt.zero_grad()
            # the sum's gradient w.r.t. model i's slice is model i's own gradient: the models stay independent
            loss_of_all(params, buffers, x_pool[idx], y_pool[idx]).sum().backward()
            opt.step()
    return {k: v.detach() for k, v in params.items()}, buffers


def _train_loop(models, x_pool, y_pool, orders, batch_size, recipe):
    m = orders.shape[2]
    for i, model in enumerate(models):
        opt = make_optimizer(model, **recipe)
        for epoch_order in orders:
            for start in range(0, m, batch_size):
                idx = epoch_order[i, start:start + batch_size]
                opt.zero_grad()
                F.cross_entropy(model(x_pool[idx]), y_pool[idx]).backward()
                opt.step()
        model.eval()
    params, buffers = stack_module_state(models)
    return {k: v.detach() for k, v in params.items()}, buffers


# ---- LiRA ---------------------------------------------------------------------------------------------------
#: Below this many IN (or OUT) shadow models for some example, LiRA's default uses one pooled standard deviation
#: per side: a per-example one from a handful of values is too noisy (Carlini et al. 2022 fix the variance
#: when they have few shadow models).
FIXED_VARIANCE_BELOW = 32


def _use_fixed(fixed_variance: Optional[bool], *counts: torch.Tensor) -> bool:
    if fixed_variance is None:
        return min(int(c.min()) for c in counts) < FIXED_VARIANCE_BELOW
    if not isinstance(fixed_variance, bool):
        raise TypeError(f"fixed_variance must be True, False or None (auto), got {fixed_variance!r}")
    return fixed_variance


def _counts(mask: torch.Tensor, which: str) -> torch.Tensor:
    count = mask.sum(0)
    if (count == 0).any():
        raise ValueError(f"shadow_in leaves {(count == 0).sum().item()} example(s) without any {which} model; "
                         f"every example needs at least one")
    return count


def _gaussian(conf: torch.Tensor, mask: torch.Tensor, fixed_variance: bool):
    """Per-example mean and standard deviation of ``conf`` over the models selected by ``mask``. The standard
    deviation is pooled over all examples (the root mean square of every entry's deviation from its own
    example's mean) when ``fixed_variance`` is set, and for examples with fewer than two models (a single value
    has no spread)."""
    count = mask.sum(0)
    conf = conf.double()
    mean = (conf * mask).sum(0) / count
    sq = ((conf - mean) ** 2 * mask)
    pooled = torch.sqrt(sq.sum() / count.sum())
    own = torch.sqrt(sq.sum(0) / count)
    std = pooled.expand_as(mean) if fixed_variance else torch.where(count >= 2, own, pooled)
    return mean, std.clamp_min(1e-8)


def _normal_logpdf(v: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((v - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)


def lira_online(target_conf: torch.Tensor, shadow_conf: torch.Tensor, shadow_in: torch.Tensor, *,
                fixed_variance: Optional[bool] = None) -> torch.Tensor:
    """The online likelihood-ratio attack, LiRA (Carlini et al. 2022).

    For each example, fit one Gaussian to the scaled confidences of the shadow models that trained on it (IN) and
    one to those of the models that did not (OUT); the score is the log likelihood ratio
    ``log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)`` of the target model's confidence ``phi``.
    "Online": the shadow models must be trained after the examples to attack are known, half of them on each.

    Args:
        target_conf: the target model's :func:`scaled_confidence` on the examples.
        shadow_conf: the shadow models' scaled confidences on the same examples (``ShadowModels.confidences``).
        shadow_in: ``True`` where the shadow model trained on the example; each example needs at least one IN
            and one OUT model. On the same device as ``shadow_conf``.
        fixed_variance: ``True``: one standard deviation per side, pooled over all examples; ``False``: each
            example's own (examples with a single IN or OUT model use the pooled one anyway); ``None`` (default):
            pooled when some example has fewer than :data:`FIXED_VARIANCE_BELOW` (32) IN or OUT models, as the
            paper recommends for few shadow models: a standard deviation from a handful of values is so noisy
            that the ratio of two such Gaussians gives wild scores at low false-positive rates.

    Returns:
        Log likelihood ratios, higher = more likely a member.

    Shape:
        ``target_conf``: ``(N,)``, ``shadow_conf`` and ``shadow_in``: ``(M, N)`` → ``(N,)`` float64.

    Notes:
        Differences from the authors' reference code (``research/mi_lira_2021/plot.py`` in TensorFlow
        Privacy): it takes the *median* of the IN and OUT values as the means, where this takes the mean; its
        fixed variance is ``np.std`` over *all* entries, deviations from one global mean, so the spread between
        the examples' means counts as noise, where this pools each entry's deviation from its own example's
        mean; it truncates every example to the smallest IN/OUT count and averages over several augmented
        queries, where this uses every model and one query.
    """
    shadow_in = _check_reference(target_conf, shadow_conf, shadow_in, ("target_conf", "shadow_conf", "shadow_in"))
    fixed = _use_fixed(fixed_variance, _counts(shadow_in, "IN"), _counts(~shadow_in, "OUT"))
    mu_in, sd_in = _gaussian(shadow_conf, shadow_in, fixed)
    mu_out, sd_out = _gaussian(shadow_conf, ~shadow_in, fixed)
    phi = target_conf.double()
    return _normal_logpdf(phi, mu_in, sd_in) - _normal_logpdf(phi, mu_out, sd_out)


def lira_offline(target_conf: torch.Tensor, shadow_conf: torch.Tensor, shadow_in: Optional[torch.Tensor] = None, *,
                 fixed_variance: Optional[bool] = None) -> torch.Tensor:
    """The offline LiRA (Carlini et al. 2022): only OUT shadow models, so they can be trained before the
    examples to attack are known.

    With no IN distribution there is no ratio; the test is one-sided: how far *above* the OUT Gaussian the target's
    confidence lies. The score is ``log P(Z <= phi)`` for ``Z ~ N(mu_out, s_out^2)``, i.e. the log of one minus
    the p-value of "the target did not train on this example".

    Args:
        target_conf: the target model's :func:`scaled_confidence` on the examples.
        shadow_conf: the shadow models' scaled confidences on the same examples.
        shadow_in: ``True`` where a shadow model trained on the example (those entries are ignored); ``None``:
            none did. On the same device as ``shadow_conf``.
        fixed_variance: ``True``: one standard deviation pooled over all examples; ``False``: each example's
            own; ``None`` (default): pooled when some example has fewer than :data:`FIXED_VARIANCE_BELOW` (32)
            OUT models.

    Returns:
        Scores in ``(-inf, 0]``, higher = more likely a member.

    Shape:
        ``target_conf``: ``(N,)``, ``shadow_conf`` and ``shadow_in``: ``(M, N)`` → ``(N,)`` float64.

    Notes:
        The differences from the reference code listed under :func:`lira_online` apply here too; in addition
        its offline score is the OUT log density, not the one-sided tail used here and in the paper.
    """
    shadow_in = _check_reference(target_conf, shadow_conf, shadow_in, ("target_conf", "shadow_conf", "shadow_in"))
    fixed = _use_fixed(fixed_variance, _counts(~shadow_in, "OUT"))
    mu_out, sd_out = _gaussian(shadow_conf, ~shadow_in, fixed)
    return torch.special.log_ndtr((target_conf.double() - mu_out) / sd_out)


# ---- Shokri et al.'s attack classifier ----------------------------------------------------------------------
def _check_probs(name: str, p: torch.Tensor, dim: int) -> None:
    _check_conf(name, p, dim)
    if p.min().item() < 0 or not torch.allclose(p.sum(-1), torch.ones((), dtype=p.dtype, device=p.device), atol=1e-4):
        raise ValueError(f"{name} must hold probability vectors (non-negative, each row summing to 1); "
                         f"pass softmax outputs, not logits or labels")


def shadow_attack(shadow_probs: torch.Tensor, shadow_y: torch.Tensor, shadow_in: torch.Tensor,
                  target_probs: torch.Tensor, target_y: torch.Tensor, *, hidden: int = 64, steps: int = 300,
                  lr: float = 1e-2, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The shadow-model attack of Shokri et al. 2017: learn "member or not" from shadow models' outputs.

    Each shadow model's probability vectors on examples it trained on (IN) and on examples it did not (OUT)
    become labelled training data for an attack classifier, one per class (the true label is known to the
    attacker). Here each attack classifier is a one-hidden-layer network on the log-probabilities, standardised,
    trained full-batch with Adam; the score of a target output is the classifier's logit for "member".

    Args:
        shadow_probs: shadow models' softmax outputs on the pool, e.g. ``ShadowModels.logits(x).softmax(-1)``.
        shadow_y: the pool's true labels.
        shadow_in: ``True`` where the shadow model trained on the example.
        target_probs: the target model's softmax outputs on the examples to attack; if its dtype differs from
            ``shadow_probs``', both are cast to the wider one.
        target_y: their true labels.
        hidden: width of the attack classifiers' hidden layer, >= 1.
        steps: full-batch Adam steps per attack classifier, >= 1.
        lr: Adam's learning rate, > 0.
        generator: seeds the attack classifiers' initialisation.

    Returns:
        Scores (logits of "member"), higher = more likely a member.

    Shape:
        ``shadow_probs``: ``(M, n, K)``, ``shadow_y``: ``(n,)``, ``shadow_in``: ``(M, n)``;
        ``target_probs``: ``(N, K)``, ``target_y``: ``(N,)`` → ``(N,)``.
    """
    _check_probs("shadow_probs", shadow_probs, 3)
    _check_probs("target_probs", target_probs, 2)
    if shadow_probs.shape[2] != target_probs.shape[1]:
        raise ValueError(f"shadow_probs must be (M, n, K) and target_probs (N, K) with the same K, got "
                         f"{tuple(shadow_probs.shape)} and {tuple(target_probs.shape)}")
    m, n, k = shadow_probs.shape
    _check_xy(shadow_probs[0], shadow_y, "shadow_probs", "shadow_y")
    _check_xy(target_probs, target_y, "target_probs", "target_y")
    _check_mask("shadow_in", shadow_in, (m, n))
    for name, lab in (("shadow_y", shadow_y), ("target_y", target_y)):
        if lab.min().item() < 0 or lab.max().item() >= k:
            raise ValueError(f"{name} must hold labels in [0, {k}), got values in [{lab.min().item()}, "
                             f"{lab.max().item()}]")
    _check_int("hidden", hidden)
    _check_int("steps", steps)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    dtype = torch.promote_types(shadow_probs.dtype, target_probs.dtype)   # e.g. float32 shadows, float64 target
    shadow_probs, target_probs = shadow_probs.to(dtype), target_probs.to(dtype)
    feats = shadow_probs.clamp_min(1e-12).log().flatten(0, 1)           # (M * n, K)
    labels = shadow_y.to(torch.int64).repeat(m)
    member = shadow_in.flatten().float()
    target_feats = target_probs.clamp_min(1e-12).log()
    scores = torch.zeros(target_probs.shape[0], dtype=target_probs.dtype, device=target_probs.device)
    seeds = torch.randint(0, 2 ** 62, (k,), generator=generator).tolist()
    for c in target_y.unique().tolist():
        rows = labels == c
        if not (0 < member[rows].sum().item() < rows.sum().item()):
            raise ValueError(f"class {c} needs both IN and OUT shadow examples to train its attack classifier")
        f, t = feats[rows], member[rows]
        mean, std = f.mean(0), f.std(0).clamp_min(1e-6)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeds[c])
            clf = nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, 1)).to(f.device, f.dtype)
        opt = torch.optim.Adam(clf.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(clf((f - mean) / std).squeeze(1), t).backward()
            opt.step()
        with torch.no_grad():
            sel = target_y == c
            scores[sel] = clf((target_feats[sel] - mean) / std).squeeze(1)
    return scores
