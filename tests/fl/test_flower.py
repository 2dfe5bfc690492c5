"""mlsec_kit.fl.flower: the kit's FedAvg on Flower's simulation engine gives the kit loop's run.

One Flower simulation (6 clients, 3 rounds, half of them per round, coordinate median, one sign-flipping client)
is shared by the tests of this file (about 15 s of Ray start-up and messaging on 2 cores); the other tests do
not start Ray.
"""
import copy
import logging
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

pytest.importorskip("flwr", reason="Flower is not installed (pip install -r requirements.txt)")
pytest.importorskip("ray", reason="Ray is not installed (pip install 'flwr[simulation]')")

import ray  # noqa: E402
from flwr.common import ArrayRecord, MetricRecord  # noqa: E402

from mlsec_kit.fl import Client, ModelPoisoning, aggregate, fedavg  # noqa: E402
from mlsec_kit.fl.flower import KitStrategy, flower_available, run_flower  # noqa: E402

K, ROUNDS, FRACTION, SEED = 6, 3, 0.5, 7
SETTINGS = dict(rounds=ROUNDS, fraction=FRACTION, local_epochs=1, lr=0.2, batch_size=16, aggregator="median",
                attackers={1: ModelPoisoning("sign_flip", 4.0)})   # client 1 is sampled in round 1
#: the accuracy curves must agree to this (they are equal in practice: same clients, seeds, order, arithmetic)
TOL = 1e-6


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ray_processes() -> set[int]:
    """Pids of the Ray processes started by THIS process (a chapter notebook may run its own Ray meanwhile): the
    GCS server, raylet, monitors and dashboard (children of this process, their session directory
    ``/tmp/ray/session_<date>_<our pid>`` on the command line), and the workers and agents (children of our
    raylet; a worker whose raylet has died counts too, as Ray names its raylet in ``RAY_RAYLET_PID``)."""
    me = os.getpid()
    procs = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            status = _read(proc / "status")
            ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), 0)
            procs[int(proc.name)] = (ppid, _read(proc / "cmdline"), proc)
    ours = {pid for pid, (ppid, cmd, _) in procs.items()
            if "ray" in cmd and (ppid == me or f"_{me}/" in cmd or f"_{me} " in cmd)}
    for pid, (ppid, cmd, proc) in procs.items():
        if cmd.startswith("ray::"):
            raylet = next((int(v.split("=")[1]) for v in _read(proc / "environ").split()
                           if v.startswith("RAY_RAYLET_PID=")), None)
            orphan = raylet is not None and raylet not in procs
            if ppid in ours or raylet in ours or (orphan and _session_of(proc) in (None, me)):
                ours.add(pid)
    return ours


def _session_of(proc: Path):
    """The pid in the name of the Ray session (``/tmp/ray/session_<date>_<pid>``) a worker's open files (its logs)
    lie in, or None when none does: a worker whose raylet has died belongs to this process's Ray only if its
    session is ours (a chapter notebook's Ray may be shutting down meanwhile, leaving orphans of its own)."""
    try:
        links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
    except OSError:
        return None
    for link in links:
        found = re.search(r"/session_[^/]*_(\d+)/", link)
        if found:
            return int(found.group(1))
    return None


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(420, 8, generator=g)
    y = ((x[:, 0] + 0.5 * x[:, 1] - x[:, 2]) > 0).long()
    clients = [Client(x[i * 60:(i + 1) * 60], y[i * 60:(i + 1) * 60], cid=i) for i in range(K)]
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    return model, clients, (x[360:], y[360:])


@pytest.fixture(scope="module")
def runs():
    model, clients, test = _data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kit = fedavg(model, clients, generator=torch.Generator().manual_seed(SEED), test=test, **SETTINGS)
    env_before, level_before = os.environ.get("PYTHONPATH"), logging.getLogger("flwr").level
    ray_before = _ray_processes()
    # count the local updates run in THIS process: the Ray actors import an unpatched Client, so a run_flower that
    # trained in the driver (a fallback to the kit loop) would show up here
    calls, original = [], Client.local_update

    def counted(self, *args, **kwargs):
        calls.append(os.getpid())
        return original(self, *args, **kwargs)

    Client.local_update = counted
    try:
        fedavg(model, clients, rounds=1, generator=torch.Generator().manual_seed(SEED))
        in_process_calls = len(calls)        # the counter works: the kit loop trains here
        calls.clear()
        start = time.perf_counter()
        flower = run_flower(model, clients, generator=torch.Generator().manual_seed(SEED), test=test, **SETTINGS)
        seconds = time.perf_counter() - start
    finally:
        Client.local_update = original
    driver_calls = len(calls)
    deadline = time.monotonic() + 20          # Ray's processes exit asynchronously after ray.shutdown()
    while (left := _ray_processes() - ray_before) and time.monotonic() < deadline:
        time.sleep(0.5)
    return SimpleNamespace(model=model, before=before, clients=clients, test=test, kit=kit, flower=flower,
                           seconds=seconds, in_process_calls=in_process_calls, driver_calls=driver_calls,
                           ray_left=left, ray_initialized=ray.is_initialized(),
                           env_same=os.environ.get("PYTHONPATH") == env_before,
                           level_same=logging.getLogger("flwr").level == level_before)


def test_flower_run_matches_the_kit_loop(runs):
    kit, fl = runs.kit, runs.flower
    assert fl.clients == kit.clients                       # the kit's seeded sampler, not Flower's random.sample
    assert len(fl.accuracy) == ROUNDS
    assert fl.accuracy == pytest.approx(kit.accuracy, abs=TOL)
    for a, b in zip(fl.model.parameters(), kit.model.parameters()):
        assert torch.allclose(a, b, atol=TOL)
    assert fl.survivors == fl.clients
    assert all(b > 0 for b in fl.bytes) and len(fl.seconds) == ROUNDS


