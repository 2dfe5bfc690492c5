"""The kit's scanner beside the production ones (picklescan, ModelScan, fickling) on one corpus.

:func:`build_corpus` writes benign files (the state dict of every model the book trains, in ``torch.save`` and
safetensors form; NumPy arrays; a joblib'd scikit-learn model; a plain pickled config) and malicious ones (every
payload technique in every pickle-bearing format, see :mod:`~mlsec_kit.supply_chain.payloads`); every file has the
extension its format usually has, since some tools choose their parser by extension. :func:`compare_scanners` runs
each tool through its Python API, offline, with its console output silenced, and :func:`summary_table` reports
detection rate (malicious files flagged / malicious files), false-positive rate (benign files flagged / benign
files) and the files a tool could not scan (an error or an unsupported format: neither detected nor flagged).

The joblib'd scikit-learn model counts as BENIGN: it is what ``joblib.dump(model)`` of a fitted
``LogisticRegression`` gives, and loading it runs no code beyond rebuilding the estimator. An allow-list scanner
cannot know that the class is harmless, so flagging it is a false positive: the price of allow-lists.

What each tool's verdict means here:

* ``mlsec_kit``: :func:`~mlsec_kit.supply_chain.scan` found an import outside its allow-list;
* ``picklescan``: ``scan_file_path`` reported at least one dangerous global; a parse error without one is an error;
* ``modelscan``: ``ModelScan().scan`` reported at least one issue; errors or a skipped file without one are errors
  (ModelScan 0.8.8's ``.npy`` scanner calls ``numpy.lib.format._check_version``, which NumPy 2.4 no longer has, so
  every ``.npy`` file is an error there: a version incompatibility, not a limit of its design);
* ``fickling``: ``check_safety`` on the file's pickle (``PyTorchModelWrapper`` for ``torch.save`` zips) rated it
  anything but ``LIKELY_SAFE``; a file fickling cannot parse as a pickle (npy, safetensors, joblib's raw array bytes)
  is unsupported (``fickling.is_likely_safe`` would call it unsafe, which says nothing about its content).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from .formats import check_folder, check_path, detect_format
from .payloads import MALICIOUS_FORMATS, TECHNIQUES, make_benign, make_malicious

__all__ = ["SCANNERS", "CorpusFile", "Verdict", "build_corpus", "run_scanner", "compare_scanners", "summary_table",
           "missed", "EXTENSIONS"]

PathLike = Union[str, "os.PathLike[str]"]

SCANNERS: tuple[str, ...] = ("mlsec_kit", "picklescan", "modelscan", "fickling")
#: the extension each format is usually saved with
EXTENSIONS = {"pickle": ".pkl", "torch": ".pt", "joblib": ".joblib", "npy": ".npy", "safetensors": ".safetensors"}
_LOGGERS = ("picklescan", "modelscan", "fickling")


@dataclass(frozen=True)
class CorpusFile:
    """One file of the comparison corpus.

    Attributes:
        path: the file. malicious: whether loading it runs a payload. technique: the payload's technique (one of
        :data:`~mlsec_kit.supply_chain.TECHNIQUES`) or ``None``. fmt: its format. model: the model whose weights
        it holds, or ``None``. marker: where its payload writes, or ``None``.
    """

    path: Path
    malicious: bool
    technique: Optional[str]
    fmt: str
    model: Optional[str]
    marker: Optional[Path] = None


@dataclass(frozen=True)
class Verdict:
    """A scanner's verdict: ``flagged`` is ``None`` when it errored or does not support the file."""

    flagged: Optional[bool]
    detail: str
    seconds: float = 0.0


def _book_models(seed: int) -> dict:
    """The state dict of every model the book trains, at their small-profile sizes, seeded."""
    import torch

    from .. import models
    from ..lm import KINDS, tiny_lm

    out = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shape, classes = (1, 8, 8), 10  # scikit-learn's digits, the small profile's images
        out["logistic_regression"] = models.logistic_regression(shape, classes).state_dict()
        out["mlp"] = models.mlp(shape, classes).state_dict()
        out["small_cnn"] = models.small_cnn(shape, classes).state_dict()
        for i, kind in enumerate(KINDS):
            g = torch.Generator().manual_seed(seed + 1 + i)
            out[f"tiny_lm_{kind}"] = tiny_lm(kind=kind, d_model=32, layers=1, heads=2, context=32,
                                             generator=g).state_dict()
    return out


