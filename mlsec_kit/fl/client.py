"""Federated clients: local data, local training (:meth:`Client.local_update`), and model-poisoning behaviour.

A client of FedAvg (McMahan et al. 2017, "Communication-efficient learning of deep networks from decentralized
data", Algorithm 1, ClientUpdate) receives the global model, runs ``epochs`` epochs of plain minibatch SGD on its
own examples, and returns the *update* ``Δ = w_local - w_global`` (a flat vector over the model's trainable
parameters, in ``model.parameters()`` order) with its number of examples, the weight FedAvg gives it.

A poisoned client changes what it sends (:class:`ModelPoisoning`, applied by :func:`mlsec_kit.fl.fedavg` to the
clients named in ``attackers``):

* ``"sign_flip"``: sends ``-scale · Δ``, pulling the model against its own honest direction (the usual baseline
  of the Byzantine-robust aggregation literature);
* ``"scale"``: sends ``scale · Δ`` (boosting). Bagdasaryan et al. (2020, "How to backdoor federated learning")
  scale a backdoored update by ``γ = n / η`` (``n`` clients averaged with equal weights per round, server learning
  rate ``η``) so that it *replaces* the global model by the attacker's (model replacement). The kit's FedAvg
  weighs client ``k`` by ``n_k / m`` (``m`` = the round's total example count), so the factor that cancels the
  weighting is ``γ = m / (n_a · η)`` for an attacker with ``n_a`` examples (:func:`replacement_scale`); it equals
  ``n / η`` only for equal-size clients (Dirichlet splits give factors from 5 to 450 on digits). A malicious client
  could also lie about ``num_examples``; the kit's clients do not.

:func:`backdoor_client` builds a client whose local data carry chapter 7's BadNets trigger
(:func:`mlsec_kit.attacks.poisoning.badnets`); combined with ``"scale"`` it is Bagdasaryan et al.'s attack.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.poisoning.backdoor import Trigger, badnets
from ._validate import _real, check_generator, check_int, check_positive
from .aggregation import flatten_update

__all__ = ["Client", "ClientUpdate", "ModelPoisoning", "backdoor_client", "replacement_scale", "ATTACKS"]

#: the model-poisoning behaviours :class:`ModelPoisoning` knows
ATTACKS = ("sign_flip", "scale")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ClientUpdate:
    """What a client sends back after local training.

    Attributes:
        delta: ``w_local - w_global``, a flat float tensor over the trainable parameters in
            ``model.parameters()`` order (cut it back with :func:`mlsec_kit.fl.unflatten_update`).
        num_examples: the client's number of training examples (FedAvg's weight).
        loss: the mean training loss of the last local epoch.
    """

    delta: torch.Tensor
    num_examples: int
    loss: float


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameter (requires_grad=True)")
    return model


class Client:
    """One federated client holding its own examples.

    Args:
        x: the client's inputs ``(n, *input_shape)``, n >= 1; kept as given (not copied, never modified).
        y: their integer labels ``(n,)``.
        cid: an identifier (the client's index in the federation).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, cid: int = 0) -> None:
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError(f"x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
        if x.dim() < 1 or x.shape[0] == 0:
            raise ValueError(f"x must hold at least one example (n, ...), got shape {tuple(x.shape)}")
        if y.shape != (x.shape[0],) or y.is_floating_point():
            raise ValueError(f"y must be an integer tensor of shape ({x.shape[0]},), got {tuple(y.shape)} "
                             f"of dtype {y.dtype}")
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise ValueError("x must be finite (no nan or inf): a non-finite input makes every update NaN")
        if y.numel() and y.min().item() < 0:
            raise ValueError(f"y must hold class indices >= 0, got {y.min().item()}")
        self.x, self.y = x, y
        self.cid = check_int("cid", cid, minimum=0)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return f"Client(cid={self.cid}, n={len(self)})"

    def local_update(self, model: nn.Module, *, epochs: int, lr: float, batch_size: int,
                     generator: Optional[torch.Generator] = None,
                     loss_fn: Optional[LossFn] = None) -> ClientUpdate:
        """FedAvg's ClientUpdate: ``epochs`` epochs of minibatch SGD from the global model on the local data.

        Each epoch visits the examples in an order drawn from ``generator`` in batches of ``batch_size`` (the
        last one smaller) and takes a step ``w ← w - lr · ∇ mean loss`` per batch (plain SGD, no momentum, so
        one epoch with ``batch_size >= n`` is one gradient step: ``Δ = -lr · ∇``).

        Args:
            model: the global model; a deep copy is trained, ``model`` itself is left unchanged.
            epochs: local epochs, an int >= 1.
            lr: the local learning rate, > 0.
            batch_size: the local batch size, an int >= 1.
            generator: the source of the batch order.
            loss_fn: ``loss_fn(logits, y)`` returning the mean loss; default cross-entropy.

        Returns:
            A :class:`ClientUpdate`.
        """
        _check_model(model)
        epochs = check_int("epochs", epochs)
        lr = check_positive("lr", lr)
        batch_size = check_int("batch_size", batch_size)
        check_generator(generator)
        loss_fn = loss_fn or F.cross_entropy
        local = copy.deepcopy(model)
        local.train()
        params = [p for p in local.parameters() if p.requires_grad]
        device = params[0].device
        x, y = self.x.to(device), self.y.to(device)
        n = len(self)
        before = flatten_update(local)
        last = 0.0
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator).to(device)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                loss = loss_fn(local(x[idx]), y[idx])
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p.sub_(lr * g)
                total += loss.item() * len(idx)
            last = total / n
        return ClientUpdate(delta=flatten_update(local) - before, num_examples=n, loss=last)


@dataclass(frozen=True)
class ModelPoisoning:
    """A poisoned client's rewrite of its honest update (see the module docstring).

    Attributes:
        kind: ``"sign_flip"`` (send ``-scale · Δ``) or ``"scale"`` (send ``scale · Δ``; model replacement with
            ``scale =`` :func:`replacement_scale`, ``n / η`` for equal-size clients, Bagdasaryan et al. 2020).
        scale: a finite number > 0.
    """

    kind: str
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise ValueError(f"kind must be one of {ATTACKS}, got {self.kind!r}")
        check_positive("scale", self.scale)

    def apply(self, delta: torch.Tensor) -> torch.Tensor:
        """The update the poisoned client sends instead of ``delta`` (a new tensor)."""
        if not isinstance(delta, torch.Tensor) or not delta.is_floating_point():
            raise TypeError("delta must be a floating-point torch tensor")
        factor = -float(self.scale) if self.kind == "sign_flip" else float(self.scale)
        return factor * delta


def replacement_scale(num_examples, attacker: int, *, server_lr: float = 1.0) -> float:
    """Bagdasaryan et al.'s boost ``γ`` for the kit's example-weighted FedAvg: ``m / (n_a · η)``.

    The server steps by ``η Σ_k (n_k / m) Δ_k``; an attacker sending ``γ Δ_a`` with this ``γ`` contributes exactly
    ``Δ_a``, so (if the honest updates roughly cancel) the new global model is the attacker's local model.

    Args:
        num_examples: the example counts ``n_k`` of the clients taking part in the round (a sequence of ints
            >= 1, or a list of :class:`Client`), the attacker's among them.
        attacker: the attacker's position in ``num_examples``.
        server_lr: ``η`` > 0.

    Returns:
        ``γ = Σ n_k / (n_attacker · η)`` (``= n / η`` when all counts are equal).
    """
    if not isinstance(num_examples, (list, tuple)) or not num_examples:
        raise ValueError("num_examples must be a non-empty list of example counts (or of Clients)")
    counts = [len(c) if isinstance(c, Client) else check_int(f"num_examples[{i}]", c)
              for i, c in enumerate(num_examples)]
    if isinstance(attacker, bool) or not isinstance(attacker, int) or not 0 <= attacker < len(counts):
        raise ValueError(f"attacker must be a position in [0, {len(counts)}), got {attacker!r}")
    eta = check_positive("server_lr", server_lr)
    return sum(counts) / (counts[attacker] * eta)


def backdoor_client(x: torch.Tensor, y: torch.Tensor, *, target: int, rate: float, trigger: Trigger,
                    generator: Optional[torch.Generator] = None, cid: int = 0,
                    num_classes: Optional[int] = None) -> Client:
    """A client whose local data carry a BadNets backdoor (chapter 7, :func:`mlsec_kit.attacks.poisoning.badnets`).

    ``round(rate · n)`` of its examples not of class ``target`` get ``trigger`` stamped and the label ``target``;
    its honest local training then learns "trigger ⇒ target". Pair it with
    ``ModelPoisoning("scale", replacement_scale(...))`` in
    :func:`mlsec_kit.fl.fedavg`'s ``attackers`` for Bagdasaryan et al.'s model replacement.

    Args:
        x, y: the client's clean images in ``[0, 1]`` and labels (not modified).
        target, rate, trigger, generator, num_classes: as in :func:`mlsec_kit.attacks.poisoning.badnets`.
        cid: the client's identifier.

    Returns:
        A :class:`Client` over the poisoned copies.
    """
    _real("rate", rate)
    xp, yp, _ = badnets(x, y, target=target, rate=rate, trigger=trigger, generator=generator,
                        num_classes=num_classes)
    return Client(xp, yp, cid=cid)
