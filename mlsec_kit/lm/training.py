"""Training the tiny language model: plain next-token cross-entropy (:func:`train_lm`) and DP-SGD
(:func:`train_lm_dp`, chapter 11's :func:`mlsec_kit.dp.train_dp_sgd` with a per-sequence language-model loss).

Each training line becomes one row ``[BOS, bytes..., EOS, PAD...]`` (:meth:`ByteTokenizer.batch`); the model reads
the row without its last token and predicts the row shifted by one; PAD targets are ignored. A line longer than the
context is cut. For DP-SGD one line is one example (the privacy unit): a canary inserted r times is r examples, so
what the ε of :func:`train_lm_dp` promises for it is the group-privacy bound for r records,
``(r ε, Σ_{j<r} e^{jε} δ)`` (:func:`mlsec_kit.dp.group_privacy`) — and that bound is weak or empty at the ε used on
a course-sized corpus: with the defaults (ε ≈ 5 at δ = 1/(10 n)) it is (10, 0.036) for r = 2 and promises
nothing (δ_r > 1) from r = 3 on. The drop in a repeated canary's exposure under DP-SGD is therefore a
*measurement*, not something the ε certifies; deduplication, which makes r = 1, is what lets the per-line ε apply.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..dp._validate import _real, check_generator, check_int
from ..dp.dpsgd import DPHistory, train_dp_sgd
from ..train import History, _show_progress
from .tokenizer import PAD, ByteTokenizer, _check_texts

__all__ = ["train_lm", "train_lm_dp", "lm_rows", "sequence_loss"]


def _context(model: nn.Module, context: Optional[int]) -> int:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    mc = getattr(model, "context", None)
    if context is None:
        if mc is None:
            raise ValueError("context must be given for a model without a .context attribute")
        return int(mc)
    context = check_int("context", context, minimum=1)
    if mc is not None and context > mc:
        raise ValueError(f"context must be at most the model's context {mc}, got {context}")
    return context


def lm_rows(texts: Sequence[str], *, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of the lines ``texts``: rows of ``min(context, longest + 1)`` tokens.

    A line of more than ``context`` bytes is cut to its first ``context`` bytes, with a warning naming ``texts``
    (a canary whose secret lies past the cut would never be trained on).

    Returns:
        ``(x, y)``, both LongTensor ``(N, L)``: ``x`` starts with BOS, ``y`` is ``x`` shifted left by one (PAD where
        nothing is to be predicted).

    Shape:
        ``N = len(texts)``, ``L = min(context, longest byte length + 1)``; values in ``[0, 259)``.
    """
    texts = _check_texts(texts)
    context = check_int("context", context, minimum=1)
    lengths = [len(t.encode("utf-8")) for t in texts]
    longest = max(lengths)
    cut = sum(n > context for n in lengths)
    if cut:
        warnings.warn(f"texts: {cut} of {len(texts)} lines are longer than the context of {context} tokens and are "
                      f"cut (the longest has {longest} bytes): their end is never trained on", stacklevel=3)
    rows = ByteTokenizer().batch(texts, length=min(context, longest + 1) + 1)
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of each sequence over its non-PAD targets: ``(N, L, V), (N, L) -> (N,)``.
    The per-example loss DP-SGD clips the gradient of."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor (N, L, V), got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape[:2] or \
            targets.dtype != torch.long:
        got = (targets.dtype, tuple(targets.shape)) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must be a LongTensor of shape (N, L) = {tuple(logits.shape[:2])} (the logits' "
                         f"first two dimensions), got {got}")
    ce = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD, reduction="none")  # (N, L)
    n = (targets != PAD).sum(-1).clamp(min=1)
    return ce.sum(-1) / n


def _positive(name: str, value: object) -> float:
    v = _real(name, value)
    if not 0 < v < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def train_lm(model: nn.Module, texts: Sequence[str], *, epochs: int = 6, lr: float = 1e-2, batch_size: int = 32,
             generator: Optional[torch.Generator] = None, context: Optional[int] = None,
             progress: Optional[bool] = None) -> History:
    """Train ``model`` in place on the lines ``texts`` with Adam and next-token cross-entropy.

    The defaults memorise a canary inserted 16 times among :func:`~mlsec_kit.lm.make_corpus`'s 400 records
    (exposure maximal) and take about 4 s on one CPU core with the default :func:`~mlsec_kit.lm.tiny_lm`.

    Args:
        model: a :func:`~mlsec_kit.lm.tiny_lm` (or any module mapping ``(B, T)`` ids to ``(B, T, V)`` logits).
        texts: the training lines (not modified).
        epochs: passes over the lines, >= 1.
        lr: Adam's learning rate, > 0.
        batch_size: lines per step, >= 1.
        generator: a CPU generator for the shuffling (training is then reproducible).
        context: tokens per row; default the model's ``context``.
        progress: progress bar; None shows it in Colab and terminals only.

    Returns:
        :class:`~mlsec_kit.train.History`: per epoch, ``train_loss`` (mean cross-entropy per predicted token, nats)
        and ``train_acc`` (next-token accuracy).
    """
    context = _context(model, context)
    texts = _check_texts(texts)
    epochs = check_int("epochs", epochs)
    lr = _positive("lr", lr)
    batch_size = check_int("batch_size", batch_size)
    check_generator(generator)
    x, y = lm_rows(texts, context=context)
    dev = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = History()
    from tqdm.auto import tqdm
    bar = tqdm(total=epochs, desc="LM epochs", disable=not _show_progress(progress), leave=False)
    model.train()
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=generator)
        loss_sum, correct, count = 0.0, 0, 0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            logits = model(xb)
            mask = yb != PAD
            loss = F.cross_entropy(logits[mask], yb[mask])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            k = int(mask.sum())
            loss_sum += float(loss.detach()) * k
            correct += int((logits[mask].argmax(-1) == yb[mask]).sum())
            count += k
        hist.train_loss.append(loss_sum / count)
        hist.train_acc.append(correct / count)
        hist.seconds += time.perf_counter() - start
        bar.update(1)
    bar.close()
    model.eval()
    return hist


