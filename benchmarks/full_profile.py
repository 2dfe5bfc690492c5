"""Every chapter in the ``full`` profile, its headline numbers beside the literature's, with times.

    python benchmarks/full_profile.py [--device cuda] [--chapters 03_evasion_whitebox ...]
    python benchmarks/full_profile.py --smoke --out /tmp/smoke.md     # the same code paths, tiny, on CPU

Each chapter notebook is executed with ``MLSEC_PROFILE=full`` (the papers' datasets, downloaded once into
``$MLSEC_DATA`` or ``~/.cache/mlsec_kit``) and the numbers it glues into its prose are collected into
``benchmarks/results/full_profile.md`` with the wall-clock time of each chapter, beside the published figure
where the chapter cites one (``LITERATURE`` below, from /work/shared/LITERATURE_FIGURES.md's sources).

``--smoke`` runs exactly that path (full profile, the full datasets' loaders, parsers and checksums) with
tiny sizes: small synthetic files in the datasets' real formats (gzip IDX for MNIST and Fashion-MNIST, the
CIFAR-10 pickle archive, Adult's CSV files) are written into a fresh data folder and registered in
``mlsec_kit.data.full.RESOURCES`` by a cell inserted before the chapter's own; a cell after the
``parameters`` cell divides every integer ``mk.by_profile(small=..., full=...)`` size by ``--smoke-scale``
(starting from the small value; a value the same in both profiles, such as a number of shadow models, is kept). The test suite runs it, so the full path cannot rot between GPU sessions.
"""
from __future__ import annotations

import argparse
import ast
import csv
import gzip
import hashlib
import io
import json
import os
import pickle
import platform
import re
import struct
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "full_profile.md"

# glue name -> the published figure it is set beside (sources: /work/shared/LITERATURE_FIGURES.md)
LITERATURE = {
    "ch03_clean_acc": "naturally trained MNIST CNN: about 99% (Madry et al. 2018, MadryLab/mnist_challenge)",
    "ch03_pgd_acc": "naturally trained MNIST model under PGD, Linf 0.3: about 0% (Madry et al. 2018)",
    "ch03_fgsm_acc": "for contrast, a PGD-trained MNIST CNN under FGSM: 96.36% (mnist_challenge leaderboard)",
    "ch04_square_success": "Square Attack, ImageNet Linf 0.05, 10k queries: success 99.7-100% "
                           "(max-andr/square-attack metrics)",
    "ch04_square_mean_q": "Square Attack, ImageNet: mean queries 197 / 73 / 31 (Inception-v3 / ResNet-50 / VGG-16-BN)",
    "ch06_frogs_success": "Poison Frogs, transfer learning: one poison per target suffices (Shafahi et al. 2018, "
                          "abstract); about 50 for end-to-end training",
    "ch07_bar_asr": "BadNets-style square trigger, MNIST: ASR 99.86%, clean accuracy 98.86% (clean model 98.62%) "
                    "(Gao et al. 2019, STRIP, Table 2)",
    "ch07_nc_index": "Neural Cleanse, infected GTSRB model: anomaly index 3.65, > 2 flags (bolunwang/backdoor README)",
    "ch07_strip_missed": "STRIP, MNIST square trigger, N = 100: 1.85% of triggered inputs missed at a 1% FRR "
                         "(Gao et al. 2019, Table 3)",
    "ch09_eq_unk_test": "equation-solving extraction on the 64-feature digits (both profiles): Amazon ML's "
                        "logistic-regression model of the digits stolen in 650 queries, one per unknown; a softmax "
                        "model with 530 unknowns: 100% agreement from 530 queries (Tramèr et al. 2016)",
    "ch09_dlg_mlp_good": "share of DLG reconstructions with MSE < 0.01 on MNIST: about 76% (Zhao et al. 2020, "
                         "Figure 1, read off a figure)",
    "ch09_idlg_mlp_good": "share of iDLG reconstructions with MSE < 0.01 on MNIST: about 89% (Zhao et al. 2020, "
                          "Figure 1, read off a figure)",
    "ch10_lr_base": "Adult LogisticRegression, non-private: 81.28% (IBM diffprivlib notebooks)",
    "ch10_lr_eps1": "Adult LogisticRegression at eps 1: 79.50% (IBM diffprivlib notebooks)",
    "ch10_nb_base": "Adult GaussianNB, non-private: 79.64% (IBM diffprivlib notebooks)",
    "ch10_nb_eps1": "Adult GaussianNB at eps 1: 79.93% (IBM diffprivlib notebooks)",
    "ch10_nb_eps01": "Adult GaussianNB at eps 0.1: 78.42% (IBM diffprivlib notebooks)",
    "ch11_acc_nonprivate": "MNIST CNN without privacy: 98.94% (Opacus MNIST example README); ScatterNet + linear "
                           "at eps 3: 98.7%, end-to-end CNN 98.1% (Tramer and Boneh 2021, Handcrafted-DP README)",
    "ch11_acc_1": "MNIST CNN with DP-SGD at eps 1.16 (delta 1e-5): 94.63% (Opacus MNIST example README)",
    "ch11_acc_2": "MNIST CNN with DP-SGD at eps 2.91 (delta 1e-5): 96.78% (Opacus MNIST example README)",
}


