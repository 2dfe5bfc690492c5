"""Sphinx extension: the book serves its own MathJax, so math renders with no network (a lab, a train, an exam).

MathJax comes from the npm package ``mathjax`` pinned in ``package.json`` (and ``package-lock.json``); it is
not committed. When ``node_modules/mathjax`` is missing, the build runs ``npm ci`` in the book's root once;
without Node.js it stops with a message saying what to install. After an HTML build the MathJax files the
pages use are copied into ``_static/mathjax/``, which ``mathjax_path`` in ``_config.yml`` points at.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sphinx.errors import ExtensionError

# the one combined component the pages load (TeX input with every extension, SVG output: no web fonts to
# fetch, which file:// pages could not load anyway), and the parts it loads on demand (menu, accessibility)
COMPONENT = "tex-svg-full.js"
ON_DEMAND = ("ui", "a11y", "sre")


def mathjax_dir(root: Path) -> Path:
    """``node_modules/mathjax/es5`` under ``root``, installed with ``npm ci`` when missing."""
    es5 = root / "node_modules" / "mathjax" / "es5"
    if (es5 / COMPONENT).is_file():
        return es5
    npm = shutil.which("npm")
    if npm is None or not (root / "package-lock.json").is_file():
        raise ExtensionError(
            f"MathJax is not installed in {es5.parent} and npm is not available to install it: install "
            "Node.js and npm (Debian: apt-get install npm), then run `npm ci` in the book's root")
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0 or not (es5 / COMPONENT).is_file():
        raise ExtensionError(f"`npm ci` did not install MathJax:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return es5


def _check_config(app, config):
    if config.mathjax_path != f"mathjax/{COMPONENT}":
        raise ExtensionError(f"mathjax_path must be 'mathjax/{COMPONENT}' (served from _static), "
                             f"got {config.mathjax_path!r}")


def _install(app):
    if app.builder.format == "html":
        app.env.mlsec_mathjax = str(mathjax_dir(Path(app.srcdir)))


def _copy(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    es5 = mathjax_dir(Path(app.srcdir))
    dest = Path(app.outdir) / "_static" / "mathjax"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5 / COMPONENT, dest / COMPONENT)
    for part in ON_DEMAND:
        if (es5 / part).is_dir():
            shutil.copytree(es5 / part, dest / part, dirs_exist_ok=True)
    shutil.copy2(es5.parent / "LICENSE", dest / "LICENSE")


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated inline scripts: sphinx-thebe and sphinx-togglebutton each register theirs twice under
    Jupyter Book 1.0, and the second ``const THEBE_JS_URL`` is a SyntaxError in every page's console."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = (getattr(js, "filename", str(js)) or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept  # in place: Sphinx keeps (and sorts) this very list after the event


def setup(app):
    app.connect("config-inited", _check_config)
    app.connect("builder-inited", _install)
    app.connect("build-finished", _copy)
    # early: a handler that returns a template name stops the event (emit_firstresult) for later ones
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
