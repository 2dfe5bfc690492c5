"""The federated training loop: FedAvg with pluggable aggregation, poisoned clients, secure aggregation and
DP-FedAvg.

:func:`fedavg` runs FedAvg (McMahan et al. 2017, "Communication-efficient learning of deep networks from
decentralized data", Algorithm 1) in one process: each round the server samples clients, each runs
:meth:`Client.local_update` from the current global model, and the server applies the aggregate of their updates
(:func:`mlsec_kit.fl.aggregate`) to the global model. Options, each a section of the chapter:

* ``attackers={client index: ModelPoisoning(...)}``: those clients rewrite their update (sign flip, boosting /
  model replacement); with a :func:`backdoor_client` among the clients this is Bagdasaryan et al. (2020);
* ``aggregator="median" | "trimmed_mean" | "krum" | "multi_krum"``: the robust rules;
* ``secure=True``: the server learns only the sum, by :func:`mlsec_kit.fl.secure_aggregate` (Bonawitz et al.
  2017). Each client sends ``n_k · Δ_k`` (its example count ``n_k`` in the clear), the server divides the sum by
  ``Σ n_k``: the same weighted mean as ``"mean"``, up to the fixed-point encoding. Only ``"mean"`` is possible:
  the robust rules need the individual updates that secure aggregation hides;
* ``dropout=p``: each sampled client drops out of the round with probability ``p`` after the key exchange (its
  update is lost; with ``secure=True`` the survivors' sum is still recovered while at least ``threshold`` stay;
  a round with fewer survivors, or fewer than 2 sampled clients, is *aborted* as in Bonawitz et al.: no client
  update is applied (with ``dp`` the noise-only step still is, so every round counts in the accounting), the
  round is marked in :attr:`FLHistory.aborted`, and training goes on);
* ``dp=DPFedAvg(clip, noise_multiplier, delta)``: DP-FedAvg (McMahan et al. 2018, "Learning differentially
  private recurrent language models"), client-level DP (neighbouring datasets differ by one whole client's data:
  user-level DP when each client is one user, as in McMahan et al.): clients are sampled independently with probability
  ``q = fraction``, each update is clipped to L2 norm ``clip``, Gaussian noise of standard deviation
  ``noise_multiplier · clip`` is added to the sum, and the result is divided by the *expected* number of clients
  ``qK`` (not the realised one, which is private). Adding or removing one client changes the clipped sum by at
  most ``clip``, so a round is the Poisson-subsampled Gaussian mechanism and the accountant of chapter 11
  (:func:`mlsec_kit.dp.accounting.rdp_epsilon`, ``sample_rate = q``, ``steps = rounds``) gives ε after each
  round. The noise is added by the server (central DP): with ``secure=True`` the server still sees the exact,
  un-noised sum before adding it, so DP protects against whoever sees the model, not against the server
  (distributed DP would have each client add its share of the noise before masking).

Randomness comes from ``generator`` only, drawn in this order: one base seed; then, per round, the client sample
(:func:`sample_clients`), the dropout draw (when ``dropout > 0``), the secure-aggregation secrets (when
``secure``), the DP noise (when ``dp``). Client ``k``'s local training in round ``r`` uses its own generator
seeded with :func:`client_seed` ``(base, r, k)``, so another engine (Flower) can reproduce a run client by client.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from ..dp.accounting import rdp_epsilon
from ..train import accuracy
from ._validate import _real, check_fraction, check_generator, check_int, check_positive
from .aggregation import METHODS, aggregate, flatten_update
from .client import Client, ClientUpdate, ModelPoisoning
from .secure_aggregation import secure_aggregate

__all__ = ["fedavg", "FLHistory", "DPFedAvg", "sample_clients", "client_seed", "clip_update", "set_flat_params"]


@dataclass(frozen=True)
class DPFedAvg:
    """DP-FedAvg's settings (McMahan et al. 2018).

    Attributes:
        clip: ``C``, the L2 bound on each client's update, > 0.
        noise_multiplier: ``σ``; the noise on the sum has standard deviation ``σ·C``; > 0.
        delta: the δ at which ε is reported, in (0, 1).
    """

    clip: float
    noise_multiplier: float
    delta: float = 1e-5

    def __post_init__(self) -> None:
        check_positive("clip", self.clip)
        check_positive("noise_multiplier", self.noise_multiplier)
        d = _real("delta", self.delta)
        if not 0 < d < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")


@dataclass
class FLHistory:
    """Per-round record of a federated run (index ``r`` is round ``r + 1``).

    Attributes:
        accuracy: test accuracy of the global model after each round (empty without ``test``).
        bytes: bytes exchanged in each round, both directions (model download, update upload, and the secure
            aggregation protocol's messages).
        seconds: wall-clock seconds of each round (training and aggregation; evaluation excluded).
        clients: the indices of the clients sampled in each round.
        survivors: the indices of the sampled clients whose update reached the server.
        epsilon: DP-FedAvg's ε after each round (empty without ``dp``).
        aborted: per round, whether secure aggregation aborted it (fewer survivors than the threshold, or fewer
            than 2 sampled clients): no client update was applied. Always ``False`` without ``secure``.
        metrics: what ``metrics(model)`` returned after each round (empty without ``metrics``).
        model: the final global model (a new module; the one passed in is unchanged).
    """

    accuracy: list[float] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list, compare=False)
    clients: list[list[int]] = field(default_factory=list)
    survivors: list[list[int]] = field(default_factory=list)
    epsilon: list[float] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    model: Optional[nn.Module] = field(default=None, repr=False, compare=False)
    aborted: list[bool] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.bytes)


def sample_clients(num_clients: int, *, fraction: float, generator: Optional[torch.Generator] = None,
                   poisson: bool = False) -> list[int]:
    """The clients taking part in one round.

    Args:
        num_clients: ``K``, an int >= 1.
        fraction: ``C`` in McMahan et al. (2017), in (0, 1].
        generator: the source of the draw (one ``randperm`` or one ``rand`` of ``K`` values).
        poisson: ``False``: ``max(1, round(C·K))`` clients without replacement (FedAvg); ``True``: each client
            independently with probability ``C`` (DP-FedAvg; possibly none).

    Returns:
        Sorted client indices.
    """
    k = check_int("num_clients", num_clients)
    q = check_fraction("fraction", fraction)
    check_generator(generator)
    if poisson:
        return torch.nonzero(torch.rand(k, generator=generator) < q).flatten().tolist()
    m = max(1, round(q * k))
    return sorted(torch.randperm(k, generator=generator)[:m].tolist())


def client_seed(base: int, round_index: int, cid: int) -> int:
    """The seed of client ``cid``'s local generator in round ``round_index`` (0-based) of a run whose base seed is
    ``base``: a fixed mixing of the three, below 2^62."""
    return (int(base) * 1_000_003 + int(round_index) * 10_007 + int(cid) * 101 + 17) % (2 ** 62)


def clip_update(delta: torch.Tensor, clip: float) -> torch.Tensor:
    """``delta · min(1, clip / ‖delta‖₂)``: the update scaled into the L2 ball of radius ``clip`` (new tensor)."""
    c = check_positive("clip", clip)
    norm = delta.norm().item()
    return delta * min(1.0, c / norm) if norm > 0 else delta.clone()


def set_flat_params(model: nn.Module, vector: torch.Tensor) -> None:
    """Write a flat vector into ``model``'s trainable parameters (``model.parameters()`` order), in place."""
    params = [p for p in model.parameters() if p.requires_grad]
    size = sum(p.numel() for p in params)
    if vector.numel() != size:
        raise ValueError(f"vector must have {size} entries (the model's trainable parameters), got {vector.numel()}")
    with torch.no_grad():
        start = 0
        for p in params:
            p.copy_(vector[start:start + p.numel()].reshape(p.shape).to(p.dtype))
            start += p.numel()


def _check_clients(clients) -> list[Client]:
    if not isinstance(clients, (list, tuple)) or not clients:
        raise ValueError("clients must be a non-empty list of Client objects")
    for i, c in enumerate(clients):
        if not isinstance(c, Client):
            raise TypeError(f"clients[{i}] must be a mlsec_kit.fl.Client, got {type(c).__name__}")
    return list(clients)


def _check_run(model: object, clients, *, rounds, fraction, local_epochs, lr, batch_size, aggregator,
               aggregator_options, generator, attackers):
    """The arguments :func:`fedavg` and :func:`mlsec_kit.fl.flower.run_flower` share, checked in one place before
    anything runs: returns ``(clients, rounds, fraction, aggregator options, attackers)``, validated."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    clients = _check_clients(clients)
    rounds = check_int("rounds", rounds)
    q = check_fraction("fraction", fraction)
    check_int("local_epochs", local_epochs)
    check_positive("lr", lr)
    check_int("batch_size", batch_size)
    if aggregator not in METHODS:
        raise ValueError(f"aggregator must be one of {METHODS}, got {aggregator!r}")
    options = dict(aggregator_options or {})
    unknown = set(options) - {"trim", "byzantine", "select"}
    if unknown:
        raise ValueError(f"aggregator_options may hold trim, byzantine and select, got {sorted(unknown)}")
    check_generator(generator)
    return clients, rounds, q, options, _check_attackers(attackers, len(clients))


def _preflight(model: nn.Module, clients: Sequence[Client], test) -> None:
    """Run ``model`` on one example of the first client and of ``test`` and check every label against its outputs
    before round 1, so that a mismatch is a ValueError naming the argument, not a deep torch error mid-run."""
    probe = copy.deepcopy(model).eval()
    device = next(probe.parameters()).device
    labelled = [(f"clients[{i}]", c.x, c.y) for i, c in enumerate(clients)]
    if test is not None:
        labelled.append(("test", test[0], test[1]))
    with torch.no_grad():
        for where, x, y in labelled[:1] + labelled[len(clients):]:   # the first client and test
            try:
                classes = probe(x[:1].to(device)).shape[-1]
            except RuntimeError as exc:
                raise ValueError(f"{where.split('[')[0]} do not fit model: {where}'s inputs of shape "
                                 f"{tuple(x.shape[1:])} fail in model ({exc})") from None
    for where, _, y in labelled:
        if len(y) and y.max().item() >= classes:
            raise ValueError(f"{where.split('[')[0]} hold labels the model cannot output: {where} has label "
                             f"{y.max().item()}, the model has {classes} outputs")


def _check_attackers(attackers, k: int) -> dict[int, ModelPoisoning]:
    if attackers is None:
        return {}
    if not isinstance(attackers, Mapping):
        raise TypeError(f"attackers must map client indices to ModelPoisoning, got {type(attackers).__name__}")
    for i, a in attackers.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < k:
            raise ValueError(f"attackers' keys must be client indices in [0, {k}), got {i!r}")
        if not isinstance(a, ModelPoisoning):
            raise TypeError(f"attackers[{i}] must be a ModelPoisoning, got {type(a).__name__}")
    return dict(attackers)


def _check_threshold(threshold, *, secure: bool, poisson: bool, num_clients: int, fraction: float) -> None:
    if threshold is None:
        if secure and not poisson and max(1, round(fraction * num_clients)) < 2:
            raise ValueError(f"fraction must give at least 2 clients per round with secure=True (secure aggregation "
                             f"of one client reveals its update), got fraction = {fraction} of {num_clients} clients")
        return
    if not secure:
        raise ValueError(f"threshold is the secure aggregation's Shamir threshold: give it only with secure=True, "
                         f"got threshold = {threshold!r} with secure=False")
    t = check_int("threshold", threshold)
    if poisson:
        if t < 2:
            raise ValueError(f"threshold must be an int >= 2, got {threshold!r}")
        return
    m = max(1, round(fraction * num_clients))
    if not 2 <= t <= m:
        raise ValueError(f"threshold must be an int in [2, {m}]: {m} clients per round (fraction = {fraction} of "
                         f"{num_clients} clients), got {threshold!r}")


def fedavg(model: nn.Module, clients: Sequence[Client], *, rounds: int, fraction: float = 1.0,
           local_epochs: int = 1, lr: float = 0.1, batch_size: int = 32, aggregator: str = "mean",
           aggregator_options: Optional[Mapping] = None, generator: Optional[torch.Generator] = None,
           attackers: Optional[Mapping[int, ModelPoisoning]] = None, secure: bool = False,
           threshold: Optional[int] = None, dropout: float = 0.0, dp: Optional[DPFedAvg] = None,
           server_lr: float = 1.0, test: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
           metrics: Optional[Callable[[nn.Module], Mapping[str, float]]] = None) -> FLHistory:
    """Federated averaging, in process; see the module docstring for the options and the order of random draws.

    Args:
        model: the initial global model; copied, not modified.
        clients: the ``K`` clients (:class:`Client`).
        rounds: communication rounds, an int >= 1.
        fraction: the fraction of clients sampled per round, in (0, 1] (with ``dp``, the sampling rate ``q``).
        local_epochs, lr, batch_size: each client's :meth:`Client.local_update` settings.
        aggregator: one of :data:`mlsec_kit.fl.aggregation.METHODS`; weights are the clients' example counts.
        aggregator_options: keyword arguments of :func:`aggregate` (``trim``, ``byzantine``, ``select``).
        generator: the source of all randomness.
        attackers: ``{client index: ModelPoisoning}``, the clients that poison their update.
        secure: aggregate with :func:`mlsec_kit.fl.secure_aggregate` (``aggregator`` must be ``"mean"``).
        threshold: the secure aggregation's Shamir threshold (only with ``secure=True``), an int in ``[2, m]``
            for ``m = max(1, round(fraction · K))`` clients per round (with ``dp``'s Poisson sampling, any int
            >= 2); ``None`` takes ``⌊m/2⌋ + 1`` for the ``m`` clients sampled in the round. A round with fewer
            than 2 sampled clients or fewer survivors than the threshold is aborted (:attr:`FLHistory.aborted`).
        dropout: the probability that a sampled client drops out of a round, in [0, 1).
        dp: :class:`DPFedAvg` settings for DP-FedAvg (``aggregator`` must be ``"mean"``), or ``None``.
        server_lr: ``η``, the step the server takes along the aggregate, > 0.
        test: ``(x, y)`` to measure the global model's accuracy after each round.
        metrics: ``metrics(global model) -> {name: value}``, recorded after each round (e.g. a backdoor's
            attack success rate).

    Returns:
        An :class:`FLHistory` whose ``model`` is the trained global model.
    """
    clients, rounds, q, options, attackers = _check_run(
        model, clients, rounds=rounds, fraction=fraction, local_epochs=local_epochs, lr=lr, batch_size=batch_size,
        aggregator=aggregator, aggregator_options=aggregator_options, generator=generator, attackers=attackers)
    k = len(clients)
    p_drop = _real("dropout", dropout)
    if not 0 <= p_drop < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if not isinstance(secure, bool):
        raise TypeError(f"secure must be True or False, got {secure!r}")
    if dp is not None and not isinstance(dp, DPFedAvg):
        raise TypeError(f"dp must be a DPFedAvg or None, got {type(dp).__name__}")
    if (secure or dp is not None) and aggregator != "mean":
        why = ("secure aggregation hides the individual updates a robust rule needs" if secure
               else "DP-FedAvg defines its own (noisy) mean")
        raise ValueError(f"aggregator must be 'mean' with {'secure=True' if secure else 'dp'}: {why}, "
                         f"got {aggregator!r}")
    server_lr = check_positive("server_lr", server_lr)
    if test is not None and not (isinstance(test, (tuple, list)) and len(test) == 2):
        raise ValueError("test must be a pair (x, y) of tensors or None")
    _check_threshold(threshold, secure=secure, poisson=dp is not None, num_clients=k, fraction=q)
    _preflight(model, clients, test)

    global_model = copy.deepcopy(model)
    weights = flatten_update(global_model)
    d = weights.numel()
    param_bytes = d * weights.element_size()
    base = int(torch.randint(0, 2 ** 62, (1,), generator=generator).item())
    history = FLHistory(model=global_model)
    for r in range(rounds):
        start = time.perf_counter()
        chosen = sample_clients(k, fraction=q, generator=generator, poisson=dp is not None)
        if p_drop > 0 and chosen:
            stays = (torch.rand(len(chosen), generator=generator) >= p_drop).tolist()
        else:
            stays = [True] * len(chosen)
        updates: list[ClientUpdate] = []
        senders: list[int] = []
        for cid, stay in zip(chosen, stays):
            local_gen = torch.Generator().manual_seed(client_seed(base, r, cid))
            upd = clients[cid].local_update(global_model, epochs=local_epochs, lr=lr, batch_size=batch_size,
                                            generator=local_gen)
            if cid in attackers:
                upd = ClientUpdate(attackers[cid].apply(upd.delta), upd.num_examples, upd.loss)
            if dp is not None:
                upd = ClientUpdate(clip_update(upd.delta, dp.clip), upd.num_examples, upd.loss)
            updates.append(upd)
            senders.append(stay)
        survivors = [c for c, s in zip(chosen, senders) if s]
        kept = [u for u, s in zip(updates, senders) if s]
        round_bytes = len(chosen) * param_bytes  # the global model, downloaded by every sampled client
        t = len(chosen) // 2 + 1 if threshold is None else threshold
        aborted = secure and (len(chosen) < 2 or len(survivors) < t)
        if aborted:
            # Bonawitz et al.: fewer than t survivors (or no one to hide a lone update among) -> the server aborts
            # the round; the model download is counted, the aborted protocol's messages are not
            kept, total = [], None
        elif secure:
            dropped = [i for i, s in enumerate(senders) if not s]
            if dp is not None:
                vectors = [u.delta for u in updates]
            else:
                vectors = [u.delta * u.num_examples for u in updates]
            result = secure_aggregate(vectors, threshold=t, dropped=dropped, generator=generator)
            round_bytes += result.bytes_sent + result.bytes_received + 8 * len(survivors)
            total = result.total.to(device=weights.device, dtype=weights.dtype)
        else:
            round_bytes += len(kept) * (param_bytes + 8)
            total = None
        if dp is not None:
            if total is None:  # plain aggregation, or an aborted round (kept is empty: noise only)
                total = sum((u.delta for u in kept), torch.zeros(d, dtype=weights.dtype, device=weights.device))
            # drawn on the generator's device (CPU for a CPU generator), then moved: the same noise on CPU and CUDA
            noise = torch.randn(d, generator=generator, dtype=weights.dtype,
                                device=generator.device if generator is not None else "cpu")
            noise = noise.to(weights.device) * (dp.noise_multiplier * dp.clip)
            step = (total + noise) / (q * k)
        elif not kept:
            step = torch.zeros(d, dtype=weights.dtype, device=weights.device)
        elif secure:
            step = total / sum(u.num_examples for u in kept)
        else:
            step = aggregate([u.delta for u in kept], [u.num_examples for u in kept], method=aggregator, **options)
        weights = weights + server_lr * step.to(device=weights.device, dtype=weights.dtype)
        set_flat_params(global_model, weights)
        history.seconds.append(time.perf_counter() - start)
        history.bytes.append(int(round_bytes))
        history.clients.append(chosen)
        history.survivors.append(survivors)
        history.aborted.append(bool(aborted))
        if dp is not None:
            history.epsilon.append(rdp_epsilon(noise_multiplier=dp.noise_multiplier, sample_rate=q, steps=r + 1,
                                               delta=dp.delta))
        if test is not None:
            history.accuracy.append(accuracy(global_model, test[0].to(weights.device), test[1].to(weights.device)))
        if metrics is not None:
            history.metrics.append(dict(metrics(global_model)))
        global_model.train()
    return history
