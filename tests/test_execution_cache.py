"""The execution cache the book build and the chapter tests share (tests/conftest.py): a notebook executes
once, later readers get its outputs, and the cache is emptied when the kit or the environment changes."""
import importlib.util
from pathlib import Path

import nbformat

# tests/conftest.py by path: under a whole-suite run the bare name `conftest` can be tests/grading's
_spec = importlib.util.spec_from_file_location("_root_conftest", Path(__file__).with_name("conftest.py"))
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def _notebook(path, marker):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'a').write('x')\n21 * 2")]
    nbformat.write(nb, str(path))
    return path


def test_a_notebook_executes_once_and_is_then_read_from_the_cache(tmp_path):
    marker = tmp_path / "runs.txt"
    path = _notebook(tmp_path / "nb.ipynb", marker)
    cache = tmp_path / "cache"
    first = conftest.executed_via_cache(path, cache, timeout=60)
    second = conftest.executed_via_cache(path, cache, timeout=60)
    assert marker.read_text() == "x"                                  # executed exactly once
    for nb in (first, second):
        assert nb.cells[0].outputs[-1]["data"]["text/plain"] == "42"


def test_the_cache_is_emptied_when_what_outputs_depend_on_changes(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "stale").write_text("from an older kit")
    conftest.ensure_fresh_cache(cache)                                 # no stamp: emptied, stamped
    assert sorted(p.name for p in cache.iterdir()) == ["mlsec_fingerprint"]
    (cache / "record").write_text("kept")
    monkeypatch.setattr(conftest, "_CHECKED", [])
    conftest.ensure_fresh_cache(cache)                                 # same kit: kept
    assert (cache / "record").is_file()
    monkeypatch.setattr(conftest, "_CHECKED", [])
    monkeypatch.setenv("MLSEC_PROFILE", "full")                        # another profile: emptied
    conftest.ensure_fresh_cache(cache)
    assert not (cache / "record").exists()
