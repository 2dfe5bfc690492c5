import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MLSEC_PROGRESS", "0")
# Notebook kernels and the book build inherit this. On a 2-core machine, torch's default of one thread per
# core turns any concurrent load into a 20x slowdown of small models (measured: chapter 2 in 327 s instead of
# 15 s); tests do not measure speed, so they run single-threaded. The benchmark script does not set it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The claims the tests check are the small profile's; the kernels and the book build inherit this.
os.environ["MLSEC_PROFILE"] = "small"


import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from mlsec_kit.notebook import glued_values  # noqa: E402
from notebook_pool import execute_many  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS_DIR = ROOT / "chapters"
# The book build's execution cache (jupyter-book's default place for `execute_notebooks: cache`). Every
# notebook a test needs executed goes through it, so each notebook executes once per test run, whichever of
# the book build and the chapter tests asks first; an unchanged notebook is not executed again at all.
CACHE_DIR = ROOT / "_build" / ".jupyter_cache"
BUILD_TIMEOUT_S = 2400


def _fingerprint() -> str:
    """What a notebook's outputs depend on besides its own code (which jupyter-cache keys on): the kit's
    sources, the pinned environment, the profile, and the table of contents (chapter 1 counts the chapters
    written)."""
    import hashlib

    h = hashlib.sha256(os.environ.get("MLSEC_PROFILE", "").encode())
    for f in sorted((ROOT / "mlsec_kit").rglob("*.py")) + [ROOT / "requirements.txt", ROOT / "_toc.yml"]:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


_CHECKED = []


def ensure_fresh_cache(cache_dir: Path = CACHE_DIR) -> None:
    """Once per session: empty the execution cache when the kit, the environment or the profile changed
    since it was filled, so no test reads outputs the current code would not produce."""
    if cache_dir in _CHECKED:
        return
    stamp = cache_dir / "mlsec_fingerprint"
    current = _fingerprint()
    if cache_dir.exists() and (not stamp.is_file() or stamp.read_text() != current):
        shutil.rmtree(cache_dir)
        if cache_dir == CACHE_DIR:
            # Sphinx re-reads (so re-executes through the cache) only documents it thinks changed: make it
            # read them all, or the book would keep outputs of the old kit
            shutil.rmtree(ROOT / "_build" / ".doctrees", ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current)
    _CHECKED.append(cache_dir)


def _cache_executed(cache, path: Path, nb, error, seconds) -> None:
    from jupyter_cache.base import CacheBundleIn

    if error is not None:
        raise AssertionError(f"{path.name} failed to execute:\n{error}")
    stage = cache.add_nb_to_project(str(path))
    cache.cache_notebook_bundle(CacheBundleIn(nb, stage.uri, data={"execution_seconds": seconds}),
                                check_validity=False, overwrite=True)


def _missing_from_cache(cache, path: Path) -> bool:
    import nbformat

    try:
        cache.match_cache_notebook(nbformat.read(str(path), as_version=4))
        return False
    except KeyError:
        return True


def executed_via_cache(path: Path, cache_dir: Path = CACHE_DIR, *, timeout: int = 300):
    """The executed notebook ``path`` from the book's execution cache, executing it into the cache (exactly
    as the book build's cache mode does: same cache, same working directory) when its code is not there."""
    import nbformat
    from jupyter_cache import get_cache

    ensure_fresh_cache(cache_dir)
    cache = get_cache(str(cache_dir))
    if _missing_from_cache(cache, path):
        (nb, error, seconds), = execute_many([(path, path.parent)], timeout=timeout, workers=1).values()
        _cache_executed(cache, path, nb, error, seconds)
    nb = nbformat.read(str(path), as_version=4)
    return cache.merge_match_into_notebook(nb)[1]


def book_notebooks() -> list[Path]:
    """The notebooks the book build executes: every ``.ipynb`` listed in ``_toc.yml``."""
    import yaml

    files = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").is_file()]


def prefetch_into_cache(paths, cache_dir: Path = CACHE_DIR, *, timeout: int = 300) -> list[Path]:
    """Execute the notebooks of ``paths`` that the cache lacks, several at once (``notebook_pool``), and
    store them in the cache as the build would; returns those executed."""
    from jupyter_cache import get_cache

    ensure_fresh_cache(cache_dir)
    cache = get_cache(str(cache_dir))
    todo = [Path(p) for p in paths if _missing_from_cache(cache, Path(p))]
    for path, (nb, error, seconds) in execute_many([(p, p.parent) for p in todo], timeout=timeout).items():
        _cache_executed(cache, path, nb, error, seconds)
    return todo


