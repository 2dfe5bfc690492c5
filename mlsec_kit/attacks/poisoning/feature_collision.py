r"""Targeted clean-label poisoning by feature collision: Poison Frogs (Shafahi et al., NeurIPS 2018).

The attacker wants one chosen test input, the *target* ``t`` of class A, to be classified as a *base class* B
after the victim retrains, without touching any label. It takes an image ``b`` of class B and moves it until its
features collide with the target's while the image itself stays close to ``b``:

.. math::  p = \arg\min_x \; \|f(x) - f(t)\|_2^2 + \beta\,\|x - b\|_2^2 ,

where ``f`` is the victim's (frozen) feature extractor. The poison ``p`` still looks like a B, so a human labeller
gives it label B (a *clean* label); the victim's new linear head learns "this region of feature space is B", and
the target, which sits in that region, is now classified as B. The optimisation is forward-backward splitting
(the paper's Algorithm 1): a gradient (forward) step on the feature distance, then the proximal (backward) step of
the image-distance term, which has the closed form ``x = (x_hat + lr * beta * b) / (1 + lr * beta)``.

The victim here is the paper's *transfer-learning* one: a feature extractor trained elsewhere and frozen, with
only a new linear head trained on the (poisoned) training set (:func:`retrain_head`).

On the small profile's 8x8 digits (features: the 512 conv features of the digits CNN) the attack is *not*
clean-label in any useful sense, and the kit says so. With one poison per target and ``beta = 10`` (about the
paper's scaling ``beta = 0.25 * (D / dim(x))^2 = 0.25 * (512 / 64)^2 = 16``) feature collision flips 9 of 10
targets while clean accuracy stays at 0.99, but the full clean CNN, a stand-in for a human labeller, labels
every one of those poisons as the *target's* class: the poison has simply become the target. With
``labeller=`` :func:`targeted_success` keeps only the poisons that the labeller gives the base label (the rest
would be caught or relabelled). Measured on the same 10 targets (200 steps, lr 1e-3, nearest bases; a one-off
search, the first and last settings are in tests/attacks/poisoning): beta 10 or 16 with 1 poison, 0% of the
poisons pass that check; beta 30 to 100 with 5 or 10 poisons (watermark 0 or 0.1), 10-16% pass and at most 1
of 10 targets flips with the passing ones; beta 300 with 5 to 50 poisons, 56-83% pass and none flips;
``beta = 1000`` with 20 poisons, 94% pass and no target flips -- no better than appending the unmodified bases
(the baseline, which flips none). Such tiny images have no room for a
change that moves the features across the class boundary yet leaves the image looking like its base; the
paper's one-poison result is on 299x299 images, where the same collision costs far less.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..evasion._validate import check_inputs, check_int, check_positive

__all__ = ["feature_collision", "poison_frogs", "retrain_head", "targeted_success", "TargetedResult"]

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


class _Frozen:
    """Call ``feature_fn`` in eval mode (an ``nn.Module``'s mode is restored afterwards), with gradients on."""

    def __init__(self, feature_fn: FeatureFn) -> None:
        self.fn = feature_fn
        self.was_training = feature_fn.training if isinstance(feature_fn, nn.Module) else None

    def __enter__(self) -> FeatureFn:
        if isinstance(self.fn, nn.Module):
            self.fn.eval()
        return self.fn

    def __exit__(self, *exc) -> None:
        if isinstance(self.fn, nn.Module):
            self.fn.train(self.was_training)


def _features(feature_fn: FeatureFn, x: torch.Tensor) -> torch.Tensor:
    """``feature_fn(x)`` flattened to ``(N, D)``, without gradients."""
    with torch.no_grad(), _Frozen(feature_fn) as f:
        return f(x).flatten(1)


def _check_unit(name: str, value: float) -> None:
    check_positive(name, value, allow_zero=True)
    if not value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def feature_collision(feature_fn: FeatureFn, target_x: torch.Tensor, base_x: torch.Tensor, *, beta: float,
                      steps: int, lr: float, watermark: float = 0.0, clip_min: float = 0.0,
                      clip_max: float = 1.0) -> torch.Tensor:
    r"""Poison images whose features collide with the target's (Shafahi et al. 2018, Algorithm 1).

    Minimises :math:`\|f(p) - f(t)\|_2^2 + \beta \|p - b\|_2^2` for each base ``b`` by forward-backward splitting,
    starting from ``p = b``; each of the ``steps`` iterations is

    1. forward step: ``p_hat = p - lr * grad_p ||f(p) - f(t)||^2``;
    2. backward (proximal) step: ``p = (p_hat + lr * beta * b) / (1 + lr * beta)``, the exact minimiser of
       ``(beta / 2) ||x - b||^2 + ||x - p_hat||^2 / (2 lr)``; it pulls the poison back towards its base;
    3. clip to the input range ``[clip_min, clip_max]``.

    The update is the paper's, so its fixed points are the stationary points of
    ``||f(p) - f(t)||^2 + (beta / 2) ||p - b||^2``: the paper's objective with its ``beta`` halved (a factor of 2
    between its objective and its Algorithm 1; the update is what is implemented and tested).

    With ``beta = 0`` the backward step is the identity and the poison is free to drift far from its base.
    The loss is summed over the poisons, so each poison's step is independent of how many are made at once.
    With ``watermark = gamma > 0`` the base is first blended with the target, ``b <- (1 - gamma) b + gamma t``
    (the paper's low-opacity watermark, about 0.3 in its end-to-end experiments), and the watermarked base is both
    the starting point and the anchor of the proximal step.

    Args:
        feature_fn: the victim's frozen feature extractor (an ``nn.Module`` is run in eval mode and its mode
            restored; its parameters are not changed), mapping ``(N, ...)`` inputs to ``(N, D)`` (or any
            ``(N, ...)``, flattened) features.
        target_x: the target, ``(1, ...)`` (one target for every base) or ``(P, ...)`` (one per base).
        base_x: the base images, ``(P, ...)``, from the class the target should be classified as.
        beta: weight of the image-distance term, >= 0 (0 removes the proximal step). The paper scales it with the
            dimensions, ``beta = 0.25 * (D / dim(x))^2``.
        steps: number of forward-backward iterations, >= 1.
        lr: step size of the forward step, > 0.
        watermark: opacity of the target blended into each base, in ``[0, 1)``.
        clip_min: smallest valid input value.
        clip_max: largest valid input value.

    Returns:
        The poisons, shaped like ``base_x``, in ``[clip_min, clip_max]``; inputs are unchanged.

    Shape:
        ``target_x`` ``(1, ...)`` or ``(P, ...)``, ``base_x`` ``(P, ...)``, both in ``[clip_min, clip_max]``
        (default ``[0, 1]``) → ``(P, ...)``.
    """
    for name, t in (("target_x", target_x), ("base_x", base_x)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of images in [clip_min, clip_max], "
                            f"got {type(t).__name__}")
    check_inputs(base_x, clip_min=clip_min, clip_max=clip_max)
    check_inputs(target_x, clip_min=clip_min, clip_max=clip_max)
    if target_x.shape[1:] != base_x.shape[1:] or target_x.shape[0] not in (1, base_x.shape[0]):
        raise ValueError(f"target_x must have shape (1, ...) or ({base_x.shape[0]}, ...) matching base_x "
                         f"{tuple(base_x.shape)}, got {tuple(target_x.shape)}")
    check_positive("beta", beta, allow_zero=True)
    check_int("steps", steps, minimum=1)
    check_positive("lr", lr)
    _check_unit("watermark", watermark)
    base = ((1 - watermark) * base_x + watermark * target_x).detach()
    target_feat = _features(feature_fn, target_x)
    p = base.clone()
    with _Frozen(feature_fn) as f, torch.enable_grad():
        for _ in range(steps):
            p.requires_grad_(True)
            loss = (f(p).flatten(1) - target_feat).pow(2).sum()
            (grad,) = torch.autograd.grad(loss, p)
            p_hat = p.detach() - lr * grad                            # forward step
            p = (p_hat + lr * beta * base) / (1 + lr * beta)          # backward (proximal) step
            p = p.clamp(clip_min, clip_max)
    return p.detach()


def poison_frogs(feature_fn: FeatureFn, x_train: torch.Tensor, y_train: torch.Tensor, *, target_x: torch.Tensor,
                 base_class: int, num_poisons: int, beta: float, steps: int, lr: float, watermark: float = 0.0,
                 base_choice: str = "nearest", generator: Optional[torch.Generator] = None,
                 clip_min: float = 0.0, clip_max: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Append ``num_poisons`` clean-label feature-collision poisons for one target (Shafahi et al. 2018).

    Picks ``num_poisons`` training images of ``base_class`` as bases, turns each into a poison with
    :func:`feature_collision`, and appends the poisons to the training set with the label ``base_class`` (the label
    a human would give them: a clean label). Nothing is removed or relabelled.

    Bases: ``"nearest"`` takes the base-class images whose features are closest to the target's (a short path to
    a collision, so the poison stays closest to its base); ``"random"`` draws them uniformly without replacement
    with ``generator`` (the paper's setting).

    Args:
        feature_fn: the victim's frozen feature extractor (see :func:`feature_collision`).
        x_train: the clean training inputs ``(N, ...)``.
        y_train: their labels ``(N,)``.
        target_x: the target ``(1, ...)``.
        base_class: the class the target should be classified as, one of the labels in ``y_train``.
        num_poisons: how many poisons to add, between 1 and the number of ``base_class`` training images.
        beta, steps, lr, watermark, clip_min, clip_max: as in :func:`feature_collision`.
        base_choice: ``"nearest"`` or ``"random"``.
        generator: the source of the random bases (a CPU ``torch.Generator``); ``None`` uses torch's global one.

    Returns:
        ``(x_poisoned, y_poisoned, poisoned_indices)``: the ``N + num_poisons`` training rows (the clean ones
        first, in order, then the poisons), their labels, and the poisons' row indices ``N, ..., N +
        num_poisons - 1`` (a sorted LongTensor).

    Shape:
        ``x_train`` ``(N, ...)`` in ``[clip_min, clip_max]``, ``y_train`` ``(N,)`` int, ``target_x`` ``(1, ...)``
        → ``(N + P, ...)``, ``(N + P,)``, ``(P,)`` with ``P = num_poisons``.
    """
    check_inputs(x_train, y_train, clip_min=clip_min, clip_max=clip_max)
    if not isinstance(target_x, torch.Tensor):
        raise TypeError(f"target_x must be a torch.Tensor of shape (1, ...), got {type(target_x).__name__}")
    if target_x.dim() != x_train.dim() or target_x.shape[0] != 1 or target_x.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"target_x must have shape (1, {', '.join(map(str, x_train.shape[1:]))}), "
                         f"got {tuple(target_x.shape)}")
    if base_choice not in ("nearest", "random"):
        raise ValueError(f"base_choice must be 'nearest' or 'random', got {base_choice!r}")
    if isinstance(base_class, bool) or not isinstance(base_class, int):
        raise ValueError(f"base_class must be an int label, got {base_class!r}")
    pool = (y_train == base_class).nonzero().flatten()
    if len(pool) == 0:
        raise ValueError(f"base_class must be a label present in y_train, got {base_class!r}")
    check_int("num_poisons", num_poisons, minimum=1)
    if num_poisons > len(pool):
        raise ValueError(f"num_poisons must be in [1, {len(pool)}] (the training images of class {base_class}), "
                         f"got {num_poisons}")
    if base_choice == "nearest":
        dist = (_features(feature_fn, x_train[pool]) - _features(feature_fn, target_x)).norm(dim=1)
        chosen = pool[dist.argsort()[:num_poisons]]
    else:
        chosen = pool[torch.randperm(len(pool), generator=generator)[:num_poisons].to(pool.device)]
    poisons = feature_collision(feature_fn, target_x, x_train[chosen], beta=beta, steps=steps, lr=lr,
                                watermark=watermark, clip_min=clip_min, clip_max=clip_max)
    n = x_train.shape[0]
    x_poisoned = torch.cat([x_train, poisons])
    y_poisoned = torch.cat([y_train, torch.full((num_poisons,), base_class, dtype=y_train.dtype,
                                                device=y_train.device)])
    return x_poisoned, y_poisoned, torch.arange(n, n + num_poisons, device=y_train.device)


class _FeatureModule(nn.Module):
    """Wrap a plain feature callable so that it can sit in an ``nn.Sequential``."""

    def __init__(self, fn: FeatureFn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _fit_head(feats: torch.Tensor, y: torch.Tensor, num_classes: int, *, epochs: int, lr: float,
              weight_decay: float) -> nn.Linear:
    """A zero-initialised linear layer fitted to ``(feats, y)`` by full-batch L-BFGS (deterministic)."""
    head = nn.Linear(feats.shape[1], num_classes).to(feats.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), lr=lr, max_iter=epochs, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(head(feats), y) + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    for p in head.parameters():
        p.requires_grad_(False)
    return head


def _check_head_args(x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, weight_decay: float,
                     num_classes: Optional[int]) -> int:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape (N,) with N = len(x); got x {tuple(getattr(x, 'shape', ()))} "
                         f"and y {tuple(getattr(y, 'shape', ()))}")
    check_int("epochs", epochs, minimum=1)
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    k = int(y.max().item()) + 1 if num_classes is None else num_classes
    check_int("num_classes", k, minimum=1)
    if y.min().item() < 0 or y.max().item() >= k:
        raise ValueError(f"labels in y must be in [0, {k}), got values in [{y.min().item()}, {y.max().item()}]")
    return k


def _victim(feature_fn: FeatureFn, head: nn.Linear) -> nn.Sequential:
    extractor = feature_fn if isinstance(feature_fn, nn.Module) else _FeatureModule(feature_fn)
    return nn.Sequential(extractor, nn.Flatten(), head).eval()


def retrain_head(feature_fn: FeatureFn, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 1.0,
                 num_classes: Optional[int] = None, weight_decay: float = 1e-4) -> nn.Sequential:
    """The transfer-learning victim: a new linear head trained on frozen features (Shafahi et al. 2018, Sec. 4.1).

    The features of ``x`` are computed once (the extractor is frozen, so they do not change), and a linear layer,
    started at zero so the result is deterministic, is fitted to them: multinomial logistic regression, the mean
    cross-entropy plus ``weight_decay * ||W||^2``, minimised by full-batch L-BFGS (a convex problem, so it
    converges in tens of iterations where Adam needs hundreds of epochs).

    Args:
        feature_fn: the frozen feature extractor; its parameters are never updated.
        x: training inputs ``(N, ...)``.
        y: their labels ``(N,)`` in ``[0, num_classes)``.
        epochs: at most this many L-BFGS iterations over the full batch, >= 1.
        lr: L-BFGS's step length before the line search, > 0.
        num_classes: number of classes; ``None`` takes ``y.max() + 1``.
        weight_decay: L2 penalty on the head's weights, >= 0.

    Returns:
        ``nn.Sequential(feature extractor, flatten, linear head)`` in eval mode, returning logits ``(N, K)``. The
        extractor is the caller's object (shared, not copied; it is put in eval mode).

    Shape:
        ``x`` ``(N, ...)``, ``y`` ``(N,)`` int → a model mapping ``(M, ...)`` to ``(M, K)``.
    """
    k = _check_head_args(x, y, epochs, lr, weight_decay, num_classes)
    head = _fit_head(_features(feature_fn, x), y, k, epochs=epochs, lr=lr, weight_decay=weight_decay)
    return _victim(feature_fn, head)


@dataclass(frozen=True)
class TargetedResult:
    """The outcome of :func:`targeted_success`: one feature-collision attack per target, each on a fresh head.

    ``successes[i]`` says whether the head retrained on the poisoned set classifies target ``targets[i]`` (a test
    index) as ``base_classes[i]``; ``success_rate`` is their mean. ``clean_accuracy`` is the clean head's test
    accuracy; ``poisoned_accuracy`` the mean, over targets, of each poisoned head's accuracy on the test set with
    its target left out (so the attack's one intended error does not count against clean accuracy).
    ``label_pass_rate`` (with a ``labeller`` only) is the fraction of all crafted poisons that the labeller gave
    the base label; only those entered the retraining.
    """

    targets: list[int]
    base_classes: list[int]
    successes: list[bool]
    success_rate: float
    clean_accuracy: float
    poisoned_accuracy: float
    label_pass_rate: Optional[float] = None


def targeted_success(feature_fn: FeatureFn, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                     y_test: torch.Tensor, *, num_poisons: int, beta: float, steps: int, lr: float, epochs: int,
                     head_lr: float = 1.0, weight_decay: float = 1e-4, num_targets: int = 10,
                     targets: Optional[Sequence[int]] = None, base_classes: Optional[Sequence[int]] = None,
                     watermark: float = 0.0, base_choice: str = "nearest", num_classes: Optional[int] = None,
                     labeller: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                     generator: Optional[torch.Generator] = None) -> TargetedResult:
    """Success rate of Poison Frogs over many targets against the transfer-learning victim of :func:`retrain_head`.

    For each target: craft ``num_poisons`` poisons with :func:`poison_frogs`, retrain a head on the clean training
    set plus the poisons, and check whether the target is now classified as its base class. Without ``targets``,
    ``num_targets`` test inputs that the clean head classifies correctly are drawn without replacement with
    ``generator``, and each gets a base class drawn uniformly from the other classes (unless ``base_classes`` is
    given). The baseline is the clean head: it classifies none of the chosen targets as their base class.

    Args:
        feature_fn, x_train, y_train: the frozen extractor and the clean training set.
        x_test, y_test: the test set the targets come from and clean accuracy is measured on.
        num_poisons, beta, steps, lr, watermark, base_choice: as in :func:`poison_frogs`.
        epochs, head_lr, weight_decay: the victim's training (``epochs``, ``lr`` and ``weight_decay`` of
            :func:`retrain_head`); the clean training set's features are computed once and reused.
        num_targets: how many targets to draw, >= 1 (ignored when ``targets`` is given).
        targets: test indices to attack.
        base_classes: one base class per target, each different from the target's label.
        num_classes: number of classes; ``None`` takes ``max(y_train) + 1``.
        labeller: a stand-in for the human who labels the poisons, e.g. a full classifier trained on clean data
            (returning logits ``(N, K)``; an ``nn.Module`` is run in eval mode). Only the poisons it classifies as
            their base class are added to the training set: a clean-label attack must survive this check.
            ``None`` adds every poison (the attack is then not checked to be clean-label).
        generator: the source of the random targets, base classes and bases (a CPU ``torch.Generator``).

    Returns:
        A :class:`TargetedResult`.
    """
    check_inputs(x_test, y_test)
    k = _check_head_args(x_train, y_train, epochs, head_lr, weight_decay, num_classes)
    train_feats, test_feats = _features(feature_fn, x_train), _features(feature_fn, x_test)
    fit = dict(epochs=epochs, lr=head_lr, weight_decay=weight_decay)
    with torch.no_grad():
        pred = _fit_head(train_feats, y_train, k, **fit)(test_feats).argmax(1)
    clean_acc = (pred == y_test).float().mean().item()
    if targets is None:
        check_int("num_targets", num_targets, minimum=1)
        correct = (pred == y_test).nonzero().flatten()
        if num_targets > len(correct):
            raise ValueError(f"num_targets must be in [1, {len(correct)}] (the correctly classified test inputs), "
                             f"got {num_targets}")
        targets = correct[torch.randperm(len(correct), generator=generator)[:num_targets]].tolist()
    targets = [int(t) for t in targets]
    if any(not 0 <= t < len(x_test) for t in targets):
        raise ValueError(f"targets must be test indices in [0, {len(x_test)}), got {targets}")
    if base_classes is None:
        # an offset in [1, k) from the target's class: a uniform draw among the other classes
        offsets = torch.randint(1, k, (len(targets),), generator=generator)
        base_classes = [(int(y_test[t]) + int(o)) % k for t, o in zip(targets, offsets)]
    base_classes = [int(b) for b in base_classes]
    if len(base_classes) != len(targets) or any(b == int(y_test[t]) for t, b in zip(targets, base_classes)):
        raise ValueError("base_classes must give one class per target, each different from the target's label")
    if labeller is not None and not callable(labeller):
        raise TypeError(f"labeller must be a classifier returning logits (N, K), or None, got {labeller!r}")
    successes, accs, passed = [], [], []
    keep = torch.ones(len(x_test), dtype=torch.bool, device=x_test.device)
    for t, b in zip(targets, base_classes):
        xp, yp, idx = poison_frogs(feature_fn, x_train, y_train, target_x=x_test[t:t + 1], base_class=b,
                                   num_poisons=num_poisons, beta=beta, steps=steps, lr=lr, watermark=watermark,
                                   base_choice=base_choice, generator=generator)
        if labeller is not None:
            with torch.no_grad(), _Frozen(labeller) as lab:
                passes = lab(xp[idx]).argmax(1) == b
            passed.append(int(passes.sum()))
            idx = idx[passes]
        feats = torch.cat([train_feats, _features(feature_fn, xp[idx])])
        with torch.no_grad():
            p = _fit_head(feats, torch.cat([y_train, yp[idx]]), k, **fit)(test_feats).argmax(1)
        successes.append(bool(p[t].item() == b))
        keep[t] = False
        accs.append((p[keep] == y_test[keep]).float().mean().item())
        keep[t] = True
    return TargetedResult(targets=targets, base_classes=base_classes, successes=successes,
                          success_rate=sum(successes) / len(successes), clean_accuracy=clean_acc,
                          poisoned_accuracy=sum(accs) / len(accs),
                          label_pass_rate=None if labeller is None else sum(passed) / (num_poisons * len(targets)))