# --- synthetic files in the full datasets' real formats (--smoke) -------------------------------------------

def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _images(rng, n: int, shape: tuple[int, ...], classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: each class lights its own block of pixels, plus noise."""
    y = rng.integers(0, classes, n)
    X = rng.uniform(0, 80, (n, *shape))
    side = shape[-1] // 4
    for c in range(classes):
        r, k = divmod(c, 4)
        X[y == c, ..., r * side:(r + 1) * side, k * side:(k + 1) * side] += 170
    return np.clip(X, 0, 255).astype(np.uint8), y.astype(np.uint8)


_WORK = ["Private", "Self-emp-not-inc", "Local-gov", "State-gov"]
_EDU = [("HS-grad", 9), ("Some-college", 10), ("Bachelors", 13), ("Masters", 14)]
_MARITAL = ["Never-married", "Married-civ-spouse", "Divorced"]
_OCC = ["Adm-clerical", "Exec-managerial", "Prof-specialty", "Sales", "Craft-repair"]
_REL = ["Not-in-family", "Husband", "Wife", "Own-child"]
_RACE = ["White", "Black", "Asian-Pac-Islander"]
_SEX = ["Male", "Female"]
_COUNTRY = ["United-States", "Canada", "Mexico"]


def _adult(rng, n: int, *, test: bool) -> bytes:
    rows = ["|1x3 Cross validator"] if test else []
    for _ in range(n):
        edu, num = _EDU[rng.integers(len(_EDU))]
        hours, age = int(rng.integers(20, 61)), int(rng.integers(18, 70))
        rich = (num >= 13) + (hours >= 45) + (age > 35) + rng.normal(0, 0.5) >= 2
        label = (">50K" if rich else "<=50K") + ("." if test else "")
        pick = lambda xs: xs[rng.integers(len(xs))]  # noqa: E731
        rows.append(", ".join(map(str, [age, pick(_WORK), int(rng.integers(20000, 400000)), edu, num,
                                        pick(_MARITAL), pick(_OCC), pick(_REL), pick(_RACE), pick(_SEX),
                                        int(rng.integers(0, 2) * rng.integers(0, 5000)), 0, hours,
                                        pick(_COUNTRY), label])))
    return ("\n".join(rows) + "\n\n").encode()


def _cifar(rng, per_batch: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for name in names:
            X, y = _images(rng, per_batch, (3, 32, 32))
            raw = pickle.dumps({"batch_label": name, "data": X.reshape(per_batch, -1),
                                "labels": [int(v) for v in y]}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        meta = pickle.dumps({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                             "horse", "ship", "truck"], "num_cases_per_batch": per_batch}, 2)
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return buf.getvalue()


def write_synthetic(folder: Path, seed: int = 0, n_train: int = 1200, n_test: int = 400) -> dict:
    """Tiny files in the real formats; returns ``{dataset: {role: (filename, file_uri, checksum)}}``."""
    from mlsec_kit.data import full

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for dataset in ("mnist", "fashion_mnist"):
        Xtr, ytr = _images(rng, n_train, (28, 28))
        Xte, yte = _images(rng, n_test, (28, 28))
        files[dataset] = {"train_images": _idx(Xtr), "train_labels": _idx(ytr),
                          "test_images": _idx(Xte), "test_labels": _idx(yte)}
    files["cifar10"] = {"archive": _cifar(rng, n_test // 2)}
    files["adult"] = {"train": _adult(rng, n_train, test=False), "test": _adult(rng, n_test, test=True)}
    registry = {}
    for dataset, roles in files.items():
        registry[dataset] = {}
        for role, data in roles.items():
            name = full.RESOURCES[dataset][role].filename
            path = folder / dataset / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            registry[dataset][role] = (name, path.as_uri(), "sha256:" + hashlib.sha256(data).hexdigest())
    return registry


# --- running a chapter ----------------------------------------------------------------------------------------

def _override_cell(params_source: str, scale: int) -> str:
    """Assignments that shrink every integer ``NAME = mk.by_profile(small=S, full=F)`` with ``S != F`` to
    ``S // scale`` (at least 1)."""
    lines = []
    for node in ast.parse(params_source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "attr", "") == "by_profile"):
            continue
        given = {k.arg: k.value for k in node.value.keywords}
        small, full = given.get("small"), given.get("full")
        if isinstance(full, ast.Constant) and isinstance(small, ast.Constant) and full.value == small.value:
            continue  # the same in both profiles: a count the method needs (e.g. shadow models), not a size
        if isinstance(small, ast.Constant) and isinstance(small.value, int) and not isinstance(small.value, bool):
            lines.append(f"{node.targets[0].id} = {max(1, small.value // scale)}")
    return "# smoke run: tiny sizes on the full path\n" + "\n".join(lines)


