"""Plain-Jupyter ("Colab") editions of the book's notebooks: the same cells, with no MyST markup left.

The chapters and exercise sets are written in MyST Markdown, which only Jupyter Book renders. Colab, plain
Jupyter, VS Code and GitHub's viewer show ``{glue:text}`key``, ``{cite:t}`key`` and ``:::{note}`` fences as raw
text. This module writes, for every ``chapters/<stem>.ipynb`` and ``exercises/<stem>.ipynb``, an edition at
``colab/chapters/<stem>.ipynb`` / ``colab/exercises/<stem>.ipynb``: code cells (the install cell, the
``parameters`` cell, everything else) are copied unchanged (outputs cleared), Markdown cells are converted
to CommonMark, and two kinds of Markdown cell are added: one under the title saying what the edition is, and
one under each code cell whose figure has a caption in the book (``mystnb.figure`` metadata), with the caption.
The editions are generated and committed, never edited by hand; the book's Colab launch buttons, the README
and the teaching guide open them, and ``tests/test_editions.py`` fails when a source and its edition drift.

Regenerate every edition (executes each chapter once in the ``small`` profile, about 2 minutes)::

    python -m mlsec_kit.editions build                  # after any change to a chapter or exercise set
    python -m mlsec_kit.editions build --book-cache     # take the values from the book build's jupyter-cache
                                                        # where it matches the notebook (no execution)
    python -m mlsec_kit.editions build --reuse-values   # prose-only change: keep the glued values stored in
                                                        # the committed editions (no execution)
    python -m mlsec_kit.editions check                  # exit 1 and list the editions that are out of date

Design decisions
----------------
* **Glue roles** become the value the book's own executed run glued, formatted with the role's format spec
  exactly as myst-nb does (:func:`format_glue_text`), followed by a superscript dagger, ``97.3<sup>†</sup>``;
  each Markdown cell that shows such values ends with one italic line saying that the marked numbers were
  computed by the notebook's code when the book was built (``small`` profile) and that running the cells
  recomputes them (the printed outputs show the reader's own run). Why this and not a pointer to an output
  cell: the sentence reads the same as in the HTML book, the number is visible before anything has run (a
  student skimming in Colab sees the result the prose argues about), and Colab has no stable way to link one
  cell from another. The dagger marks every number that is computed rather than written, so a reader who
  changes a parameter knows which numbers to look for in the outputs. The raw ``text/plain`` values are stored
  in the edition's notebook metadata (``mlsec_edition.values``), which lets the drift test regenerate an
  edition without executing anything, and lets a second test compare them with a fresh run.
* **Citations** ``{cite:t}`` become "Goodfellow et al. (2015)", ``{cite:p}``/``{cite}`` "(Goodfellow et al.,
  2015)" (author–year as the book's ``bibtex_reference_style: author_year``: one author, "A and B", or
  "A et al."), parsed from ``book/references.bib`` with pybtex, each linked to the published book's references
  page (sphinxcontrib-bibtex gives entries unstable anchors, so the link is to the page).
* **Glossary terms** ``{term}`` become a link to the term in the published glossary (``#term-<slug>``, the
  anchor Sphinx writes); **references** ``{ref}``, ``{numref}``, ``{prf:ref}``, ``{doc}``, ``{eq}`` become the
  text the book shows (the section title, "Fig. 2", "Definition 1", the page title) linked to the published
  page. Numbers are the book's: Sphinx (with no section numbers) counts figures and each proof type through
  the whole book in table-of-contents order, so chapter 3's first definition is "Definition 3" in both.
* **Directives** (``{admonition}``, ``{note}``, ``{tip}``, ..., ``{prf:definition}`` and the other proof
  types, any unknown one) become Markdown block quotes with a bold title ("**Definition 1 (Sensitivity)**");
  ``{math}`` becomes a ``$$`` block; ``{figure}`` an image with its caption; ``{glue:figure}`` a block quote
  that keeps the caption ("**Fig. 1.** ...") and says which code cell (above or below) draws the figure.
  Labels ``(name)=`` and MyST comments (``%``) are dropped. Plain code fences are left as they are.
* The published HTML is unchanged except the Colab launch button, which this module's :func:`setup` (a Sphinx
  extension listed in ``_config.yml``) points at the edition.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from mlsec_kit import _release

__all__ = ["EDITION_DIR", "SOURCE_DIRS", "format_glue_text", "Bibliography", "Labels", "Converter",
           "convert_notebook", "edition_path", "sources", "build", "check", "glue_keys", "main", "setup"]

EDITION_DIR = "colab"
SOURCE_DIRS = ("chapters", "exercises")
ROOT = Path(__file__).resolve().parents[1]
MARK = "<sup>†</sup>"
VALUES_NOTE = ("*<sup>†</sup> Computed by this notebook's code when the book was built (`small` profile); "
               "running the cells recomputes it, and the printed outputs show your run's values.*")
ROLE_RE = re.compile(r"\{([A-Za-z][\w:.-]*)\}`([^`]*)`")
FENCE_RE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|:{3,})\{(?P<name>[A-Za-z][\w:.-]*)\}[ \t]*"
                      r"(?P<arg>.*?)[ \t]*$")
CODE_FENCE_RE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
LABEL_RE = re.compile(r"^\(([^()\s]+)\)=[ \t]*$")
TITLED_TARGET_RE = re.compile(r"^(.*?)\s*<([^<>]+)>\s*$", re.S)
ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger", "error",
               "seealso", "admonition", "margin", "sidebar", "topic", "epigraph", "dropdown"}
GLUE_CALL_RE = r"""glue\(\s*["']{key}["']"""


# ------------------------------------------------------------------------------------------------- values

def format_glue_text(text: str, fmt_spec: str = "") -> str:
    """Format a glued ``text/plain`` value as myst-nb's ``{glue:text}`key:fmt`` does (same rules)."""
    import ast

    if not isinstance(text, str):
        raise TypeError(f"text must be the glued text/plain string, got {type(text).__name__}")
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if fmt_spec == "":
        return str(value)
    kind = fmt_spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, fmt_spec)


def glue_keys(nb) -> list[str]:
    """The glue keys a notebook's Markdown refers to (``{glue}``, ``{glue:text}``, ``{glue:figure}``, ...)."""
    keys = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for m in ROLE_RE.finditer(cell.source):
            if m.group(1).startswith("glue"):
                keys.append(_split_glue(m.group(2))[0])
        for m in re.finditer(r"^[ \t]*(?:`{3,}|:{3,})\{glue(?::\w+)?\}[ \t]*(\S+)", cell.source, re.M):
            keys.append(_split_glue(m.group(1))[0])
    return list(dict.fromkeys(keys))


def _split_glue(content: str) -> tuple[str, str]:
    content = content.strip().split("::")[-1]          # "docpath::key:fmt" -> "key:fmt"
    key, _, fmt = content.partition(":")
    return key, fmt


# ------------------------------------------------------------------------------------------- bibliography

class Bibliography:
    """Author–year labels of ``book/references.bib`` entries, as sphinxcontrib-bibtex's author_year style."""

    def __init__(self, path: str | Path):
        from pybtex.database import parse_file

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path must be an existing .bib file, got {str(path)!r}")
        self._entries = parse_file(str(path)).entries

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def authors(self, key: str) -> str:
        entry = self._entry(key)
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_latex_to_text(" ".join(p.prelast_names + p.last_names)) for p in people]
        if not names:
            return _latex_to_text(entry.fields.get("title", key))
        if len(names) == 1:
            return names[0]
        if len(names) == 2:
            return f"{names[0]} and {names[1]}"
        return f"{names[0]} et al."

    def year(self, key: str) -> str:
        return self._entry(key).fields.get("year", "n.d.")

    def _entry(self, key: str):
        if key not in self._entries:
            raise KeyError(f"citation key {key!r} is not in book/references.bib")
        return self._entries[key]


