"""Keep every install line and repository link derived from ``mlsec_kit/_release.py``; rewrite them for a fork.

    python scripts/set_repository.py --check                       # exit 1 if anything has drifted
    python scripts/set_repository.py --sync                        # rewrite install lines from _release.py
    python scripts/set_repository.py https://github.com/you/fork   # a fork: rewrite the URL everywhere, then sync

The release source is ``REPOSITORY`` and ``VERSION`` in ``mlsec_kit/_release.py``. Derived from them:
``repository.url`` in ``_config.yml`` (the launch buttons and the repository button), and every
``pip install`` line that installs the kit: the first code cell of each notebook (chapters, exercise sources
and the generated exercise notebooks), the README, the how-to page and the teaching guide. Notebooks are
edited as text, one line at a time, so nothing else in them changes (no reformatting, cell ids kept).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASE = Path("mlsec_kit/_release.py")
DOCS = ("README.md", "book/how_to_use.md", "book/teaching_guide.md")
NOTEBOOK_GLOBS = ("chapters/*.ipynb", "exercises/*.ipynb", "exercises/source/*.ipynb", "colab/**/*.ipynb")
# `pip install mlsec-kit`, `%pip install -q "mlsec-kit[art]"`, or an already derived direct reference
PIP = re.compile(r'(?P<pre>%?pip3? install (?:-q )?)"?mlsec-kit(?P<extras>\[[\w,-]+\])?'
                 r'(?: @ git\+[^"\s]+)?"?')
GITHUB = re.compile(r"^https://github\.com/[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")


def release(root: Path = ROOT) -> tuple[str, str]:
    """``(REPOSITORY, VERSION)`` as written in ``mlsec_kit/_release.py`` under ``root``."""
    text = (root / RELEASE).read_text()
    repo = re.search(r'^REPOSITORY = "([^"]+)"$', text, re.M)
    version = re.search(r'^VERSION = "([^"]+)"$', text, re.M)
    if not (repo and version):
        raise ValueError(f"{root / RELEASE} must assign REPOSITORY = \"...\" and VERSION = \"...\"")
    return repo.group(1), version.group(1)


def requirement(repo: str, version: str, extras: str = "") -> str:
    """The same string as ``mlsec_kit._release.install_requirement`` (``extras`` like ``"[art]"``)."""
    return f"mlsec-kit{extras or ''} @ git+{repo}@v{version}"


def _pip_line(line: str, repo: str, version: str) -> str:
    return PIP.sub(lambda m: f'{m["pre"]}"{requirement(repo, version, m["extras"])}"', line)


def _notebooks(root: Path):
    seen = set()
    for pattern in NOTEBOOK_GLOBS:
        for p in sorted(root.glob(pattern)):
            if p not in seen and ".ipynb_checkpoints" not in p.parts:
                seen.add(p)
                yield p


def _sync_notebook(path: Path, repo: str, version: str) -> str:
    raw = path.read_text()
    nb = json.loads(raw)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not code:
        return raw
    source = code[0]["source"]
    lines = source if isinstance(source, list) else source.splitlines(keepends=True)
    for line in lines:
        new = _pip_line(line, repo, version)
        if new != line:
            # the JSON string of the line, replaced where it stands: the rest of the file is untouched
            old_json, new_json = json.dumps(line)[1:-1], json.dumps(new)[1:-1]
            if raw.count(old_json) != 1:
                raise ValueError(f"{path}: the install line {line!r} is not unique in the file")
            raw = raw.replace(old_json, new_json)
    return raw


def _sync_config(text: str, repo: str) -> str:
    return re.sub(r"(?m)^(repository:\n(?:  .*\n)*?  url: ).*$", lambda m: m[1] + repo, text)


def sync(root: Path = ROOT, *, check: bool = False) -> list[Path]:
    """Rewrite every derived line from ``_release.py``; returns the files that changed (or would change)."""
    repo, version = release(root)
    changed = []
    targets = [(root / "_config.yml", lambda t: _sync_config(t, repo))]
    targets += [(root / d, lambda t: "".join(_pip_line(l, repo, version) for l in t.splitlines(True)))
                for d in DOCS]
    for path, rewrite in targets:
        if path.is_file():
            text = path.read_text()
            new = rewrite(text)
            if new != text:
                changed.append(path)
                if not check:
                    path.write_text(new)
    for path in _notebooks(root):
        text = path.read_text()
        new = _sync_notebook(path, repo, version)
        if new != text:
            changed.append(path)
            if not check:
                path.write_text(new)
    return changed


def _tracked_text_files(root: Path):
    out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True)
    files = [root / f for f in out.stdout.split()] if out.returncode == 0 and out.stdout.strip() else \
        [p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts and "node_modules" not in p.parts
         and "_build" not in p.parts]
    for p in files:
        if p.is_file() and p.suffix in {".py", ".md", ".yml", ".yaml", ".ipynb", ".toml", ".txt", ".cfg", ".sh",
                                         ".json", ".bib", ""}:
            try:
                yield p, p.read_text()
            except UnicodeDecodeError:
                continue


def set_repository(url: str, root: Path = ROOT) -> list[Path]:
    """Point the book at another repository (a fork): every mention of the current URL (and its
    ``owner/name``) in the tracked text files is rewritten, then the derived lines are synced."""
    url = url.rstrip("/").removesuffix(".git")
    if not GITHUB.match(url):
        raise ValueError(f"url must look like https://github.com/<owner>/<name>, got {url!r}")
    old, _ = release(root)
    old_slug, new_slug = old.removeprefix("https://github.com/"), url.removeprefix("https://github.com/")
    changed = []
    for path, text in _tracked_text_files(root):
        new = text.replace(old, url)
        new = re.sub(rf"(?<![\w.-]){re.escape(old_slug)}(?![\w-])", new_slug, new)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return sorted(set(changed) | set(sync(root)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", nargs="?", help="the new repository, https://github.com/<owner>/<name>")
    ap.add_argument("--check", action="store_true", help="only report files whose derived lines drifted")
    ap.add_argument("--sync", action="store_true", help="rewrite derived lines from mlsec_kit/_release.py")
    ap.add_argument("--root", type=Path, default=ROOT, help="the book's root (default: this checkout)")
    args = ap.parse_args(argv)
    if args.url:
        try:
            changed = set_repository(args.url, args.root)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        print("\n".join(str(p.relative_to(args.root)) for p in changed) or "nothing to change")
        return 0
    changed = sync(args.root, check=args.check or not args.sync)
    for p in changed:
        print(("drifted: " if args.check or not args.sync else "rewrote: ") + str(p.relative_to(args.root)))
    return 1 if changed and (args.check or not args.sync) else 0


if __name__ == "__main__":
    sys.exit(main())