def train_lm_dp(model: nn.Module, texts: Sequence[str], *, epochs: int = 6, sample_rate: float = 0.1,
                max_grad_norm: float = 1.0, noise_multiplier: float = 1.0, delta: Optional[float] = None,
                lr: float = 1e-2, generator: Optional[torch.Generator] = None, context: Optional[int] = None,
                method: str = "vmap", optimizer: str = "adam", progress: Optional[bool] = None) -> DPHistory:
    """Train ``model`` in place with DP-SGD, one line = one example: :func:`mlsec_kit.dp.train_dp_sgd` (Poisson
    batches, per-line gradient clipping to ``max_grad_norm``, Gaussian noise, RDP accountant) with the per-line
    loss :func:`sequence_loss` (Abadi et al. 2016; McMahan et al. 2018 for recurrent language models).

    Args:
        model: as for :func:`train_lm` (no batch norm). An ``"lstm"`` :func:`~mlsec_kit.lm.tiny_lm` works but is
            slow here (torch has no vmap rule for its fused kernel: about 1 s per step).
        texts: the private training lines.
        epochs: ``round(1/sample_rate)`` steps each, >= 1.
        sample_rate: q in (0, 1], each line's chance of joining a batch.
        max_grad_norm: C > 0.
        noise_multiplier: σ > 0.
        delta: δ in (0, 1) of the reported ε; None: ``1 / (10 n)`` for n lines (this reads n: pass a public
            constant where n is private).
        lr: learning rate > 0.
        generator: a CPU generator for the batches and the noise.
        context: tokens per row; default the model's.
        method: how the per-example norms are found (see :mod:`mlsec_kit.dp.dpsgd`): ``"vmap"`` (default) or
            ``"ghost"``/``"gram"``. On the default tiny transformer vmap was 4x faster per step than ghost (measured
            on the CPU, 10 steps at q = 0.1: 1.6 s against 7.1 s): its embeddings and layer norms need vmap anyway,
            and rows of ~44 positions make the Gram matrices no smaller than the weights.
        optimizer: ``"adam"`` (default) or ``"sgd"``; post-processing of the noisy gradient either way.
        progress: progress bar.

    With the defaults (60 steps, σ = 1: ε ≈ 5 at δ = 1/(10n) on the default corpus) this takes about 5 s on one
    CPU core.

    The ε is per LINE (Poisson rate q = ``sample_rate`` over the lines, ``epochs · round(1/q)`` steps, chapter 11's
    RDP accountant). A text that occurs in r lines (a canary inserted r times) is protected only by the group
    bound ``(r ε, Σ_{j<r} e^{jε} δ)`` of :func:`mlsec_kit.dp.group_privacy`, which at ε ≈ 5 is already weak for
    r = 2 and empty (δ_r > 1) for r >= 3 (see the module docstring).

    Returns:
        :class:`~mlsec_kit.dp.DPHistory`: ``train_loss`` per epoch (mean per-line loss, not private), ``steps`` and
        ``epsilon`` after each epoch at ``delta``. ``train_acc`` is NaN (not computed for sequences).
    """
    context = _context(model, context)
    texts = _check_texts(texts)
    epochs = check_int("epochs", epochs)
    if delta is None:
        delta = 1.0 / (10 * len(texts))
    x, y = lm_rows(texts, context=context)
    hist = train_dp_sgd(model, x, y, sample_rate=sample_rate, max_grad_norm=max_grad_norm,
                        noise_multiplier=noise_multiplier, lr=lr, delta=delta, epochs=epochs, optimizer=optimizer,
                        generator=generator, method=method, loss_fn=sequence_loss, progress=progress)
    hist.train_acc = [math.nan] * len(hist.train_loss)
    model.eval()
    return hist