@functools.lru_cache(maxsize=None)
def _latex_to_text(text: str) -> str:
    try:
        from pybtex.backends.plaintext import Backend
        from pybtex.richtext import Text

        # render(Backend()) is render_as("text") without the plugin lookup, which scans every installed
        # package's entry points on each call (most of the time of converting a chapter)
        return Text.from_latex(text).render(Backend())
    except Exception:  # pragma: no cover - a malformed field: keep it readable
        return text.replace("{", "").replace("}", "")


# ------------------------------------------------------------------------------------------------- labels

@dataclass
class Target:
    doc: str        # the page, e.g. "chapters/03_evasion_whitebox"
    text: str       # what a reference shows, e.g. "Definition 1" or a section title


@dataclass
class Labels:
    """Every cross-reference target of the book: section labels, proof directives, figures, page titles."""
    targets: dict[str, Target] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)       # doc -> page title
    figures: dict[str, str] = field(default_factory=dict)      # label -> "Fig. N"
    sequence: dict[str, list[str]] = field(default_factory=dict)  # doc -> numbers of its figures and proofs
    glossary: dict[str, str] = field(default_factory=dict)     # lower-case term -> glossary spelling

    @classmethod
    def scan(cls, root: str | Path) -> "Labels":
        root = Path(root)
        labels = cls()
        docs = {}
        for folder in SOURCE_DIRS:
            docs.update({f"{folder}/{p.stem}": _markdown_of_notebook(p)
                         for p in sorted((root / folder).glob("*.ipynb"))})
        docs.update({f"book/{p.stem}": p.read_text() for p in sorted((root / "book").glob("*.md"))})
        # Sphinx numbers figures and each proof type across the whole book, in table-of-contents order (the
        # book has no section numbers): "Definition 3" is the first definition of the third chapter that has one
        order = [d for d in _toc_order(root) if d in docs] + sorted(d for d in docs if d not in _toc_order(root))
        counters: dict[str, int] = {}
        for doc in order:
            labels._scan_doc(doc, docs[doc], counters)
        glossary = root / "book" / "glossary.md"
        if glossary.is_file():
            labels._scan_glossary(glossary.read_text())
        return labels

    def _scan_doc(self, doc: str, text: str, counters: dict[str, int] | None = None) -> None:
        pending, lines, fence = None, text.splitlines(), None
        for line in lines:
            c = CODE_FENCE_RE.match(line)
            if fence or c:                      # skip plain code blocks: "# comment" is not a heading
                if fence is None:
                    fence = c.group(1)
                elif re.fullmatch(re.escape(fence[0]) + "{%d,}" % len(fence), line.strip()):
                    fence = None
                continue
            m = LABEL_RE.match(line)
            if m:
                pending = m.group(1)
                continue
            h = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if h:
                title = _strip_inline(h.group(2))
                if doc not in self.titles and len(h.group(1)) == 1:
                    self.titles[doc] = title
                if pending:
                    self.targets[pending] = Target(doc, title)
            if line.strip():
                pending = None
        self.sequence[doc] = []
        for name, arg, options, number in _numbered_directives(lines, {} if counters is None else counters):
            self.sequence[doc].append(number)
            label = options.get("label") or options.get("name")
            if label:
                self.targets[label] = Target(doc, number)
                if "figure" in name:
                    self.figures[label] = number
        self.titles.setdefault(doc, doc.rsplit("/", 1)[-1])

    def _scan_glossary(self, text: str) -> None:
        inside = False
        for line in text.splitlines():
            if re.match(r"^\s*(`{3,}|:{3,})\{glossary\}", line):
                inside = True
            elif inside and re.match(r"^\s*(`{3,}|:{3,})\s*$", line):
                inside = False
            elif inside and line.strip() and not line[0].isspace() and not line.startswith(":"):
                self.glossary[line.strip().lower()] = line.strip()


