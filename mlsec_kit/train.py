"""Training and evaluation loops: the plain loop every later chapter modifies (adversarial training,
DP-SGD, poisoning), written once here.

Batches go to the model's device (``DataSplit.to(device)`` puts a whole small dataset there up front).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["History", "Evaluation", "fit", "evaluate", "predict", "accuracy", "make_optimizer"]

OPTIMIZERS = ("adam", "sgd")


@dataclass
class History:
    """Per-epoch metrics of a :func:`fit` run; the ``test_*`` lists stay empty without ``eval_loader``.

    ``seconds`` is the wall-clock time spent training (evaluation excluded), so training loops can be compared;
    it is left out of ``==``, so two identical runs compare equal.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: float = field(default=0.0, compare=False)  # timing varies run to run: two equal runs compare equal

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict[str, list[float]]:
        return {k: v for k, v in asdict(self).items() if v and isinstance(v, list)}


@dataclass(frozen=True)
class Evaluation:
    """Mean cross-entropy loss and accuracy (a fraction in ``[0, 1]``) over a dataset."""

    loss: float
    accuracy: float


def _show_progress(progress: Optional[bool]) -> bool:
    """Progress bars show in Colab and terminals, and stay quiet in tests and in the book build."""
    if progress is not None:
        return bool(progress)
    env = os.environ.get("MLSEC_PROGRESS")
    if env is not None:
        return env.strip().lower() not in ("0", "false", "no", "")
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False
    return "google.colab" in sys.modules or sys.stderr.isatty()


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def make_optimizer(model: nn.Module, *, optimizer: str = "adam", lr: float = 1e-3,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam or SGD (momentum 0.9) over the model's parameters, with checked hyper-parameters."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)


def fit(model: nn.Module, train_loader: Iterable, *, epochs: int, lr: float = 1e-3, optimizer: str = "adam",
        weight_decay: float = 0.0, eval_loader: Optional[Iterable] = None,
        progress: Optional[bool] = None) -> History:
    """Train ``model`` with cross-entropy and return its per-epoch :class:`History`.

    Args:
        model: a classifier returning logits ``(N, K)``; trained in place on its own device.
        train_loader: yields ``(X, y)`` batches, e.g. ``DataSplit.train_loader()``.
        epochs: passes over the training data, at least 1.
        lr: learning rate, > 0.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        weight_decay: L2 penalty, >= 0.
        eval_loader: when given, test loss and accuracy are recorded after every epoch.
        progress: show a progress bar; ``None`` shows it in Colab and terminals only.

    Returns:
        A :class:`History`; ``train_loss``/``train_acc`` are running means over each epoch's batches,
        ``seconds`` the training time.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    opt = make_optimizer(model, optimizer=optimizer, lr=lr, weight_decay=weight_decay)
    dev = _model_device(model)
    history = History()
    bar = tqdm(range(epochs), desc="epochs", disable=not _show_progress(progress), leave=False)
    for _ in bar:
        start = time.perf_counter()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for X, y in train_loader:
            X, y = X.to(dev), y.to(dev)
            opt.zero_grad()
            logits = model(X)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            opt.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        _record_epoch(history, model, total_loss=total_loss, correct=correct, seen=seen, start=start,
                      eval_loader=eval_loader)
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}")
    model.eval()
    return history


def _record_epoch(history: History, model: nn.Module, *, total_loss: float, correct: int, seen: int, start: float,
                  eval_loader: Optional[Iterable]) -> None:
    """Append an epoch's running means to ``history``, add the time since ``start``, then evaluate if asked."""
    if seen == 0:
        raise ValueError("train_loader yielded no batches")
    history.train_loss.append(total_loss / seen)
    history.train_acc.append(correct / seen)
    history.seconds += time.perf_counter() - start
    if eval_loader is not None:
        ev = evaluate(model, eval_loader)
        history.test_loss.append(ev.loss)
        history.test_acc.append(ev.accuracy)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable) -> Evaluation:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) over the batches of ``loader``."""
    model.eval()
    dev = _model_device(model)
    total_loss, correct, seen = 0.0, 0, 0
    for X, y in loader:
        X, y = X.to(dev), y.to(dev)
        logits = model(X)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    if seen == 0:
        raise ValueError("loader yielded no batches")
    return Evaluation(loss=total_loss / seen, accuracy=correct / seen)


@torch.no_grad()
def predict(model: nn.Module, X: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) on ``X``, computed in batches.

    Shape:
        ``X``: ``(N, *input_shape)`` on the model's device → logits ``(N, K)``.
    """
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch tensor, got {type(X).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    model.eval()
    return torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``X`` that ``model`` labels correctly, in ``[0, 1]``."""
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y must have the same number of rows, got {X.shape[0]} and {y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError("X is empty")
    return (predict(model, X).argmax(1) == y).float().mean().item()
