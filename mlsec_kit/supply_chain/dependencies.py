"""Dependencies: auditing a ``requirements.txt``, names one typo away, and how an installer picks a version.

* :func:`audit_requirements` flags what lets an install change under you: a requirement not pinned to one
  version (``torch``, ``torch>=2``), a requirement without ``--hash`` in a file where others have one (pip's hash
  mode is all-or-nothing: once one line has a hash, every line needs one, or the install fails), a direct URL
  without an immutable reference (a git branch or tag instead of a full commit hash; an archive without a hash),
  and ``--extra-index-url``, which makes every index a source for every name (dependency confusion).
* :func:`typosquats` lists names one edit from a package name (deletion, insertion, substitution, transposition,
  doubled letter, separator changes, common suffixes): the names a squatter registers. Names are compared as
  indexes compare them (PEP 503: lower case, runs of ``-``, ``_``, ``.`` are one ``-``), so ``mlsec_kit`` is the
  same project as ``mlsec-kit``, while ``mlseckit`` is another.
* :func:`resolve` is a pure-Python model of the choice: with several indexes and the ``"highest"`` strategy
  (pip with ``--extra-index-url``), the highest version on ANY index wins, so a public upload of an internal
  name with a higher version is installed (Birsan, "Dependency Confusion", 2021). An exact pin, a single index
  (``"first_index"``) or hash pinning each stop it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = ["RequirementLine", "Issue", "parse_requirements", "audit_requirements", "typosquats", "normalize",
           "resolve", "STRATEGIES", "ISSUE_KINDS"]

STRATEGIES: tuple[str, ...] = ("highest", "first_index")
ISSUE_KINDS: tuple[str, ...] = ("unpinned", "unhashed", "mutable_url", "extra_index", "invalid")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SUFFIXES = ("s", "2", "3", "-python", "-py", "py", "-dev", "-lib", "-utils", "-nightly")
_PREFIXES = ("python-", "py", "py-")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-"


@dataclass(frozen=True)
class RequirementLine:
    """One logical line of a requirements file (continuations joined, comments removed).

    Attributes:
        line: its first physical line number (from 1). text: the logical line. name: the project's normalised
        name, or ``None`` for an option line. specifier: e.g. ``"==2.13.0"`` (``""`` when none). url: a direct
        reference (``name @ url`` or a bare VCS/archive URL), else ``None``. hashes: the ``--hash`` values.
        option: an option line's option (``"--extra-index-url"``), else ``None``. value: the option's value.
    """

    line: int
    text: str
    name: Optional[str]
    specifier: str = ""
    url: Optional[str] = None
    hashes: tuple = ()
    option: Optional[str] = None
    value: Optional[str] = None


@dataclass(frozen=True)
class Issue:
    """A finding of :func:`audit_requirements`: ``kind`` is one of :data:`ISSUE_KINDS`."""

    line: int
    name: Optional[str]
    kind: str
    message: str


def normalize(name: str) -> str:
    """A project name as indexes compare it (PEP 503): lower case, each run of ``-``, ``_``, ``.`` one ``-``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        raise ValueError(f"name must be a project name (letters, digits, '.', '_', '-'; alphanumeric at both ends), "
                         f"got {name!r}")
    return re.sub(r"[-_.]+", "-", name).lower()


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out, buf, start = [], "", 0
    for i, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buf:
            start = i
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def _parse_line(no: int, line: str) -> RequirementLine:
    hashes = tuple(re.findall(r"--hash[=\s]+(\S+)", line))
    body = re.sub(r"--hash[=\s]+\S+", "", line).strip()
    if body.startswith("-"):
        opt, _, value = body.partition("=") if "=" in body.split()[0] else body.partition(" ")
        return RequirementLine(no, line, None, option=opt.strip(), value=value.strip() or None)
    if re.match(r"^(git\+|hg\+|svn\+|bzr\+|https?://|file:)", body):
        egg = re.search(r"[#&]egg=([A-Za-z0-9._-]+)", body)
        return RequirementLine(no, line, normalize(egg.group(1)) if egg else None, url=body, hashes=hashes)
    try:
        req = Requirement(body)
    except InvalidRequirement as e:
        raise ValueError(f"text line {no} is not a valid requirement ({body!r}): {e}") from None
    return RequirementLine(no, line, normalize(req.name), str(req.specifier), req.url, hashes)