def _toc_order(root: Path) -> list[str]:
    """The pages of ``_toc.yml`` in reading order (root first), or [] without one."""
    import yaml

    toc_file = root / "_toc.yml"
    if not toc_file.is_file():
        return []
    toc = yaml.safe_load(toc_file.read_text()) or {}
    pages = [toc.get("root", "")]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))
    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return [str(Path(p).with_suffix("")) if p.endswith((".md", ".ipynb")) else p for p in pages if p]


def _numbered_directives(lines: list[str], counters: dict[str, int]):
    """(name, argument, options, "Fig. N"/"Definition N") for figures and proof directives, in page order;
    ``counters`` carries the numbering on from the pages before."""
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if m:
            name = m.group("name")
            options, used = _options(lines[i + 1:])
            body = lines[i + 1 + used:_closing(lines, i, m.group("fence"))]
            kind = None
            if name in ("figure", "glue:figure", "figure-cell") and (any(b.strip() for b in body)
                                                                      or "caption" in options):
                # Sphinx numbers only figures with a caption
                kind, shown = "figure", "Fig."
            elif name.startswith("prf:") and name != "prf:proof":
                kind = name
                shown = name.split(":", 1)[1].title()
            if kind and "nonumber" in options:
                yield name, m.group("arg"), options, shown
            elif kind:
                counters[kind] = counters.get(kind, 0) + 1
                yield name, m.group("arg"), options, f"{shown} {counters[kind]}"
        i += 1


