"""The plain-Jupyter (Colab) editions: converted correctly, free of MyST markup, in step with their sources,
and runnable with Colab's ipywidgets 7.7.1."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt

from mlsec_kit import _release
from mlsec_kit import editions as E
from mlsec_kit.notebook import execute_notebook, glued_values, is_unseeded

ROOT = Path(__file__).resolve().parents[1]
SOURCES = E.sources(ROOT)
CHAPTER_SOURCES = [p for p in SOURCES if p.parent.name == "chapters"]
BOOK = _release.book_url()


@pytest.fixture(scope="module")
def bib():
    return E.Bibliography(ROOT / "book" / "references.bib")


@pytest.fixture(scope="module")
def labels():
    return E.Labels.scan(ROOT)


def _convert(text, bib, labels, values=None, doc="chapters/99_test"):
    return E.Converter(doc, values or {}, bib, labels, BOOK).convert(text)


def _edition(source):
    return nbformat.read(E.edition_path(ROOT, source), as_version=4)


# ------------------------------------------------------------------------------------------ the converter

@pytest.mark.parametrize("text, fmt", [("97.345", ".1f"), ("97.345", ""), ("0.2", ".3g"), ("300", ""),
                                       ("12", "d"), ("0.1234", ".0%"), ("'cnn'", "s"), ("3.0", ".0f")])
def test_glue_text_formats_as_myst_nb(text, fmt):
    from myst_nb.core.variables import format_plain_text

    assert E.format_glue_text(text, fmt) == format_plain_text(text, fmt)


def test_glue_role_becomes_the_marked_value(bib, labels):
    out = _convert("from {glue:text}`ch99_acc:.1f`% to {glue}`ch99_n`", bib, labels,
                   {"ch99_acc": "97.345", "ch99_n": "300"})
    assert out == f"from 97.3{E.MARK}% to 300{E.MARK}"
    with pytest.raises(KeyError, match="ch99_missing"):
        _convert("{glue:text}`ch99_missing:.1f`", bib, labels)


def test_cell_with_values_says_they_are_computed(bib, labels):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"),
                                         nbformat.v4.new_code_cell('mk.glue("ch99_acc", 0.5)'),
                                         nbformat.v4.new_markdown_cell("acc {glue:text}`ch99_acc:.2f`"),
                                         nbformat.v4.new_markdown_cell("no values here")])
    out = E.convert_notebook(nb, "chapters/99_test", {"ch99_acc": "0.5"}, bib=bib, labels=labels)
    md = [c.source for c in out.cells if c.cell_type == "markdown"]
    assert md[2].startswith(f"acc 0.50{E.MARK}") and md[2].endswith(E.VALUES_NOTE)
    assert E.VALUES_NOTE not in md[3]
    assert out.metadata["mlsec_edition"] == {"source": "chapters/99_test.ipynb", "values": {"ch99_acc": "0.5"}}
    assert out.cells[2].source == nb.cells[1].source          # code is copied unchanged


def test_citations_are_author_year_links(bib, labels):
    ref = f"{BOOK}book/references.html"
    assert _convert("{cite:t}`goodfellow2015explaining`", bib, labels) == f"[Goodfellow et al. (2015)]({ref})"
    assert (_convert("{cite:p}`biggio2018wild`", bib, labels) == f"([Biggio and Roli, 2018]({ref}))")
    assert (_convert("{cite}`biggio2018wild,goodfellow2015explaining`", bib, labels)
            == f"([Biggio and Roli, 2018]({ref}); [Goodfellow et al., 2015]({ref}))")
    with pytest.raises(KeyError, match="nosuchkey"):
        _convert("{cite}`nosuchkey`", bib, labels)


def test_single_author_and_latex_names():
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".bib", delete=False) as f:
        f.write('@article{a1, author = {Dwork, Cynthia}, title = {T}, year = {2006}}\n'
                '@article{a2, author = {Erlingsson, {\\\'U}lfar and Pihur, V. and Korolova, A.}, title = {T},'
                ' year = {2014}}\n')
    bib = E.Bibliography(f.name)
    assert (bib.authors("a1"), bib.year("a1")) == ("Dwork", "2006")
    assert bib.authors("a2") == "Erlingsson et al."
    os.unlink(f.name)


def test_terms_and_references_link_into_the_published_book(bib, labels):
    term = _convert("a {term}`perturbation budget` and {term}`models <adversarial example>`", bib, labels)
    assert term == (f"a [perturbation budget]({BOOK}book/glossary.html#term-perturbation-budget) and "
                    f"[models]({BOOK}book/glossary.html#term-adversarial-example)")
    first = labels.targets["ch-threat-models"].text
    assert _convert("{ref}`ch-threat-models`", bib, labels) == \
        f"[{first}]({BOOK}chapters/01_threat_models.html#ch-threat-models)"
    pgd = labels.targets["def-pgd"].text
    assert re.fullmatch(r"Definition \d+", pgd)
    assert _convert("{prf:ref}`def-pgd`", bib, labels) == f"[{pgd}]({BOOK}chapters/03_evasion_whitebox.html#def-pgd)"
    assert _convert("{doc}`the notation <../book/notation>`", bib, labels) == \
        f"[the notation]({BOOK}book/notation.html)"
    assert _convert("{doc}`03_evasion_whitebox`", bib, labels).startswith("[3. Evasion attacks I")


def test_directives_become_titled_block_quotes(bib, labels):
    src = ("(sec-x)=\n## Head\n\n:::{note}\nBe careful with {term}`epsilon`.\n:::\n\n"
           "```{prf:definition} Sensitivity\n:label: def-sens\n\nThe largest change.\n```\n\n"
           "````{admonition} Threat model\n:class: note\n**Who**: anyone.\n```python\nx = 1\n```\n````\n"
           "% a comment\n```python\n{cite}`not_a_role_in_code`\n```")
    out = _convert(src, bib, labels)
    assert out.startswith("## Head\n\n> **Note**\n>\n> Be careful with [epsilon](")
    assert "> **Definition (Sensitivity)**\n>\n> The largest change." in out
    assert "> **Threat model**\n>\n> **Who**: anyone.\n> ```python\n> x = 1\n> ```" in out
    assert "comment" not in out and "(sec-x)=" not in out and ":label:" not in out
    assert out.endswith("```python\n{cite}`not_a_role_in_code`\n```")   # plain code is left alone


def test_glued_markdown_points_at_its_cell_not_its_repr(bib, labels):
    conv = E.Converter("chapters/99_test", {"ch99_table": "<IPython.core.display.Markdown object>"}, bib, labels,
                       BOOK, glue_cells=lambda key: "above")
    out = conv.convert("```{glue:md} ch99_table\n:format: myst\n```\n")
    assert "object>" not in out and "output of the code cell above that glues `ch99_table`" in out
    assert conv.used_values == ["ch99_table"]
    with pytest.raises(KeyError, match="ch99_missing"):
        conv.convert("```{glue:md} ch99_missing\n:format: myst\n```\n")


def test_numbered_proofs_and_glue_figures(bib):
    labels = E.Labels()
    labels._scan_doc("chapters/99_test", "```{prf:definition} A\n:label: d-a\nx\n```\n"
                     "```{prf:theorem} B\n:label: t-b\ny\n```\n```{prf:definition} C\n:label: d-c\nz\n```\n"
                     ":::{glue:figure} ch99_fig\n:name: fig-curve\n\nAccuracy against $\\varepsilon$.\n:::\n")
    assert labels.targets["d-c"].text == "Definition 2" and labels.targets["t-b"].text == "Theorem 1"
    conv = E.Converter("chapters/99_test", {}, bib, labels, BOOK, glue_cells=lambda key: "above")
    out = conv.convert("See {numref}`fig-curve`.\n\n:::{glue:figure} ch99_fig\n:name: fig-curve\n\n"
                       "Accuracy against $\\varepsilon$.\n:::")
    assert out.startswith(f"See [Fig. 1]({BOOK}chapters/99_test.html#fig-curve).")
    assert "> **Fig. 1.** Accuracy against $\\varepsilon$." in out
    assert "output of the code cell above that glues `ch99_fig`" in out
    assert "Theorem 1 (B)" in conv.convert("```{prf:theorem} B\n:label: t-b\ny\n```")


def test_numbers_run_through_the_book_in_toc_order(bib, tmp_path):
    """As Sphinx does without section numbers: each proof type and figures are counted across pages in
    table-of-contents order (the built book shows chapter 3's first definition as "Definition 3")."""
    (tmp_path / "chapters").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - chapters:\n"
                                       "      - file: chapters/02_b\n      - file: chapters/01_a\n")
    pages = {"01_a": "```{prf:definition} A\n:label: d-a\nx\n```",
             "02_b": "```{prf:definition} Unlabelled\nx\n```\n```{prf:remark} Aside\n:nonumber:\ny\n```\n"
                     "```{figure} img.png\n```\n```{prf:definition} B\n:label: d-b\nz\n```"}
    for stem, text in pages.items():
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)]),
                       tmp_path / "chapters" / f"{stem}.ipynb")
    labels = E.Labels.scan(tmp_path)
    assert labels.targets["d-b"].text == "Definition 2" and labels.targets["d-a"].text == "Definition 3"
    nb = nbformat.read(tmp_path / "chapters" / "02_b.ipynb", as_version=4)
    out = E.convert_notebook(nb, "chapters/02_b", {}, bib=bib, labels=labels).cells[0].source
    assert "**Definition 1 (Unlabelled)**" in out and "**Remark (Aside)**" in out
    assert "**Definition 2 (B)**" in out and "Fig. 1" not in out     # an uncaptioned figure has no number


