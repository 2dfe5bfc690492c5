"""The kit's FedAvg on Flower's simulation engine: the same clients and aggregators, run by Flower and Ray.

Flower (Beutel et al. 2020, "Flower: A friendly federated learning research framework") runs a federated
computation as two apps that exchange messages: a ``ServerApp`` (here: the kit's aggregation, FedAvg of McMahan
et al. 2017, "Communication-efficient learning of deep networks from decentralized data", or a robust rule) and a
``ClientApp`` that every simulated device ("SuperNode") runs on its own data. Its simulation engine starts a
local Ray cluster and runs the client apps in Ray actor processes; its deployment engine runs the very same apps
on real devices over gRPC. This module uses Flower's *Message API* (flwr >= 1.21; ``NumPyClient`` and the
``aggregate_fit`` strategies are its compatibility layer now):

* :func:`client_app`: a ``ClientApp`` whose ``train`` handler loads the global weights into the kit
  :class:`~mlsec_kit.fl.Client` of its partition, calls ``local_update`` and replies with the *update* (the
  difference to the global weights) and the number of examples; a ``query`` handler tells the server which
  partition a node holds.
* :class:`KitStrategy`: a subclass of Flower's message-based ``FedAvg`` strategy. ``configure_train`` samples the
  round's clients with the kit's seeded sampler (Flower's own sampler draws from Python's global ``random``),
  and ``aggregate_train`` (the Message-API name of ``aggregate_fit``) calls the kit's pure
  ``aggregate(updates, weights, method=...)`` on the replies in client order and adds the result to the global
  weights. So ``method="median"`` or ``"krum"`` is the kit's rule, not Flower's.
* :func:`run_flower`: the whole experiment through ``flwr.simulation.run_simulation``; returns the kit's
  ``FLHistory`` (accuracy, bytes and seconds per round). With the same model, clients, hyper-parameters and
  seed it follows the kit's in-process loop (:func:`mlsec_kit.fl.fedavg`): the same clients each round, the same
  per-client seeds, the same aggregation order. What can differ is floating-point rounding in the aggregation
  (none in practice: the tests find the accuracy curves equal to 1e-6).

Resources: Ray starts with ``num_cpus`` CPUs (2 by default) and every client actor asks for one, so at most
``num_cpus`` clients train at once. Ray's start-up costs several seconds (about 15-20 s for a 10-client,
3-round run on 2 loaded cores, most of it Ray), so for a handful of clients the in-process loop is much faster;
the engine pays off with many clients, GPUs, or real devices. Flower shuts Ray down at the end; this function
checks that and shuts it down itself if an error left it running. No network is used: Ray listens on local
ports only, and Flower's telemetry is switched off (``FLWR_TELEMETRY_ENABLED=0``) for the run.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
import warnings
from typing import Optional, Sequence

import torch
from torch import nn

from ._standin import Client, FLHistory, aggregate, sample_round  # TEMPORARY until branch fl is merged

__all__ = ["client_app", "KitStrategy", "run_flower", "flower_available"]

#: the ConfigRecord/MetricRecord keys the two apps exchange
PARTITION_KEY, EXAMPLES_KEY, SEED_KEY = "partition-id", "num-examples", "seed"


def flower_available() -> bool:
    """Whether ``flwr`` and ``ray`` can be imported (the optional ``flower`` extra: ``pip install mlsec-kit[flower]``)."""
    try:
        import flwr  # noqa: F401
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _require_flower():
    if not flower_available():
        raise ImportError("mlsec_kit.fl.flower needs Flower's simulation engine: pip install 'flwr[simulation]' "
                          "(or the kit's extra: pip install 'mlsec-kit[flower]')")


# ------------------------------------------------------------------------------------------------- client side

def client_app(clients: Sequence[Client], *, local_epochs: int, lr: float, batch_size: int):
    """A Flower ``ClientApp`` in which SuperNode ``i`` (``node_config["partition-id"] == i``) is ``clients[i]``.

    The ``train`` handler reads the global weights (``content["arrays"]``) and the client's seed
    (``content["config"]["seed"]``), runs ``clients[i].local_update(state, epochs=local_epochs, lr=lr,
    batch_size=batch_size, generator=torch.Generator().manual_seed(seed))`` and replies with the update and
    ``metrics = {"num-examples": n, "partition-id": i}``. The ``query`` handler replies with the partition id only.
    The clients (their data included) travel to the Ray actors with the app, pickled once per actor.

    Args:
        clients: the kit's clients, in partition order.
        local_epochs, lr, batch_size: passed to ``local_update``.

    Returns:
        ``flwr.clientapp.ClientApp``.
    """
    _require_flower()
    from flwr.clientapp import ClientApp
    from flwr.common import ArrayRecord, Message, MetricRecord, RecordDict

    clients = list(clients)
    app = ClientApp()

    def _partition(context) -> int:
        pid = int(context.node_config[PARTITION_KEY])
        if not 0 <= pid < len(clients):
            raise ValueError(f"partition-id must be in [0, {len(clients)}), got {pid}")
        return pid

    @app.query()
    def query(msg, context):
        return Message(content=RecordDict({"metrics": MetricRecord({PARTITION_KEY: _partition(context)})}),
                       reply_to=msg)

    @app.train()
    def train(msg, context):
        pid = _partition(context)
        state = msg.content["arrays"].to_torch_state_dict()
        seed = int(msg.content["config"][SEED_KEY])
        update, n = clients[pid].local_update(state, epochs=local_epochs, lr=lr, batch_size=batch_size,
                                              generator=torch.Generator().manual_seed(seed))
        update = {k: v.detach().cpu() for k, v in update.items()}
        return Message(content=RecordDict({"arrays": ArrayRecord(update),
                                           "metrics": MetricRecord({EXAMPLES_KEY: int(n), PARTITION_KEY: pid})}),
                       reply_to=msg)

    return app


# ------------------------------------------------------------------------------------------------- server side

def _strategy_base():
    _require_flower()
    from flwr.serverapp.strategy import FedAvg
    return FedAvg


def KitStrategy(*, num_clients: int, fraction: float, method: str, generator: torch.Generator,  # noqa: N802
                node_of: dict, record: Optional[FLHistory] = None):
    """A Flower message-based ``FedAvg`` strategy that samples and aggregates as the kit does.

    (A function returning an instance, so that importing this module does not import Flower.)

    Args:
        num_clients: number of clients (partitions).
        fraction: fraction of clients sampled per round, as in the kit's loop.
        method: the kit's aggregation rule, passed to ``aggregate(updates, weights, method=method)``.
        generator: the seeded generator the kit's sampler draws the round's clients and seeds from.
        node_of: partition id -> Flower node id (filled by :func:`run_flower`'s query round).
        record: an ``FLHistory`` whose ``clients`` and ``bytes`` lists the strategy appends to.

    Returns:
        an instance of a ``flwr.serverapp.strategy.FedAvg`` subclass whose ``configure_train`` and
        ``aggregate_train`` are the kit's.
    """
    FedAvg = _strategy_base()
    from flwr.common import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

    class _KitStrategy(FedAvg):
        """FedAvg (Flower) with the kit's seeded client sampling and the kit's ``aggregate``."""

        def __init__(self):
            super().__init__(fraction_train=fraction, fraction_evaluate=0.0, min_train_nodes=1,
                             min_evaluate_nodes=0, min_available_nodes=num_clients)
            self.method = method
            self._global = None
            self._sent_bytes = 0

        def configure_train(self, server_round, arrays, config, grid):
            chosen, seeds = sample_round(num_clients, fraction, generator)
            self._global = arrays.to_torch_state_dict()
            if record is not None:
                record.clients.append(list(chosen))
            self._sent_bytes = arrays.count_bytes() * len(chosen)
            messages = []
            for pid, seed in zip(chosen, seeds):
                cfg = ConfigRecord(dict(config))
                cfg[SEED_KEY] = int(seed)
                cfg["server-round"] = server_round
                messages.append(Message(content=RecordDict({"arrays": arrays, "config": cfg}),
                                        message_type=MessageType.TRAIN, dst_node_id=node_of[pid]))
            return messages

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            failed = [m for m in replies if m.has_error()]
            if failed:
                raise RuntimeError(f"round {server_round}: {len(failed)} client(s) failed: "
                                   f"{failed[0].error.reason}")
            replies.sort(key=lambda m: int(m.content["metrics"][PARTITION_KEY]))   # the kit's client order
            updates = [m.content["arrays"].to_torch_state_dict() for m in replies]
            weights = [int(m.content["metrics"][EXAMPLES_KEY]) for m in replies]
            agg = aggregate(updates, weights, method=self.method)
            new = {k: v + agg[k].to(v.dtype) for k, v in self._global.items()}
            if record is not None:
                record.bytes.append(self._sent_bytes + sum(m.content["arrays"].count_bytes() for m in replies))
            return ArrayRecord(new), None

    return _KitStrategy()


def _discover_nodes(grid, num_clients: int, timeout: float) -> dict:
    """partition id -> node id, by asking every node (a ``query`` message) which partition it holds."""
    from flwr.common import Message, MessageType, MetricRecord, RecordDict  # noqa: F401

    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < num_clients:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {num_clients} simulated nodes came up in {timeout} s")
        time.sleep(0.1)
    msgs = [Message(content=RecordDict(), message_type=MessageType.QUERY, dst_node_id=n) for n in nodes]
    node_of = {}
    for reply in grid.send_and_receive(msgs, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id} failed the query: {reply.error.reason}")
        node_of[int(reply.content["metrics"][PARTITION_KEY])] = reply.metadata.src_node_id
    if sorted(node_of) != list(range(num_clients)):
        raise RuntimeError(f"the nodes reported partitions {sorted(node_of)}, expected 0..{num_clients - 1}")
    return node_of


@contextlib.contextmanager
def _quiet_environment(verbose: bool):
    """Flower's logger at WARNING (unless verbose), its telemetry off, Ray's FutureWarnings hidden, and
    ``PYTHONPATH`` restored afterwards (Flower's Ray backend appends the driver's sys.path to it)."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "FLWR_TELEMETRY_ENABLED")}
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    logger = logging.getLogger("flwr")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_args(model, clients, rounds, fraction, local_epochs, lr, batch_size, generator, test, num_cpus):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(clients, (list, tuple)) or len(clients) < 1:
        raise ValueError(f"clients must be a non-empty list of mlsec_kit.fl Client objects, got {clients!r:.80}")
    for name, value in (("rounds", rounds), ("local_epochs", local_epochs), ("batch_size", batch_size),
                        ("num_cpus", num_cpus)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (seeded), got {type(generator).__name__}")
    if (not isinstance(test, (list, tuple)) or len(test) != 2
            or not all(isinstance(t, torch.Tensor) for t in test) or len(test[0]) != len(test[1])):
        raise ValueError("test must be a pair (x_test, y_test) of tensors with the same first dimension")


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def run_flower(model: nn.Module, clients: Sequence[Client], *, rounds: int, fraction: float = 1.0,
               local_epochs: int = 1, lr: float = 0.1, batch_size: int = 32, aggregator: str = "mean",
               test: tuple, generator: torch.Generator, num_cpus: int = 2, timeout: float = 600.0,
               verbose: bool = False) -> FLHistory:
    """FedAvg (or the kit's robust aggregation) on Flower's simulation engine; the kit's loop, run by Flower.

    One SuperNode per client; every round the server samples ``max(1, round(fraction * len(clients)))`` clients
    with the kit's seeded sampler (as :func:`mlsec_kit.fl.fedavg` does with the same ``generator``), sends them
    the global weights and a seed each, and aggregates their updates with ``aggregate(..., method=aggregator)``
    in client order (McMahan et al. 2017; Beutel et al. 2020 for the engine).

    Args:
        model: the initial global model (not modified; a copy is trained).
        clients: the kit's ``Client`` objects, one per partition.
        rounds: federated rounds (>= 1).
        fraction: fraction of clients per round, in (0, 1].
        local_epochs, lr, batch_size: each client's local training.
        aggregator: the kit's aggregation rule (``"mean"`` is FedAvg).
        test: ``(x_test, y_test)``; the server evaluates the global model on it after every round.
        generator: seeded ``torch.Generator`` for the client sampling and the clients' seeds.
        num_cpus: CPUs Ray may use; each client actor takes one, so this many clients train at once.
        timeout: seconds to wait for the nodes and for each round's replies.
        verbose: show Flower's log (off by default).

    Returns:
        ``FLHistory`` with, per round, the test accuracy, the bytes sent both ways (weights down, updates up), the
        seconds (the first round includes no Ray start-up; :attr:`FLHistory.seconds` are per round from the
        server's side) and the sampled clients. The global model after the last round is in
        ``history.model`` (a copy of ``model``).

    Raises:
        ValueError / TypeError: bad arguments (before Ray starts).
        ImportError: Flower's simulation engine is not installed.
    """
    _check_args(model, clients, rounds, fraction, local_epochs, lr, batch_size, generator, test, num_cpus)
    _require_flower()
    import ray
    from flwr.common import ArrayRecord
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    clients = list(clients)
    x_test, y_test = test
    history = FLHistory()
    final = copy.deepcopy(model)
    state0 = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    errors = []

    server = ServerApp()

    @server.main()
    def main(grid, context):
        try:
            node_of = _discover_nodes(grid, len(clients), timeout)
            strategy = KitStrategy(num_clients=len(clients), fraction=fraction, method=aggregator,
                                   generator=generator, node_of=node_of, record=history)
            clock = [time.perf_counter()]

            def evaluate(server_round, arrays):
                if server_round == 0:
                    clock[0] = time.perf_counter()
                    return None
                final.load_state_dict(arrays.to_torch_state_dict())
                history.accuracy.append(_accuracy(final, x_test, y_test))
                now = time.perf_counter()
                history.seconds.append(now - clock[0])
                clock[0] = now
                return None

            strategy.start(grid=grid, initial_arrays=ArrayRecord(state0), num_rounds=rounds,
                           evaluate_fn=evaluate, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            errors.append(exc)

    with _quiet_environment(verbose):
        try:
            run_simulation(server_app=server,
                           client_app=client_app(clients, local_epochs=local_epochs, lr=lr, batch_size=batch_size),
                           num_supernodes=len(clients),
                           backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                           "init_args": {"num_cpus": num_cpus, "num_gpus": 0,
                                                         "include_dashboard": False,
                                                         "log_to_driver": verbose}},
                           verbose_logging=verbose)
        finally:
            if ray.is_initialized():
                ray.shutdown()
    if errors:
        raise errors[0]
    if len(history.accuracy) != rounds:
        raise RuntimeError(f"the Flower simulation ended after {len(history.accuracy)} of {rounds} rounds "
                           "(run with verbose=True to see Flower's log)")
    history.model = final
    return history