def _strip_inline(text: str) -> str:
    return ROLE_RE.sub(lambda m: TITLED_TARGET_RE.sub(r"\1", m.group(2)), text).strip()


def _markdown_of_notebook(path: Path) -> str:
    """The notebook's Markdown in page order, with a stand-in directive for each code cell whose output is a
    numbered figure (myst-nb's ``mystnb.figure`` cell metadata), so that figures are counted in order."""
    nb = json.loads(path.read_text())
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        elif _cell_figure(cell).get("caption"):
            parts.append(f"```{{figure-cell}}\n:name: {_cell_figure(cell).get('name', '')}\n:caption: x\n```")
    return "\n\n".join(parts)


def _cell_figure(cell) -> dict:
    """myst-nb's figure options of a code cell (``metadata.mystnb.figure``: caption, name), or {}."""
    meta = cell.get("metadata", {})
    figure = (meta.get("mystnb") or {}).get("figure") or meta.get("figure") or {}
    return figure if isinstance(figure, dict) else {}


def _options(lines: list[str]) -> tuple[dict[str, str], int]:
    """The directive options at the start of a body (``:key: value`` lines or a ``---`` YAML block)."""
    options, used = {}, 0
    if lines and lines[0].strip() == "---":
        for j, line in enumerate(lines[1:], start=1):
            if line.strip() == "---":
                return options, j + 1
            key, _, value = line.partition(":")
            options[key.strip()] = value.strip()
        return options, 0
    for line in lines:
        m = re.match(r"^\s*:([\w-]+):\s*(.*)$", line)
        if not m:
            break
        options[m.group(1)] = m.group(2).strip()
        used += 1
    return options, used


# ---------------------------------------------------------------------------------------------- converter

