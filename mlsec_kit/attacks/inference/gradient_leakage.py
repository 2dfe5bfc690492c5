r"""Gradient leakage: rebuild a training input and its label from one shared gradient (DLG and iDLG).

In federated learning and distributed training a client shares the gradient of its loss,
:math:`\nabla W = \partial \ell(F(x; W), y) / \partial W`, not its data. *Deep Leakage from Gradients* (DLG; Zhu,
Liu & Han, NeurIPS 2019) shows that the gradient is often enough to rebuild ``(x, y)``: draw a dummy input
:math:`x'` and a dummy label :math:`y'` (logits of a soft label), compute the dummy's gradient on the same model,
and move the dummies so that the two gradients match,

.. math::  x'^*, y'^* = \arg\min_{x', y'} \; \sum_l \big\| \nabla W'_l(x', y') - \nabla W_l \big\|_2^2 ,
   \qquad \nabla W'(x', y') = \partial\, \ell\big(F(x'; W), \mathrm{softmax}(y')\big) / \partial W .

The objective contains a gradient, so minimising it needs second derivatives: the dummy gradient is built with
``create_graph=True`` and differentiated again with respect to the dummies (:func:`gradient_matching_loss`).
The paper uses L-BFGS on a LeNet whose activations are sigmoids (:func:`sigmoid_lenet`; :func:`sigmoid_mlp` is
the same idea without convolutions): the model must be twice differentiable, and a ReLU's second derivative is
zero almost everywhere, which leaves the second-order optimisation less to work with.

*Improved DLG* (iDLG; Zhao, Mopuri & Bilen 2020) reads the label off the gradient in closed form
(:func:`idlg_label`) and then matches gradients for ``x'`` alone with that label fixed (:func:`idlg`).

Defences from Zhu et al.'s section 5: add Gaussian noise to the shared gradient (:func:`noisy_gradients`) or
prune its small-magnitude entries (:func:`prune_gradients`); :func:`reconstruction_error` measures what the
attack still recovers (MSE, PSNR and the label).

Measured on the small profile (8x8 digits, untrained victims, a batch of one, 100 L-BFGS iterations; the tests
in tests/attacks/inference/test_gradient_leakage.py check the first two claims):

* without a defence DLG rebuilds each of four digits to a pixel MSE between 3e-13 and 3e-7 (PSNR 65 to 125 dB,
  from a dummy at MSE ~1.2) and recovers its label, on the sigmoid MLP and on the sigmoid LeNet alike; a batch
  of two comes back too (300 iterations, MSE 6e-7), in swapped order;
* on the MLP (60 iterations) the mean MSE over three digits grows with the noise's standard deviation,
  3e-9 / 4e-5 / 4e-3 / 0.39 at sigma = 0 / 1e-3 / 1e-2 / 1e-1 (the gradient's entries are 3e-3 to 0.2 in mean
  magnitude, layer by layer), and with pruning, 3e-9 / 5e-3 / 1.0e-2 / 1.4e-2 at 0 / 30 / 60 / 90%;
* on the LeNet (a one-off run of the same kind): noise 1e-4 / 1e-3 / 1e-2 gives 3e-6 / 3e-4 / 3e-2 and 0.1 makes
  the dummy diverge (MSE ~1e3); pruning 10 / 20 / 30 / 60 / 90% gives 3e-5 / 2e-4 / 1e-3 / 1e-2 / ~1e2.
  The label is recovered under every one of these defences (both models, every level, three digits): it
  sits in the last layer's gradient, the largest.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..evasion._validate import check_int, check_positive
from ._checks import _check_logits

__all__ = ["sigmoid_lenet", "sigmoid_mlp", "shared_gradients", "gradient_matching_loss", "dlg", "idlg_label",
           "idlg", "noisy_gradients", "prune_gradients", "reconstruction_error", "Reconstruction",
           "ReconstructionError"]

OPTIMIZERS = ("lbfgs", "adam")
Grads = Sequence[torch.Tensor]


@dataclass(frozen=True)
class Reconstruction:
    """What :func:`dlg` or :func:`idlg` rebuilt from a gradient.

    ``x`` is the dummy input ``(B, *input_shape)`` at the end of the optimisation (not clipped to any range);
    ``label_probs`` the dummy soft labels ``(B, K)`` (one-hot for :func:`idlg`, whose label is not optimised);
    ``loss`` the gradient-matching loss at every evaluation, the last at the returned dummies (Adam evaluates once
    per step, L-BFGS's line search several times).
    """

    x: torch.Tensor
    label_probs: torch.Tensor
    loss: list[float]

    @property
    def labels(self) -> torch.Tensor:
        """The recovered labels ``(B,)``: the most likely class of each soft label."""
        return self.label_probs.argmax(1)


@dataclass(frozen=True)
class ReconstructionError:
    """How close a :class:`Reconstruction` is to the private batch (see :func:`reconstruction_error`).

    ``mse`` is the mean squared pixel error over the batch, ``psnr`` the mean of the per-example peak
    signal-to-noise ratios in dB (``inf`` for an exact copy), ``label_accuracy`` the fraction of labels recovered,
    and ``order[i]`` the reconstruction matched to private example ``i``.
    """

    mse: float
    psnr: float
    label_accuracy: float
    order: list[int]


def _init_uniform(model: nn.Module, scale: float, generator: Optional[torch.Generator]) -> nn.Module:
    check_positive("init_scale", scale)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * scale)
    return model


def sigmoid_lenet(input_shape: Sequence[int], num_classes: int, *, width: int = 12, init_scale: float = 0.5,
                  generator: Optional[torch.Generator] = None) -> nn.Sequential:
    """The LeNet variant DLG attacks (Zhu et al. 2019, Sec. 4.1): three 5x5 convolutions, sigmoid activations.

    No pooling (the first two convolutions have stride 2, the third stride 1) and a linear layer on top; every
    parameter is drawn uniformly from ``[-init_scale, init_scale]`` as in the paper's code. On 8x8 digits the
    attack does not hinge on it: measured on four digits (100 L-BFGS iterations), DLG reaches MSE 1e-11 to 3e-7
    with it and 3e-8 to 2e-7 after PyTorch's default initialisation.

    Shape:
        input ``(N, C, H, W)`` → logits ``(N, num_classes)``.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be (C, H, W) with positive ints, got {shape}")
    check_int("num_classes", num_classes, minimum=2)
    check_int("width", width, minimum=1)
    c, h, w = shape
    body = nn.Sequential(nn.Conv2d(c, width, 5, padding=2, stride=2), nn.Sigmoid(),
                         nn.Conv2d(width, width, 5, padding=2, stride=2), nn.Sigmoid(),
                         nn.Conv2d(width, width, 5, padding=2, stride=1), nn.Sigmoid(), nn.Flatten())
    with torch.no_grad():
        features = body(torch.zeros(1, c, h, w)).shape[1]
    return _init_uniform(nn.Sequential(*body, nn.Linear(features, num_classes)), init_scale, generator)


def sigmoid_mlp(input_shape: Sequence[int], num_classes: int, *, hidden: Sequence[int] = (64,),
                generator: Optional[torch.Generator] = None) -> nn.Sequential:
    """A multi-layer perceptron with sigmoid activations (smooth, so DLG's second derivatives are informative).

    Weights get PyTorch's default initialisation, drawn from ``generator`` for determinism.

    Shape:
        input ``(N, *input_shape)`` → logits ``(N, num_classes)``.
    """
    check_int("num_classes", num_classes, minimum=2)
    width = 1
    for d in input_shape:
        check_int("input_shape entries", d, minimum=1)
        width *= d
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        check_int("hidden widths", h, minimum=1)
        layers += [nn.Linear(width, h), nn.Sigmoid()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                bound = 1 / m.in_features ** 0.5  # PyTorch's default range, from the caller's generator
                m.weight.copy_((torch.rand(m.weight.shape, generator=generator) * 2 - 1) * bound)
                m.bias.copy_((torch.rand(m.bias.shape, generator=generator) * 2 - 1) * bound)
    return model


def _params(model: nn.Module) -> list[torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model must have at least one parameter with requires_grad=True")
    return params


def _check_grads(model: nn.Module, target_grads: Grads) -> list[torch.Tensor]:
    """One gradient per trainable parameter of ``model``, in ``model.parameters()`` order, of the same shape."""
    params = _params(model)
    if isinstance(target_grads, torch.Tensor) or not isinstance(target_grads, (list, tuple)):
        raise TypeError(f"target_grads must be a list of tensors, one per trainable parameter of the model, "
                        f"got {type(target_grads).__name__}")
    if len(target_grads) != len(params):
        raise ValueError(f"target_grads must hold one tensor per trainable parameter of the model ({len(params)}), "
                         f"got {len(target_grads)}")
    for i, (g, p) in enumerate(zip(target_grads, params)):
        if not isinstance(g, torch.Tensor) or g.shape != p.shape:
            raise ValueError(f"target_grads[{i}] must have the shape of the model's parameter {i}, "
                             f"{tuple(p.shape)}, got {tuple(getattr(g, 'shape', ()))}")
    return [g.detach() for g in target_grads]


def shared_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """What a federated-learning client shares: the gradient of the mean cross-entropy on its batch.

    Args:
        model: the shared model, returning logits ``(B, K)`` (``ValueError`` when it returns labels); its
            parameters and their ``.grad`` are left unchanged.
        x: the private batch ``(B, ...)``.
        y: its integer labels ``(B,)``.

    Returns:
        One detached gradient per trainable parameter, in ``model.parameters()`` order.
    """
    params = _params(model)
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch tensor (B, ...), got {getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],) or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of shape ({x.shape[0]},), got {getattr(y, 'shape', y)}")
    with torch.enable_grad():
        loss = F.cross_entropy(_check_logits("model", model(x), len(x)), y)
        return [g.detach() for g in torch.autograd.grad(loss, params)]


def gradient_matching_loss(model: nn.Module, x_dummy: torch.Tensor, y_dummy: torch.Tensor,
                           target_grads: Grads) -> torch.Tensor:
    r"""DLG's objective :math:`\sum_l \|\nabla W'_l - \nabla W_l\|_2^2`, differentiable in the dummies.

    The dummy gradient is that of the soft-label cross-entropy :math:`-\sum_k y'_k \log \mathrm{softmax}(F(x'))_k`
    (averaged over the batch, as :func:`shared_gradients` averages), built with ``create_graph=True``: the central
    step, without which the loss could not be differentiated with respect to ``x_dummy`` and ``y_dummy``.

    Args:
        model: the shared model.
        x_dummy: dummy inputs ``(B, ...)``.
        y_dummy: dummy soft labels ``(B, K)``, rows on the probability simplex.
        target_grads: the shared gradient, one tensor per trainable parameter.

    Returns:
        A scalar tensor, >= 0, with a graph back to ``x_dummy`` and ``y_dummy``.
    """
    target = _check_grads(model, target_grads)
    params = _params(model)
    with torch.enable_grad():
        log_probs = F.log_softmax(model(x_dummy), dim=-1)
        if not isinstance(y_dummy, torch.Tensor) or y_dummy.shape != log_probs.shape:
            raise ValueError(f"y_dummy must be soft labels of shape {tuple(log_probs.shape)} (one row per dummy "
                             f"input, one column per class), got {tuple(getattr(y_dummy, 'shape', ()))}")
        loss = -(y_dummy * log_probs).sum(-1).mean()
        dummy = torch.autograd.grad(loss, params, create_graph=True)
        return sum(((d - t) ** 2).sum() for d, t in zip(dummy, target))


DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.1}


def _check_attack_args(input_shape: Sequence[int], steps: int, lr: Optional[float],
                       optimizer: str) -> tuple[tuple[int, ...], float]:
    """The input shape as a tuple and the step size (``None`` → the optimiser's default, ``DEFAULT_LR``)."""
    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
    check_int("steps", steps, minimum=1)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if lr is None:
        lr = DEFAULT_LR[optimizer]
    check_positive("lr", lr)
    return shape, float(lr)


def _probe(model: nn.Module, shape: tuple[int, ...], batch_size: int, ref: torch.Tensor) -> int:
    """One forward pass of zeros ``(batch_size, *shape)``: ``ValueError`` naming ``input_shape`` when the model
    cannot take it, naming ``model`` when it returns labels; returns the model's number of classes. Buffers
    (batch-norm statistics) are restored, so the probe leaves no trace."""
    buffers = [b.clone() for b in model.buffers()]
    try:
        with torch.no_grad():
            out = model(torch.zeros((batch_size, *shape), device=ref.device, dtype=ref.dtype))
    except RuntimeError as e:
        raise ValueError(f"input_shape {shape} does not fit the model: a forward pass on zeros of shape "
                         f"{(batch_size, *shape)} failed ({str(e).splitlines()[0][:200]})") from e
    finally:
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
    return _check_logits("model", out, batch_size).shape[1]


def _match(model: nn.Module, target: list[torch.Tensor], x: torch.Tensor, label_logits: Optional[torch.Tensor],
           fixed_probs: Optional[torch.Tensor], *, steps: int, lr: float, optimizer: str) -> Reconstruction:
    """Minimise the gradient-matching loss over ``x`` (and ``label_logits`` unless ``fixed_probs`` is given)."""
    leaves = [x] if label_logits is None else [x, label_logits]
    if optimizer == "lbfgs":
        # one call that runs all `steps` iterations, with a line search: the paper's plain unit step diverges on
        # some initialisations, and restarting L-BFGS every iteration (max_iter=1 per call) stalls it
        opt: torch.optim.Optimizer = torch.optim.LBFGS(leaves, lr=lr, max_iter=steps, history_size=100,
                                                       line_search_fn="strong_wolfe", tolerance_grad=1e-12,
                                                       tolerance_change=1e-14)
    else:
        opt = torch.optim.Adam(leaves, lr=lr)
    history: list[float] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        probs = fixed_probs if label_logits is None else F.softmax(label_logits, dim=-1)
        d = gradient_matching_loss(model, x, probs, target)
        # grads of the dummies only: the model's parameters (and their .grad) are left as they were
        for leaf, g in zip(leaves, torch.autograd.grad(d, leaves)):
            leaf.grad = g
        history.append(float(d.detach()))
        return d.detach()

    with torch.enable_grad():
        for _ in range(1 if optimizer == "lbfgs" else steps):
            opt.step(closure)
        closure()  # the loss at the returned dummies
    probs = fixed_probs if label_logits is None else F.softmax(label_logits.detach(), dim=-1)
    return Reconstruction(x=x.detach(), label_probs=probs.detach(), loss=history)


def dlg(model: nn.Module, target_grads: Grads, *, input_shape: Sequence[int], num_classes: int,
        batch_size: int = 1, steps: int = 100, lr: Optional[float] = None, optimizer: str = "lbfgs",
        generator: Optional[torch.Generator] = None) -> Reconstruction:
    """Deep Leakage from Gradients (Zhu, Liu & Han, NeurIPS 2019, Algorithm 1).

    Draws a dummy input ``x' ~ N(0, 1)`` and dummy label logits ``y' ~ N(0, 1)``, then runs ``steps`` iterations
    of ``optimizer`` on :func:`gradient_matching_loss` over both (the label enters through ``softmax(y')``, so it
    is recovered as a soft label). The paper uses L-BFGS (``lr = 1``); Adam (``lr = 0.1``) is slower but
    never takes a diverging step.

    Args:
        model: the shared model, returning logits; a smooth one (sigmoid activations, :func:`sigmoid_lenet`).
            Its parameters, their ``.grad`` and its train/eval mode are left unchanged. One forward pass on
            zeros checks ``input_shape`` and that it returns logits (``ValueError`` otherwise).
        target_grads: the shared gradient, one tensor per trainable parameter in ``model.parameters()`` order
            (e.g. from :func:`shared_gradients`, perhaps after a defence).
        input_shape: the shape of one input, e.g. ``(1, 8, 8)``.
        num_classes: the number of classes ``K`` (the model's output width), >= 2.
        batch_size: how many examples the gradient was computed on, >= 1.
        steps: optimiser iterations, >= 1.
        lr: the optimiser's step size, > 0; ``None`` takes 1.0 for L-BFGS and 0.1 for Adam.
        optimizer: ``"lbfgs"`` or ``"adam"``.
        generator: the source of the dummies' initialisation (a CPU ``torch.Generator``).

    Returns:
        A :class:`Reconstruction`.

    Shape:
        ``target_grads`` shaped like the parameters → ``x`` ``(batch_size, *input_shape)`` (unbounded reals),
        ``label_probs`` ``(batch_size, num_classes)`` in ``[0, 1]``.
    """
    target = _check_grads(model, target_grads)
    shape, lr = _check_attack_args(input_shape, steps, lr, optimizer)
    check_int("num_classes", num_classes, minimum=2)
    check_int("batch_size", batch_size, minimum=1)
    ref = target[0]
    width = _probe(model, shape, batch_size, ref)
    if width != num_classes:
        raise ValueError(f"num_classes must be the model's output width, {width}, got {num_classes}")
    x = torch.randn((batch_size, *shape), generator=generator).to(ref.device, ref.dtype).requires_grad_(True)
    logits = torch.randn((batch_size, num_classes), generator=generator).to(ref.device, ref.dtype)
    return _match(model, target, x, logits.requires_grad_(True), None, steps=steps, lr=lr, optimizer=optimizer)


def idlg_label(weight_grad: torch.Tensor, *, bias_grad: Optional[torch.Tensor] = None, batch_size: int = 1) -> int:
    r"""The label of a batch of one, read off the last layer's gradient (Zhao, Mopuri & Bilen 2020).

    Derivation. The last layer computes logits :math:`z = W h + b` from the features :math:`h`; the loss is
    the cross-entropy :math:`\ell = -\log p_c` with :math:`p = \mathrm{softmax}(z)` and true label :math:`c`. Then
    :math:`\partial \ell / \partial z_i = p_i - \mathbb{1}[i = c]`, so

    * :math:`\partial \ell / \partial b_i = p_i - \mathbb{1}[i = c]`: in :math:`(-1, 0)` for :math:`i = c`, in
      :math:`(0, 1)` for every other class. The label is the **only negative** entry: ``argmin`` of the bias
      gradient (no assumption on :math:`h`).
    * :math:`\partial \ell / \partial W_{i\cdot} = (p_i - \mathbb{1}[i = c])\, h^\top`: every row is a multiple
      of :math:`h`, with a negative factor only for the true class. When the features are non-negative (after a
      ReLU or a sigmoid, as in iDLG's setting) and not all zero, row :math:`c` sums to a negative number and every
      other row to a positive one: the label is the ``argmin`` of the row sums.

    The rule needs a batch of one (with several examples the rows mix) and the mean or summed cross-entropy.
    A gradient does not say its batch size, so the caller states it: ``batch_size`` other than 1 raises. Where
    the gradient itself shows a larger batch, a bias gradient with more than one negative entry (impossible for
    one example, whose only negative entry is its label's), a ``UserWarning`` says so (a noised gradient can
    show it too).

    Args:
        weight_grad: the gradient of the last linear layer's weight ``(K, H)``; its features must be
            non-negative when it is used alone.
        bias_grad: the gradient of that layer's bias ``(K,)``; when given, the label comes from it.
        batch_size: how many examples the gradient was computed on; must be 1.

    Returns:
        The recovered label, an int in ``[0, K)``.

    Raises:
        ValueError: ``batch_size`` is not 1, or the gradients have the wrong shapes.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size != 1:
        raise ValueError(f"batch_size must be 1: the iDLG label rule holds only for the gradient of a batch of "
                         f"one example (use dlg for larger batches), got {batch_size!r}")
    if not isinstance(weight_grad, torch.Tensor) or weight_grad.dim() != 2:
        raise ValueError(f"weight_grad must be the last layer's weight gradient (K, H), "
                         f"got shape {tuple(getattr(weight_grad, 'shape', ()))}")
    if bias_grad is not None:
        if not isinstance(bias_grad, torch.Tensor) or bias_grad.shape != weight_grad.shape[:1]:
            raise ValueError(f"bias_grad must have shape ({weight_grad.shape[0]},) to match weight_grad, "
                             f"got {tuple(getattr(bias_grad, 'shape', ()))}")
        negative = int((bias_grad < 0).sum())
        if negative > 1:
            warnings.warn(f"bias_grad has {negative} negative entries, but the gradient of a batch of one has "
                          "exactly one (its label's): it probably comes from a larger batch (or was noised), "
                          "and the label read off it may be wrong", UserWarning, stacklevel=2)
        return int(bias_grad.argmin())
    return int(weight_grad.sum(1).argmin())


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model must end in an nn.Linear layer (iDLG reads the label off its gradient)")
    return linears[-1]


def idlg(model: nn.Module, target_grads: Grads, *, input_shape: Sequence[int], steps: int = 100,
         lr: Optional[float] = None, optimizer: str = "lbfgs", generator: Optional[torch.Generator] = None,
         batch_size: int = 1) -> Reconstruction:
    """Improved DLG (Zhao, Mopuri & Bilen 2020): the label by :func:`idlg_label`, then DLG for the input alone.

    The label comes from the gradient of the model's last ``nn.Linear`` layer (its bias when it has one, else its
    weight); the dummy input is then optimised as in :func:`dlg` with that label fixed as a one-hot soft label.

    Args:
        model: the shared model, returning logits and ending in an ``nn.Linear`` layer.
        target_grads: the shared gradient of a batch of ONE, one tensor per trainable parameter.
        input_shape, steps, lr, optimizer, generator: as in :func:`dlg`.
        batch_size: the batch size the gradient was computed on; must be 1 (the label rule's requirement,
            see :func:`idlg_label`; a gradient does not reveal its batch size, so the caller states it).

    Returns:
        A :class:`Reconstruction` with a one-hot ``label_probs``.

    Raises:
        ValueError: ``batch_size`` other than 1; an ``input_shape`` the model cannot take; a model that returns
            labels; gradients that do not match the model's parameters.

    Shape:
        → ``x`` ``(1, *input_shape)``, ``label_probs`` ``(1, K)``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size != 1:
        raise ValueError(f"batch_size must be 1: iDLG reads the label of a batch of one example off the gradient "
                         f"(use dlg for larger batches), got {batch_size!r}")
    target = _check_grads(model, target_grads)
    shape, lr = _check_attack_args(input_shape, steps, lr, optimizer)
    _probe(model, shape, 1, target[0])
    last = _last_linear(model)
    index = {id(p): i for i, p in enumerate(_params(model))}
    if id(last.weight) not in index:
        raise ValueError("the last nn.Linear layer's weight must be trainable (iDLG reads the label off it)")
    bias = target[index[id(last.bias)]] if last.bias is not None and id(last.bias) in index else None
    label = idlg_label(target[index[id(last.weight)]], bias_grad=bias)
    ref = target[0]
    probs = F.one_hot(torch.tensor([label]), last.out_features).to(ref.device, ref.dtype)
    x = torch.randn((1, *shape), generator=generator).to(ref.device, ref.dtype).requires_grad_(True)
    return _match(model, target, x, None, probs, steps=steps, lr=lr, optimizer=optimizer)


