"""Time PGD in mlsec_kit against a bare torch loop and against ART, on the same model and batch, in one run.

    python benchmarks/pgd_speed.py                       # CPU: MNIST-shaped CNN, batch 256, PGD-10
    python benchmarks/pgd_speed.py --shape 3 32 32 --batch 512 --device cuda

The bare loop is the textbook listing (step, project, clip) with nothing else; the kit's ``pgd`` adds
argument checks, eval mode and the projection functions; ART's ``ProjectedGradientDescent`` (its PyTorch
implementation) runs on the same ``nn.Module``. Each is run ``--repeats`` times, interleaved so that a
change in machine load hits all three alike, and the median is reported as a ratio to the bare loop.
Writes ``benchmarks/results/pgd_speed.md``. Speed is not a test: run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlsec_kit.attacks.evasion import pgd  # noqa: E402
from mlsec_kit.models import small_cnn  # noqa: E402


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[1, 28, 28], help="C H W of the inputs")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pgd_speed.md")
    parser.add_argument("--append", action="store_true", help="add rows to an existing results file")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--batch, --steps and --repeats must be >= 1")

    device = torch.device(args.device)
    torch.manual_seed(0)
    shape = tuple(args.shape)
    model = small_cnn(shape, 10).to(device).eval()
    x = torch.rand(args.batch, *shape, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    eps, alpha = 0.3, 0.3 * 2.5 / args.steps
    x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
    runners = {
        "bare torch loop": lambda: bare_pgd(model, x, y, eps, alpha, args.steps),
        "mlsec_kit.pgd": lambda: pgd(model, x, y, eps=eps, alpha=alpha, steps=args.steps),
    }
    # The peers are optional so each can run in its own environment: torchattacks pins requests~=2.25 and
    # would downgrade it, so it lives in a separate venv (see benchmarks/README.md), ART in the book's.
    try:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        print("ART is not installed here: its row is skipped")
    else:
        classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10,
                                       clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu")
        art_attack = ProjectedGradientDescent(classifier, norm="inf", eps=eps, eps_step=alpha, max_iter=args.steps,
                                              num_random_init=0, batch_size=args.batch, verbose=False)
        runners["ART ProjectedGradientDescent"] = lambda: art_attack.generate(x_np, y=y_np)
    try:
        import torchattacks
    except ImportError:
        print("torchattacks is not installed here: its row is skipped")
    else:
        ta_attack = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=args.steps, random_start=False)
        runners[f"torchattacks {torchattacks.__version__} PGD"] = lambda: ta_attack(x, y)
    # the same examples, whoever computes them (a speed comparison of different work means nothing)
    assert torch.allclose(runners["mlsec_kit.pgd"](), runners["bare torch loop"](), atol=1e-5)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up: lazy imports, allocator, kernels
        run()
    for _ in range(args.repeats):
        for name, run in runners.items():
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["bare torch loop"])
    threads = torch.get_num_threads()
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({os.cpu_count()} cores, torch threads {threads})")
    rows = [f"| {where} | {'x'.join(map(str, shape))}, batch {args.batch}, PGD-{args.steps} | {name} | "
            f"{statistics.median(t):.4f} | {statistics.median(t) / base:.2f}x |" for name, t in times.items()]
    for row in rows:
        print(row)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = ["# PGD speed: mlsec_kit vs a bare torch loop vs ART and torchattacks", "",
              f"Small CNN (`mlsec_kit.models.small_cnn`, random weights), Linf PGD without random start, median of "
              f"{args.repeats} interleaved runs after a warm-up; ratio = median time / the bare loop's. "
              f"Measured {when}; Python {platform.python_version()}, torch {torch.__version__}. "
              "Produced by `benchmarks/pgd_speed.py`.",
              "", "| device | workload | implementation | seconds | ratio to bare loop |",
              "| --- | --- | --- | ---: | ---: |"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and args.out.is_file():
        text = args.out.read_text().rstrip("\n") + "\n" + "\n".join(rows) + "\n"
    else:
        text = "\n".join(header + rows) + "\n"
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
