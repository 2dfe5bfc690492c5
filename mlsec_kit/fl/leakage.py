"""From a federated client's update to chapter 9's gradient-leakage attacks (DLG / iDLG).

A client that trains one local step of plain SGD on a batch (one epoch with ``batch_size >= n``) sends
``Δ = -lr · ∇``: the server, or anyone who sees the update, holds the client's gradient up to a known factor.
:func:`update_to_gradients` turns the update back into per-parameter gradients in the form
:func:`mlsec_kit.attacks.inference.dlg` and :func:`~mlsec_kit.attacks.inference.idlg` take, so an update of a
single example can be inverted (Zhu, Liu & Han 2019). With several local steps the update is a sum of gradients at
different points and the identity is only approximate; secure aggregation hides single updates from the server.
"""
from __future__ import annotations

import torch
from torch import nn

from ._validate import check_positive
from .aggregation import unflatten_update
from .client import ClientUpdate

__all__ = ["update_to_gradients"]


def update_to_gradients(update: "ClientUpdate | torch.Tensor", model: nn.Module, *, lr: float) -> list[torch.Tensor]:
    """``-Δ / lr`` cut into the shapes of ``model``'s trainable parameters (``model.parameters()`` order).

    Args:
        update: a :class:`ClientUpdate` or its flat ``delta``.
        model: the global model the update was computed from (only its parameter shapes are read).
        lr: the client's local learning rate, > 0.

    Returns:
        One tensor per trainable parameter: the client's gradient when it took one SGD step, up to the float32
        rounding of ``Δ = (w - lr·∇) - w`` (relative error about ``2^-24 |w| / (lr |∇|)``: 1e-6 at ``lr = 0.1``
        on a digits MLP, 1e-4 at ``lr = 0.001``; harmless for DLG/iDLG).
    """
    delta = update.delta if isinstance(update, ClientUpdate) else update
    if not isinstance(delta, torch.Tensor) or not delta.is_floating_point():
        raise TypeError("update must be a ClientUpdate or a floating-point tensor")
    lr = check_positive("lr", lr)
    return list(unflatten_update(-delta.reshape(-1) / lr, model))