def build_corpus(folder: PathLike, *, marker_dir: PathLike, seed: int = 0) -> list[CorpusFile]:
    """Write the benign and malicious files the scanners are compared on; deterministic names and contents.

    Args:
        folder: an existing folder for the files.
        marker_dir: an existing folder where the payloads would write their markers (none is written here).
        seed: seeds the models' weights and the arrays, an int >= 0.

    Returns:
        The files: benign ones first (``benign-<model>.<ext>``), then ``<fmt>-<technique>.<ext>`` for every
        technique in every pickle-bearing format.
    """
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    d, m = check_folder(folder, name="folder").resolve(), check_folder(marker_dir, name="marker_dir").resolve()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    files: list[CorpusFile] = []
    for name, state in _book_models(seed).items():
        for fmt in ("torch", "safetensors"):
            p = make_benign(d / f"benign-{name}{EXTENSIONS[fmt]}", fmt=fmt, obj=state)
            files.append(CorpusFile(p, False, None, fmt, name))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    files.append(CorpusFile(make_benign(d / "benign-array.npy", fmt="npy", obj=X), False, None, "npy", None))
    files.append(CorpusFile(make_benign(d / "benign-arrays.joblib", fmt="joblib", obj={"X": X, "y": y}), False, None,
                            "joblib", None))
    sk = d / "benign-sklearn_logistic_regression.joblib"
    joblib.dump(LogisticRegression().fit(X, y), sk)
    files.append(CorpusFile(sk, False, None, "joblib", "sklearn_logistic_regression"))
    cfg = make_benign(d / "benign-config.pkl", fmt="pickle", obj={"lr": 0.1, "epochs": 5, "layers": [64, 10]})
    files.append(CorpusFile(cfg, False, None, "pickle", None))
    for fmt in MALICIOUS_FORMATS:
        for t in TECHNIQUES:
            marker = m / f"{fmt}-{t}.marker"
            if marker.exists():
                raise ValueError(f"marker_dir already holds {marker.name}: give a fresh marker_dir")
            p = make_malicious(d / f"{fmt}-{t}{EXTENSIONS[fmt]}", fmt=fmt, technique=t, marker=marker)
            files.append(CorpusFile(p, True, t, fmt, None, marker))
    return files


