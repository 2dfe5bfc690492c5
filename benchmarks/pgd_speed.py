"""Time PGD in mlsec_kit against a bare torch loop, ART and torchattacks, on the same model and batches, in one run.

    python benchmarks/pgd_speed.py --torchattacks-python /path/to/ta-venv/bin/python
    python benchmarks/pgd_speed.py --device cuda --workload 3x32x32:2048     # on a GPU machine

The bare loop is the textbook listing (step, project, clip) with nothing else; the kit's ``pgd`` adds
argument checks, eval mode and the projection functions; ART's ``ProjectedGradientDescent`` (its PyTorch
implementation) runs on the same ``nn.Module``. torchattacks pins ``requests~=2.25`` and would downgrade the
book's environment, so it lives in a virtual environment of its own: this script starts that environment's
Python as a worker process (``--worker``), hands it the same model weights and batch, and asks it for one
timed run at a time, interleaved with the local runs. So every row of the table comes from one invocation,
and a change in machine load hits all implementations alike. Each is run ``--repeats`` times after a warm-up;
the median is reported as a ratio to the bare loop of the same workload. Every environment's package
versions are written under the table. Writes ``benchmarks/results/pgd_speed.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlsec_kit.models import small_cnn  # noqa: E402

EPS, STEPS = 0.3, 10
ALPHA = EPS * 2.5 / STEPS


def bare_pgd(model, x, y, eps, alpha, steps):
    """PGD-Linf as a bare torch loop, no checks: the reference the others are measured against."""
    delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def versions(*packages: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def problem(shape: tuple[int, ...], batch: int, device: torch.device):
    """The model and batch of one workload, the same in every process (seeded, CPU draws)."""
    torch.manual_seed(0)
    model = small_cnn(shape, 10).eval()
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    return model.to(device), x.to(device), y.to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(run, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - start


# ---- the torchattacks worker: runs in its own environment, driven over stdin/stdout ------------------------
def worker(device_name: str) -> int:
    import torchattacks

    device = torch.device(device_name)
    out = sys.stdout
    sys.stdout = sys.stderr  # keep the protocol channel clean of library prints
    print(json.dumps({"versions": versions("torch", "torchattacks", "requests", "numpy", "scipy")}), file=out,
          flush=True)
    attack = x = y = None
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "load":
            model, x, y = problem(tuple(cmd["shape"]), cmd["batch"], device)
            attack = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)
            reply = {"ok": True}
        elif cmd["op"] == "result":
            torch.save(attack(x, y).cpu(), cmd["path"])
            reply = {"ok": True}
        elif cmd["op"] == "time":
            reply = {"seconds": timed(lambda: attack(x, y), device)}
        else:
            return 0
        print(json.dumps(reply), file=out, flush=True)
    return 0


class Remote:
    """The torchattacks worker process, one JSON request and one JSON reply per line."""

    def __init__(self, python: str, device: str):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--worker", "--device", device],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.versions = self._read()["versions"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the torchattacks worker exited (code {self.proc.poll()})")
        return json.loads(line)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()  # the worker stops at the end of its input
        self.proc.wait(timeout=60)


def parse_workload(text: str) -> tuple[tuple[int, ...], int]:
    try:
        shape, batch = text.split(":")
        dims = tuple(int(v) for v in shape.split("x"))
        if len(dims) != 3 or min(dims) < 1 or int(batch) < 1:
            raise ValueError
        return dims, int(batch)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a workload is CxHxW:BATCH, e.g. 1x28x28:256, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", type=parse_workload, action="append",
                        help="CxHxW:BATCH; repeat for several (default: 1x28x28:256 and 1x8x8:450)")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torchattacks-python", help="the Python of a virtual environment with torchattacks; "
                        "without it the torchattacks row is skipped")
    parser.add_argument("--note", default="", help="a sentence about the machine, written under the table")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pgd_speed.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.device)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    workloads = args.workload or [((1, 28, 28), 256), ((1, 8, 8), 450)]
    device = torch.device(args.device)

    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    from mlsec_kit.attacks.evasion import pgd

    remote = Remote(args.torchattacks_python, args.device) if args.torchattacks_python else None
    import mlsec_kit
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    envs = {"book environment": {**versions("torch", "adversarial-robustness-toolbox", "numpy", "requests"),
                                 "mlsec_kit": f"{mlsec_kit.__version__} (commit {commit})"}}
    if remote:
        envs["torchattacks environment"] = remote.versions
    else:
        print("no --torchattacks-python: the torchattacks row is skipped")

    rows = []
    for shape, batch in workloads:
        model, x, y = problem(shape, batch, device)
        x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
        classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10,
                                       clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu")
        art_attack = ProjectedGradientDescent(classifier, norm="inf", eps=EPS, eps_step=ALPHA, max_iter=STEPS,
                                              num_random_init=0, batch_size=batch, verbose=False)
        local = {
            "bare torch loop": lambda: bare_pgd(model, x, y, EPS, ALPHA, STEPS),
            "mlsec_kit.pgd": lambda: pgd(model, x, y, eps=EPS, alpha=ALPHA, steps=STEPS),
            "ART ProjectedGradientDescent": lambda: art_attack.generate(x_np, y=y_np),
        }
        # the same examples, whoever computes them (a speed comparison of different work means nothing)
        reference = local["bare torch loop"]().cpu()
        assert torch.allclose(local["mlsec_kit.pgd"]().cpu(), reference, atol=1e-5)
        assert torch.allclose(torch.from_numpy(local["ART ProjectedGradientDescent"]()), reference, atol=1e-5)
        names = list(local)
        if remote:
            remote.ask(op="load", shape=list(shape), batch=batch)
            with tempfile.TemporaryDirectory() as tmp:
                remote.ask(op="result", path=f"{tmp}/ta.pt")
                assert torch.allclose(torch.load(f"{tmp}/ta.pt"), reference, atol=1e-5)
            names.append("torchattacks PGD")
        times: dict[str, list[float]] = {name: [] for name in names}

        def once(name: str) -> float:
            if name == "torchattacks PGD":
                return remote.ask(op="time")["seconds"]
            return timed(local[name], device)

        for name in names:  # warm-up: lazy imports, allocator, kernels
            once(name)
        for _ in range(args.repeats):
            for name in names:
                times[name].append(once(name))
        base = statistics.median(times["bare torch loop"])
        threads = torch.get_num_threads()
        where = (torch.cuda.get_device_name(device) if device.type == "cuda"
                 else f"CPU ({os.cpu_count()} cores, torch threads {threads})")
        for name in names:
            median = statistics.median(times[name])
            spread = (min(times[name]), max(times[name]))
            row = (f"| {where} | {'x'.join(map(str, shape))}, batch {batch}, PGD-{STEPS} | {name} | {median:.4f} | "
                   f"{spread[0]:.4f}-{spread[1]:.4f} | {median / base:.2f}x |")
            rows.append(row)
            print(row, flush=True)
    if remote:
        remote.close()

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# PGD speed: mlsec_kit vs a bare torch loop vs ART and torchattacks", "",
             f"Small CNN (`mlsec_kit.models.small_cnn`, random weights), Linf PGD without random start "
             f"(eps {EPS}, alpha {ALPHA:g}, {STEPS} steps), the same examples from every implementation (checked). "
             f"Every row comes from one run of `benchmarks/pgd_speed.py` at {when}: median of {args.repeats} "
             "interleaved runs after a warm-up, all implementations taking turns (torchattacks in its own "
             "environment, as a worker process driven by the same run); ratio = median time / the bare loop's "
             "median on the same workload.", ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["| device | workload | implementation | median seconds | range | ratio to bare loop |",
              "| --- | --- | --- | ---: | --- | ---: |", *rows, "", "Package versions:", ""]
    lines += [f"- {env}: " + ", ".join(f"{k} {v}" for k, v in found.items()) for env, found in envs.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
