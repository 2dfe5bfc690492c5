"""Time APGD per iteration against the kit's PGD and ART's AutoProjectedGradientDescent, on the same model and batch.

    python benchmarks/apgd_vs_pgd.py
    python benchmarks/apgd_vs_pgd.py --device cuda --workload 3x32x32:2048     # on a GPU machine

APGD does more per iteration than PGD: a momentum step, two projections, the per-example loss, the best
point and its gradient kept, the checkpoint test. The question this answers is what that costs: seconds per
iteration of ``mlsec_kit.attacks.evasion.apgd`` (CE loss, one random start) divided by those of the kit's
``pgd`` (same number of gradient steps, random start), and the same for ART's ``AutoProjectedGradientDescent``
(one random start, CE loss) on the same ``nn.Module``. Each is run ``--repeats`` times after a warm-up,
interleaved so that a change in machine load hits all of them alike; the median is reported. Uses the
model, batch, timing and version helpers of ``benchmarks/pgd_speed.py``. Writes
``benchmarks/results/apgd_vs_pgd.md``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pgd_speed import parse_workload, problem, timed, versions  # noqa: E402

EPS, STEPS = 0.3, 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", type=parse_workload, action="append",
                        help="CxHxW:BATCH; repeat for several (default: 1x28x28:256 and 1x8x8:450)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--note", default="", help="a sentence about the machine, written under the table")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "apgd_vs_pgd.md")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be >= 1")
    workloads = args.workload or [((1, 28, 28), 256), ((1, 8, 8), 450)]
    device = torch.device(args.device)
    steps = args.steps

    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    import mlsec_kit
    from mlsec_kit.attacks.evasion import apgd, pgd

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    found = {**versions("torch", "adversarial-robustness-toolbox", "numpy"),
             "mlsec_kit": f"{mlsec_kit.__version__} (commit {commit})"}

    rows = []
    for shape, batch in workloads:
        model, x, _ = problem(shape, batch, device)
        with torch.no_grad():  # ART attacks only the examples the model gets right: make that all of them,
            y = model(x).argmax(1)  # so every implementation does the same work on every example
        x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
        classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10,
                                       clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu")
        art_apgd = AutoProjectedGradientDescent(classifier, norm=np.inf, eps=EPS, eps_step=2 * EPS, max_iter=steps,
                                                nb_random_init=1, batch_size=batch, loss_type="cross_entropy",
                                                verbose=False)
        g = torch.Generator()
        runs = {
            "mlsec_kit.pgd (random start)": lambda: pgd(model, x, y, eps=EPS, alpha=2.5 * EPS / steps, steps=steps,
                                                        random_start=True, generator=g.manual_seed(0)),
            "mlsec_kit.apgd (CE)": lambda: apgd(model, x, y, eps=EPS, steps=steps, generator=g.manual_seed(0)),
            "ART AutoProjectedGradientDescent (CE)": lambda: art_apgd.generate(x_np, y=y_np),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for name in runs:  # warm-up: lazy imports, allocator, kernels
            timed(runs[name], device)
        for _ in range(args.repeats):
            for name in runs:
                times[name].append(timed(runs[name], device))
        base = statistics.median(times["mlsec_kit.pgd (random start)"]) / steps
        where = (torch.cuda.get_device_name(device) if device.type == "cuda"
                 else f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})")
        for name in runs:
            per_iter = statistics.median(times[name]) / steps
            lo, hi = min(times[name]) / steps, max(times[name]) / steps
            row = (f"| {where} | {'x'.join(map(str, shape))}, batch {batch}, {steps} iterations | {name} | "
                   f"{per_iter * 1e3:.2f} | {lo * 1e3:.2f}-{hi * 1e3:.2f} | {per_iter / base:.2f}x |")
            rows.append(row)
            print(row, flush=True)

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# APGD vs PGD: seconds per iteration", "",
             f"Small CNN (`mlsec_kit.models.small_cnn`, random weights), Linf, eps {EPS}, {steps} iterations, one "
             "random start each; the labels are the model's own predictions, so every example starts correctly "
             "classified and every implementation attacks all of them (ART skips those already misclassified). "
             f"Every row comes from one run of `benchmarks/apgd_vs_pgd.py` at {when}: median "
             f"of {args.repeats} interleaved runs after a warm-up, divided by the number of iterations; ratio = "
             "milliseconds per iteration / those of the kit's PGD on the same workload. ART's time includes its "
             "own bookkeeping (a prediction before and after the attack, and a separate loss evaluation besides "
             "the gradient at every iteration).", ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["| device | workload | implementation | ms per iteration (median) | range | ratio to kit PGD |",
              "| --- | --- | --- | ---: | --- | ---: |", *rows, "", "Package versions: "
              + ", ".join(f"{k} {v}" for k, v in found.items()), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