def test_roles_may_span_lines_and_headings_in_code_are_not_titles(bib, labels):
    out = _convert("The {term}`adversarially trained\n<adversarial training>` models", bib, labels)
    assert out == (f"The [adversarially trained]({BOOK}book/glossary.html#term-adversarial-training) models")
    scanned = E.Labels()
    scanned._scan_doc("book/x", "```python\n# not a title\n```\n(lab)=\n# Real title\n")
    assert scanned.titles["book/x"] == "Real title" and scanned.targets["lab"].text == "Real title"


def test_code_cell_figures_keep_their_numbered_captions(bib, tmp_path):
    fig = nbformat.v4.new_code_cell("plt.plot([1, 2])", metadata={"mystnb": {"figure": {
        "name": "fig-99-a", "caption": "Accuracy, {glue:text}`ch99_acc:.1f`% at best ({cite:t}`biggio2018wild`)."}}})
    fig.id = "plot"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# T\n\n```{glue:figure} other\n:name: fig-99-0\n\nFirst.\n```"),
        fig, nbformat.v4.new_markdown_cell("As {numref}`fig-99-a` shows.")])
    (tmp_path / "chapters").mkdir()
    nbformat.write(nb, tmp_path / "chapters" / "99_t.ipynb")
    labels = E.Labels.scan(tmp_path)
    assert labels.figures == {"fig-99-0": "Fig. 1", "fig-99-a": "Fig. 2"}
    out = E.convert_notebook(nb, "chapters/99_t", {"ch99_acc": "0.25"}, bib=bib, labels=labels)
    ids = [c.id for c in out.cells]
    caption = out.cells[ids.index("plot") + 1]
    assert caption.id == "plot-caption" and caption.source.startswith(
        f"> **Fig. 2.** Accuracy, 0.2{E.MARK}% at best ([Biggio and Roli (2018)]")
    assert caption.source.endswith(E.VALUES_NOTE)
    assert out.cells[-1].source == f"As [Fig. 2]({BOOK}chapters/99_t.html#fig-99-a) shows."


