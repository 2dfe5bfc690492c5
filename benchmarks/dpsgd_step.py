"""Time one DP-SGD step against one non-private step of the same model and batch, as a ratio, for the kit
(ghost norms, the Gram trick everywhere, and vmap) and for Opacus (per-sample gradients by hooks, and its ghost
clipping), in one run.

    python benchmarks/dpsgd_step.py                          # CPU, the kit's small CNN on 28x28 inputs
    python benchmarks/dpsgd_step.py --device cuda --batch 2048   # on a GPU machine (issue 15's target: <= 2x)

A step is everything an optimiser step needs: forward, backward(s), per-example clipping, noise, the division by
the expected batch size, and ``optimizer.step()`` (plain SGD, lr 0.05). The non-private step is
``F.cross_entropy(model(x), y).backward(); opt.step()``. Before timing, the script checks that every DP version
writes the same clipped sum before noise (noise multiplier 0) as Opacus's ``GradSampleModule`` + ``DPOptimizer``,
to 1e-4 relative; a speed comparison of different work means nothing. Each version runs ``--repeats`` times per
round after a warm-up, the versions taking turns within each round so a change in machine load hits all alike;
the table gives the medians over rounds and the ratio to the non-private step's median (measured in the same
rounds). The load average is written under the table. Writes ``benchmarks/results/dpsgd_step.md``.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _report  # noqa: E402

from mlsec_kit.dp import dp_sgd_step  # noqa: E402
from mlsec_kit.models import num_parameters, small_cnn  # noqa: E402

warnings.filterwarnings("ignore", message="Full backward hook is firing")
warnings.filterwarnings("ignore", message="Secure RNG turned off")
warnings.filterwarnings("ignore", message="Optimal order is the")

C, SIGMA, LR = 1.0, 1.0, 0.05

WHY = ("Where the time goes. The non-private step is one forward and one backward. The kit's ghost step is one "
       "forward, one backward to the layers' outputs (no weight gradients), each layer's per-example norm from its "
       "input and output gradient, and the clipped sum formed from the same tapes (the layer's weight-gradient "
       "product with reweighted output gradients), so its extra cost is the norms: for the convolutions here the "
       "Gram matrices are T x T with T = 784 and 196 output pixels, far larger than the o x p = 16 x 9 and 32 x 144 "
       "per-example gradients, so the per-layer rule of Bu et al. (2022) forms the gradients (one layer at a time) "
       "and `gram`, which insists on the Gram trick of Li et al. (2022), is many times slower: the trick pays for "
       "layers with few positions and wide weights (linear layers, transformers), not for early convolutions. "
       "vmap materialises every per-example gradient of every layer; Opacus's hooks do too and then clip in the "
       "optimiser; Opacus's ghost clipping runs two full backward passes.")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_versions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    """name -> (zero-argument step function, function returning the parameters' grads just written)."""
    from opacus import GradSampleModule
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping

    b = len(x)
    gen = torch.Generator().manual_seed(0)
    versions = {}

    plain = copy.deepcopy(model)
    plain_opt = torch.optim.SGD(plain.parameters(), lr=LR)

    def plain_step():
        plain_opt.zero_grad()
        F.cross_entropy(plain(x), y).backward()
        plain_opt.step()
    versions["non-private"] = (plain_step, None)

    for method in ("ghost", "gram", "vmap"):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=LR)

        def kit_step(m=m, opt=opt, method=method, sigma=SIGMA):
            dp_sgd_step(m, x, y, max_grad_norm=C, noise_multiplier=sigma, expected_batch_size=b, generator=gen,
                        method=method, allow_no_noise=True)
            opt.step()

        def kit_check(m=m, method=method):
            dp_sgd_step(m, x, y, max_grad_norm=C, noise_multiplier=0.0, allow_no_noise=True, expected_batch_size=1,
                        method=method)
            return [p.grad.clone() for p in m.parameters()]
        versions[f"kit, {method}"] = (kit_step, kit_check)

    def opacus_hooks(noise):
        gsm = GradSampleModule(copy.deepcopy(model), loss_reduction="mean")
        opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=LR), noise_multiplier=noise, max_grad_norm=C,
                          expected_batch_size=b, loss_reduction="mean")
        return gsm, opt
    gsm, opt = opacus_hooks(SIGMA)

    def opacus_step(gsm=gsm, opt=opt):
        opt.zero_grad()
        F.cross_entropy(gsm(x), y).backward()
        opt.step()

    def opacus_check():
        g, o = opacus_hooks(0.0)
        o.zero_grad()
        F.cross_entropy(g(x), y).backward()
        o.pre_step()
        return [p.grad * b for p in g.parameters()]   # mean reduction: Opacus divides by the expected batch size
    versions["Opacus, hooks"] = (opacus_step, opacus_check)

    def opacus_ghost(noise):
        gsm = GradSampleModuleFastGradientClipping(copy.deepcopy(model), max_grad_norm=C, use_ghost_clipping=True,
                                                   loss_reduction="mean")
        opt = DPOptimizerFastGradientClipping(torch.optim.SGD(gsm.parameters(), lr=LR), noise_multiplier=noise,
                                              max_grad_norm=C, expected_batch_size=b, loss_reduction="mean")
        crit = DPLossFastGradientClipping(gsm, opt, nn.CrossEntropyLoss(), loss_reduction="mean")
        return gsm, opt, crit
    gsm2, opt2, crit2 = opacus_ghost(SIGMA)

    def opacus_ghost_step(gsm=gsm2, opt=opt2, crit=crit2):
        opt.zero_grad()
        crit(gsm(x), y).backward()
        opt.step()

    def opacus_ghost_check():
        g, o, c = opacus_ghost(0.0)
        o.zero_grad()
        c(g(x), y).backward()
        o.pre_step()
        return [p.grad * b for p in g.parameters()]
    versions["Opacus, ghost clipping"] = (opacus_ghost_step, opacus_ghost_check)
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, action="append", help="batch size; repeat for several "
                        "(default: 64 and 256)")
    parser.add_argument("--width", type=int, default=16, help="the small CNN's first block width (default 16)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (each version once per round)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as in the tests)")
    parser.add_argument("--note", default="", help="a sentence about the machine, written under the table")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dpsgd_step.md")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batches = args.batch or [64, 256]
    torch.manual_seed(0)
    model = small_cnn((1, 28, 28), 10, width=args.width).to(device)
    label = f"small CNN (width {args.width}, {num_parameters(model):,} parameters), 1x28x28"
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})")
    load_start = os.getloadavg()
    rows = []
    for b in batches:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(b, 1, 28, 28, generator=g).to(device)
        y = torch.randint(0, 10, (b,), generator=g).to(device)
        versions = make_versions(model, x, y, device)
        ref = versions["Opacus, hooks"][1]()
        for name, (_, check) in versions.items():
            if check is None:
                continue
            got = check()
            worst = max(((a - r).abs().max() / r.abs().max().clamp(min=1e-12)).item() for a, r in zip(got, ref))
            assert worst < 1e-4, f"{name} disagrees with Opacus's clipped sum by {worst:.1e} (relative)"
        times: dict[str, list[float]] = {k: [] for k in versions}
        for step, _ in versions.values():   # warm-up
            step()
        for _ in range(args.repeats):
            for name, (step, _) in versions.items():
                sync(device)
                start = time.perf_counter()
                step()
                sync(device)
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["non-private"])
        for name in versions:
            t = statistics.median(times[name])
            spread = max(times[name]) / min(times[name])
            row = f"| {where} | {label} | {b} | {name} | {1000 * t:.1f} | {spread:.2f} | {t / base:.2f}x |"
            rows.append(row)
            print(row, flush=True)
    load_end = os.getloadavg()

    import mlsec_kit
    commit, when = _report.commit(), _report.now()
    lines = ["# One DP-SGD step vs one non-private step", "",
             "Same model, same batch, one step each (forward, backward(s), per-example clipping to C = 1, Gaussian "
             "noise with σ = 1, division by the batch size, `SGD.step()`); ratio = DP step time / non-private step "
             "time (below is better, 1 is free). Kit: `mlsec_kit.dp.dp_sgd_step` with `method=\"ghost\"` (per-layer "
             "choice between the Gram trick and the one layer's per-example gradient, Bu et al. 2022), "
             "`\"gram\"` (the Gram trick of Li et al. 2022 on every layer) and `\"vmap\"` (every per-example "
             "gradient materialised). Opacus: `GradSampleModule` + `DPOptimizer` (hooks), and its ghost clipping "
             "(`GradSampleModuleFastGradientClipping`, which has a norm sampler for linear layers and materialises "
             "conv layers' per-example gradients). All five were checked to write the same clipped sum before noise "
             "as Opacus's hooks (1e-4 relative) before timing. "
             f"One run of `benchmarks/dpsgd_step.py` at {when}: median of {args.repeats} rounds after a warm-up, the "
             "versions taking turns within each round.", "",
             _report.load_sentence(load_start, load_end)]
    lines += ["", WHY]
    if args.note:
        lines += ["", args.note]
    lines += ["", "| device | model | batch | version | ms per step (median) | slowest / fastest round "
              "| ratio to non-private |",
              "| --- | --- | ---: | --- | ---: | ---: | ---: |", *rows, "",
              f"Versions: python {platform.python_version()}, torch {metadata.version('torch')}, "
              f"opacus {metadata.version('opacus')}, mlsec_kit {mlsec_kit.__version__} (commit {commit})."]
    _report.write(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
