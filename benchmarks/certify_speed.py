"""Time randomized-smoothing certification with the noise samples batched vs one sample per forward pass.

    python benchmarks/certify_speed.py                       # CPU, the digits-sized CNN, about 1-2 minutes
    python benchmarks/certify_speed.py --device cuda --workload cnn:3x32x32 --inputs 50     # on a GPU machine

``mlsec_kit.defenses.smoothing.certify`` (Cohen, Rosenfeld & Kolter 2019) classifies ``n0 + n`` noisy copies of
each input with the base classifier. It streams them through the model ``batch_size`` rows at a time; with
``batch_size=1`` it is the textbook loop, one noise sample per forward pass. Both runs use the same generator
seed and draw the same noise (the sampler is batch-invariant), so they return the same classes and radii
(checked) and differ only in speed. Each setting is timed ``--repeats`` times, interleaved with the others so
a change in machine load hits all alike, after a warm-up; the median is reported as certified inputs per second
and as a ratio to one sample per pass. The models are the kit's ``small_cnn`` and ``mlp`` with random weights
(speed does not depend on what they learnt). Writes ``benchmarks/results/certify_speed.md``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mlsec_kit.defenses.smoothing import certify  # noqa: E402
from mlsec_kit.models import mlp, small_cnn  # noqa: E402
from pgd_speed import sync, versions  # noqa: E402  (the same timing helpers as the PGD benchmark)

SIGMA, N0, ALPHA = 0.25, 100, 0.001
MODELS = {"cnn": small_cnn, "mlp": mlp}


def parse_workload(text: str) -> tuple[str, tuple[int, ...]]:
    kind, _, dims = text.partition(":")
    try:
        shape = tuple(int(v) for v in dims.split("x"))
    except ValueError:
        shape = ()
    if kind not in MODELS or len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"a workload is MODEL:CxHxW with MODEL in {tuple(MODELS)}, "
                                         f"e.g. cnn:1x8x8, got {text!r}")
    return kind, shape


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", type=parse_workload, action="append", help="MODEL:CxHxW; repeat for "
                        "several (default: cnn:1x8x8 and mlp:1x8x8, the digits of the small profile)")
    parser.add_argument("--n", type=int, default=10_000, help="estimation samples per input (default 10,000)")
    parser.add_argument("--inputs", type=int, default=4, help="inputs certified per batched run")
    parser.add_argument("--inputs-unbatched", type=int, default=1, help="inputs per one-sample-per-pass run")
    parser.add_argument("--batch-sizes", default="100,1000,10000", help="batched settings, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--note", default="", help="a sentence about the machine, written under the table")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "certify_speed.md")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.inputs < 1 or args.inputs_unbatched < 1 or args.n < N0:
        parser.error(f"--repeats, --inputs and --inputs-unbatched must be >= 1 and --n >= {N0}")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    device = torch.device(args.device)
    import mlsec_kit
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    threads = torch.get_num_threads()
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({os.cpu_count()} cores, torch threads {threads})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    rows = []
    for kind, shape in args.workload or [("cnn", (1, 8, 8)), ("mlp", (1, 8, 8))]:
        torch.manual_seed(0)
        model = MODELS[kind](shape, 10).eval().to(device)
        x = torch.rand(max(args.inputs, args.inputs_unbatched), *shape).to(device)

        def run(batch_size: int, count: int):
            return certify(model, x[:count], sigma=SIGMA, n0=N0, n=args.n, alpha=ALPHA, batch_size=batch_size,
                           generator=torch.Generator().manual_seed(1))

        # the same certificates from every setting: one sample per pass does the same work, only slower
        reference = run(1, args.inputs_unbatched)
        for b in batch_sizes:
            classes, radii = run(b, args.inputs_unbatched)
            assert torch.equal(classes, reference[0]) and torch.allclose(radii, reference[1]), b
        settings = {1: args.inputs_unbatched, **{b: args.inputs for b in batch_sizes}}
        per_input: dict[int, list[float]] = {b: [] for b in settings}
        for _ in range(args.repeats):
            for b, count in settings.items():
                sync(device)
                start = time.perf_counter()
                run(b, count)
                sync(device)
                per_input[b].append((time.perf_counter() - start) / count)
        base = statistics.median(per_input[1])
        for b, count in settings.items():
            sec = statistics.median(per_input[b])
            label = "one noise sample per pass" if b == 1 else f"batched, {b:,} rows per pass"
            row = (f"| {where} | {kind} {'x'.join(map(str, shape))}, n0 {N0} + n {args.n:,} | {label} | {count} | "
                   f"{sec:.3f} | {1 / sec:.3g} | {base / sec:.1f}x |")
            rows.append(row)
            print(row, flush=True)

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Certification speed: noise samples batched vs one per forward pass", "",
             f"`mlsec_kit.defenses.smoothing.certify` (sigma {SIGMA}, alpha {ALPHA}) on `small_cnn` (cnn) and "
             f"`mlp` (one hidden layer of 64) with random weights, the same certificates from every setting (checked: same generator seed, same noise). "
             f"Every row comes from one run of `benchmarks/certify_speed.py` at {when}: median over "
             f"{args.repeats} interleaved runs after a warm-up; speed-up = inputs per second / inputs per second "
             "with one noise sample per pass, on the same workload. Load average at the start: "
             f"{load:.2f}.", ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["| device | workload (per input) | noise samples | inputs per run | seconds per input | "
              "inputs per second | speed-up |", "| --- | --- | --- | ---: | ---: | ---: | ---: |", *rows, "",
              "Package versions: " + ", ".join(f"{k} {v}" for k, v in {
                  **versions("torch", "scipy", "numpy"), "mlsec_kit": f"{mlsec_kit.__version__} (commit {commit})"}
                  .items())]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