def test_the_colab_button_is_rewritten_to_the_edition(tmp_path):
    (tmp_path / "colab" / "chapters").mkdir(parents=True)
    (tmp_path / "colab" / "chapters" / "01_x.ipynb").write_text("{}")
    base = "https://colab.research.google.com/github/o/r/blob/main/"
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": [
        {"text": "Binder", "url": "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/chapters/01_x.ipynb"},
        {"text": "Colab", "url": base + "chapters/01_x.ipynb"}]}]}
    app = type("App", (), {"srcdir": str(tmp_path)})()
    E._point_colab_button_at_edition(app, "chapters/01_x", "page.html", context, None)
    buttons = context["header_buttons"][0]["buttons"]
    assert buttons[1]["url"] == base + "colab/chapters/01_x.ipynb"
    assert buttons[0]["url"].endswith("tree/chapters/01_x.ipynb")                 # other buttons untouched
    E._point_colab_button_at_edition(app, "book/intro", "page.html", context, None)  # no edition: no change
    assert buttons[1]["url"] == base + "colab/chapters/01_x.ipynb"


# ----------------------------------------------------------------------------------- the committed editions

def test_every_notebook_has_an_edition():
    assert {p.stem for p in CHAPTER_SOURCES} >= {"01_threat_models", "03_evasion_whitebox"}
    missing = [str(E.edition_path(ROOT, p).relative_to(ROOT)) for p in SOURCES
               if not E.edition_path(ROOT, p).is_file()]
    assert not missing, f"missing editions {missing}: run `python -m mlsec_kit.editions build`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_edition_is_up_to_date(source, bib, labels):
    """The committed edition is exactly what the converter makes of the current source (with the values
    stored in the edition; the next test checks those against a fresh run)."""
    stored = json.loads(E.edition_path(ROOT, source).read_text())["metadata"]["mlsec_edition"]["values"]
    try:
        expected = E.render(ROOT, source, stored, bib=bib, labels=labels)
    except KeyError as exc:
        pytest.fail(f"{exc}: run `python -m mlsec_kit.editions build`")
    assert E.edition_path(ROOT, source).read_text() == expected, (
        f"colab/{source.parent.name}/{source.name} is out of date: run `python -m mlsec_kit.editions build`")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_edition_shows_no_myst_markup(source):
    edition, original = _edition(source), nbformat.read(source, as_version=4)
    md = MarkdownIt("commonmark")
    for cell in edition.cells:
        if cell.cell_type != "markdown":
            continue
        html = md.render(cell.source)
        roles = re.findall(r"\{[A-Za-z][\w:.-]*\}<code>", html)
        fences = re.findall(r'class="language-\{[^"]*"|^\s*:{3,}\s*\{.*$|<p>:::', html, re.M)
        assert not roles and not fences, f"{source.name}, cell {cell.id}: MyST left: {roles + fences}"
        assert not re.search(r"\{[A-Za-z][\w:.-]*\}`", cell.source), f"{source.name}, cell {cell.id}"
    keys = E.glue_keys(original)
    assert sorted(edition.metadata["mlsec_edition"]["values"]) == sorted(keys), "a glue key was not resolved"
    text = "\n".join(c.source for c in edition.cells if c.cell_type == "markdown")
    assert text.count(E.MARK) >= len(keys) and "glue" not in text.replace("glues `", "")
    assert not re.search(r"<[\w.]+ object( at 0x[0-9a-f]+)?>", text), f"{source.name}: a value's repr in the prose"
    code = [(c.id, c.source, c.metadata.get("tags", [])) for c in original.cells if c.cell_type == "code"]
    assert [(c.id, c.source, c.metadata.get("tags", [])) for c in edition.cells if c.cell_type == "code"] == code


