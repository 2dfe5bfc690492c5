import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MLSEC_PROGRESS", "0")
# Notebook kernels and the book build inherit this. On a 2-core machine, torch's default of one thread per
# core turns any concurrent load into a 20x slowdown of small models (measured: chapter 2 in 327 s instead of
# 15 s); tests do not measure speed, so they run single-threaded. The benchmark script does not set it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest  # noqa: E402

from mlsec_kit.notebook import execute_notebook, glued_values  # noqa: E402

CHAPTERS_DIR = __import__("pathlib").Path(__file__).resolve().parents[1] / "chapters"


@pytest.fixture(scope="session")
def executed_chapter():
    """``run(stem)``: the chapter notebook ``chapters/<stem>.ipynb`` executed once per test session in the
    small profile; the claim tests and the determinism test share that one run."""
    cache = {}

    def run(stem: str):
        if stem not in cache:
            path = CHAPTERS_DIR / f"{stem}.ipynb"
            cache[stem] = execute_notebook(path, timeout=300, env={"MLSEC_PROFILE": "small"})[0]
        return cache[stem]
    return run


@pytest.fixture(scope="session")
def chapter_values(executed_chapter):
    """``values(stem)``: the numbers a chapter glued into its prose, as floats, by name (glued tables and
    figures are left out)."""
    def numeric(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return None
    return lambda stem: {k: x for k, v in glued_values(executed_chapter(stem)).items()
                         if (x := numeric(v)) is not None}