@dataclass
class Converter:
    """Turns the MyST Markdown of one page into CommonMark that Colab, Jupyter and GitHub render."""
    doc: str
    values: dict[str, str]
    bib: Bibliography
    labels: Labels
    book_url: str
    glue_cells: Callable[[str], str] = lambda key: ""   # key -> "above"/"below"/"" relative to the current cell
    numbering: Iterator[str] | None = None   # the page's figure and proof numbers, in order (Labels.sequence)
    used_values: list[str] = field(default_factory=list)

    def _use(self, key: str) -> str:
        """The glued value of ``key`` (recorded as used), or a KeyError saying how to get it."""
        if key not in self.values:
            raise KeyError(f"{self.doc}: glue key {key!r} has no value; execute the notebook "
                           "(python -m mlsec_kit.editions build)")
        self.used_values.append(key)
        return self.values[key]

    # -- inline roles
    def role(self, name: str, content: str) -> str:
        if name in ("glue", "glue:", "glue:text", "glue:md", "glue:math"):
            key, fmt = _split_glue(content)
            text = format_glue_text(self._use(key), fmt)
            return f"${text}$" if name == "glue:math" else f"{text}{MARK}"
        if name == "cite" or name.startswith("cite:"):
            return self.cite(name, content)
        if name == "term":
            text, target = _text_and_target(content)
            spelling = self.labels.glossary.get(target.lower(), target)
            return f"[{text}]({self.book_url}book/glossary.html#{_sphinx_id('term-' + spelling)})"
        if name in ("ref", "numref", "prf:ref", "eq", "doc", "download"):
            return self.reference(name, content)
        if name == "math":
            return f"${content}$"
        if name in ("sub", "sup", "kbd"):
            return f"<{name}>{content}</{name}>"
        if name in ("code", "samp", "file", "command", "envvar", "literal") or name.startswith("py:") \
                or name in ("func", "class", "meth", "mod", "attr", "obj", "data", "exc"):
            return f"`{content}`"
        return _text_and_target(content)[0]      # any other role ({abbr}, {index}, ...): its text

    def cite(self, name: str, content: str) -> str:
        keys = [k.strip() for k in content.split(",") if k.strip()]
        for key in keys:
            if key not in self.bib:
                raise KeyError(f"{self.doc}: citation key {key!r} is not in book/references.bib")
        url = f"{self.book_url}book/references.html"
        if name in ("cite:t", "cite:ts", "cite:ct", "cite:cts", "cite:text"):
            return "; ".join(f"[{self.bib.authors(k)} ({self.bib.year(k)})]({url})" for k in keys)
        if name == "cite:author":
            return ", ".join(f"[{self.bib.authors(k)}]({url})" for k in keys)
        if name in ("cite:year", "cite:yearpar"):
            years = ", ".join(f"[{self.bib.year(k)}]({url})" for k in keys)
            return f"({years})" if name == "cite:yearpar" else years
        return "(" + "; ".join(f"[{self.bib.authors(k)}, {self.bib.year(k)}]({url})" for k in keys) + ")"

    def reference(self, name: str, content: str) -> str:
        text, target = _text_and_target(content)
        explicit = text != target
        if name in ("doc", "download"):
            doc = _resolve_doc(self.doc, target)
            shown = text if explicit else self.labels.titles.get(doc, target)
            return f"[{shown}]({self.book_url}{doc}.html)" if name == "doc" else shown
        if name == "eq":
            return f"({target})"
        found = self.labels.targets.get(target)
        if found is None:
            return text
        shown = text if explicit else found.text
        if name == "numref" and explicit and "%s" in text:
            shown = text.replace("%s", found.text.split()[-1])
        if name == "numref" and explicit and "{number}" in text:
            shown = text.replace("{number}", found.text.split()[-1])
        return f"[{shown}]({self.book_url}{found.doc}.html#{target})"

    def inline(self, text: str) -> str:
        """Convert the roles of a run of text, leaving inline code spans alone."""
        out, pos = [], 0
        for m in re.finditer(ROLE_RE.pattern + r"|(`+)[^`].*?(?<!`)\3(?!`)", text):
            out.append(text[pos:m.start()])
            out.append(self.role(m.group(1), m.group(2)) if m.group(1) else m.group(0))
            pos = m.end()
        out.append(text[pos:])
        return "".join(out)

    # -- blocks
    def convert(self, text: str) -> str:
        lines = text.split("\n")
        out: list[str] = []
        run: list[str] = []          # plain lines, converted together so that a role may span lines

        def flush():
            if run:
                out.extend(self.inline("\n".join(run)).split("\n"))
                run.clear()

        i = 0
        while i < len(lines):
            line = lines[i]
            m = FENCE_RE.match(line)
            if m:
                flush()
                end = _closing(lines, i, m.group("fence"))
                body = lines[i + 1:end]
                out += self.directive(m.group("name"), m.group("arg"), body).split("\n")
                i = end + 1
                continue
            c = CODE_FENCE_RE.match(line)
            if c:                                       # a plain code block: copied verbatim
                flush()
                end = _closing(lines, i, c.group(1))
                out += lines[i:end + 1]
                i = end + 1
                continue
            if LABEL_RE.match(line) or re.match(r"^%", line) or line.strip() == "+++":
                i += 1
                if LABEL_RE.match(line) and not out and not run and i < len(lines) and not lines[i].strip():
                    i += 1
                continue
            run.append(re.sub(r"^(\s*\$\$)\s*\([\w:.-]+\)\s*$", r"\1", line))   # "$$ (eq-label)" -> "$$"
            i += 1
        flush()
        return "\n".join(out)

    def number(self, label: str, fallback: str) -> str:
        """The next figure/proof number of the page ("Fig. 2", "Definition 3"), as the book shows it."""
        if self.numbering is not None:
            return next(self.numbering, fallback)
        return self.labels.targets[label].text if label in self.labels.targets else fallback

    def directive(self, name: str, arg: str, body: list[str]) -> str:
        options, used = _options(body)
        body = body[used:]
        while body and not body[0].strip():
            body = body[1:]
        inner = self.convert("\n".join(body)).strip("\n")
        if name == "math":
            return f"$$\n{inner}\n$$"
        if name == "glue:md":
            # a glued Markdown object's text/plain is its repr ("<IPython.core.display.Markdown object>"): point
            # at the cell that draws it instead, as for a glued figure
            key = _split_glue(arg)[0]
            self._use(key)
            where = self.glue_cells(key)
            return (f"*The table is the output of the code cell {where} that glues `{key}`; run it to see it.*"
                    if where else f"*The table is drawn by this notebook's code (`{key}`).*")
        if name in ("glue", "glue:", "glue:text", "glue:math"):
            return self.role("glue:math" if name == "glue:math" else "glue:text", arg)
        if name == "figure":
            number = self.number(options.get("name", ""), "Fig.") if inner else "Fig."
            alt = options.get("alt", inner.split("\n")[0] if inner else "figure")
            return f"![{alt}]({_raw_url(self.doc, arg)})\n\n" + _quote(f"**{number}.** {inner}".strip())
        if name == "glue:figure":
            key = _split_glue(arg)[0]
            number = self.number(options.get("name", ""), "Fig.") if inner else "Fig."
            where = self.glue_cells(key)
            pointer = (f"*The figure is the output of the code cell {where} that glues `{key}`; run it to "
                       "draw it.*" if where else f"*The figure is drawn by this notebook's code (`{key}`).*")
            return _quote(f"**{number}.** {inner}".rstrip() + "\n\n" + pointer)
        if name.startswith("prf:"):
            kind = name.split(":", 1)[1]
            if kind == "proof":
                title = "Proof"
            else:
                label = options.get("label", "")
                number = self.number(options.get("label", ""), kind.title())
                title = f"{number} ({self.inline(arg)})" if arg else number
            return _quote(f"**{title}**\n\n{inner}")
        if name in ("bibliography", "glossary", "toctree", "tableofcontents", "code-cell", "raw"):
            return ""
        if name in ("code", "code-block", "sourcecode"):
            return f"```{arg}\n" + "\n".join(body) + "\n```"
        if name in ADMONITIONS:
            if name in ("admonition", "dropdown", "sidebar", "topic", "margin") and arg:
                title = self.inline(arg)
            else:
                title = name.replace("seealso", "see also").capitalize()
                if arg:     # "{note} text" puts the first line of the body on the fence line
                    inner = self.inline(arg) + ("\n" + inner if inner else "")
            return _quote(f"**{title}**\n\n{inner}")
        title = self.inline(arg) if arg else name.split(":")[-1].capitalize()
        return _quote(f"**{title}**\n\n{inner}")


