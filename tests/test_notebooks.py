"""Every chapter notebook: committed clean, opens with the Colab guard, executes, and says what it claims."""
import ast
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from mlsec_kit._release import install_requirement
from mlsec_kit.notebook import glued_values, is_unseeded
from notebook_pool import execute_many
from rotation import notebook_seconds, rotating_sample, sample_for

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))


def _tracked_notebooks():
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True)
    files = out.stdout.split() if out.returncode == 0 else []
    return [ROOT / f for f in files] or sorted(ROOT.glob("**/*.ipynb"))


def test_there_are_chapters():
    assert [p.name[:3] for p in CHAPTERS[:2]] == ["01_", "02_"]


@pytest.mark.parametrize("path", _tracked_notebooks(), ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_structure(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    first = "".join(code[0]["source"])
    # the Colab guard: install mlsec-kit (with the extra the chapter needs) only when something is missing,
    # from the book's own repository at the release tag (mlsec_kit/_release.py), never a bare name
    assert first.startswith("# Colab: install the companion package")
    pip = re.search(r'%pip install -q "mlsec-kit(?:\[([\w,]+)\])? @ (\S+)"\n', first)
    assert "mlsec_kit" in first and pip, first
    extras = pip.group(1).split(",") if pip.group(1) else []
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras) <= set(declared), f"{path.name}: extras {extras} not all in pyproject's {sorted(declared)}"
    assert pip.group(0) == f'%pip install -q "{install_requirement(extras)}"\n'
    assert re.search(r"^\s+%pip", first, re.M), "the install must sit inside the guard (a no-op when installed)"
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in code) == 1
    # the full-profile smoke run shrinks `NAME = mk.by_profile(...)` assignments only: a size set any other
    # way (e.g. inside a tuple assignment) would run at full size in the smoke test
    params = next("".join(c["source"]) for c in code if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse(params)
    simple = {id(node.value) for node in tree.body if isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name)}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "by_profile"]
    assert all(id(c) in simple for c in calls), f"{path.name}: write each mk.by_profile(...) as `NAME = ...`"
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "Learning objectives" in text and "Summary" in text and "{cite" in text


def test_chapter_01_attack_claims(chapter_values):
    v = chapter_values("01_threat_models")
    assert v["ch01_clean_acc"] > 90
    assert v["ch01_adv_acc"] < v["ch01_clean_acc"] - 40      # the gradient direction breaks the model
    assert v["ch01_noise_acc"] > v["ch01_clean_acc"] - 10    # the same budget of random noise does not


def test_chapter_02_claims(chapter_values):
    v = chapter_values("02_ml_with_mlsec_kit")
    assert abs(v["ch02_logreg_acc"] - v["ch02_sklearn_acc"]) < 5 and v["ch02_agreement"] > 90
    assert v["ch02_cnn_acc"] > 90
    assert v["ch02_overfit_train_acc"] == 100 and v["ch02_gap"] > 5
    assert v["ch02_mia_acc"] > 55                             # overfitting leaks membership
    assert v["ch02_gap_smallest"] > v["ch02_gap_largest"]     # more data, smaller gap


def test_only_wall_clock_and_ckks_values_are_exempt_from_determinism():
    assert all(map(is_unseeded, ["ch05_fit_seconds", "ch12_latency_ms", "ch11_ghost_time_ratio", "ch12_err_ckks"]))
    assert not any(map(is_unseeded, ["ch05_seconds_budget", "ch12_ckks_slots", "ch10_eps", "ch08_ms_auc"]))


DETERMINISM = sample_for(CHAPTERS, "MLSEC_DETERMINISM", seconds=notebook_seconds())


def test_the_rotating_sample_covers_every_chapter():
    names = [Path(f"{i:02d}_x.ipynb") for i in range(1, 15)]
    def pick(head, setting="3", changed=()):
        return rotating_sample(names, setting=setting, head=head, changed=set(changed), var="MLSEC_DETERMINISM")
    assert pick("", "all") == names and len(pick("ab12", "3")) == 3 and pick("ab12", "0") == []
    assert pick("ab12") == pick("ab12") and pick("ab12") != pick("ab13")  # per commit, and it moves
    # consecutive starting places cover every chapter; a changed chapter is always checked
    assert set().union(*(pick(f"{s:012x}") for s in range(len(names)))) == set(names)
    assert Path("07_x.ipynb") in pick(f"{0:012x}", "1", changed={"chapters/07_x.ipynb"})
    for bad in ("-1", "some"):
        with pytest.raises(ValueError, match="MLSEC_DETERMINISM"):
            pick("ab12", bad)


