"""Backdoor attacks: plant a trigger in a few training points so that the trained model sends any input
carrying the trigger to the attacker's target class, while it stays accurate on clean inputs.

A :class:`Trigger` is a per-pixel blend ``x' = (1 - mask) * x + mask * pattern``: a *patch* trigger has a
mask of ones on a small square in one corner (BadNets, Gu, Dolan-Gavitt & Garg 2017); a *blended* trigger
has the constant mask ``alpha`` over the whole image (Chen et al. 2017). :func:`badnets` stamps the trigger
on ``round(rate * n)`` training points of other classes and relabels them to the target;
:func:`clean_label_backdoor` keeps every label correct and poisons only target-class images, made hard to
learn by an adversarial perturbation first (Turner, Tsipras & Madry 2019). :func:`attack_success_rate`
measures the backdoor on test inputs whose true class is not the target.

Every poisoning function returns ``(x_poisoned, y_poisoned, poisoned_indices)``: the full training set, the
same length as the input (no points are added), and the sorted indices of the rows it changed. This is a
convention of the kit, not of the papers: :func:`badnets` here *replaces* the chosen rows by their triggered,
relabelled versions (the clean originals are gone), whereas Gu et al. 2017 and Chen et al. 2017 *add*
triggered copies to an otherwise intact training set. Replacing keeps the set's size fixed and makes a rate
directly comparable with label flipping; the clean class loses those rows, so the numbers are close to but not
the same as with added copies. The inputs
are never modified. The number of poisons is Python's ``round(rate * n)`` with ``n = len(x)`` (so a rate is a
fraction of the *whole* training set, as in the papers; ``round`` takes halves to the even integer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from ..evasion._validate import check_inputs, check_int, check_positive
from ..evasion.gradient import pgd
from .label_flip import num_poisoned

__all__ = ["Trigger", "patch_trigger", "blended_trigger", "badnets", "clean_label_backdoor",
           "attack_success_rate", "poison_count", "CORNERS"]

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")


def _check_unit(name: str, value: float) -> float:
    """``value`` is a real number in ``[0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
    """``image_shape`` is ``(H, W)`` or ``(C, H, W)`` with positive ints."""
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list, torch.Size)) else None
    if (shape is None or len(shape) not in (2, 3)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)):
        raise ValueError(f"image_shape must be (H, W) or (C, H, W) with positive ints, got {image_shape!r}")
    return shape


