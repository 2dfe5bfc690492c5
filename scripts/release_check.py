"""The release steps, runnable here and in the release workflow: build, install into a clean venv, run.

    python scripts/release_check.py --out /tmp/rel                        # build + check, installing deps
    python scripts/release_check.py --out /tmp/rel --reuse-site-packages  # offline: reuse this env's torch etc.
    python scripts/release_check.py --out /tmp/rel --dist dist --no-build # check wheels built elsewhere

Steps: (1) ``python -m build`` writes the sdist and the wheel; (2) a fresh virtual environment gets the
wheel (with the extras of ``--extras``, ``art`` by default); with ``--reuse-site-packages`` the venv sees the running
interpreter's site-packages through a ``.pth`` file (plain paths, so that environment's own ``.pth`` files, an
editable install of the kit among them, stay inactive) and the wheel is installed without dependencies;
(``--python`` installs into an existing environment instead, e.g. a Colab-like one);
(3) from a temporary folder outside the repository, with no ``PYTHONPATH``: the kit is imported from the
venv, ``python -m mlsec_kit.grading list`` runs, one ``check()`` passes on a correct answer and fails on a
wrong one, and one chapter and one exercise notebook (copied out of the repository) execute.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent('''
    import sys
    from pathlib import Path
    import torch
    import mlsec_kit
    from mlsec_kit.grading import check
    here = Path(mlsec_kit.__file__).resolve()
    assert Path(sys.prefix).resolve() in here.parents, f"the kit came from {here}, not the venv"
    assert Path(sys.argv[1]).resolve() not in here.parents, f"the kit came from the repository: {here}"

    def standardize(X_train, X_test):
        mean, std = X_train.mean(dim=0), X_train.std(dim=0, correction=0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        return (X_train - mean) / std, (X_test - mean) / std

    def wrong(X_train, X_test):   # the test set's own statistics: a leak the check must catch
        return standardize(X_train, X_train)[0], standardize(X_test, X_test)[0]

    good, bad = check("standardize", standardize, quiet=True), check("standardize", wrong, quiet=True)
    assert good.passed and not bad.passed, (good.report(), bad.report())
    print("kit", mlsec_kit.__version__, "from", here.parent)
    print("check: a correct standardize passes, a leaking one fails")
''')

RUN_NOTEBOOK = textwrap.dedent('''
    import sys, time
    from mlsec_kit.notebook import execute_notebook
    nb, seconds = execute_notebook(sys.argv[1], timeout=600, env={"MLSEC_PROFILE": "small"})
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    print(f"executed {sys.argv[1]} in {seconds:.1f} s")
''')


def run(cmd, **kw):
    print("+", " ".join(map(str, cmd)), flush=True)
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, **kw)
    if proc.stdout.strip():
        print(proc.stdout.strip()[-3000:], flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-4000:]}")
    return proc


def build(dist: Path, *, isolation: bool = True) -> tuple[Path, Path]:
    """``python -m build`` (sdist, then the wheel from it, as the release publishes them); without isolation
    (offline) the running environment's setuptools builds."""
    dist.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "build", *([] if isolation else ["--no-isolation"]), "--outdir", dist, ROOT])
    return wheel_and_sdist(dist)


def wheel_and_sdist(dist: Path) -> tuple[Path, Path]:
    wheels, sdists = sorted(dist.glob("mlsec_kit-*.whl")), sorted(dist.glob("mlsec_kit-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise SystemExit(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
    return wheels[0], sdists[0]


def make_venv(venv: Path, reuse_site_packages: bool) -> Path:
    run([sys.executable, "-m", "venv", "--clear", venv])
    python = venv / "bin" / "python"
    if reuse_site_packages:
        purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
        # plain directory lines: appended after the venv's own site-packages, their .pth files not run
        Path(purelib, "_reuse_base.pth").write_text("".join(f"{p}\n" for p in paths))
    return python


def check_installed(python: Path, workdir: Path, *, chapter: str, exercise: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MLSEC_PROGRESS"] = "0"
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    (workdir / "check.py").write_text(CHECK)
    (workdir / "run_notebook.py").write_text(RUN_NOTEBOOK)
    run([python, "check.py", ROOT], cwd=workdir, env=env)
    listing = run([python, "-m", "mlsec_kit.grading", "list"], cwd=workdir, env=env).stdout
    if "02_ml_basics" not in listing or "standardize" not in listing:
        raise SystemExit(f"`python -m mlsec_kit.grading list` lists no exercise set:\n{listing}")
    for nb in (ROOT / "chapters" / f"{chapter}.ipynb", ROOT / "exercises" / f"{exercise}.ipynb"):
        target = workdir / nb.parent.name / nb.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nb, target)
        run([python, "run_notebook.py", target], cwd=workdir, env=env)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--dist", type=Path, default=None, help="where the sdist and wheel go (default: OUT/dist)")
    ap.add_argument("--no-build", action="store_true", help="use the wheel already in --dist")
    ap.add_argument("--reuse-site-packages", action="store_true",
                    help="the venv sees this interpreter's packages (offline; the wheel goes in without deps)")
    ap.add_argument("--python", type=Path, default=None,
                    help="install into this existing environment's interpreter (e.g. a Colab-like venv) "
                         "instead of a new venv")
    ap.add_argument("--extras", default="art", help="extras to install with the wheel ('' for none)")
    ap.add_argument("--chapter", default="01_threat_models")
    ap.add_argument("--exercise", default="02_ml_basics")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="mlsec-release-"))
    out.mkdir(parents=True, exist_ok=True)
    dist = args.dist or out / "dist"
    wheel, sdist = wheel_and_sdist(dist) if args.no_build else build(
        dist, isolation=not args.reuse_site_packages)
    print(f"built {sdist.name} and {wheel.name}")
    python = args.python or make_venv(out / "venv", args.reuse_site_packages)
    spec = f"{wheel}[{args.extras}]" if args.extras else str(wheel)
    extra = ["--no-deps", "--no-index"] if args.reuse_site_packages else []
    run([python, "-m", "pip", "install", "--quiet", *extra, spec])
    work = out / "outside"
    work.mkdir(exist_ok=True)
    check_installed(python, work, chapter=args.chapter, exercise=args.exercise)
    print("release check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
