"""DP-SGD from scratch: per-example gradients, per-example clipping, Gaussian noise, Poisson sampling.

One step of DP-SGD (Abadi et al. 2016, "Deep learning with differential privacy", Algorithm 1) draws a batch by
Poisson sampling (each of the n records joins independently with probability q), computes each example's
gradient ``g_i``, clips it to L2 norm at most C, sums, adds Gaussian noise ``N(0, σ²C² I)`` and divides by the
*expected* batch size ``qn`` (not the realised one, which is itself private). The sum of clipped gradients has
L2 sensitivity C under add/remove neighbours, so a step is the Poisson-subsampled Gaussian mechanism with noise
multiplier σ, and the accountant (:func:`mlsec_kit.dp.accounting.rdp_epsilon`) composes it over the steps.

* :func:`per_sample_gradients`: every example's gradient at once with ``torch.func`` (``functional_call`` +
  ``grad`` + ``vmap``): a ``(B, *param.shape)`` tensor per parameter.
* :func:`per_sample_norms`: the per-example gradient norms only. ``method="gram"`` is ghost clipping (Li et al.
  2022, "Large language models can be strong differentially private learners"): for a linear or
  convolutional layer with (unfolded) input ``a_i`` of shape ``(p, T)`` and output gradient ``b_i`` of shape
  ``(o, T)`` (T positions: 1 for a linear layer on vectors, the output pixels for a convolution), the example's
  weight gradient is ``b_i a_iᵀ`` and ``‖b_i a_iᵀ‖²_F = Σ_{s,t} (a_iᵀ a_i)_{st} (b_iᵀ b_i)_{st}``, two ``T × T``
  Gram matrices instead of an ``o × p`` gradient. ``method="ghost"`` (the default) chooses per layer, as
  Bu et al. (2022, "Scalable and efficient training of large convolutional neural networks with differential
  privacy", mixed ghost clipping) do: the Gram matrices when ``2T² < p·o``, else that one layer's per-example
  gradient ``b_i a_iᵀ``, reduced to its norm at once (never all layers' together, and never stored). Layers
  other than ``nn.Linear`` and ``nn.Conv2d`` (groups 1, zero padding) fall back to ``vmap`` for their own
  parameters. ``method="vmap"`` materialises every per-example gradient.
* :func:`clip_factors`, :func:`clip_and_sum`: ``min(1, C / (‖g_i‖ + 10⁻⁶))`` per example (Opacus's formula) and
  ``Σ_i factor_i g_i``.
* :func:`dp_sgd_step`: one step, writing ``p.grad``. With the ghost methods the clipped sum of a linear or conv
  layer is ``Σ_i factor_i b_i a_iᵀ``, formed from the same stored inputs and output gradients (book-keeping, Bu et
  al. 2023, "Differentially private optimization on large model at small cost"): the gradient of
  ``Σ_i factor_i loss_i`` that Li et al. (2022) get from a second backward pass, at the cost of one matrix
  product per layer (the layer's ordinary weight-gradient computation with reweighted output gradients). One
  forward and one backward in all, plus vmap for the parameters of other layer types.
* :func:`poisson_batches`, :func:`train_dp_sgd`: the sampler and the training loop, recording ε after each epoch.

Batch normalisation mixes the examples of a batch, so an example's gradient depends on the others and the
sensitivity argument fails: models with it are refused (use ``nn.GroupNorm``). The noise is drawn from the
``generator`` the caller passes, on the generator's device, and moved to the parameters' device: a CPU generator
gives the same noise on CPU and CUDA. The model's own randomness (dropout) uses torch's global generator; with
dropout, the ghost path's vmap fallback layers, and the outputs reported by the vmap path, see other masks.
Ghost norms need each linear/conv layer called once per forward pass and its input and output left unmodified
(no ``inplace=True`` activation right after it): otherwise a ``ValueError`` says to use ``method="vmap"``. Layers
with tied (shared) parameters, and layers whose forward is never called, go to vmap; a layer's weight used
directly (``F.linear(x, layer.weight)``) *besides* a call of the layer is not detected: use ``method="vmap"``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ..train import History, _show_progress, evaluate, make_optimizer
from ._validate import _real, check_delta, check_generator, check_int
from .renyi import rdp_to_dp, subsampled_gaussian_rdp

__all__ = ["per_sample_gradients", "per_sample_norms", "clip_factors", "clip_and_sum", "dp_sgd_step",
           "poisson_batches", "train_dp_sgd", "DPHistory", "StepInfo", "check_dp_model", "METHODS"]

#: how :func:`per_sample_norms` and :func:`dp_sgd_step` get the per-example norms (see the module docstring)
METHODS = ("ghost", "gram", "vmap")
#: added to the norm in the clipping factor, as Opacus does, so that a zero gradient divides safely
CLIP_EPS = 1e-6

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _default_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target, reduction="none")


# ---------------------------------------------------------------------------------------------------- checks

def check_dp_model(model: nn.Module) -> dict[str, nn.Parameter]:
    """The model's trainable parameters by name; refuses models whose per-example gradients are undefined.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: a batch-norm layer (it mixes the examples of a batch: replace it by ``nn.GroupNorm``), or no
            trainable parameter.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f"model has a batch-norm layer ({name or 'the model'}: {type(m).__name__}); it normalises each "
                "example with statistics of the whole batch, so per-example gradients (and DP-SGD's sensitivity "
                "bound) are undefined: replace it by nn.GroupNorm(G, C) (G groups dividing the C channels) or "
                "nn.LayerNorm")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameter (requires_grad=True)")
    return params


