"""Time shadow-model training batched across models (``torch.func`` + ``vmap``) against the same models trained
one after another, in one run.

    python benchmarks/shadow_batched.py                       # CPU, the book's small models on digits
    python benchmarks/shadow_batched.py --device cuda          # on a GPU machine (issue 14's target: >= 4x)

Both versions are :func:`mlsec_kit.attacks.inference.membership.train_shadow_models` with the same generator,
so they train the same models on the same halves of the pool, from the same initialisations, with the same
batch orders, epochs and optimiser; the script checks that their weights agree before timing anything (a speed
comparison of different work means nothing). Each workload is run ``--repeats`` times per version after a
warm-up, the versions taking turns so a change in machine load hits both alike; the table gives the medians
and the ratio loop / batched (above 1: batching is faster). The load average is written under the table.
Writes ``benchmarks/results/shadow_batched.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _report  # noqa: E402

from mlsec_kit.attacks.inference.membership import train_shadow_models  # noqa: E402
from mlsec_kit.data import load_dataset  # noqa: E402
from mlsec_kit.models import mlp, small_cnn  # noqa: E402

POOL = 1000
# name -> (model builder, epochs); each shadow model trains on POOL // 2 digits with batches of 64, Adam 1e-3
WORKLOADS = {
    "mlp": (lambda: mlp((1, 8, 8), 10, hidden=(128,)), 10, "MLP 64-128-10"),
    "cnn": (lambda: small_cnn((1, 8, 8), 10, width=16), 2, "small CNN (width 16)"),
}


WHY = ("Batching removes the per-model Python and kernel-launch overhead of many small steps, so it pays most "
       "where that overhead dominates: many small models (and, by the same argument, a GPU, where one small "
       "model's step leaves most of the device idle; not measured here). On a CPU, `vmap` runs a convolution "
       "over stacked weights as one grouped convolution, which the CPU kernels run no faster than the separate "
       "convolutions, so the CNN gains little or nothing there.")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, action="append", help="number of shadow models; repeat for "
                        "several (default: 4, 16 and 64)")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), action="append",
                        help="model; repeat for several (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as in the tests)")
    parser.add_argument("--note", default="", help="a sentence about the machine, written under the table")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shadow_batched.md")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    counts = args.models or [4, 16, 64]
    names = args.workload or list(WORKLOADS)

    d = load_dataset("digits", seed=0)
    X, Y = torch.cat([d.X_train, d.X_test]), torch.cat([d.y_train, d.y_test])
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:POOL]
    x, y = X[perm].to(device), Y[perm].to(device)
    load_start = os.getloadavg()

    def run(make, epochs: int, m: int, batched: bool):
        return train_shadow_models(make, x, y, num_models=m, epochs=epochs, lr=1e-3, batch_size=64,
                                   batched=batched, generator=torch.Generator().manual_seed(1))

    def timed(make, epochs: int, m: int, batched: bool) -> float:
        sync(device)
        start = time.perf_counter()
        run(make, epochs, m, batched)
        sync(device)
        return time.perf_counter() - start

    rows = []
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})")
    for name in names:
        make, epochs, label = WORKLOADS[name]
        for m in counts:
            a, b = run(make, epochs, m, True), run(make, epochs, m, False)     # also the warm-up
            worst = max((a.params[k] - b.params[k]).abs().max().item() for k in a.params)
            agree = (a.logits(x).argmax(-1) == b.logits(x).argmax(-1)).double().mean().item()
            # float32 rounding differs between a batched and a plain matmul; Adam's normalised steps carry the
            # difference along, so it grows with training but stays far below the weights' scale
            assert torch.equal(a.members, b.members) and worst < 1e-3 and agree > 0.999, \
                f"batched and loop disagree: weights by {worst:.2e}, predictions agree on {agree:.2%}"
            times = {"batched": [], "loop": []}
            for _ in range(args.repeats):
                times["batched"].append(timed(make, epochs, m, True))
                times["loop"].append(timed(make, epochs, m, False))
            tb, tl = statistics.median(times["batched"]), statistics.median(times["loop"])
            row = (f"| {where} | {label}, {m} models x {POOL // 2} digits, {epochs} epochs | {tl:.3f} | {tb:.3f} | "
                   f"{tl / tb:.2f}x | {worst:.1e} | {agree:.1%} |")
            rows.append(row)
            print(row, flush=True)
    load_end = os.getloadavg()

    import mlsec_kit
    commit, when = _report.commit(), _report.now()
    lines = ["# Shadow models: batched across models vs one after another", "",
             "`train_shadow_models(..., batched=True)` stacks the models' weights and runs one `vmap` of "
             "`functional_call` per step; `batched=False` trains the same models one after another (same halves of "
             f"a {POOL}-digit pool, initialisations, batch orders; batches of 64, Adam, lr 1e-3). The weights of the "
             "two agree to the maximum absolute difference in the table, and so do their predicted labels on the pool "
             "(checked before timing; float32 rounding differs between batched and plain matrix products, and "
             "Adam carries the difference along, so it grows with training). "
             f"One run of `benchmarks/shadow_batched.py` at {when}: median of {args.repeats} interleaved runs per "
             "version after a warm-up; ratio = loop time / batched time (above 1: batching is faster).", "",
             _report.load_sentence(load_start, load_end), ""]
    lines += [WHY, ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["| device | workload | loop seconds | batched seconds | ratio | max weight difference "
              "| same predictions |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |", *rows, "",
              f"Versions: python {platform.python_version()}, torch {metadata.version('torch')}, "
              f"mlsec_kit {mlsec_kit.__version__} (commit {commit})."]
    _report.write(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