@pytest.mark.parametrize("source", CHAPTER_SOURCES, ids=lambda p: p.stem)
def test_edition_values_match_a_fresh_run(executed_chapter, source):
    """The numbers an edition shows are the ones the chapter computes now (the session's shared run)."""
    fresh = glued_values(executed_chapter(source.stem))
    stored = _edition(source).metadata["mlsec_edition"]["values"]
    original = nbformat.read(source, as_version=4)
    shown = [m.groups() for c in original.cells if c.cell_type == "markdown"
             for m in re.finditer(r"\{glue(?::\w*)?\}`(?:[^`]*::)?([^`:]+):?([^`]*)`", c.source)]
    stale = [(k, E.format_glue_text(stored[k], f), E.format_glue_text(fresh[k], f)) for k, f in shown
             if k not in fresh or (not is_unseeded(k)   # wall-clock and CKKS values: present, not equal
                                   and E.format_glue_text(stored[k], f) != E.format_glue_text(fresh[k], f))]
    assert not stale, f"{source.name}: (key, edition, fresh run) {stale}: run `python -m mlsec_kit.editions build`"


def test_check_command_reports_a_drifted_edition(tmp_path):
    for folder in ("chapters", "exercises", "book"):
        (tmp_path / folder).mkdir()
    (tmp_path / "book" / "references.bib").write_text((ROOT / "book" / "references.bib").read_text())
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# One\n\nAs {cite:t}`biggio2018wild`.")])
    nbformat.write(nb, tmp_path / "exercises" / "01_x.ipynb")
    assert E.main(["check", "--root", str(tmp_path)]) == 1                       # no edition yet
    assert E.main(["build", "--root", str(tmp_path)]) == 0
    assert E.main(["check", "--root", str(tmp_path)]) == 0
    nb.cells[0].source += " Changed."
    nbformat.write(nb, tmp_path / "exercises" / "01_x.ipynb")
    assert E.main(["check", "--root", str(tmp_path)]) == 1