def _check_data(x: torch.Tensor, y: torch.Tensor) -> None:
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(v).__name__}")
        if v.dim() == 0:
            raise ValueError(f"{name} must have a leading batch dimension, got a scalar")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")


def _positive(name: str, value: object) -> float:
    v = _real(name, value)
    if not 0 < v < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _check_noise(noise_multiplier: object, allow_no_noise: bool) -> float:
    v = _real("noise_multiplier", noise_multiplier)
    if v == 0 and allow_no_noise:
        return 0.0
    if not 0 < v < math.inf:
        hint = "" if v != 0 else " (pass allow_no_noise=True for the non-private clipped-SGD baseline, ε = inf)"
        raise ValueError(f"noise_multiplier must be a finite number > 0, got {noise_multiplier!r}{hint}")
    return v


def _check_sample_rate(sample_rate: object) -> float:
    v = _real("sample_rate", sample_rate)
    if not 0 < v <= 1:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
    return v


def _check_method(method: object) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method  # type: ignore[return-value]


def _model_device(params: Mapping[str, torch.Tensor]) -> torch.device:
    return next(iter(params.values())).device


# ------------------------------------------------------------------------------------------ per-example grads

def _vmap_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per-example gradients of the parameters ``names``; every other parameter and buffer is held fixed."""
    named = dict(model.named_parameters())
    wrt = {n: named[n].detach() for n in names}
    fixed = {n: p.detach() for n, p in named.items() if n not in wrt}
    fixed.update(dict(model.named_buffers()))
    if x.shape[0] == 0:
        return {n: torch.zeros((0,) + tuple(p.shape), dtype=p.dtype, device=p.device) for n, p in wrt.items()}

    def loss_one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, fixed), (xi.unsqueeze(0),))
        return loss_fn(out, yi.unsqueeze(0)).sum()

    # torch's functional_call restores a module used twice (tied weights) with plain tensors in place of its
    # Parameters (torch 2.x); the caller's model must come back unchanged, so its parameters are put back here
    saved = [(m, dict(m._parameters)) for m in model.modules()]
    try:
        return vmap(grad(loss_one), in_dims=(None, 0, 0), randomness="different")(wrt, x, y)
    finally:
        for m, ps in saved:
            for k, v in ps.items():
                if m._parameters.get(k) is not v:
                    m._parameters[k] = v


def per_sample_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         loss_fn: Optional[LossFn] = None) -> dict[str, torch.Tensor]:
    """Every example's gradient of its own loss, for each trainable parameter, with ``torch.func``.

    ``vmap(grad(loss of one example))`` over the batch: the same numbers as B separate backward passes on
    batches of one (the model is called on ``x[i:i+1]``), in one vectorised pass.

    Args:
        model: the network; its parameters are read, not changed.
        x: inputs, on the model's device.
        y: targets.
        loss_fn: ``loss_fn(output, target)`` returning one loss per example, shape ``(B,)``; default cross-entropy
            with ``reduction="none"``.

    Returns:
        ``{parameter name: tensor (B, *param.shape)}`` for the parameters with ``requires_grad``.

    Shape:
        ``x`` ``(B, *input_shape)``, ``y`` ``(B, ...)``.
    """
    params = check_dp_model(model)
    _check_data(x, y)
    return _vmap_grads(model, x, y, loss_fn or _default_loss, list(params))


def _flat_norms(per_sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The L2 norm of each example's gradient over all the given parameters together."""
    # the size of one example's gradient spelt out: reshape(B, -1) is ambiguous for an empty batch (B = 0)
    sq = [g.reshape(g.shape[0], math.prod(g.shape[1:])).pow(2).sum(1) for g in per_sample.values()]
    return torch.stack(sq).sum(0).sqrt()