def _closing(lines: list[str], start: int, fence: str) -> int:
    """The index of the line that closes the fence opened at ``start`` (nesting of the same fence counted)."""
    char, size, depth = fence[0], len(fence), 0
    for j in range(start + 1, len(lines)):
        stripped = lines[j].strip()
        if char == ":" and FENCE_RE.match(lines[j]) and FENCE_RE.match(lines[j]).group("fence")[0] == ":" \
                and len(FENCE_RE.match(lines[j]).group("fence")) == size:
            depth += 1
        elif re.fullmatch(re.escape(char) + "{%d,}" % size, stripped):
            if depth == 0:
                return j
            depth -= 1
    return len(lines)


def _quote(text: str) -> str:
    return "\n".join(("> " + line).rstrip() for line in text.strip("\n").split("\n"))


def _text_and_target(content: str) -> tuple[str, str]:
    m = TITLED_TARGET_RE.match(content)
    if m and m.group(1):
        return m.group(1), m.group(2).strip()
    return content.strip(), content.strip()


def _resolve_doc(current: str, target: str) -> str:
    target = target.removesuffix(".md").removesuffix(".ipynb")
    if target.startswith("/"):
        return target.lstrip("/")
    parts = current.split("/")[:-1] + target.split("/")
    resolved = []
    for part in parts:
        if part == "..":
            resolved = resolved[:-1]
        elif part and part != ".":
            resolved.append(part)
    return "/".join(resolved)


def _sphinx_id(text: str) -> str:
    from docutils.nodes import make_id

    return make_id(text)


def _raw_url(doc: str, path: str) -> str:
    if re.match(r"^[a-z]+://", path):
        return path
    owner, repo = _release.repository_slug()
    return f"https://raw.githubusercontent.com/{owner}/{repo}/main/{_resolve_doc(doc, path)}"