# ------------------------------------------------------------------------------- Colab-like execution

def _colab_like_python(base: Path) -> Path:
    """A venv whose own site-packages holds only ipywidgets 7.7.1 (Colab's pin) and which sees every other
    package of this environment through a .pth file, so ipywidgets 7 shadows the newer one."""
    import sysconfig
    import venv

    venv.EnvBuilder(with_pip=True).create(base)
    python = base / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "base_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # only the kernel side matters here; its front-end packages (widgetsnbextension) would pull in `notebook`
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                          "ipywidgets==7.7.1", "ipython_genutils"], capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        last = pip.stderr.strip().splitlines()[-1:] or [""]
        pytest.skip(f"pip could not install ipywidgets==7.7.1 (no package index reachable?): {last[0]}")
    return python


def test_an_edition_runs_with_colabs_ipywidgets(tmp_path, monkeypatch):
    python = _colab_like_python(tmp_path / "venv")
    version = subprocess.run([str(python), "-c", "import ipywidgets, mlsec_kit.widgets; print(ipywidgets.__version__)"],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert version.stdout.strip() == "7.7.1", version.stderr[-2000:]
    spec = tmp_path / "kernels" / "colab-like"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like (ipywidgets 7.7.1)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    # chapter 1, run outside the repository as Colab runs it, with one cell appended that reports the version
    nb = nbformat.read(E.edition_path(ROOT, ROOT / "chapters" / "01_threat_models.ipynb"), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import ipywidgets\nprint('ipywidgets', ipywidgets.__version__)"))
    path = tmp_path / "run" / "edition.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    done, _ = execute_notebook(path, timeout=300, kernel_name="colab-like",
                               env={"MLSEC_PROFILE": "small", "PYTHONPATH": str(ROOT)})
    assert all(o.get("output_type") != "error" for c in done.cells if c.cell_type == "code" for o in c.outputs)
    assert sum(bool(c.outputs) for c in done.cells if c.cell_type == "code") >= 3
    assert done.cells[-1].outputs[0]["text"].strip() == "ipywidgets 7.7.1"