# ------------------------------------------------------------------------------------------------ ghost norms

def _ghost_layer(m: nn.Module) -> bool:
    """Whether the norms of ``m``'s own parameters come from its activations and output gradients."""
    if type(m) is nn.Linear:
        return True
    if type(m) is nn.Conv2d:
        return m.groups == 1 and m.padding_mode == "zeros" and m.padding != "same"
    return False


def _unfold_input(m: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """The layer input as ``(B, p, T)``: p inputs at each of T positions (a conv's patches via ``unfold``)."""
    if isinstance(m, nn.Conv2d):
        padding = (0, 0) if m.padding == "valid" else m.padding
        return F.unfold(a, m.kernel_size, dilation=m.dilation, padding=padding, stride=m.stride)
    return a.reshape(a.shape[0], -1, a.shape[-1]).transpose(1, 2)


def _output_grad(m: nn.Module, b: torch.Tensor) -> torch.Tensor:
    """The output gradient as ``(B, o, T)``."""
    if isinstance(m, nn.Conv2d):
        return b.reshape(b.shape[0], b.shape[1], -1)
    return b.reshape(b.shape[0], -1, b.shape[-1]).transpose(1, 2)


#: the Gram trick works on this many (example, position, position) entries at a time, to bound its memory
_GRAM_CHUNK = 1 << 24


def _sq_norms(m: nn.Module, a: torch.Tensor, b: torch.Tensor, gram: Optional[bool]) -> torch.Tensor:
    """Squared per-example gradient norm of the trainable weight and bias of one linear or conv layer, from its
    unfolded input ``a`` ``(B, p, T)`` and output gradient ``b`` ``(B, o, T)``: example i's weight gradient is
    ``b_i a_iᵀ`` ``(o, p)``, its bias gradient ``b_i 1``.

    ``gram``: True for the Gram-matrix trick, False for the layer's per-example gradient, None to choose the
    cheaper (Bu et al. 2022: Gram when 2T² < p·o).
    """
    B, p, T = a.shape
    o = b.shape[1]
    sq = torch.zeros(B, dtype=b.dtype, device=b.device)
    if m.weight.requires_grad:
        if T == 1:
            sq = sq + a[:, :, 0].pow(2).sum(1) * b[:, :, 0].pow(2).sum(1)
        elif gram or (gram is None and 2 * T * T < p * o):
            step = max(1, _GRAM_CHUNK // (T * T))
            parts = []
            for i in range(0, B, step):
                ai, bi = a[i:i + step], b[i:i + step]
                aa = torch.bmm(ai.transpose(1, 2), ai)  # (b, T, T)
                bb = torch.bmm(bi.transpose(1, 2), bi)
                parts.append((aa * bb).sum((1, 2)))
            sq = sq + torch.cat(parts)
        else:
            sq = sq + torch.bmm(b, a.transpose(1, 2)).pow(2).sum((1, 2))  # (B, o, p), reduced at once
    if m.bias is not None and m.bias.requires_grad:
        sq = sq + b.sum(2).pow(2).sum(1)
    return sq


def _layer_sq_norms(m: nn.Module, a: torch.Tensor, b: torch.Tensor, gram: Optional[bool]) -> torch.Tensor:
    """:func:`_sq_norms` from the layer's raw input and output gradient."""
    return _sq_norms(m, _unfold_input(m, a).to(b.dtype), _output_grad(m, b), gram)


class _Captured(NamedTuple):
    inputs: torch.Tensor
    output: torch.Tensor
    in_version: int
    out_version: int


class _Capture:
    """Forward hooks on the ghost layers: each layer's input (detached) and output (to take gradients at)."""

    def __init__(self, layers: Sequence[nn.Module]):
        self.seen: dict[nn.Module, _Captured] = {}
        self.handles = [m.register_forward_hook(self._hook) for m in layers]

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if module in self.seen:
            raise ValueError(f"a {type(module).__name__} layer is called more than once in one forward pass; "
                             "ghost norms need one call per layer: use method='vmap'")
        a = inputs[0]
        self.seen[module] = _Captured(a.detach(), output, a._version, output._version)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def check_versions(self) -> None:
        for m, c in self.seen.items():
            if c.inputs._version != c.in_version or c.output._version != c.out_version:
                raise ValueError(f"the input or output of a {type(m).__name__} layer is modified in place (e.g. "
                                 "nn.ReLU(inplace=True)) after the layer; ghost norms need it unchanged: use "
                                 "inplace=False or method='vmap'")


class _Tape(NamedTuple):
    module: nn.Module
    a: torch.Tensor  # the layer's input, as the layer saw it
    b: torch.Tensor  # the gradient of the summed loss at the layer's output


class _GhostPass(NamedTuple):
    losses: torch.Tensor   # (B,), detached
    output: torch.Tensor   # model output, detached
    norms: torch.Tensor    # (B,)
    tapes: list            # one _Tape per linear/conv layer reached by the loss
    rest: dict             # per-example gradients (vmap) of the other trainable parameters


def _ghost_pass(model: nn.Module, params: Mapping[str, nn.Parameter], x: torch.Tensor, y: torch.Tensor,
                loss_fn: LossFn, gram: Optional[bool]) -> _GhostPass:
    """Forward once with hooks, one backward to the layers' outputs only (no weight gradient is formed), the
    per-layer norms from the tapes, and vmap for the parameters of other layers."""
    owners: dict[int, int] = {}
    for m in model.modules():
        for p in m.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    # a parameter shared between layers (tied weights) gets its gradient from several places: vmap handles it
    layers = [m for m in model.modules()
              if _ghost_layer(m) and any(p.requires_grad for p in m.parameters(recurse=False))
              and all(owners[id(p)] == 1 for p in m.parameters(recurse=False))]
    capture = _Capture(layers)
    try:
        with torch.enable_grad():
            output = model(x)
    finally:
        capture.remove()
    capture.check_versions()
    # a layer whose forward was never called (its weight used some other way, or not at all) goes to vmap too
    covered = {id(p) for m in capture.seen for p in m.parameters(recurse=False)}
    rest = [n for n, p in params.items() if id(p) not in covered]
    losses = loss_fn(output, y)
    if losses.shape != (x.shape[0],):
        raise ValueError(f"loss_fn must return one loss per example, shape ({x.shape[0]},), got "
                         f"{tuple(losses.shape)} (use reduction='none')")
    used = [(m, c) for m, c in capture.seen.items() if c.output.requires_grad]
    sq = torch.zeros(x.shape[0], dtype=losses.dtype, device=losses.device)
    tapes = []
    if used:
        # the gradient of Σ_i loss_i at a layer's output, row i, is example i's own (examples do not interact)
        out_grads = torch.autograd.grad(losses.sum(), [c.output for _, c in used], allow_unused=True)
        for (m, c), b in zip(used, out_grads):
            if b is not None:
                b = b.detach()
                sq = sq + _layer_sq_norms(m, c.inputs, b, gram).to(sq.dtype)
                tapes.append(_Tape(m, c.inputs, b))
    rest_grads = _vmap_grads(model, x, y, loss_fn, rest) if rest else {}
    if rest_grads:
        sq = sq + _flat_norms(rest_grads).pow(2).to(sq.dtype)
    return _GhostPass(losses.detach(), output.detach(), sq.sqrt(), tapes, rest_grads)


def per_sample_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, method: str = "ghost",
                     loss_fn: Optional[LossFn] = None) -> torch.Tensor:
    """Each example's gradient norm ``‖∇_θ loss_i‖₂`` over all trainable parameters together.

    Args:
        model: the network (no batch norm); nothing in it is changed, ``p.grad`` included.
        x: inputs, on the model's device.
        y: targets.
        method: ``"ghost"`` (ghost norms per layer, Gram trick or the one layer's gradient, whichever is cheaper;
            Bu et al. 2022), ``"gram"`` (the Gram trick for every linear and conv layer; Li et al. 2022) or
            ``"vmap"`` (materialise every per-example gradient). All three give the same numbers up to rounding.
        loss_fn: per-example loss ``(output, target) -> (B,)``; default cross-entropy.

    Returns:
        ``(B,)`` tensor of norms.

    Shape:
        ``x`` ``(B, *input_shape)``, ``y`` ``(B, ...)`` -> ``(B,)``, values >= 0, on the model's device.
    """
    params = check_dp_model(model)
    _check_data(x, y)
    method = _check_method(method)
    loss_fn = loss_fn or _default_loss
    if method == "vmap" or x.shape[0] == 0:
        return _flat_norms(_vmap_grads(model, x, y, loss_fn, list(params))).detach()
    return _ghost_pass(model, params, x, y, loss_fn, gram=True if method == "gram" else None).norms


# --------------------------------------------------------------------------------------------------- clipping

def clip_factors(norms: torch.Tensor, *, max_grad_norm: float) -> torch.Tensor:
    """Per-example clipping factors ``min(1, C / (‖g_i‖ + 10⁻⁶))`` (as Opacus), so ``‖factor_i g_i‖ < C``.

    Args:
        norms: per-example gradient norms, ``(B,)``, >= 0.
        max_grad_norm: the clipping bound C > 0.

    Returns:
        The factors.

    Shape:
        ``(B,)`` -> ``(B,)``, values in (0, 1].
    """
    c = _positive("max_grad_norm", max_grad_norm)
    if not isinstance(norms, torch.Tensor) or norms.dim() != 1:
        raise ValueError(f"norms must be a 1-D tensor of per-example norms, got {type(norms).__name__}"
                         + (f" of shape {tuple(norms.shape)}" if isinstance(norms, torch.Tensor) else ""))
    return (c / (norms + CLIP_EPS)).clamp(max=1.0)


def clip_and_sum(per_sample_grads: Mapping[str, torch.Tensor], *, max_grad_norm: float,
                 norms: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
    """``Σ_i min(1, C / (‖g_i‖ + 10⁻⁶)) g_i``: each example's whole gradient (all parameters together) clipped to
    norm C, then summed over the batch. The sum changes by at most C when one example is added or removed.

    Args:
        per_sample_grads: ``{name: (B, *shape)}`` as from :func:`per_sample_gradients`; not modified.
        max_grad_norm: C > 0.
        norms: the per-example norms if already known (e.g. from :func:`per_sample_norms`); else computed from
            ``per_sample_grads``.

    Returns:
        ``{name: (*shape)}`` summed clipped gradients.

    Shape:
        ``{name: (B, *shape)}`` -> ``{name: (*shape)}``; the concatenated result has norm <= B·C.
    """
    if not isinstance(per_sample_grads, Mapping) or not per_sample_grads:
        raise ValueError("per_sample_grads must be a non-empty dict {name: tensor (B, *param.shape)}")
    sizes = {g.shape[0] for g in per_sample_grads.values()}
    if len(sizes) != 1:
        raise ValueError(f"per_sample_grads must share the batch dimension, got sizes {sorted(sizes)}")
    if norms is None:
        norms = _flat_norms(per_sample_grads)
    elif tuple(norms.shape) != (sizes.pop(),):
        raise ValueError(f"norms must have shape (B,) matching per_sample_grads, got {tuple(norms.shape)}")
    f = clip_factors(norms, max_grad_norm=max_grad_norm)
    return {n: torch.einsum("b,b...->...", f.to(g.dtype), g) for n, g in per_sample_grads.items()}


# ------------------------------------------------------------------------------------------------------- step

class StepInfo(NamedTuple):
    """What one :func:`dp_sgd_step` saw (all detached): per-example losses ``(B,)``, model outputs ``(B, ...)``
    and per-example gradient norms before clipping ``(B,)``. None of it is private: do not release it."""

    losses: torch.Tensor
    outputs: torch.Tensor
    norms: torch.Tensor


def _noise_like(p: torch.Tensor, std: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    dev = generator.device if generator is not None else p.device
    z = torch.normal(0.0, std, size=tuple(p.shape), generator=generator, device=dev, dtype=p.dtype)
    return z.to(p.device)


def _clipped_sum(model: nn.Module, params: Mapping[str, nn.Parameter], x: torch.Tensor, y: torch.Tensor, *,
                 max_grad_norm: float, method: str, loss_fn: LossFn) -> tuple[dict[str, torch.Tensor], StepInfo]:
    """``Σ_i clip(g_i)`` per parameter, and what the step saw."""
    if x.shape[0] == 0:
        zeros = {n: torch.zeros_like(p) for n, p in params.items()}
        empty = torch.zeros(0, device=_model_device(params))
        return zeros, StepInfo(empty, empty, empty)
    if method == "vmap":
        grads = _vmap_grads(model, x, y, loss_fn, list(params))
        norms = _flat_norms(grads)
        with torch.no_grad():
            outputs = model(x)
            losses = loss_fn(outputs, y)
        return clip_and_sum(grads, max_grad_norm=max_grad_norm, norms=norms), StepInfo(losses, outputs, norms)
    ghost = _ghost_pass(model, params, x, y, loss_fn, gram=True if method == "gram" else None)
    f = clip_factors(ghost.norms, max_grad_norm=max_grad_norm)
    # Σ_i f_i g_i without per-example gradients: a layer's weight gradient is Σ_i b_i a_iᵀ, so the clipped sum
    # is Σ_i (f_i b_i) a_iᵀ over the stored tapes (book-keeping, Bu et al. 2023); it equals the gradient of
    # Σ_i f_i loss_i that Li et al. (2022) get from a second backward pass, without that pass
    names = {id(p): n for n, p in params.items()}
    out = {n: torch.zeros_like(p) for n, p in params.items()}
    for m, a, b in ghost.tapes:
        fb = b * f.to(b.dtype).reshape((-1,) + (1,) * (b.dim() - 1))
        if isinstance(m, nn.Conv2d):   # the layer's own weight gradient with the output gradient reweighted
            w = (torch.nn.grad.conv2d_weight(a.to(fb.dtype), m.weight.shape, fb, stride=m.stride,
                                             padding=0 if m.padding == "valid" else m.padding, dilation=m.dilation)
                 if m.weight.requires_grad else None)
            bias = fb.sum((0, 2, 3))
        else:
            fb2 = fb.reshape(-1, fb.shape[-1])
            w = fb2.t() @ a.reshape(-1, a.shape[-1]).to(fb.dtype) if m.weight.requires_grad else None
            bias = fb2.sum(0)
        if w is not None:
            out[names[id(m.weight)]] = w.reshape(m.weight.shape).to(m.weight.dtype)
        if m.bias is not None and m.bias.requires_grad:
            out[names[id(m.bias)]] = bias.to(m.bias.dtype)
    for n, g in ghost.rest.items():
        out[n] = torch.einsum("b,b...->...", f.to(g.dtype), g)
    return out, StepInfo(ghost.losses, ghost.output, ghost.norms)


def dp_sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, max_grad_norm: float,
                noise_multiplier: float, expected_batch_size: float, generator: Optional[torch.Generator] = None,
                method: str = "ghost", loss_fn: Optional[LossFn] = None, allow_no_noise: bool = False) -> StepInfo:
    """One DP-SGD gradient (Abadi et al. 2016, Alg. 1): sets ``p.grad = (Σ_i clip_C(g_i) + N(0, σ²C² I)) / B̄``
    for every trainable parameter; the caller's optimiser then steps.

    The batch ``(x, y)`` should come from Poisson sampling (:func:`poisson_batches`) and ``B̄ = q n`` is its
    expected size; it may be empty (then the gradient is the noise alone). Each example's gradient over all
    parameters together is clipped (one norm per example, not per layer).

    Args:
        model: the network, on any device; ``p.grad`` is overwritten (not accumulated).
        x, y: the batch, on the model's device.
        max_grad_norm: the clipping bound C > 0.
        noise_multiplier: σ > 0, the noise standard deviation in units of C; 0 only with ``allow_no_noise``.
        expected_batch_size: B̄ > 0, the divisor.
        generator: draws the noise (on its own device, then moved to the parameters'); None: torch's default.
        method: ``"ghost"``, ``"gram"`` or ``"vmap"`` (how the per-example norms are found; see
            :func:`per_sample_norms`). The gradient written is the same up to rounding.
        loss_fn: per-example loss ``(output, target) -> (B,)``; default cross-entropy.
        allow_no_noise: accept ``noise_multiplier=0`` (clipping without noise: not private).

    Returns:
        :class:`StepInfo` of the batch (losses, outputs, norms before clipping).

    Shape:
        ``x`` ``(B, *input_shape)`` with B >= 0, ``y`` ``(B, ...)``; each ``p.grad`` gets ``p``'s shape, dtype and
        device.
    """
    params = check_dp_model(model)
    _check_data(x, y)
    c = _positive("max_grad_norm", max_grad_norm)
    sigma = _check_noise(noise_multiplier, allow_no_noise)
    bbar = _positive("expected_batch_size", expected_batch_size)
    check_generator(generator)
    method = _check_method(method)
    sums, info = _clipped_sum(model, params, x, y, max_grad_norm=c, method=method, loss_fn=loss_fn or _default_loss)
    for n, p in params.items():
        g = sums[n].detach()
        if sigma > 0:
            g = g + _noise_like(p, sigma * c, generator)
        p.grad = g / bbar
    return info


# ---------------------------------------------------------------------------------------------------- sampler

def poisson_batches(n: int, *, sample_rate: float, steps: int,
                    generator: Optional[torch.Generator] = None) -> Iterator[torch.Tensor]:
    """Indices of ``steps`` Poisson-sampled batches: each of the n records joins each batch independently with
    probability q, so a batch's size is Binomial(n, q) (mean qn) and may be 0. This is the sampling the RDP
    accountant of the subsampled Gaussian assumes (fixed-size shuffled batches are a different mechanism).

    Args:
        n: number of records, >= 1.
        sample_rate: q in (0, 1].
        steps: number of batches, >= 0.
        generator: a CPU generator for the draws.

    Returns:
        An iterator of sorted int64 index tensors (on the CPU).

    Shape:
        each batch ``(B_t,)``, B_t ~ Binomial(n, q), values in [0, n), distinct.
    """
    n = check_int("n", n, minimum=1)
    q = _check_sample_rate(sample_rate)
    steps = check_int("steps", steps, minimum=0)
    check_generator(generator)
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got one on {generator.device}")

    def batches() -> Iterator[torch.Tensor]:
        for _ in range(steps):
            yield torch.nonzero(torch.rand(n, generator=generator) < q).squeeze(1)

    return batches()


# ------------------------------------------------------------------------------------------------ accounting

def _rdp_epsilon_fallback(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """RDP of the Poisson-subsampled Gaussian at integer orders 2..256, composed, Balle et al. (2020) conversion.
    Used only while :mod:`mlsec_kit.dp.accounting` is absent; it can only be larger than the fractional-order one
    where the best order is fractional."""
    orders = np.arange(2, 257, dtype=np.float64)
    rdp = steps * subsampled_gaussian_rdp(q=sample_rate, sigma=noise_multiplier, orders=orders)
    return rdp_to_dp(orders=orders, rdp=rdp, delta=delta, method="balle2020")[0]


def _epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    if steps == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    try:
        from .accounting import rdp_epsilon
    except ModuleNotFoundError as e:  # the accountant module is written separately; only its absence is caught
        if e.name != __name__.rsplit(".", 1)[0] + ".accounting":
            raise
        return _rdp_epsilon_fallback(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps,
                                     delta=delta)
    return float(rdp_epsilon(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps, delta=delta))


# ----------------------------------------------------------------------------------------------- training loop

@dataclass
class DPHistory(History):
    """A :class:`~mlsec_kit.train.History` of a DP-SGD run plus its privacy: after each epoch (``round(1/q)``
    steps, and after a last partial one) the steps taken so far and the ε spent at ``delta`` (RDP accountant,
    Poisson sampling, add/remove neighbours). ``train_loss``/``train_acc`` are means over the examples of that
    epoch's Poisson batches before each update (NaN if all were empty); they are not private."""

    steps: list[int] = field(default_factory=list)
    epsilon: list[float] = field(default_factory=list)
    delta: float = 0.0
    noise_multiplier: float = 0.0
    sample_rate: float = 0.0
    max_grad_norm: float = 0.0


def train_dp_sgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sample_rate: float, max_grad_norm: float,
                 noise_multiplier: float, lr: float, delta: float, steps: Optional[int] = None,
                 epochs: Optional[int] = None, optimizer: str = "sgd", generator: Optional[torch.Generator] = None,
                 eval_data: Optional[tuple[torch.Tensor, torch.Tensor]] = None, method: str = "ghost",
                 loss_fn: Optional[LossFn] = None, allow_no_noise: bool = False,
                 progress: Optional[bool] = None) -> DPHistory:
    """Train ``model`` in place with DP-SGD: Poisson batches of rate q, :func:`dp_sgd_step`, then the optimiser.

    Args:
        model: a classifier (no batch norm) on any device; ``x``, ``y`` are moved there batch by batch.
        x, y: the private training data (n rows); not modified.
        sample_rate: q in (0, 1]; the expected batch size is qn (n = ``len(x)`` is taken as public, as in Opacus).
        max_grad_norm: C > 0.
        noise_multiplier: σ > 0 (0 only with ``allow_no_noise``, giving ε = inf).
        lr: learning rate > 0.
        delta: δ in (0, 1) at which ε is reported (customarily below 1/n).
        steps, epochs: how long, exactly one of them; an epoch is ``round(1/q)`` steps (n examples expected).
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adam"``, from :func:`mlsec_kit.train.make_optimizer`; either is
            post-processing of the noisy gradients.
        generator: a CPU generator for the batches and the noise (seeded: reproducible up to dropout).
        eval_data: ``(x_test, y_test)``: test loss and accuracy recorded after each epoch.
        method: ``"ghost"``, ``"gram"`` or ``"vmap"`` (see :func:`per_sample_norms`).
        loss_fn: per-example loss ``(output, target) -> (B,)``; default cross-entropy.
        allow_no_noise: allow σ = 0.
        progress: progress bar; None shows it in Colab and terminals only.

    Returns:
        :class:`DPHistory`.

    Shape:
        ``x`` ``(n, *input_shape)``, ``y`` ``(n,)`` class indices (or what ``loss_fn`` takes).
    """
    params = check_dp_model(model)
    _check_data(x, y)
    q = _check_sample_rate(sample_rate)
    c = _positive("max_grad_norm", max_grad_norm)
    sigma = _check_noise(noise_multiplier, allow_no_noise)
    _positive("lr", lr)
    delta = check_delta(delta)
    method = _check_method(method)
    check_generator(generator)
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps and epochs")
    n = x.shape[0]
    if n == 0:
        raise ValueError("x is empty")
    per_epoch = max(1, round(1 / q))
    total = check_int("steps", steps, minimum=1) if steps is not None else check_int("epochs", epochs) * per_epoch
    if eval_data is not None:
        if not (isinstance(eval_data, (tuple, list)) and len(eval_data) == 2):
            raise ValueError("eval_data must be a pair (x_test, y_test)")
        _check_data(*eval_data)
    dev = _model_device(params)
    opt = make_optimizer(model, optimizer=optimizer, lr=lr)
    history = DPHistory(delta=delta, noise_multiplier=sigma, sample_rate=q, max_grad_norm=c)
    loss_fn = loss_fn or _default_loss
    from tqdm.auto import tqdm
    bar = tqdm(total=total, desc="DP-SGD steps", disable=not _show_progress(progress), leave=False)
    loss_sum, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    model.train()
    for t, idx in enumerate(poisson_batches(n, sample_rate=q, steps=total, generator=generator), start=1):
        i = idx.to(x.device)
        xb, yb = x[i].to(dev), y[i].to(dev)
        info = dp_sgd_step(model, xb, yb, max_grad_norm=c, noise_multiplier=sigma, expected_batch_size=q * n,
                           generator=generator, method=method, loss_fn=loss_fn, allow_no_noise=allow_no_noise)
        opt.step()
        loss_sum += float(info.losses.sum())
        if info.outputs.dim() == 2 and len(yb):
            correct += int((info.outputs.argmax(1) == yb).sum())
        seen += len(yb)
        bar.update(1)
        if t % per_epoch == 0 or t == total:
            history.train_loss.append(loss_sum / seen if seen else math.nan)
            history.train_acc.append(correct / seen if seen else math.nan)
            history.seconds += time.perf_counter() - start
            history.steps.append(t)
            history.epsilon.append(_epsilon(noise_multiplier=sigma, sample_rate=q, steps=t, delta=delta))
            if eval_data is not None:
                xt, yt = eval_data
                ev = evaluate(model, [(xt[j:j + 512], yt[j:j + 512]) for j in range(0, len(xt), 512)])
                history.test_loss.append(ev.loss)
                history.test_acc.append(ev.accuracy)
                model.train()
            loss_sum, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    bar.close()
    for p in params.values():
        p.grad = None
    model.eval()
    return history