def test_the_window_is_measured_in_time():
    """With chapter times the window holds at most k mean chapters' worth (at least one chapter): a heavy chapter
    alone, light ones by two or three; every chapter is still checked from some starting place, a changed one
    always."""
    names = [f"{i:02d}_x" for i in range(1, 9)]
    seconds = {"01_x": 7, "02_x": 10, "03_x": 15, "04_x": 14, "05_x": 50, "06_x": 18, "07_x": 16, "08_x": 33}
    def pick(start, setting="2", changed=()):
        return rotating_sample(names, setting=setting, head=f"{start:012x}", changed=set(changed),
                               var="MLSEC_DETERMINISM", seconds=seconds)
    # the mean is 20.375 s: a window holds at most 40.75 s of chapters, and always one
    assert pick(0) == ["01_x", "02_x", "03_x"]          # 7 + 10 + 15 = 32; + 14 would be 46
    assert pick(4) == ["05_x"]                          # 50 s: alone
    assert pick(7) == ["01_x", "08_x"]                  # 33 + 7, wrapping round
    assert pick(5) == ["06_x", "07_x"]                  # 18 + 16; + 33 would be 67
    assert pick(3, "4") == ["04_x", "05_x"]             # 14 + 50 = 64; + 18 > 81.5
    assert pick(4, "0") == [] and pick(4, "0", changed={"07_x"}) == ["07_x"]
    assert pick(4, "all") == names
    assert set().union(*(pick(s) for s in range(len(names)))) == set(names)
    # the times come from the benchmark's table; every chapter of the book has one
    table = notebook_seconds()
    assert set(table) == {p.stem for p in CHAPTERS} and all(t > 0 for t in table.values())


def test_changed_exercise_sets_are_found_from_their_notebooks_and_checks(monkeypatch):
    import rotation

    ids = ["01_threat_models", "02_ml_basics", "10_differential_privacy", "15_supply_chain"]
    monkeypatch.setattr(rotation, "_changed_files", lambda: [
        "exercises/source/02_ml_basics.ipynb", "mlsec_kit/grading/sets/ch15_pickles.py", "chapters/10_x.ipynb",
        "exercises/99_unknown.ipynb", "mlsec_kit/grading/core.py"])
    assert rotation.changed_exercises(ids) == {"02_ml_basics", "15_supply_chain"}
    assert rotation.grading_machinery_changed()              # core.py
    monkeypatch.setattr(rotation, "_changed_files", lambda: ["mlsec_kit/grading/sets/ch10.py"])
    assert not rotation.grading_machinery_changed()         # the sets' own checks are not the grader
    monkeypatch.setattr(rotation, "_changed_files", lambda: ["exercises/01_threat_models.ipynb"])
    assert rotation.changed_exercises(ids) == {"01_threat_models"}
    monkeypatch.setattr(rotation, "_changed_files", lambda: ["mlsec_kit/grading/wire.py"])
    assert rotation.grading_machinery_changed() and rotation.changed_exercises(ids) == set()


@pytest.fixture(scope="module")
def second_runs(request):
    """Each chapter this session checks for determinism, executed afresh (not through the cache), all of
    them at once in the pool (one kernel per core): ``{path: glued values}``."""
    wanted = [item.callspec.params["path"] for item in request.session.items
              if getattr(item, "originalname", "") == "test_two_runs_give_identical_numbers"]
    runs = execute_many([(p, p.parent) for p in wanted], timeout=300, env={"MLSEC_PROFILE": "small"})
    return {p: (glued_values(nb) if error is None else error) for p, (nb, error, _) in runs.items()}


@pytest.mark.parametrize("path", DETERMINISM, ids=lambda p: p.name)
def test_two_runs_give_identical_numbers(executed_chapter, second_runs, path):
    first = glued_values(executed_chapter(path.stem))
    second = second_runs[path]
    assert isinstance(second, dict), f"{path.name}: the second run failed:\n{second}"
    assert first and first.keys() == second.keys()
    # wall-clock measurements and CKKS errors (is_unseeded) differ between runs by nature: compared by
    # presence only
    assert {k: v for k, v in first.items() if not is_unseeded(k)} == \
        {k: v for k, v in second.items() if not is_unseeded(k)}
