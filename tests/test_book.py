"""The whole book builds with warnings as errors (once per session: the ``book_html`` fixture in
conftest.py), and its pages are complete."""
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


@pytest.fixture(scope="module")
def html(book_html):
    return book_html


def test_every_toc_entry_has_a_page(html):
    for f in _toc_files():
        assert (html / f"{f}.html").is_file(), f"missing page for {f}"


def test_notebook_pages_are_executed_and_launchable(html):
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    slug = repo.removeprefix("https://github.com/")
    notebooks = [f for f in _toc_files() if (ROOT / f"{f}.ipynb").is_file()]
    assert notebooks
    for f in notebooks:
        page = (html / f"{f}.html").read_text()
        # the Colab button opens the plain-Jupyter edition (mlsec_kit.editions), not the MyST source
        assert f"https://colab.research.google.com/github/{slug}/blob/main/colab/{f}.ipynb" in page, f
        assert f"https://colab.research.google.com/github/{slug}/blob/main/{f}.ipynb" not in page, f
        assert "cell_output" in page, f"{f} shows no executed output"
        assert "{glue" not in page and "glue:text" not in page, f"{f} has an unresolved glue reference"


def test_chapter_pages_show_figures_and_citations(html):
    for f in [f for f in _toc_files() if f.startswith("chapters/")]:
        page = (html / f"{f}.html").read_text()
        assert re.search(r'<img [^>]*src="[^"]*\.png"', page), f"{f} has no figure"
        assert "references.html#id" in page, f"{f} cites nothing"
