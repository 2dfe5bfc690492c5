"""Secure (MPC) inference vs plaintext inference of a logistic regression and two small MLPs (square and ReLU
activations) on the digits test set, as time ratios, with the communication: rounds and bytes.

    python benchmarks/mpc_inference.py                 # 2 and 3 parties, private weights
    python benchmarks/mpc_inference.py --parties 2 --repeats 50

The models are trained here on scikit-learn's digits (8x8, 10 classes; seeded): a multinomial logistic regression
and two MLPs 64-32-10, one with the square activation (one round per layer), one with ReLU (a secure comparison:
9 rounds per layer).
``mlsec_kit.crypto.mpc.secure_predict`` evaluates them on the 450 test digits among 2 or 3 simulated parties in one
process (party 0 shares the weights, the last party its inputs and receives the logits); its time covers
everything (the dealer's triples, the weight sharing and the online phase), with no network latency: on a real
network each round adds a round-trip time and each byte its transfer time. Plaintext time is one forward pass of
the float32 model on the same inputs. Before timing, the script checks that the MPC logits are within the stated
tolerance (``SecurePrediction.tolerance``) of the float64 plaintext logits and that the predicted labels agree.
Times are medians over ``--repeats`` runs after a warm-up, the plaintext and MPC runs taking turns. CrypTen's
published figure (2-party logistic regression on 5000x20 Gaussian clusters) is set beside the table: the CrypTen
package does not import with the book's pinned torch (see the results file). Writes
``benchmarks/results/mpc_inference.md``.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _report  # noqa: E402

from mlsec_kit import models  # noqa: E402
from mlsec_kit.crypto.mpc import secure_predict  # noqa: E402
from mlsec_kit.crypto.mpc.inference import SquareActivation  # noqa: E402
from mlsec_kit.data import load_digits  # noqa: E402
from mlsec_kit.train import fit  # noqa: E402

CRYPTEN = ("CrypTen (published, Knott et al. 2021 benchmarks): 2-party logistic-regression inference on 5000x20 "
           "Gaussian clusters 0.061 s vs 0.00011 s plaintext (about 550x), accuracy 81.28% vs 81.20%.")


def train_models() -> dict[str, nn.Module]:
    d = load_digits(seed=0)
    torch.manual_seed(0)
    logreg = models.logistic_regression(d.input_shape, 10)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), SquareActivation(), nn.Linear(32, 10))
    torch.manual_seed(0)
    relu_mlp = models.mlp(d.input_shape, 10, hidden=(32,))
    for m in (logreg, mlp, relu_mlp):
        fit(m, d.train_loader(batch_size=64, shuffle=True, seed=0), epochs=10, lr=1e-2, progress=False)
        m.eval()
    return {"logistic regression 64-10": logreg, "MLP 64-32-10, square activation": mlp,
            "MLP 64-32-10, ReLU": relu_mlp}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parties", type=int, action="append", help="number of parties; repeat for several "
                        "(default: 2 and 3)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as in the tests)")
    parser.add_argument("--note", default="", help="a sentence about the machine, written under the table")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mpc_inference.md")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    counts = args.parties or [2, 3]
    d = load_digits(seed=0)
    x, y = d.X_test, d.y_test
    trained = train_models()
    load_start = os.getloadavg()
    rows = []
    for label, model in trained.items():
        plain64 = copy.deepcopy(model).double()(x.double()).detach()
        with torch.no_grad():
            plain_acc = (model(x).argmax(1) == y).double().mean().item()
        for parties in counts:
            def secure():
                return secure_predict(model, x, parties=parties, generator=torch.Generator().manual_seed(0),
                                      record_payloads=False)

            res = secure()  # also the warm-up
            err = (res.logits - plain64).abs()
            assert (err <= res.tolerance).all(), f"{label}: MPC logits beyond the stated tolerance"
            mpc_acc = (res.logits.argmax(1) == y).double().mean().item()
            assert torch.equal(res.logits.argmax(1), plain64.argmax(1)), f"{label}: MPC labels differ"
            t_plain, t_mpc = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                with torch.no_grad():
                    model(x)
                t_plain.append(time.perf_counter() - start)
                t_mpc.append(secure().seconds)
            tp, tm = statistics.median(t_plain), statistics.median(t_mpc)
            row = (f"| {label} | {parties} | {tp:.5f} | {tm:.4f} | {tm / tp:.0f}x | {res.rounds} | "
                   f"{res.bytes / 1e6:.2f} | {res.offline_bytes / 1e6:.2f} | {res.setup_bytes / 1e6:.3f} | "
                   f"{err.max().item():.1e} | {res.tolerance.max().item():.1e} | {plain_acc:.2%} | {mpc_acc:.2%} |")
            rows.append(row)
            print(row, flush=True)
    load_end = os.getloadavg()

    import mlsec_kit
    commit, when = _report.commit(), _report.now()
    lines = ["# Secure inference (MPC) vs plaintext", "",
             f"`mlsec_kit.crypto.mpc.secure_predict` on the {len(x)} digits of the test split, fixed point with 16 "
             "fractional bits in Z_2^64, private weights (shared by party 0; matrix Beaver triples), square "
             "activations by dealer square pairs, ReLU by the dealer-assisted comparison of `mpc.compare`, truncation local for 2 parties (SecureML) and with dealer pairs for "
             "3. The MPC time covers the whole simulated protocol in one process (dealer, weight sharing, online "
             "phase; messages are counted, not copied: `record_payloads=False`) with no network delay; plaintext is one float32 forward pass. Rounds and online bytes count "
             "the input sharing, the evaluation and the opening of the logits to the data owner (all parties' "
             "sent bytes together); dealer bytes are the offline phase; setup bytes the sharing of the weights. "
             "Max error is the largest |MPC logit - float64 plaintext logit|, tolerance the largest stated bound "
             "(`error_bound`). "
             f"One run of `benchmarks/mpc_inference.py` at {when}: median of {args.repeats} interleaved runs "
             "after a warm-up.", "",
             _report.load_sentence(load_start, load_end), ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["| model | parties | plaintext s | MPC s | ratio | rounds | online MB | dealer MB | setup MB "
              "| max error | tolerance | plaintext accuracy | MPC accuracy |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, "",
              CRYPTEN + " The CrypTen package (0.4.1, the latest release) cannot be installed next to the pinned "
              "torch: `pip install crypten` fails on its dependency on the deprecated `sklearn` package, it needs "
              "torchvision (absent here) and onnx, and installed by hand (with `--no-deps`, torchvision 0.28.0 and "
              "onnx in a separate directory) it fails at import: it imports "
              "`torch.onnx._internal.registration`, which torch 2.13 no longer has.", "",
              f"Versions: python {platform.python_version()}, torch {metadata.version('torch')}, "
              f"mlsec_kit {mlsec_kit.__version__} (commit {commit})."]
    _report.write(args.out, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
