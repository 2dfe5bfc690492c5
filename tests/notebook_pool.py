"""Execute several notebooks at once, one kernel per worker process.

The test command executes every book notebook at least once (the build), the chapters a second time (the
determinism test) and the exercise sources once more; one after the other they leave one of the two cores
idle (each kernel is single-threaded: ``OMP_NUM_THREADS=1``). This pool runs ``workers`` kernels side by
side and hands the executed notebooks back to the test process, which alone writes them into the
execution cache (jupyter-cache's database is not made for concurrent writers).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path


def _execute(path: str, cwd: str, timeout: int, env: dict[str, str]):
    """In a worker process: execute ``path`` in ``cwd`` exactly as the book build's cache mode does."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    os.environ.update(env)  # the kernel inherits the worker's environment
    nb = nbformat.read(path, as_version=4)
    result = single_nb_execution(nb, cwd=cwd, timeout=timeout, allow_errors=False, meta_override=True)
    error = None if result.err is None else (result.exc_string or repr(result.err))
    return nb, error, result.time


def default_workers() -> int:
    """One kernel per core, at most 4; ``MLSEC_TEST_WORKERS`` overrides (1 runs them one at a time)."""
    wanted = os.environ.get("MLSEC_TEST_WORKERS")
    if wanted:
        return max(1, int(wanted))
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def execute_many(jobs, *, timeout: int = 300, env: dict[str, str] | None = None, workers: int | None = None):
    """Execute ``jobs`` (``(notebook path, working folder)`` pairs) in parallel.

    Returns ``{path: (executed notebook, error text or None, seconds)}``. Longest notebooks are not known
    in advance, so jobs start in the given order as workers free up.
    """
    jobs = [(Path(p), Path(cwd)) for p, cwd in jobs]
    if not jobs:
        return {}
    workers = min(workers or default_workers(), len(jobs))
    env = dict(env or {})
    if workers == 1:
        return {p: _execute(str(p), str(cwd), timeout, env) for p, cwd in jobs}
    # spawn, not fork: the test process holds torch threads and open kernels that a fork would copy
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {p: pool.submit(_execute, str(p), str(cwd), timeout, env) for p, cwd in jobs}
        return {p: f.result() for p, f in futures.items()}
