"""Book-wide conventions that a build with warnings as errors does not catch: every bibliography entry is
cited, the front pages link only chapters that exist (the others are marked planned), and the papermill
example of the how-to page sets names the notebook reads and changes what it computes."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from mlsec_kit.notebook import glued_values

ROOT = Path(__file__).resolve().parents[1]
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
CHAPTER_FILE = re.compile(r"\b(chapters|exercises)/(\d\d_\w+)")
FRONT_PAGES = ("intro.md", "teaching_guide.md", "further_reading.md")


def _toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return {toc["root"]} | {c["file"] for part in toc.get("parts", []) for c in part["chapters"]}


def _cited_keys() -> set[str]:
    """Keys cited with any {cite...} role in the chapters, the book's pages and the exercise sources."""
    paths = [*ROOT.glob("chapters/**/*.ipynb"), *ROOT.glob("exercises/source/*.ipynb"), *ROOT.glob("book/*.md")]
    keys = set()
    for path in paths:
        if path.suffix == ".ipynb":
            text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        else:
            text = path.read_text(encoding="utf-8")
        for match in CITE.finditer(text):
            keys |= {k.strip() for k in match.group(1).split(",")}
    return keys


def _bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book" / "references.bib").read_text(encoding="utf-8"), re.M)


def test_every_bibliography_entry_is_cited_somewhere():
    uncited = [key for key in _bib_keys() if key not in _cited_keys()]
    assert not uncited, f"cite these where their topic is taught, or remove them from references.bib: {uncited}"


def test_every_cited_key_is_in_the_bibliography_once():
    keys = _bib_keys()
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    assert _cited_keys() <= set(keys), sorted(_cited_keys() - set(keys))


def _prose_lines(page: str) -> list[tuple[int, str]]:
    """The lines of a book page outside fenced code blocks (a worked example may name files of its own)."""
    lines, fenced = [], False
    for number, line in enumerate((ROOT / "book" / page).read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


@pytest.mark.parametrize("page", FRONT_PAGES)
def test_front_pages_name_only_chapters_that_exist_or_say_planned(page):
    toc = _toc_files()
    for number, line in _prose_lines(page):
        for kind, stem in CHAPTER_FILE.findall(line):
            assert f"{kind}/{stem}" in toc or "planned" in line, (
                f"book/{page}:{number} names {kind}/{stem}, which _toc.yml does not list; add it to the table of "
                "contents or mark it planned")


@pytest.mark.parametrize("page", ("intro.md", "teaching_guide.md"))
def test_front_pages_show_which_chapters_exist(page):
    """The chapter list (intro) and the syllabus (teaching guide) link each chapter that exists and mark
    every other chapter of the plan as planned."""
    written = {int(f[9:11]): f for f in _toc_files() if f.startswith("chapters/")}
    rows = {}
    for _, line in _prose_lines(page):
        match = re.match(r"^\| (\d+) \| ([^|]*)\|", line) or re.match(r"^(\d+)\. (.*)$", line)
        if match:
            rows.setdefault(int(match.group(1)), match.group(2))  # the first list: the chapters
    assert set(range(1, 16)) <= set(rows), f"book/{page} should list chapters 1-15, found {sorted(rows)}"
    for number in range(1, 16):
        if number in written:
            assert written[number] in rows[number] and "planned" not in rows[number], (page, number, rows[number])
        else:
            assert "planned" in rows[number], f"book/{page}: chapter {number} does not exist yet; mark it planned"


def _papermill_example() -> list[str]:
    text = (ROOT / "book" / "how_to_use.md").read_text(encoding="utf-8")
    lines = [line for line in re.findall(r"```bash\n(.*?)```", text, re.S) if line.startswith("papermill ")]
    assert len(lines) == 1, "how_to_use.md should show one papermill command"
    return shlex.split(lines[0].strip())


def _parameters_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    return cells[0].source


def _set_values(argv: list[str]) -> dict[str, str]:
    return {argv[i + 1]: argv[i + 2] for i, arg in enumerate(argv) if arg == "-p"}


def test_papermill_example_sets_names_the_notebook_reads():
    argv = _papermill_example()
    source = _parameters_cell(ROOT / argv[1])
    assigned = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", source, re.M))
    assert _set_values(argv) and set(_set_values(argv)) <= assigned, (set(_set_values(argv)), assigned)
    for name, value in _set_values(argv).items():  # the example changes each value from its default
        default = re.search(rf"^{name}\s*=\s*(.+?)(?:\s*#.*)?$", source, re.M).group(1)
        assert value not in default, f"-p {name} {value} repeats the default {default}"


@pytest.mark.notebooks
def test_papermill_example_runs_and_the_change_takes_effect(tmp_path):
    argv = _papermill_example()
    out = tmp_path / "out.ipynb"
    argv[2] = str(out)
    exe = Path(sys.executable).parent / "papermill"
    env = {**__import__("os").environ, "MLSEC_PROFILE": "small",
           "PYTHONPATH": str(ROOT) + ":" + __import__("os").environ.get("PYTHONPATH", "")}
    run = subprocess.run([str(exe), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    values = glued_values(nb)
    set_values = _set_values(argv)
    assert float(values["ch01_eps"]) == float(set_values["EPS"])  # the glued budget is the one we passed
    for name, value in set_values.items():  # papermill overrode every name right after the parameters cell
        assert re.search(rf"^{name} = {re.escape(value)}$", injected[0].source, re.M), injected[0].source
    assert nb.cells.index(injected[0]) == 1 + next(
        i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