def run_chapter(path: Path, *, env: dict, registry: dict | None, scale: int, timeout: int):
    import nbformat
    from nbclient import NotebookClient

    from mlsec_kit.notebook import glued_values

    nb = nbformat.read(path, as_version=4)
    if registry is not None:
        i = next(k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(i + 1, nbformat.v4.new_code_cell(_override_cell(nb.cells[i].source, scale)))
        setup = ("# smoke run: the full datasets' registry points at tiny synthetic files in their formats\n"
                 "from mlsec_kit.data import full as _full\nfrom mlsec_kit.data.download import Resource as _R\n"
                 + "".join(f"_full.RESOURCES[{d!r}][{r!r}] = _R({n!r}, ({u!r},), {c!r})\n"
                           for d, roles in registry.items() for r, (n, u, c) in roles.items()))
        nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute(env={**os.environ, **env})
    return glued_values(nb), time.perf_counter() - start


def report(results: dict, *, device: str, smoke: bool, total: float, scale: int = 4) -> str:
    mode = "smoke (tiny synthetic files in the full datasets' formats, CPU)" if smoke else "full"
    flags = f" --smoke --smoke-scale {scale}" if smoke else ""
    out = [f"# Full profile: headline numbers and times ({mode})", "",
           f"`python benchmarks/full_profile.py{flags} --device {device}` on "
           f"{platform.node() or 'this machine'}, {platform.processor() or platform.machine()}, "
           f"Python {platform.python_version()}, device `{device}`; total {total:.0f} s.", ""]
    if smoke:
        out += ["Smoke numbers come from random synthetic data: they check the code path, not the claims.", ""]
    out += ["| chapter | time (s) | status |", "| --- | ---: | --- |"]
    out += [f"| {stem} | {r['seconds']:.1f} | {r['status']} |" for stem, r in results.items()]
    for stem, r in results.items():
        out += ["", f"## {stem}", "", "| glued value | this run | literature |", "| --- | ---: | --- |"]
        for name, value in sorted(r["values"].items()):
            out.append(f"| `{name}` | {value} | {LITERATURE.get(name, '')} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None, help="cpu or cuda (default: what mlsec_kit picks)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and synthetic files, CPU")
    ap.add_argument("--smoke-scale", type=int, default=4, help="divide the small sizes by this in --smoke")
    ap.add_argument("--chapters", nargs="*", default=None, help="chapter stems (default: all)")
    ap.add_argument("--out", type=Path, default=None, help=f"report file (default: {RESULTS.relative_to(ROOT)})")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    ap.add_argument("--jobs", type=int, default=1,
                    help="chapters run side by side, one kernel each (the smoke test uses one per core)")
    args = ap.parse_args(argv)
    if args.smoke_scale < 1:
        ap.error(f"--smoke-scale must be >= 1, got {args.smoke_scale}")
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    paths = sorted((ROOT / "chapters").glob("*.ipynb"))
    if args.chapters:
        known = {p.stem: p for p in paths}
        unknown = [c for c in args.chapters if c not in known]
        if unknown:
            ap.error(f"unknown chapters {unknown}; choose from {sorted(known)}")
        paths = [known[c] for c in args.chapters]
    device = "cpu" if args.smoke else (args.device or "auto")
    env = {"MLSEC_PROFILE": "full", "MLSEC_PROGRESS": "0", "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if args.smoke or args.device == "cpu":
        env["MLSEC_DEVICE"] = "cpu"
    registry = None
    with tempfile.TemporaryDirectory(prefix="mlsec-full-") as tmp:
        if args.smoke:
            registry = write_synthetic(Path(tmp) / "sources")
            env["MLSEC_DATA"] = str(Path(tmp) / "cache")
        results, start = {}, time.perf_counter()
        runs = {}
        # one data cache per chapter: chapters running side by side must not write the same files
        envs = {path: {**env, "MLSEC_DATA": str(Path(tmp) / "cache" / path.stem)} if args.smoke else env
                for path in paths}
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            for path in paths:
                runs[path] = pool.submit(run_chapter, path, env=envs[path], registry=registry,
                                         scale=args.smoke_scale, timeout=args.timeout)
            for path in paths:
                print(f"{path.stem} ...", flush=True)
                try:
                    values, seconds = runs[path].result()
                    results[path.stem] = {"values": values, "seconds": seconds, "status": "ok"}
                except Exception as exc:  # report every chapter, then fail
                    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
                    msg = [line for line in plain.strip().splitlines() if "Error" in line] or plain.splitlines()
                    results[path.stem] = {"values": {}, "seconds": float("nan"),
                                          "status": f"failed: {type(exc).__name__}: {msg[-1] if msg else ''}"[:300]}
                print(f"  {results[path.stem]['status']}, {results[path.stem]['seconds']:.1f} s", flush=True)
    text = report(results, device=device, smoke=args.smoke, total=time.perf_counter() - start,
                  scale=args.smoke_scale)
    out = args.out or RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps(results, indent=1, default=str))
    # the times alone, in notebook_times.csv's columns: the test suite sizes its smoke window with them
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        rows = csv.writer(f, lineterminator="\n")
        rows.writerow(["notebook", "seconds", "status"])
        rows.writerows([f"chapters/{stem}.ipynb", f"{r['seconds']:.1f}", r["status"]] for stem, r in results.items())
    print(f"wrote {out}")
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