def parse_requirements(text: str) -> list[RequirementLine]:
    """Parse a ``requirements.txt`` (the subset pip documents for requirement and option lines).

    Args:
        text: the file's content.

    Returns:
        One :class:`RequirementLine` per logical line, in order.

    Raises:
        ValueError: a requirement line ``packaging`` cannot parse (the message names the line).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str (the file's content), got {type(text).__name__}")
    return [_parse_line(no, line) for no, line in _logical_lines(text)]


def _url_issue(url: str, hashed: bool) -> Optional[str]:
    if url.startswith(("git+", "hg+", "svn+", "bzr+")):
        ref = url.split("#", 1)[0].rsplit("@", 1)
        if len(ref) == 2 and "/" not in ref[1] and _COMMIT.match(ref[1]):
            return None
        return "a VCS URL that names a branch, a tag or nothing: it can move; pin a full 40-hex commit hash"
    if hashed or re.search(r"#sha256=[0-9a-f]{64}", url):
        return None
    return "a direct URL without a hash: whatever the server returns is installed"


def audit_requirements(text: str) -> list[Issue]:
    """What in a requirements file lets the install change without the file changing.

    Args:
        text: the file's content.

    Returns:
        The :class:`Issue` list, in line order: ``unpinned``, ``unhashed`` (only when some line has a hash),
        ``mutable_url``, ``extra_index``, ``invalid`` (a line that does not parse).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str (the file's content), got {type(text).__name__}")
    issues, rows = [], []
    for no, line in _logical_lines(text):
        try:
            rows.append(_parse_line(no, line))
        except ValueError as e:
            issues.append(Issue(no, None, "invalid", str(e)))
    hash_mode = any(r.hashes for r in rows) or any(r.option == "--require-hashes" for r in rows)
    for r in rows:
        if r.option is not None:
            if r.option == "--extra-index-url":
                issues.append(Issue(r.line, None, "extra_index",
                                    f"--extra-index-url {r.value}: every index can serve every name and the highest "
                                    f"version wins (dependency confusion); use one index, or pin versions and hashes"))
            continue
        if r.url is not None:
            problem = _url_issue(r.url, bool(r.hashes))
            if problem:
                issues.append(Issue(r.line, r.name, "mutable_url", problem))
        else:
            spec = list(SpecifierSet(r.specifier))
            exact = len(spec) == 1 and spec[0].operator in ("==", "===") and "*" not in spec[0].version
            if not exact:
                issues.append(Issue(r.line, r.name, "unpinned",
                                    f"{r.name}{r.specifier or ''} allows any matching release: pin one with =="))
        if hash_mode and not r.hashes:
            issues.append(Issue(r.line, r.name, "unhashed",
                                "no --hash while other lines have one: pip's hash mode needs a hash on every line"))
    return sorted(issues, key=lambda i: i.line)


def typosquats(name: str, *, known: Optional[Iterable[str]] = None) -> list[str]:
    """Names one typo from ``name``, as an index would tell them apart (PEP 503 normalised).

    Args:
        name: a project name, e.g. ``"mlsec-kit"``.
        known: if given, only candidates in this collection of existing names are returned (compared normalised).

    Returns:
        The sorted candidate names (normalised), ``name`` itself excluded.
    """
    base = normalize(name)
    letters = base.replace("-", "")
    cands = set()
    for i in range(len(base) + 1):
        for c in _ALPHABET:
            cands.add(base[:i] + c + base[i:])  # insertion
            if i < len(base):
                cands.add(base[:i] + c + base[i + 1:])  # substitution
        if i < len(base):
            cands.add(base[:i] + base[i + 1:])  # deletion
            cands.add(base[:i] + base[i] + base[i:])  # doubled letter
        if i < len(base) - 1:
            cands.add(base[:i] + base[i + 1] + base[i] + base[i + 2:])  # transposition
    cands.add(letters)  # separators dropped: "mlseckit"
    cands.update(base + s for s in _SUFFIXES)
    cands.update(p + base for p in _PREFIXES)
    out = set()
    for c in cands:
        c = c.strip("-")
        if c and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", c):
            out.add(normalize(c))
    out.discard(base)
    if known is not None:
        if isinstance(known, str):
            raise TypeError("known must be a collection of names, not one name")
        have = {normalize(k) for k in known}
        out &= have
    return sorted(out)


def _versions(entry: object, index: str, name: str) -> dict:
    """``{Version: digest or None}`` from an index entry (a list of versions or ``{version: "sha256:..."}``)."""
    if isinstance(entry, Mapping):
        items = entry.items()
    elif isinstance(entry, Sequence) and not isinstance(entry, str):
        items = [(v, None) for v in entry]
    else:
        raise TypeError(f"indexes[{index!r}][{name!r}] must be a list of versions or a dict of version to digest")
    out = {}
    for v, digest in items:
        try:
            out[Version(str(v))] = digest
        except InvalidVersion:
            raise ValueError(f"indexes[{index!r}][{name!r}] holds {v!r}, not a version (PEP 440)") from None
    return out


def resolve(name: str, *, indexes: Mapping[str, Mapping[str, object]], strategy: str = "highest",
            specifier: str = "", hashes: Optional[Iterable[str]] = None) -> tuple[str, str]:
    """Which index and version an installer takes for ``name`` (a model of pip's choice, no network).

    Args:
        name: the project name.
        indexes: ``{index: {project: [versions] or {version: "sha256:..."}}}`` in priority order (the first is
            ``--index-url``, the others ``--extra-index-url``).
        strategy: ``"highest"`` (pip: the highest version across all indexes; pip gives the indexes no priority, so
            on a tie it may take either index's file, and this model returns the earlier index's) or
            ``"first_index"`` (only the first index that has the project, as a single index or uv's default).
        specifier: a PEP 440 specifier, e.g. ``"==1.2.0"`` (``""``: any version).
        hashes: if given, only files whose digest is in this set are acceptable (pip's ``--require-hashes``).

    Returns:
        ``(index, version)``.

    Raises:
        LookupError: no index offers an acceptable candidate (the install fails).
    """
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not isinstance(indexes, Mapping) or not indexes:
        raise TypeError("indexes must be a non-empty dict of index name to {project: versions}")
    target = normalize(name)
    spec = SpecifierSet(specifier) if isinstance(specifier, str) else None
    if spec is None:
        raise TypeError(f"specifier must be a str like '==1.2.0', got {type(specifier).__name__}")
    allowed = None if hashes is None else set(hashes)
    candidates = []
    for rank, (index, projects) in enumerate(indexes.items()):
        if not isinstance(projects, Mapping):
            raise TypeError(f"indexes[{index!r}] must be a dict of project to versions")
        for project, entry in projects.items():
            if normalize(project) != target:
                continue
            for v, digest in _versions(entry, index, project).items():
                if v in spec and (allowed is None or digest in allowed):
                    candidates.append((rank, index, v))
    if strategy == "first_index" and candidates:
        first = min(c[0] for c in candidates)
        candidates = [c for c in candidates if c[0] == first]
    if not candidates:
        raise LookupError(f"no index offers {name}{specifier}" + (" with an allowed hash" if allowed else ""))
    rank, index, v = max(candidates, key=lambda c: (c[2], -c[0]))
    return index, str(v)