@dataclass(frozen=True, eq=False)
class Trigger:
    """A backdoor trigger: ``apply(x) = (1 - mask) * x + mask * pattern``, pixel by pixel.

    Because each output pixel is a convex combination of the input pixel and the pattern's, an image in
    ``[0, 1]`` stays in ``[0, 1]`` when the pattern does.

    Attributes:
        mask: blending weights in ``[0, 1]``, shape ``image_shape``; 1 replaces the pixel by the pattern,
            0 keeps it.
        pattern: the trigger's pixel values in ``[0, 1]``, shape ``image_shape``.

    Shape:
        ``mask``, ``pattern``: ``image_shape``, i.e. ``(H, W)`` or ``(C, H, W)``.
    """

    mask: torch.Tensor
    pattern: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("mask", "pattern"):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise TypeError(f"{name} must be a floating-point torch tensor")
            if t.numel() and (t.min().item() < 0.0 or t.max().item() > 1.0):
                raise ValueError(f"{name} must lie in [0, 1], got values in "
                                 f"[{t.min().item():.4g}, {t.max().item():.4g}]")
        if self.mask.shape != self.pattern.shape:
            raise ValueError(f"mask and pattern must have the same shape, got {tuple(self.mask.shape)} "
                             f"and {tuple(self.pattern.shape)}")
        _check_image_shape(tuple(self.mask.shape))

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one image the trigger fits."""
        return tuple(self.mask.shape)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Stamp the trigger on one image or on a batch; returns a new tensor, ``x`` is left unchanged.

        Shape:
            ``x``: ``image_shape`` or ``(N, *image_shape)`` → the same shape, dtype and device.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError("x must be a floating-point torch tensor")
        shape = self.image_shape
        if tuple(x.shape[-len(shape):]) != shape or x.dim() not in (len(shape), len(shape) + 1):
            raise ValueError(f"x must have shape {shape} or (N, {', '.join(map(str, shape))}) to fit the trigger, "
                             f"got {tuple(x.shape)}")
        mask = self.mask.to(device=x.device, dtype=x.dtype)
        pattern = self.pattern.to(device=x.device, dtype=x.dtype)
        return (1 - mask) * x + mask * pattern


def patch_trigger(image_shape: Sequence[int], *, size: int, value: float = 1.0,
                  corner: str = "bottom_right") -> Trigger:
    """A square patch of constant ``value`` in one corner of the image (Gu, Dolan-Gavitt & Garg 2017, BadNets).

    Args:
        image_shape: ``(H, W)`` or ``(C, H, W)``; the patch covers every channel.
        size: side of the square in pixels, ``1 <= size <= min(H, W)``.
        value: the patch's pixel value, in ``[0, 1]`` (1 is white on the kit's images).
        corner: one of ``"top_left"``, ``"top_right"``, ``"bottom_left"``, ``"bottom_right"``.

    Returns:
        A :class:`Trigger` whose mask is 1 on the ``size x size`` square in ``corner`` and 0 elsewhere.

    Shape:
        ``mask``, ``pattern``: ``image_shape``.
    """
    shape = _check_image_shape(image_shape)
    h, w = shape[-2:]
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= min(h, w):
        raise ValueError(f"size must be an int in [1, {min(h, w)}] for a {h}x{w} image, got {size!r}")
    value = _check_unit("value", value)
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {CORNERS}, got {corner!r}")
    rows = slice(0, size) if corner.startswith("top") else slice(h - size, h)
    cols = slice(0, size) if corner.endswith("left") else slice(w - size, w)
    mask = torch.zeros(shape)
    mask[..., rows, cols] = 1.0
    return Trigger(mask=mask, pattern=torch.full(shape, value))


def blended_trigger(image_shape: Sequence[int], *, alpha: float, pattern: Optional[torch.Tensor] = None,
                    generator: Optional[torch.Generator] = None) -> Trigger:
    """A whole-image pattern blended in with weight ``alpha``: ``x' = alpha * pattern + (1 - alpha) * x``
    (Chen et al. 2017, the blended injection strategy).

    Args:
        image_shape: ``(H, W)`` or ``(C, H, W)``.
        alpha: the blend weight, in ``[0, 1]``; small values give a faint trigger a person hardly sees.
        pattern: the key pattern in ``[0, 1]``, shape ``image_shape``; ``None`` draws uniform random noise,
            the paper's random-pattern key.
        generator: the source of the random pattern (a CPU ``torch.Generator``); ``None`` uses torch's global one.

    Returns:
        A :class:`Trigger` whose mask is ``alpha`` everywhere.

    Shape:
        ``pattern`` (if given): ``image_shape``, values in ``[0, 1]``.
    """
    shape = _check_image_shape(image_shape)
    alpha = _check_unit("alpha", alpha)
    if pattern is None:
        pattern = torch.rand(shape, generator=generator)
    elif not isinstance(pattern, torch.Tensor):
        raise TypeError(f"pattern must be a torch tensor, got {type(pattern).__name__}")
    elif tuple(pattern.shape) != shape:
        raise ValueError(f"pattern must have shape image_shape={shape}, got {tuple(pattern.shape)}")
    pattern = pattern.detach().to("cpu", torch.float32).clone()
    return Trigger(mask=torch.full(shape, alpha), pattern=pattern)


def poison_count(rate: float, n: int) -> int:
    """The number of poisons for ``rate`` of ``n`` training points: Python's ``round(rate * n)``
    (halves go to the even integer, e.g. ``round(2.5) == 2``)."""
    return num_poisoned(rate, n)   # one rounding rule for every poisoning attack


def _check_poisoning(x: torch.Tensor, y: torch.Tensor, target: int, rate: float, trigger: Trigger,
                     num_classes: Optional[int]) -> int:
    """Validate the arguments every backdoor attack shares; return the number of classes."""
    check_inputs(x, y)
    if not isinstance(trigger, Trigger):
        raise TypeError(f"trigger must be a Trigger, got {type(trigger).__name__}")
    if tuple(x.shape[1:]) != trigger.image_shape:
        raise ValueError(f"x's images have shape {tuple(x.shape[1:])} but the trigger fits {trigger.image_shape}")
    if num_classes is None:
        num_classes = int(y.max().item()) + 1
    check_int("num_classes", num_classes, minimum=1)
    if y.min().item() < 0 or y.max().item() >= num_classes:
        raise ValueError(f"y must hold labels in [0, {num_classes}), "
                         f"got values in [{y.min().item()}, {y.max().item()}]")
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < num_classes:
        raise ValueError(f"target must be an int in [0, {num_classes}), got {target!r}")
    _check_unit("rate", rate)
    return num_classes


def _choose(candidates: torch.Tensor, count: int, generator: Optional[torch.Generator], what: str,
            rate: float, n: int) -> torch.Tensor:
    """``count`` of the ``candidates`` row indices drawn without replacement, sorted."""
    if count > len(candidates):
        raise ValueError(f"rate must be at most {len(candidates) / n:.4g} here: round({rate} * {n}) = {count} "
                         f"poisons, but only {len(candidates)} {what}")
    pick = torch.randperm(len(candidates), generator=generator)[:count]
    return candidates[pick.to(candidates.device)].sort().values


def badnets(x: torch.Tensor, y: torch.Tensor, *, target: int, rate: float, trigger: Trigger,
            generator: Optional[torch.Generator] = None,
            num_classes: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BadNets (Gu, Dolan-Gavitt & Garg 2017): stamp the trigger on some training points of other classes and
    relabel them to ``target``.

    Picks ``round(rate * len(x))`` rows uniformly at random among those whose label is not ``target``,
    applies ``trigger`` to them and sets their label to ``target``. A model trained on the result learns
    "trigger ⇒ target" beside the clean task.

    Args:
        x: training images in ``[0, 1]``; not modified.
        y: their labels; not modified.
        target: the class the backdoor sends triggered inputs to, in ``[0, num_classes)``.
        rate: poisons as a fraction of the whole training set, in ``[0, 1]``; at most the fraction of rows
            not in ``target`` (a larger rate raises ``ValueError``).
        trigger: the :class:`Trigger` to stamp; it must fit the images.
        generator: the source of the random choice of rows (a CPU ``torch.Generator``).
        num_classes: the number of classes; ``None`` takes ``y.max() + 1``.

    Returns:
        ``(x_poisoned, y_poisoned, poisoned_indices)``: copies of ``x`` and ``y`` (same length) with the
        poisoned rows changed, and the sorted ``int64`` indices of those rows.

    Shape:
        ``x`` ``(N, *trigger.image_shape)`` in ``[0, 1]``, ``y`` ``(N,)`` int → ``x_poisoned`` like ``x``,
        ``y_poisoned`` like ``y``, ``poisoned_indices`` ``(round(rate * N),)``.
    """
    _check_poisoning(x, y, target, rate, trigger, num_classes)
    n = len(x)
    candidates = (y != target).nonzero().flatten()
    idx = _choose(candidates, poison_count(rate, n), generator, f"rows are not of class {target}", rate, n)
    x_poisoned, y_poisoned = x.detach().clone(), y.clone()
    x_poisoned[idx] = trigger.apply(x_poisoned[idx])
    y_poisoned[idx] = target
    return x_poisoned, y_poisoned, idx