_PREFETCHED = []


@pytest.fixture(scope="session")
def prefetched_book(request):
    """When this session builds the book, execute every book notebook into the cache first, two (one per
    core) at a time; the build and every test that reads the cache then find them there. A session that
    does not build the book (one chapter's tests) executes only what it asks for."""
    builds = any("book_html" in getattr(item, "fixturenames", ()) for item in request.session.items)
    if builds and not _PREFETCHED:
        _PREFETCHED.append(prefetch_into_cache(book_notebooks()))


@pytest.fixture(scope="session")
def executed_chapter(prefetched_book):
    """``run(stem)``: the chapter notebook ``chapters/<stem>.ipynb`` executed in the small profile, read from
    the book's execution cache (executed into it first when missing); the claim tests, the determinism test
    and the book build share that one execution."""
    memo = {}

    def run(stem: str):
        if stem not in memo:
            memo[stem] = executed_via_cache(CHAPTERS_DIR / f"{stem}.ipynb")
        return memo[stem]
    return run


@pytest.fixture(scope="session")
def executed_from_cache(prefetched_book):
    """``run(path)``: any book notebook (e.g. a student exercise notebook, ``exercises/<id>.ipynb``) executed
    once through the book's execution cache, as the book build executes it; for tests that would otherwise
    execute a notebook the build already executed."""
    memo = {}

    def run(path):
        path = Path(path).resolve()
        if path not in memo:
            memo[path] = executed_via_cache(path)
        return memo[path]
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


@pytest.fixture(scope="module")
def executed(request, executed_chapter):
    """The chapter named by the test module's ``STEM``, executed (see ``executed_chapter``)."""
    return executed_chapter(request.module.STEM)


@pytest.fixture(scope="module")
def v(request, chapter_values):
    """The numbers the chapter named by the test module's ``STEM`` glued, by name (see ``chapter_values``)."""
    return chapter_values(request.module.STEM)


@pytest.fixture(scope="session")
def book_html(prefetched_book):
    """The whole book built once per test session into ``_build/html`` (warnings are errors), executing
    through the shared execution cache; the book tests and the browser test read it."""
    beside = Path(sys.executable).parent / "jupyter-book"  # the environment's own, not another on PATH
    exe = str(beside) if beside.is_file() else shutil.which("jupyter-book")
    assert exe, "jupyter-book is not installed: pip install -r requirements.txt"
    ensure_fresh_cache()
    cmd = [exe, "build", str(ROOT), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    html = ROOT / "_build" / "html"
    assert (html / "index.html").is_file(), f"the build wrote no HTML:\n{proc.stdout[-3000:]}"
    return html


# Fixtures that read or fill the book's execution cache, or run notebooks several kernels at a time.
_BOOK_FIXTURES = {"prefetched_book", "executed_chapter", "executed_from_cache", "chapter_values", "book_html",
                  "second_runs"}


# Modules of one or two long tests each (30-100 s of notebooks or installs in other processes), run in the book
# group. Alone, each was a group of a few tests, and xdist starts the groups with the most tests first: these ran
# last, and one worker went on alone for 25-90 s after the other had finished. In the book group they run on the
# book's worker after its notebooks, while the other worker works through the many short modules.
_WITH_THE_BOOK = {"tests/test_full_profile.py", "tests/test_release_build.py", "tests/test_editions.py"}


@pytest.hookimpl(tryfirst=True)   # before xdist reads the marks
def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n 2 --dist loadgroup`` (the README's test command): every test that touches the
    execution cache or the notebook pool goes to one worker as the group ``book`` (the pool already keeps both
    cores busy, and one process must own the cache), with the long modules of ``_WITH_THE_BOOK``, placed first so
    that it starts at once (xdist also starts the group with the most tests first); every other
    test module is one group, so its module-scoped fixtures (trained models) are built once, on whichever
    worker is free. Without xdist the marks do nothing and only the order changes."""
    def group(item):
        module = item.nodeid.split("::")[0]
        if _BOOK_FIXTURES & set(getattr(item, "fixturenames", ())) or module in _WITH_THE_BOOK:
            return "book"
        return module

    groups = {id(item): group(item) for item in items}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[id(item)]))
    items.sort(key=lambda item: groups[id(item)] != "book")   # stable: the book group first