def _check_grad_list(grads: Grads) -> None:
    if isinstance(grads, torch.Tensor) or not isinstance(grads, (list, tuple)) or \
            not all(isinstance(g, torch.Tensor) for g in grads):
        raise TypeError(f"grads must be a list of tensors, got {type(grads).__name__}")


def noisy_gradients(grads: Grads, *, sigma: float, generator: Optional[torch.Generator] = None
                    ) -> list[torch.Tensor]:
    """Defence: add i.i.d. Gaussian noise ``N(0, sigma^2)`` to every entry of the shared gradient.

    Zhu et al. (2019, Sec. 5) find that noise of variance around 1e-2 and above stops DLG on their LeNet, at a
    cost in accuracy; what counts is the noise relative to the gradient's own scale. With per-example clipping
    this is the Gaussian mechanism of DP-SGD (chapter 10).

    Args:
        grads: the gradient, a list of tensors (unchanged).
        sigma: the noise's standard deviation, >= 0 (0 returns copies).
        generator: the noise's source (a CPU ``torch.Generator``; the noise is drawn on the CPU and moved).

    Returns:
        A new list of tensors shaped like ``grads``.
    """
    _check_grad_list(grads)
    check_positive("sigma", sigma, allow_zero=True)
    return [g.detach() + sigma * torch.randn(g.shape, generator=generator).to(g.device, g.dtype) for g in grads]