def test_flower_trains_in_its_own_processes(runs):
    # the match above would also hold if run_flower fell back to the kit loop; it does not: no client trained in
    # the driver process during run_flower, while the kit loop's clients do
    assert runs.in_process_calls == K     # one round of the kit loop with every client
    assert runs.driver_calls == 0


def test_flower_run_time(runs):
    # the budget the chapter plans with (about 20 s quiet; 40-65 s measured with the machine fully loaded)
    assert runs.seconds < 120


def test_the_comparison_can_fail(runs):
    """The match above is informative: another aggregator, another seed, or no attacker changes the curve."""
    model, clients, test = runs.model, runs.clients, runs.test
    kit = runs.kit

    def other(**change):
        s = {**SETTINGS, **change}
        g = torch.Generator().manual_seed(change.pop("seed", SEED))
        s.pop("seed", None)
        return fedavg(model, clients, generator=g, test=test, **s)

    assert other(aggregator="mean").accuracy != pytest.approx(kit.accuracy, abs=TOL)     # Flower's own FedAvg
    assert other(seed=SEED + 1).clients != kit.clients                                  # another sample
    assert other(attackers=None).model.state_dict()["0.weight"].sub(
        kit.model.state_dict()["0.weight"]).abs().max() > 1e-4                           # attacker applied


def test_flower_leaves_no_trace(runs):
    assert not runs.ray_initialized
    assert runs.ray_left == set(), f"Ray processes left behind: {sorted(runs.ray_left)}"
    assert runs.env_same            # Flower's Ray backend appends sys.path to PYTHONPATH; run_flower restores it
    assert runs.level_same
    for k, v in runs.model.state_dict().items():                  # the caller's model is not trained
        assert torch.equal(v, runs.before[k])


def _reply(pid, value, *, n=5, error=None):
    return SimpleNamespace(has_error=lambda: error is not None, error=SimpleNamespace(reason=error),
                           content={"arrays": ArrayRecord({"delta": torch.full((26,), float(value))}),
                                    "metrics": MetricRecord({"num-examples": n, "partition-id": pid})})


def _strategy(model, **kw):
    return KitStrategy(model, num_clients=4, fraction=0.5, generator=torch.Generator().manual_seed(0),
                       node_of={i: 100 + i for i in range(4)}, **kw)


def test_strategy_aggregates_with_the_kit_rule_in_client_order():
    model = nn.Linear(12, 2)
    w0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    replies = [_reply(2, 100.0, n=50), _reply(0, 1.0), _reply(1, 3.0)]
    for method, expect in (("median", 3.0), ("mean", (100 * 50 + 1 * 5 + 3 * 5) / 60)):
        m = copy.deepcopy(model)
        arrays, _ = _strategy(m, aggregator=method, server_lr=0.5).aggregate_train(1, replies)
        w = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
        assert torch.allclose(w, w0 + 0.5 * expect, atol=1e-5)
        assert torch.equal(arrays.to_torch_state_dict()["weight"], m.weight.detach())
    # krum breaks ties by position: the strategy must hand the updates over in client order
    m = copy.deepcopy(model)
    _strategy(m, aggregator="krum", aggregator_options={"byzantine": 0}).aggregate_train(
        1, [_reply(1, 2.0), _reply(3, 0.0), _reply(0, 1.0), _reply(2, 3.0)])
    ordered = [torch.full((26,), v) for v in (1.0, 2.0, 3.0, 0.0)]
    w = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
    assert torch.allclose(w, w0 + aggregate(ordered, [5] * 4, method="krum", byzantine=0), atol=1e-6)


def test_strategy_refuses_failed_clients():
    with pytest.raises(RuntimeError, match="client.*failed.*out of memory"):
        _strategy(nn.Linear(12, 2)).aggregate_train(1, [_reply(0, 1.0), _reply(1, 0.0, error="out of memory")])


@pytest.mark.parametrize("change, error", [
    (dict(rounds=0), "rounds"), (dict(fraction=0.0), "fraction"), (dict(fraction=1.5), "fraction"),
    (dict(aggregator="average"), "aggregator"), (dict(num_cpus=0), "num_cpus"), (dict(lr=-1.0), "lr"),
    (dict(batch_size=0), "batch_size"), (dict(timeout=0), "timeout"), (dict(server_lr=0), "server_lr"),
    (dict(aggregator_options={"trimm": 0.1}), "aggregator_options"), (dict(test=(1,)), "test"),
    (dict(attackers={9: ModelPoisoning("scale", 2.0)}), "attackers"),
])
def test_bad_input_is_refused_before_ray_starts(change, error):
    model, clients, test = _data()
    kw = {**dict(rounds=1, generator=torch.Generator().manual_seed(0), test=test), **change}
    with pytest.raises(ValueError, match=error):
        run_flower(model, clients, **kw)
    assert not ray.is_initialized()


def test_bad_types_are_refused():
    model, clients, test = _data()
    with pytest.raises(TypeError, match="model"):
        run_flower("model", clients, rounds=1)
    with pytest.raises(ValueError, match="clients"):
        run_flower(model, [], rounds=1)
    with pytest.raises(TypeError, match="clients\\[1\\]"):
        run_flower(model, [clients[0], "c"], rounds=1)
    with pytest.raises(TypeError, match="generator"):
        run_flower(model, clients, rounds=1, generator=0)
    assert flower_available()