@contextlib.contextmanager
def _quiet():
    """The tools print and log; keep the notebook's output to what it shows on purpose."""
    loggers = [logging.getLogger(n) for n in _LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _mlsec_kit(path: Path) -> Verdict:
    from .scan import scan

    r = scan(path)
    return Verdict(not r.safe, "; ".join(sorted({f.callable for f in r.findings})) or "clean")


def _picklescan(path: Path) -> Verdict:
    from picklescan.scanner import scan_file_path

    r = scan_file_path(str(path))
    names = sorted({f"{g.module}.{g.name}" for g in r.globals if g.safety.name == "Dangerous"})
    if r.issues_count > 0:
        return Verdict(True, "; ".join(names) or f"{r.issues_count} issue(s)")
    if r.scan_err:
        return Verdict(None, "scan error (could not parse the file)")
    return Verdict(False, "clean")


def _modelscan(path: Path) -> Verdict:
    from modelscan.modelscan import ModelScan

    res = ModelScan().scan(str(path))
    issues = res.get("issues", [])
    if issues:
        ops = sorted({f"{i.get('module', '?')}.{i.get('operator', '?')}" for i in issues})
        return Verdict(True, "; ".join(ops))
    scanned = res.get("summary", {}).get("scanned", {}).get("total_scanned", 0)
    if res.get("errors") or not scanned:
        msgs = [e.get("description", "error") if isinstance(e, dict) else str(e) for e in res.get("errors", [])]
        return Verdict(None, ("error: " + "; ".join(msgs)[:200]) if msgs else "skipped (format not scanned)")
    return Verdict(False, "clean")


def _fickling(path: Path) -> Verdict:
    from fickling.analysis import Severity, check_safety
    from fickling.fickle import Pickled

    if detect_format(path) == "torch":
        from fickling.pytorch import PyTorchModelWrapper

        pickled = PyTorchModelWrapper(path).pickled
    else:
        try:
            with open(path, "rb") as f:
                pickled = Pickled.load(f, fail_on_decode_error=False)
        except Exception as e:  # noqa: BLE001 - fickling raises its own types for non-pickles
            return Verdict(None, f"unsupported: {type(e).__name__}")
        if pickled.has_invalid_opcode:
            return Verdict(None, "unsupported: not a pickle fickling parses")
    severity = check_safety(pickled).severity
    return Verdict(severity != Severity.LIKELY_SAFE, severity.name)


_RUNNERS = {"mlsec_kit": _mlsec_kit, "picklescan": _picklescan, "modelscan": _modelscan, "fickling": _fickling}


def run_scanner(name: str, path: PathLike) -> Verdict:
    """Run one scanner on one file, offline and silenced.

    Args:
        name: one of :data:`SCANNERS`.
        path: an existing file.

    Returns:
        A :class:`Verdict`; ``flagged=None`` when the tool raised or does not support the file (the exception's
        type is in ``detail``).
    """
    if not isinstance(name, str) or name not in SCANNERS:
        raise ValueError(f"name must be one of {SCANNERS}, got {name!r}")
    p = check_path(path)
    t0 = time.perf_counter()
    try:
        with _quiet():
            v = _RUNNERS[name](p)
    except Exception as e:  # noqa: BLE001 - a tool that crashes on a file is reported, not propagated
        v = Verdict(None, f"error: {type(e).__name__}: {str(e).strip()[:120]}")
    return Verdict(v.flagged, v.detail, time.perf_counter() - t0)


def compare_scanners(corpus: Sequence[CorpusFile], *, scanners: Sequence[str] = SCANNERS) -> list[dict]:
    """Every scanner on every file of the corpus.

    Args:
        corpus: from :func:`build_corpus` (non-empty).
        scanners: a non-empty subset of :data:`SCANNERS`.

    Returns:
        One row per file per scanner: ``file, fmt, malicious, technique, model, scanner, flagged, detail, seconds``.
    """
    if isinstance(corpus, (str, bytes)) or not isinstance(corpus, Sequence) or not corpus or \
            not all(isinstance(c, CorpusFile) for c in corpus):
        raise TypeError("corpus must be a non-empty list of CorpusFile (from build_corpus)")
    if isinstance(scanners, str) or not scanners or any(s not in SCANNERS for s in scanners):
        raise ValueError(f"scanners must be a non-empty subset of {SCANNERS}, got {scanners!r}")
    rows = []
    for c in corpus:
        for s in scanners:
            v = run_scanner(s, c.path)
            rows.append({"file": c.path.name, "fmt": c.fmt, "malicious": c.malicious, "technique": c.technique,
                         "model": c.model, "scanner": s, "flagged": v.flagged, "detail": v.detail,
                         "seconds": v.seconds})
    return rows


def _check_rows(rows: object) -> list:
    keys = {"scanner", "malicious", "flagged", "seconds", "file"}
    if not isinstance(rows, Sequence) or not rows or not all(isinstance(r, dict) and keys <= set(r) for r in rows):
        raise TypeError(f"rows must be a non-empty list of dicts with keys {sorted(keys)} (from compare_scanners)")
    return list(rows)


def summary_table(rows: Sequence[dict]) -> list[dict]:
    """Per scanner: detection rate, false-positive rate, files it could not scan, total seconds.

    A file the tool could not scan counts as NOT detected (a loader would still open it) and NOT a false positive.

    Args:
        rows: from :func:`compare_scanners`.

    Returns:
        One dict per scanner, in the rows' order: ``scanner, malicious, detected, detection_rate, benign,
        false_positives, false_positive_rate, not_scanned, seconds``.
    """
    rows = _check_rows(rows)
    out = []
    for s in dict.fromkeys(r["scanner"] for r in rows):
        mine = [r for r in rows if r["scanner"] == s]
        bad = [r for r in mine if r["malicious"]]
        good = [r for r in mine if not r["malicious"]]
        detected = sum(r["flagged"] is True for r in bad)
        fps = sum(r["flagged"] is True for r in good)
        out.append({"scanner": s, "malicious": len(bad), "detected": detected,
                    "detection_rate": detected / len(bad) if bad else float("nan"),
                    "benign": len(good), "false_positives": fps,
                    "false_positive_rate": fps / len(good) if good else float("nan"),
                    "not_scanned": sum(r["flagged"] is None for r in mine),
                    "seconds": sum(r["seconds"] for r in mine)})
    return out


def missed(rows: Sequence[dict]) -> list[dict]:
    """The malicious files a scanner did not flag (``flagged`` False: passed as clean; None: not scanned)."""
    return [r for r in _check_rows(rows) if r["malicious"] and r["flagged"] is not True]