def prune_gradients(grads: Grads, *, fraction: float) -> list[torch.Tensor]:
    """Defence: set the ``fraction`` of each tensor's entries with the smallest magnitude to zero.

    Gradient pruning (Zhu et al. 2019, Sec. 5.2; the sparsification of deep gradient compression): per tensor,
    ``round(fraction * numel)`` entries of smallest absolute value become 0 (ties broken by position), the
    others are kept as they are. Zhu et al. report that DLG fails once more than about 20% of the entries are
    pruned; on the 8x8 digits it degrades gradually instead (see the module's measurements).

    Args:
        grads: the gradient, a list of tensors (unchanged).
        fraction: the share of entries to zero in each tensor, in ``[0, 1]``.

    Returns:
        A new list of tensors shaped like ``grads``.
    """
    _check_grad_list(grads)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    out = []
    for g in grads:
        flat = g.detach().flatten().clone()
        k = int(round(fraction * flat.numel()))
        flat[flat.abs().argsort(stable=True)[:k]] = 0
        out.append(flat.view_as(g))
    return out


def reconstruction_error(x: torch.Tensor, y: torch.Tensor, reconstruction: Reconstruction, *,
                         data_range: float = 1.0) -> ReconstructionError:
    """MSE, PSNR and label accuracy of a :class:`Reconstruction` against the private batch.

    A gradient does not say in which order the batch's examples were, so each private example is matched to a
    distinct reconstruction minimising the total MSE (the Hungarian algorithm; trivial for a batch of one).
    PSNR is ``10 log10(data_range^2 / mse)`` per example, then averaged.

    Args:
        x: the private inputs ``(B, ...)``.
        y: their integer labels ``(B,)``.
        reconstruction: the attack's output, with ``B`` examples of the same shape.
        data_range: the inputs' range (max - min), > 0; 1 for images in ``[0, 1]``.

    Returns:
        A :class:`ReconstructionError`.
    """
    if not isinstance(reconstruction, Reconstruction):
        raise TypeError(f"reconstruction must be a Reconstruction, got {type(reconstruction).__name__}")
    x_hat = reconstruction.x
    if not isinstance(x, torch.Tensor) or x.shape != x_hat.shape:
        raise ValueError(f"x must have the reconstruction's shape {tuple(x_hat.shape)}, "
                         f"got {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(getattr(y, 'shape', ()))}")
    check_positive("data_range", data_range)
    from scipy.optimize import linear_sum_assignment

    pair = ((x.detach().flatten(1)[:, None, :].to(x_hat) - x_hat.flatten(1)[None]) ** 2).mean(-1)  # (B, B)
    _, order = linear_sum_assignment(pair.cpu().double().numpy())
    mse = pair[torch.arange(len(order)), torch.as_tensor(order)]
    psnr = 10 * torch.log10(data_range ** 2 / mse.double())
    labels = reconstruction.labels[torch.as_tensor(order)].to(y.device)
    return ReconstructionError(mse=float(mse.mean()), psnr=float(psnr.mean()),
                               label_accuracy=float((labels == y).double().mean()), order=[int(i) for i in order])