# --------------------------------------------------------------------------------------------- notebooks

def edition_path(root: str | Path, source: str | Path) -> Path:
    """``chapters/x.ipynb`` -> ``<root>/colab/chapters/x.ipynb``."""
    source = Path(source)
    rel = source.relative_to(root) if source.is_absolute() else source
    if rel.parts[0] not in SOURCE_DIRS or rel.suffix != ".ipynb":
        raise ValueError(f"source must be a notebook in {SOURCE_DIRS}, got {str(rel)!r}")
    return Path(root) / EDITION_DIR / rel


def sources(root: str | Path = ROOT) -> list[Path]:
    """Every notebook that has an edition: ``chapters/*.ipynb`` and ``exercises/*.ipynb`` (not the sources
    of the exercise sets, which hold the solutions)."""
    root = Path(root)
    return [p for folder in SOURCE_DIRS for p in sorted((root / folder).glob("*.ipynb"))]


def convert_notebook(nb, doc: str, values: dict[str, str], *, bib: Bibliography, labels: Labels,
                     book_url: str | None = None):
    """The edition of one notebook: Markdown converted, code cells copied with their outputs cleared."""
    import copy

    import nbformat

    book_url = book_url or _release.book_url()
    nb = copy.deepcopy(nb)
    code_cells = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    used, captions = [], []
    numbering = iter(list(labels.sequence.get(doc, []))) if doc in labels.sequence else None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            figure = _cell_figure(cell)
            if figure.get("caption"):   # the book shows it under the cell's figure; here a cell below it does
                conv = Converter(doc, values, bib, labels, book_url, numbering=numbering)
                number = conv.number(figure.get("name", ""), "Fig.")
                text = _quote(f"**{number}.** {conv.convert(figure['caption']).strip()}")
                caption = nbformat.v4.new_markdown_cell(text + ("\n\n" + VALUES_NOTE if MARK in text else ""))
                caption.id = f"{cell.get('id', index)}-caption"[:64]
                captions.append((index, caption))
                used += conv.used_values
            continue
        if cell.cell_type != "markdown":
            continue

        def where(key, index=index):
            hits = [i for i, src in code_cells if re.search(GLUE_CALL_RE.format(key=re.escape(key)), src)]
            return ("above" if hits[0] < index else "below") if hits else ""

        conv = Converter(doc, values, bib, labels, book_url, glue_cells=where, numbering=numbering)
        text = conv.convert(cell.source)
        if MARK in text:
            text = text.rstrip("\n") + "\n\n" + VALUES_NOTE
        cell.source = text
        used += conv.used_values
    for index, caption in reversed(captions):
        nb.cells.insert(index + 1, caption)
    page = f"{book_url}{doc}.html"
    note = nbformat.v4.new_markdown_cell(
        f"> *This is the plain-Jupyter edition of [this page of the book]({page}), for Colab, Jupyter and "
        "VS Code: the code is the book's, the text is converted from the book's MyST Markdown. It is "
        "generated by `python -m mlsec_kit.editions build`; edit the book's notebook, not this file.*")
    note.id = "colab-edition"
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(min(1, first_code), note)
    nb.metadata["mlsec_edition"] = {"source": f"{doc}.ipynb",
                                    "values": {k: values[k] for k in sorted(set(used))}}
    return nb


def _stored_values(root: Path, source: Path) -> dict[str, str]:
    path = edition_path(root, source)
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("metadata", {}).get("mlsec_edition", {}).get("values", {})


def executed_values(path: str | Path, root: str | Path = ROOT, *, book_cache: bool = False) -> dict[str, str]:
    """The ``text/plain`` values a notebook glues, from a fresh execution in the ``small`` profile, or, with
    ``book_cache``, from the book build's jupyter-cache (``_build/.jupyter_cache``) when it holds a run of this
    exact notebook. The cache matches on the notebook's code only, so after a change to ``mlsec_kit`` it can
    hold stale numbers; that is why it is not the default."""
    import nbformat

    from mlsec_kit.notebook import execute_notebook, glued_values

    path = Path(path)
    cache_dir = Path(root) / "_build" / ".jupyter_cache"
    if book_cache and cache_dir.is_dir():
        try:
            from jupyter_cache import get_cache

            cache = get_cache(cache_dir)
            record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
            return glued_values(cache.get_cache_bundle(record.pk).nb)
        except Exception:  # no matching run in the cache: execute
            pass
    return glued_values(execute_notebook(path, timeout=600, env={"MLSEC_PROFILE": "small"})[0])


