"""Supply-chain security of models (chapter 15): malicious files made safely, safe loading, scanning, signing.

:func:`make_malicious` writes a pickle, ``torch.save`` zip, joblib or ``.npy`` file whose payload (one of
:data:`TECHNIQUES`) only creates a marker file, and :func:`run_load` loads a file in a child process with one of
:data:`LOADERS` to show which loaders run it. :func:`detect_format` reads a file's format from its bytes;
:func:`safe_load` loads by format with a loader that cannot run code (or refuses);
:func:`scan` walks a file's pickle opcodes and flags every import outside an allow-list;
:func:`compare_scanners` runs it beside picklescan, ModelScan and fickling on the corpus of :func:`build_corpus`.
:func:`pin` / :func:`verify_pins` pin digests; :func:`sign_model` / :func:`verify_model` sign a model folder with
OpenSSF model-signing and a local key (no network). :func:`audit_requirements`, :func:`typosquats` and
:func:`resolve` cover dependencies: pins and hashes, names one typo away, and dependency confusion.
"""
from .formats import FORMATS, MAX_BYTES, check_size, detect_format
from .payloads import (LOADERS, MALICIOUS_FORMATS, MARKER_TEXT, TECHNIQUES, LoadOutcome, make_benign, make_malicious,
                       marker_code, payload, run_load, run_loads)
from .loading import UnsafeFormatError, safe_load, to_safetensors
from .scanners import (EXTENSIONS, SCANNERS, CorpusFile, Verdict, build_corpus, compare_scanners, missed,
                       run_scanner, summary_table)
from .dependencies import (ISSUE_KINDS, STRATEGIES, Issue, RequirementLine, audit_requirements, normalize,
                           parse_requirements, resolve, typosquats)
from .signing import generate_keypair, pin, sha256_file, sign_model, verify_model, verify_pins
from .scan import DANGEROUS, DEFAULT_ALLOW, Finding, Report, pickle_globals, scan, scan_bytes

__all__ = [
    "FORMATS", "MAX_BYTES", "detect_format", "check_size",
    "TECHNIQUES", "MALICIOUS_FORMATS", "LOADERS", "MARKER_TEXT", "payload", "marker_code", "make_malicious",
    "make_benign", "run_load", "run_loads", "LoadOutcome",
    "safe_load", "to_safetensors", "UnsafeFormatError",
    "scan", "scan_bytes", "pickle_globals", "Finding", "Report", "DEFAULT_ALLOW", "DANGEROUS",
    "SCANNERS", "EXTENSIONS", "build_corpus", "run_scanner", "compare_scanners", "summary_table", "missed",
    "CorpusFile", "Verdict",
    "sha256_file", "pin", "verify_pins", "generate_keypair", "sign_model", "verify_model",
    "parse_requirements", "audit_requirements", "typosquats", "normalize", "resolve", "RequirementLine", "Issue",
    "STRATEGIES", "ISSUE_KINDS",
]