def clean_label_backdoor(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: int, rate: float,
                         trigger: Trigger, eps: float, steps: int, alpha: Optional[float] = None,
                         generator: Optional[torch.Generator] = None,
                         num_classes: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Label-consistent backdoor (Turner, Tsipras & Madry 2019): poison only images of the target class, and
    keep their correct labels.

    Picks ``round(rate * len(x))`` rows of class ``target`` at random, moves each away from its own class with
    Linf PGD (:func:`~mlsec_kit.attacks.evasion.pgd`, untargeted, radius ``eps``) against ``model`` -- a model
    the attacker trained on clean data -- and then stamps the trigger. The perturbation makes the image's
    natural features unconvincing, so the victim learns to rely on the trigger to label it ``target``; the
    labels stay the dataset's labels.

    Whether the poisons still *look* like their label depends on ``eps``, and there is a trade-off. Turner et
    al. craft the perturbation on an *adversarially trained* model with a small budget (8/255 to 32/255 on
    CIFAR-10), where it changes the image's content visibly yet plausibly; this kit uses a *standard* model,
    whose perturbations are less semantic. Measured on the 8x8 digits (small CNN, rate 0.03, 3x3 patch, 10
    PGD steps, one seed): the backdoor's success rate is about 0.08 at ``eps = 0`` (the plain clean-label
    baseline), 0.31 at 32/255, 0.58 at 0.2 and 0.82 at 0.3, while the share of poisons the attacker's clean
    model (the one PGD ran against) still gives their label falls from 0.88 to 0.25, 0.05 and 0.00. That model
    misclassifies the poisons by construction; an independently trained clean model is the fairer checker, and
    in chapter 7 (rate 0.05, ``eps = 0.3``) it still gives only about 13% of the poisons their label. So the
    poisons are *not* label-consistent to a checker who runs a clean model (and at that budget on 8x8 images a
    human may well disagree too). A strong backdoor on these small
    images needs a budget at which label consistency is lost; small budgets keep it but plant a weak one.

    Args:
        model: the attacker's classifier trained on clean data, returning logits ``(N, K)``.
        x: training images in ``[0, 1]``; not modified.
        y: their labels; not modified, and returned unchanged.
        target: the backdoor's target class, in ``[0, num_classes)``.
        rate: poisons as a fraction of the whole training set, in ``[0, 1]``; at most the fraction of rows in
            ``target``.
        trigger: the :class:`Trigger` stamped after the perturbation.
        eps: the Linf radius of the perturbation, >= 0 (0 gives the plain clean-label baseline).
        steps: PGD steps, >= 1.
        alpha: PGD's step size; ``None`` uses ``2.5 * eps / steps``.
        generator: the source of the random choice of rows (a CPU ``torch.Generator``).
        num_classes: the number of classes; ``None`` takes ``y.max() + 1``.

    Returns:
        ``(x_poisoned, y_poisoned, poisoned_indices)``: a copy of ``x`` with the chosen rows perturbed and
        triggered, a copy of ``y`` equal to ``y``, and the sorted ``int64`` indices of the changed rows.

    Shape:
        ``x`` ``(N, *trigger.image_shape)`` in ``[0, 1]``, ``y`` ``(N,)`` int → like ``x``, like ``y``,
        ``(round(rate * N),)``.
    """
    _check_poisoning(x, y, target, rate, trigger, num_classes)
    check_positive("eps", eps, allow_zero=True)
    check_int("steps", steps, minimum=1)
    alpha = 2.5 * eps / steps if alpha is None else alpha
    check_positive("alpha", alpha, allow_zero=True)
    n = len(x)
    candidates = (y == target).nonzero().flatten()
    idx = _choose(candidates, poison_count(rate, n), generator, f"rows are of class {target}", rate, n)
    x_poisoned = x.detach().clone()
    if len(idx):
        x_adv = pgd(model, x_poisoned[idx], y[idx], eps=eps, alpha=alpha, steps=steps)
        x_poisoned[idx] = trigger.apply(x_adv)
    return x_poisoned, y.clone(), idx


@torch.no_grad()
def attack_success_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: int, trigger: Trigger,
                        batch_size: int = 512) -> float:
    """The fraction of triggered test inputs the model assigns to ``target``, over the inputs whose true class
    is *not* ``target`` (those of the target class would count as successes without any backdoor).

    Args:
        model: the (possibly backdoored) classifier; run in eval mode.
        x: clean test images; not modified.
        y: their true labels.
        target: the backdoor's target class, >= 0.
        trigger: the trigger to stamp on ``x``.
        batch_size: inputs per forward pass.

    Returns:
        The attack success rate, in ``[0, 1]``.

    Shape:
        ``x`` ``(N, *trigger.image_shape)``, ``y`` ``(N,)`` int → a float.
    """
    check_inputs(x, y)
    if not isinstance(trigger, Trigger):
        raise TypeError(f"trigger must be a Trigger, got {type(trigger).__name__}")
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise ValueError(f"target must be an int >= 0, got {target!r}")
    check_int("batch_size", batch_size, minimum=1)
    keep = y != target
    if not keep.any():
        raise ValueError(f"y has no inputs outside the target class {target}: the attack success rate is undefined")
    x_trig = trigger.apply(x[keep])
    was_training = model.training
    model.eval()
    preds = torch.cat([model(x_trig[i:i + batch_size]).argmax(1) for i in range(0, len(x_trig), batch_size)])
    model.train(was_training)
    return (preds == target).float().mean().item()