def render(root: str | Path, source: Path, values: dict[str, str], *, bib=None, labels=None) -> str:
    """The edition of ``source`` as the JSON text that is committed."""
    import nbformat

    root = Path(root)
    bib = bib or Bibliography(root / "book" / "references.bib")
    labels = labels or Labels.scan(root)
    doc = str(source.relative_to(root).with_suffix("")) if source.is_absolute() else str(source.with_suffix(""))
    nb = convert_notebook(nbformat.read(source, as_version=4), doc, values, bib=bib, labels=labels)
    return nbformat.writes(nb) + "\n"


def build(root: str | Path = ROOT, *, reuse_values: bool = False, book_cache: bool = False,
          only: Iterable[str] = (),
          check_only: bool = False, values_for: Callable[[Path], dict[str, str]] | None = None,
          log=print) -> list[Path]:
    """Write (or, with ``check_only``, compare) the edition of every source; returns the editions that
    changed (or differ). ``reuse_values`` keeps the glued values stored in the committed editions."""
    import nbformat

    root = Path(root)
    bib, labels = Bibliography(root / "book" / "references.bib"), Labels.scan(root)
    changed = []
    for source in sources(root):
        if only and source.stem not in only and str(source.relative_to(root)) not in only:
            continue
        keys = glue_keys(nbformat.read(source, as_version=4))
        values = _stored_values(root, source)
        if keys and not (reuse_values or check_only):
            values = (values_for or (lambda p: executed_values(p, root, book_cache=book_cache)))(source)
        missing = [k for k in keys if k not in values]
        if missing:
            raise KeyError(f"{source.relative_to(root)}: no value for glue keys {missing}; run "
                           "`python -m mlsec_kit.editions build` (without --reuse-values) to execute it")
        text = render(root, source, values, bib=bib, labels=labels)
        target = edition_path(root, source)
        if target.is_file() and target.read_text() == text:
            continue
        changed.append(target)
        if not check_only:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            log(f"wrote {target.relative_to(root)}")
    return changed


def check(root: str | Path = ROOT) -> list[Path]:
    """The editions that are missing or differ from what their sources give (no execution)."""
    return build(root, check_only=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsec_kit.editions", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write colab/chapters/*.ipynb and colab/exercises/*.ipynb")
    b.add_argument("--reuse-values", action="store_true",
                   help="keep the glued values stored in the committed editions (no execution)")
    b.add_argument("--book-cache", action="store_true",
                   help="take the values from the book build's jupyter-cache where it matches (no execution)")
    b.add_argument("only", nargs="*", help="stems or paths to rebuild (default: all)")
    c = sub.add_parser("check", help="exit 1 when an edition is missing or out of date")
    for p in (b, c):
        p.add_argument("--root", default=str(ROOT), help="the repository root")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.root, reuse_values=args.reuse_values, book_cache=args.book_cache, only=args.only)
        return 0
    stale = check(args.root)
    for path in stale:
        print(f"{path} is out of date: run `python -m mlsec_kit.editions build`")
    return 1 if stale else 0


# ---------------------------------------------------------------------------------------- Sphinx extension

def _point_colab_button_at_edition(app, pagename, templatename, context, doctree):
    """Rewrite the Colab launch button's URL (built by sphinx-book-theme from the page path) so that it opens
    ``colab/<page>.ipynb``, when that edition exists. Nothing else on the page changes."""
    root = Path(app.srcdir)
    if not (root / EDITION_DIR / f"{pagename}.ipynb").is_file():
        return
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if isinstance(group, dict) else []:
            url = button.get("url", "")
            if url.startswith("https://colab.research.google.com/") and url.endswith(f"/{pagename}.ipynb"):
                button["url"] = url[: -len(f"{pagename}.ipynb")] + f"{EDITION_DIR}/{pagename}.ipynb"


def setup(app):
    """Sphinx extension: the Colab launch buttons open the plain-Jupyter editions."""
    app.connect("html-page-context", _point_colab_button_at_edition, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    sys.exit(main())
