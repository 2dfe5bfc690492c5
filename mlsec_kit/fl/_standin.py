"""TEMPORARY stand-in for helper fl's FedAvg API (``Client``, ``aggregate``, ``FLHistory``, ``fedavg``), written
from the chapter-13 brief so that :mod:`mlsec_kit.fl.flower` can be built and tested before branch ``fl`` has
it. Deleted when branch ``fl`` is merged; nothing else may import it."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class FLHistory:
    accuracy: list = field(default_factory=list)
    bytes: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    clients: list = field(default_factory=list)


class Client:
    def __init__(self, x, y, *, model):
        self.x, self.y, self.model = x, y, copy.deepcopy(model)

    @property
    def num_examples(self):
        return len(self.y)

    def local_update(self, model_state, *, epochs, lr, batch_size, generator):
        m = self.model
        m.load_state_dict(model_state)
        opt = torch.optim.SGD(m.parameters(), lr=lr)
        for _ in range(epochs):
            order = torch.randperm(len(self.y), generator=generator)
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                opt.zero_grad()
                F.cross_entropy(m(self.x[idx]), self.y[idx]).backward()
                opt.step()
        new = m.state_dict()
        return {k: (new[k] - model_state[k]).detach().clone() for k in model_state}, self.num_examples


def aggregate(updates, weights, *, method="mean"):
    if method != "mean":
        raise ValueError("stand-in: method must be 'mean'")
    w = torch.as_tensor(weights, dtype=torch.float64)
    w = w / w.sum()
    return {k: sum(float(wi) * u[k] for wi, u in zip(w, updates)) for k in updates[0]}


def sample_round(num_clients, fraction, generator):
    m = max(1, round(fraction * num_clients))
    chosen = torch.randperm(num_clients, generator=generator)[:m].sort().values.tolist()
    seeds = torch.randint(0, 2 ** 62, (len(chosen),), generator=generator).tolist()
    return chosen, seeds


@torch.no_grad()
def _accuracy(model, x, y):
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def fedavg(model, clients, *, rounds, fraction, local_epochs, lr, batch_size, generator, test, aggregator="mean"):
    model = copy.deepcopy(model)
    hist = FLHistory()
    for _ in range(rounds):
        t = time.perf_counter()
        chosen, seeds = sample_round(len(clients), fraction, generator)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        ups, ws = [], []
        for c, s in zip(chosen, seeds):
            u, n = clients[c].local_update(state, epochs=local_epochs, lr=lr, batch_size=batch_size,
                                           generator=torch.Generator().manual_seed(s))
            ups.append(u)
            ws.append(n)
        agg = aggregate(ups, ws, method=aggregator)
        model.load_state_dict({k: state[k] + agg[k].to(state[k].dtype) for k in state})
        hist.accuracy.append(_accuracy(model, *test))
        hist.seconds.append(time.perf_counter() - t)
        hist.clients.append(chosen)
    return hist
