"""The kit's FedAvg on Flower's simulation engine: the same clients and aggregators, run by Flower and Ray.

Flower (Beutel et al. 2020, "Flower: A friendly federated learning research framework") runs a federated
computation as two apps that exchange messages: a ``ServerApp`` (here: the kit's aggregation, FedAvg of McMahan
et al. 2017, "Communication-efficient learning of deep networks from decentralized data", or a robust rule) and a
``ClientApp`` that every simulated device ("SuperNode") runs on its own data. Its simulation engine starts a
local Ray cluster and runs the client apps in Ray actor processes; its deployment engine runs the very same apps
on real devices over gRPC. This module uses Flower's *Message API* (flwr >= 1.21; ``NumPyClient`` and the
``aggregate_fit`` strategies are its compatibility layer now):

* :func:`client_app`: a ``ClientApp`` whose ``train`` handler loads the global weights into a copy of the model,
  calls the kit :class:`~mlsec_kit.fl.Client`'s ``local_update`` for its partition and replies with the *update*
  (the difference to the global weights, poisoned if the client is an attacker) and the number of examples; a
  ``query`` handler tells the server which partition a node holds.
* :func:`KitStrategy`: an instance of a subclass of Flower's message-based ``FedAvg`` strategy.
  ``configure_train`` samples the round's clients with the kit's seeded sampler (Flower's own sampler draws from
  Python's global ``random``), and ``aggregate_train`` (the Message-API name of ``aggregate_fit``) calls the kit's
  pure ``aggregate(updates, weights, method=...)`` on the replies in client order and steps the global weights.
  So ``aggregator="median"`` or ``"krum"`` is the kit's rule, not Flower's.
* :func:`run_flower`: the whole experiment through ``flwr.simulation.run_simulation``; same arguments as
  :func:`mlsec_kit.fl.fedavg` (less secure aggregation, dropout and DP-FedAvg) and the same ``FLHistory``. With
  the same model, clients, hyper-parameters and seed it follows the kit's in-process loop: the same clients each
  round, the same per-client seeds, the same aggregation order, so the same accuracy curve (the tests find it
  equal to 1e-6; only floating-point rounding could differ, and does not in practice).

Resources: Ray (Moritz et al. 2018, "Ray: A distributed framework for emerging AI applications") starts with
``num_cpus`` CPUs (2 by default) and every client actor asks for one CPU and no GPU, so at most ``num_cpus``
clients train at once, on CPU (the model and the test data are copied to the CPU). Start-up dominates small runs:
on 2 busy cores a 10-client, 3-round run of a small MLP took 22-25 s, of which the three rounds took 0.6-1.2 s and
the rest was Ray's start, the actors' Python imports and the shutdown (100 clients, 10 per round: 41 s), where
:func:`mlsec_kit.fl.fedavg` takes 0.04 s. The engine pays off with many clients, GPUs, or real devices (its
deployment engine runs the same apps). Flower shuts Ray down at the end; this function checks that and shuts it
down itself if an error left it running. No network is used: Ray listens on local ports only, and Flower's usage
telemetry is switched off (``FLWR_TELEMETRY_ENABLED=0``; it stays off in the calling process). Flower's Ray
backend appends the driver's ``sys.path`` to ``os.environ["PYTHONPATH"]``; :func:`run_flower` restores it.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import os
import time
import warnings
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from ..train import accuracy
from ._validate import check_int, check_positive
from .aggregation import aggregate, flatten_update
from .client import Client, ModelPoisoning
from .fedavg import (FLHistory, _check_attackers, _check_clients, _check_run, _preflight, client_seed, sample_clients,
                     set_flat_params)

__all__ = ["client_app", "KitStrategy", "run_flower", "flower_available"]

#: the ConfigRecord/MetricRecord keys the two apps exchange
PARTITION_KEY, EXAMPLES_KEY, SEED_KEY = "partition-id", "num-examples", "seed"


def flower_available() -> bool:
    """Whether ``flwr`` and ``ray`` can be imported (the kit's optional extra: ``pip install mlsec-kit[flower]``)."""
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

def client_app(model: nn.Module, clients: Sequence[Client], *, local_epochs: int, lr: float, batch_size: int,
               attackers: Optional[Mapping[int, ModelPoisoning]] = None):
    """A Flower ``ClientApp`` in which SuperNode ``i`` (``node_config["partition-id"] == i``) is ``clients[i]``.

    The ``train`` handler loads the global weights (``content["arrays"]``, a state dict) into a copy of
    ``model``, runs ``clients[i].local_update(model, epochs=local_epochs, lr=lr, batch_size=batch_size,
    generator=torch.Generator().manual_seed(seed))`` with the seed the server sent (``content["config"]["seed"]``),
    rewrites the update with ``attackers[i]`` if client ``i`` is a poisoned one, and replies with the flat update
    (``arrays["delta"]``) and ``metrics = {"num-examples": n, "partition-id": i}``. The ``query`` handler replies
    with the partition id only. The clients (their data included) travel to the Ray actors with the app.

    Args:
        model: the model architecture (its weights are replaced by the server's each round).
        clients: the kit's clients, in partition order.
        local_epochs, lr, batch_size: passed to ``local_update``.
        attackers: ``{client index: ModelPoisoning}``, as in :func:`mlsec_kit.fl.fedavg`.

    Returns:
        ``flwr.clientapp.ClientApp``.
    """
    _require_flower()
    from flwr.clientapp import ClientApp
    from flwr.common import ArrayRecord, Message, MetricRecord, RecordDict

    clients = _check_clients(clients)
    attackers = _check_attackers(attackers, len(clients))
    template = copy.deepcopy(model)
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
        template.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        seed = int(msg.content["config"][SEED_KEY])
        upd = clients[pid].local_update(template, epochs=local_epochs, lr=lr, batch_size=batch_size,
                                        generator=torch.Generator().manual_seed(seed))
        delta = attackers[pid].apply(upd.delta) if pid in attackers else upd.delta
        return Message(content=RecordDict({"arrays": ArrayRecord({"delta": delta.detach().cpu()}),
                                           "metrics": MetricRecord({EXAMPLES_KEY: int(upd.num_examples),
                                                                    PARTITION_KEY: pid})}),
                       reply_to=msg)

    return app


# ------------------------------------------------------------------------------------------------- server side

def KitStrategy(model: nn.Module, *, num_clients: int, fraction: float,  # noqa: N802 (a class factory)
                generator: Optional[torch.Generator], node_of: Mapping[int, int], aggregator: str = "mean",
                aggregator_options: Optional[Mapping] = None, server_lr: float = 1.0,
                history: Optional[FLHistory] = None):
    """A Flower message-based ``FedAvg`` strategy that samples and aggregates exactly as :func:`mlsec_kit.fl.fedavg`.

    Built by a function (so that importing this module does not import Flower); the instance is of a subclass of
    ``flwr.serverapp.strategy.FedAvg``:

    * ``configure_train`` (round ``r``): the clients :func:`~mlsec_kit.fl.sample_clients` draws from
      ``generator``, each sent the global weights and its seed :func:`~mlsec_kit.fl.client_seed` ``(base, r - 1,
      k)``, where ``base`` is the first draw from ``generator`` (taken here, as the kit's loop takes it);
    * ``aggregate_train``: the replies sorted by client index, then ``aggregate(updates, weights,
      method=aggregator, **aggregator_options)`` (weights: the example counts) and the step ``w ← w + server_lr
      · aggregate`` on the flat trainable parameters, written back into the global model ``model`` (modified in
      place: it is the server's copy).

    Args:
        model: the server's global model, updated in place after every round.
        num_clients: ``K``, the number of clients (partitions).
        fraction: the fraction of clients per round, in (0, 1].
        generator: the source of the sampling and the seeds.
        node_of: client index -> Flower node id.
        aggregator, aggregator_options, server_lr: as in :func:`mlsec_kit.fl.fedavg`.
        history: an ``FLHistory`` whose ``clients``, ``survivors`` and ``bytes`` the strategy appends to.

    Returns:
        The strategy instance.
    """
    _require_flower()
    from flwr.common import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
    from flwr.serverapp.strategy import FedAvg

    options = dict(aggregator_options or {})
    base = int(torch.randint(0, 2 ** 62, (1,), generator=generator).item())

    class _KitStrategy(FedAvg):
        """Flower's FedAvg with the kit's seeded client sampling and the kit's ``aggregate``."""

        def __init__(self):
            super().__init__(fraction_train=fraction, fraction_evaluate=0.0, min_train_nodes=1,
                             min_evaluate_nodes=0, min_available_nodes=num_clients)
            self.method = aggregator
            self._weights = flatten_update(model)
            self._sent = 0

        def configure_train(self, server_round, arrays, config, grid):
            chosen = sample_clients(num_clients, fraction=fraction, generator=generator)
            self._sent = arrays.count_bytes() * len(chosen)
            if history is not None:
                history.clients.append(list(chosen))
            messages = []
            for cid in chosen:
                cfg = ConfigRecord(dict(config))
                cfg[SEED_KEY] = client_seed(base, server_round - 1, cid)
                cfg["server-round"] = server_round
                messages.append(Message(content=RecordDict({"arrays": arrays, "config": cfg}),
                                        message_type=MessageType.TRAIN, dst_node_id=node_of[cid]))
            return messages

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            failed = [m for m in replies if m.has_error()]
            if failed:
                raise RuntimeError(f"round {server_round}: {len(failed)} client(s) failed; the first said: "
                                   f"{failed[0].error.reason}")
            replies.sort(key=lambda m: int(m.content["metrics"][PARTITION_KEY]))   # the kit's client order
            updates = [m.content["arrays"].to_torch_state_dict()["delta"] for m in replies]
            counts = [int(m.content["metrics"][EXAMPLES_KEY]) for m in replies]
            if updates:
                step = aggregate(updates, counts, method=self.method, **options)
                self._weights = self._weights + server_lr * step.to(self._weights.dtype)
                set_flat_params(model, self._weights)
            if history is not None:
                history.survivors.append([int(m.content["metrics"][PARTITION_KEY]) for m in replies])
                history.bytes.append(int(self._sent + sum(m.content["arrays"].count_bytes() for m in replies)))
            return ArrayRecord(model.state_dict()), None

    return _KitStrategy()


def _discover_nodes(grid, num_clients: int, timeout: float) -> dict[int, int]:
    """client index -> node id, by asking every node (a ``query`` message) which partition it holds."""
    from flwr.common import Message, MessageType, RecordDict

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
    """Flower's logger at ERROR (unless verbose), its telemetry off (for the rest of the process), Ray's
    Future/Deprecation warnings hidden, and ``PYTHONPATH`` restored afterwards (Flower's Ray backend appends the
    driver's ``sys.path`` to it)."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "FLWR_TELEMETRY_ENABLED")}
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"   # read when flwr's telemetry module is imported, and by Ray's workers
    telemetry = None
    for name in ("flwr.supercore.telemetry", "flwr.common.telemetry"):   # where flwr keeps it (1.42; older)
        try:
            telemetry = importlib.import_module(name)
            break
        except ImportError:
            continue
    if hasattr(telemetry, "FLWR_TELEMETRY_ENABLED"):
        # already imported, so its module constant decides; left off afterwards, because Flower posts its events
        # from daemon threads that may read the constant after this function has returned
        telemetry.FLWR_TELEMETRY_ENABLED = "0"
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


def run_flower(model: nn.Module, clients: Sequence[Client], *, rounds: int, fraction: float = 1.0,
               local_epochs: int = 1, lr: float = 0.1, batch_size: int = 32, aggregator: str = "mean",
               aggregator_options: Optional[Mapping] = None, generator: Optional[torch.Generator] = None,
               attackers: Optional[Mapping[int, ModelPoisoning]] = None, server_lr: float = 1.0,
               test: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
               metrics: Optional[Callable[[nn.Module], Mapping[str, float]]] = None, num_cpus: int = 2,
               timeout: float = 600.0, verbose: bool = False) -> FLHistory:
    """:func:`mlsec_kit.fl.fedavg` on Flower's simulation engine: same arguments, same result, other engine.

    One simulated SuperNode per client. Every round the server samples clients with the kit's sampler, sends
    each the global weights and its seed, and aggregates their updates with the kit's ``aggregate`` in client
    order (McMahan et al. 2017; the engine: Beutel et al. 2020, on Ray: Moritz et al. 2018). The random draws
    are :func:`~mlsec_kit.fl.fedavg`'s (one base seed, then one client sample per round), so with the same
    ``generator`` seed the same clients train with the same seeds and the accuracy curve is the kit loop's (the
    tests find it equal to 1e-6). Not offered here: ``secure``, ``dropout`` and ``dp`` (their protocols are the
    kit loop's; Flower has its own secure aggregation (SecAgg+) and DP wrappers).

    Args:
        model: the initial global model; copied (to the CPU), not modified.
        clients: the ``K`` clients (:class:`~mlsec_kit.fl.Client`), client ``k`` on node ``partition-id = k``.
        rounds: communication rounds, an int >= 1.
        fraction: the fraction of clients per round, in (0, 1].
        local_epochs, lr, batch_size: each client's local training.
        aggregator: one of :data:`mlsec_kit.fl.aggregation.METHODS`; ``aggregator_options``: ``trim``,
            ``byzantine``, ``select``.
        generator: the source of all randomness (seeded for a reproducible run).
        attackers: ``{client index: ModelPoisoning}``: those clients' ClientApp rewrites its update.
        server_lr: ``η``, the server's step along the aggregate, > 0.
        test: ``(x, y)``: the server measures the global model's accuracy on it after each round.
        metrics: ``metrics(global model) -> {name: value}``, recorded after each round.
        num_cpus: CPUs Ray may use, an int >= 1; each client actor takes one, so this many clients train at once.
        timeout: seconds to wait for the nodes to come up and for each round's replies, > 0.
        verbose: show Flower's and Ray's logs (off by default).

    Returns:
        An :class:`~mlsec_kit.fl.FLHistory`: per round the test accuracy, the bytes of the ``ArrayRecord``
        messages both ways as Flower counts them (weights down, updates up; serialized arrays with their headers,
        metadata not counted: not comparable with :func:`~mlsec_kit.fl.fedavg`'s raw parameter bytes), the seconds
        from the server's side (sampling, the clients' training, aggregation; Ray's start-up excluded), the
        sampled clients (all of them survive), and ``model``, the final global model.

    Raises:
        ValueError / TypeError: bad arguments (before Ray starts); ImportError: Flower's simulation engine is not
        installed; RuntimeError: a client failed or the simulation stopped early.
    """
    clients, rounds, q, options, attackers = _check_run(
        model, clients, rounds=rounds, fraction=fraction, local_epochs=local_epochs, lr=lr, batch_size=batch_size,
        aggregator=aggregator, aggregator_options=aggregator_options, generator=generator, attackers=attackers)
    k = len(clients)
    server_lr = check_positive("server_lr", server_lr)
    if test is not None and not (isinstance(test, (tuple, list)) and len(test) == 2):
        raise ValueError("test must be a pair (x, y) of tensors or None")
    num_cpus = check_int("num_cpus", num_cpus)
    timeout = check_positive("timeout", timeout)
    _preflight(model, clients, test)
    _require_flower()
    import ray
    from flwr.common import ArrayRecord
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    model = copy.deepcopy(model).cpu()     # the client actors get no GPU; the caller's model stays where it is
    if test is not None:
        test = (test[0].cpu(), test[1].cpu())
    global_model = copy.deepcopy(model)
    history = FLHistory(model=global_model)
    errors: list[BaseException] = []
    server = ServerApp()

    @server.main()
    def main(grid, context):
        try:
            node_of = _discover_nodes(grid, k, timeout)
            strategy = KitStrategy(global_model, num_clients=k, fraction=q, generator=generator, node_of=node_of,
                                   aggregator=aggregator, aggregator_options=options, server_lr=server_lr,
                                   history=history)
            clock = [time.perf_counter()]

            def evaluate(server_round, arrays):
                if server_round > 0:   # round 0 is the initial model: only start the clock
                    history.seconds.append(time.perf_counter() - clock[0])
                    if test is not None:
                        history.accuracy.append(accuracy(global_model, test[0], test[1]))
                    if metrics is not None:
                        history.metrics.append(dict(metrics(global_model)))
                    global_model.train()
                clock[0] = time.perf_counter()
                return None

            strategy.start(grid=grid, initial_arrays=ArrayRecord(global_model.state_dict()), num_rounds=rounds,
                           evaluate_fn=evaluate, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - the server app runs in Flower's thread; re-raised below
            errors.append(exc)

    with _quiet_environment(verbose):
        try:
            run_simulation(server_app=server,
                           client_app=client_app(model, clients, local_epochs=local_epochs, lr=lr,
                                                 batch_size=batch_size, attackers=attackers),
                           num_supernodes=k,
                           backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                           "init_args": {"num_cpus": num_cpus, "num_gpus": 0,
                                                         "include_dashboard": False, "log_to_driver": verbose}},
                           verbose_logging=verbose)
        finally:
            if ray.is_initialized():
                ray.shutdown()
    if errors:
        raise errors[0]
    if len(history.seconds) != rounds:
        raise RuntimeError(f"the Flower simulation stopped after {len(history.seconds)} of {rounds} rounds "
                           "(run with verbose=True to see Flower's log)")
    return history
