"""benchmarks/full_profile.py --smoke: every chapter through the full profile's path (the full datasets'
loaders, parsers and checksums, on tiny synthetic files in their real formats), so that path cannot rot
between the rare sessions that have a GPU. Plus the pieces it is built from."""
import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import full_profile as fp  # noqa: E402
from rotation import notebook_seconds, sample_for  # noqa: E402


def test_synthetic_files_load_through_the_full_loaders(tmp_path, monkeypatch):
    from mlsec_kit.data import full, load_dataset
    from mlsec_kit.data.download import Resource

    registry = fp.write_synthetic(tmp_path / "src", n_train=40, n_test=20)
    for dataset, roles in registry.items():
        for role, (name, uri, checksum) in roles.items():
            data = Path(uri.removeprefix("file://")).read_bytes()
            assert checksum == "sha256:" + hashlib.sha256(data).hexdigest()
            monkeypatch.setitem(full.RESOURCES[dataset], role, Resource(name, (uri,), checksum))
    monkeypatch.setenv("MLSEC_DATA", str(tmp_path / "cache"))
    mnist = load_dataset("mnist", seed=0)
    assert tuple(mnist.X_train.shape) == (40, 1, 28, 28) and tuple(mnist.X_test.shape) == (20, 1, 28, 28)
    assert (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()   # fetched into the cache
    cifar = load_dataset("cifar10", seed=0)
    assert tuple(cifar.X_test.shape) == (10, 3, 32, 32)
    adult = load_dataset("adult", seed=0)
    assert adult.X_train.shape[0] > 30 and set(adult.y_train.tolist()) == {0, 1}
    # the images are learnable: each class lights its own block
    X, y = mnist.X_train[:, 0], mnist.y_train
    blocks = [X[y == c].mean(0) for c in y.unique()]
    assert all(b.max() > 0.6 for b in blocks)


def test_override_cell_shrinks_every_numeric_profile_size():
    params = ('SEED = 0\nDATASET = mk.by_profile(small="digits", full="mnist")\n'
              "N_EVAL = mk.by_profile(small=300, full=1000)\nSTEPS = mk.by_profile(small=2, full=40)\nEPS = 0.3\n"
              "NUM_SHADOWS = mk.by_profile(small=16, full=16)\n")
    cell = fp._override_cell(params, 4)
    # strings and constants untouched; a count the same in both profiles (shadow models come in pairs) kept
    assert cell.splitlines()[1:] == ["N_EVAL = 75", "STEPS = 1"]


def test_bad_arguments_are_refused():
    for args in (["--smoke", "--smoke-scale", "0"], ["--chapters", "99_nothing"]):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "full_profile.py"), *args],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and ("smoke-scale" in proc.stderr or "unknown chapters" in proc.stderr)


# the smoke run's sizes (the small profile's divided by this) and its times per chapter at that scale, written by
# python benchmarks/full_profile.py --smoke --smoke-scale 16 --jobs 1 --out benchmarks/results/full_profile_smoke.md
SMOKE_SCALE = 16
SMOKE_TIMES = ROOT / "benchmarks" / "results" / "full_profile_smoke.csv"


def _full_path_chapters():
    """Chapters whose full profile differs from the small one in more than sizes: their parameters cell picks
    another dataset (``mk.by_profile(small="digits", full="mnist")``), so the full path loads a full dataset.
    The others run the same code in both profiles with other numbers; the script's default runs them all."""
    out = []
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        params = "".join(next(("".join(c["source"]) for c in cells
                               if "parameters" in c.get("metadata", {}).get("tags", [])), ""))
        if re.search(r"by_profile\(\s*small=[\"']", params):
            out.append(path.stem)
    return out


def test_full_path_chapters_are_found():
    chapters = _full_path_chapters()
    assert "03_evasion_whitebox" in chapters and "10_differential_privacy" in chapters
    assert "01_threat_models" not in chapters
    # each has a measured smoke time, at the scale the test runs, for the rotating window
    times = notebook_seconds(SMOKE_TIMES)
    assert set(chapters) <= set(times) and all(times[c] > 0 for c in chapters)
    assert f"--smoke-scale {SMOKE_SCALE} " in SMOKE_TIMES.with_suffix(".md").read_text()


@pytest.mark.notebooks
def test_smoke_runs_the_chapters_that_load_full_datasets_through_the_full_path(tmp_path):
    out = tmp_path / "full_profile.md"
    # a rotating sample (tests/rotation.py): the chapters this commit changed plus one mean chapter's worth of
    # others, measured in smoke time (SMOKE_TIMES: a chapter's smoke run can cost five times its small profile);
    # MLSEC_SMOKE=all runs every chapter that loads a full dataset
    chapters = [Path(p).stem for p in sample_for(_full_path_chapters(), "MLSEC_SMOKE",
                                                 seconds=notebook_seconds(SMOKE_TIMES))]
    if not chapters:
        pytest.skip("MLSEC_SMOKE=0 and no chapter changed: no chapter to run through the full path")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "full_profile.py"), "--smoke",
                           "--smoke-scale", str(SMOKE_SCALE), "--jobs", "2", "--out", str(out),
                           "--chapters", *chapters],
                          capture_output=True, text=True, timeout=1800)
    results = json.loads(out.with_suffix(".json").read_text())
    assert proc.returncode == 0, {k: v["status"] for k, v in results.items()}
    assert sorted(results) == chapters
    for stem, r in results.items():
        assert r["status"] == "ok" and r["values"], stem       # every chapter glued its numbers
    if "09_model_attacks" in results:    # equation solving stays on Tramèr et al.'s 64-feature digits in full
        v = results["09_model_attacks"]["values"]
        assert float(v["ch09_eq_d"]) == 64 and float(v["ch09_eq_big_spent"]) == 650, v
    text = out.read_text()
    assert "| chapter | time (s) | status |" in text and "smoke" in text
    for stem in chapters:
        assert f"## {stem}" in text
