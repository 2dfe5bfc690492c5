"""Chapters 1 and 2 say what they compute: the chapter map follows the table of contents, dataset sizes come
from the data, the generalisation gap is measured as defined and stays under its bound, and the membership
test is reported at low false-positive rates beside its chance levels.

The claims of the first attack and of chapter 2's basic results are in tests/test_notebooks.py; two runs
agreeing is checked there for every chapter."""
import re

import pytest
import yaml
from sklearn import datasets as skds

from mlsec_kit.notebook import glued_values

pytestmark = pytest.mark.notebooks
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _written_chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"][9:] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("chapters/")]


def _glued_markdown(nb, name: str) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("metadata", {}).get("scrapbook", {}).get("name") == name:
                return out["data"]["application/papermill.record/text/markdown"]
    raise AssertionError(f"nothing glued under {name}")


def test_chapter_1_map_links_written_chapters_and_plans_the_rest(executed_chapter, chapter_values):
    nb = executed_chapter("01_threat_models")
    table = _glued_markdown(nb, "ch01_chapter_table")
    written = _written_chapters()
    for stem in written:
        assert f"{{doc}}`{stem}`" in table
    rows = [line for line in table.splitlines()[2:]]
    v = chapter_values("01_threat_models")
    assert v["ch01_chapters_written"] == len(written)
    assert sum("(planned)" in row for row in rows) == v["ch01_chapters_planned"] == len(rows) - len(written)


def test_chapter_1_sizes_come_from_the_data(chapter_values):
    v = chapter_values("01_threat_models")
    images = skds.load_digits().images
    assert v["ch01_n_train"] + v["ch01_n_test"] == len(images) and v["ch01_side"] == images.shape[-1]


def test_chapter_2_sizes_come_from_the_data(chapter_values):
    v = chapter_values("02_ml_with_mlsec_kit")
    cancer = skds.load_breast_cancer()
    assert v["ch02_digits_n"] == len(skds.load_digits().images)
    assert v["ch02_digits_train"] + v["ch02_digits_test"] == v["ch02_digits_n"]
    assert (v["ch02_cancer_n"], v["ch02_cancer_features"]) == cancer.data.shape
    assert v["ch02_n_largest"] == v["ch02_digits_train"]  # the gap curve ends at the whole training split


def test_chapter_2_gap_is_as_defined_and_under_its_bound(chapter_values):
    v = chapter_values("02_ml_with_mlsec_kit")
    assert abs(v["ch02_gap"] - (v["ch02_overfit_train_acc"] - v["ch02_overfit_test_acc"])) < 1e-6
    assert 0 < v["ch02_gap"] <= v["ch02_gap_bound"] and abs(v["ch02_gap_bound"] + v["ch02_chance"] - 100) < 1e-9
    assert 0 < v["ch02_chance"] < 50  # ten digits: the commonest is a small share


def test_chapter_2_train_accuracy_in_the_table_is_measured_in_eval_mode(executed_chapter):
    nb = executed_chapter("02_ml_with_mlsec_kit")
    table = next(o["data"]["text/markdown"] for c in nb.cells for o in c.get("outputs", [])
                 if "text/markdown" in o.get("data", {}) and "train accuracy" in o["data"]["text/markdown"])
    rows = re.findall(r"^\| (.+?) \| [\d,]+ \| ([\d.]+)% \| ([\d.]+)% \|$", table, re.M)
    assert len(rows) == 3
    source = next(c.source for c in nb.cells if "train accuracy" in c.source and c.cell_type == "code")
    assert "accuracy(model, digits_dev.X_train, digits_dev.y_train)" in source and "train_acc[-1]" not in source


def test_chapter_2_membership_test_is_read_at_low_fpr_beside_chance(chapter_values):
    v = chapter_values("02_ml_with_mlsec_kit")
    assert v["ch02_mia_chance"] == 50 and v["ch02_mia_acc"] > v["ch02_mia_chance"]
    assert v["ch02_fpr_low"] < v["ch02_fpr_high"] <= 10
    for rate in ("low", "high"):
        assert 0 <= v[f"ch02_tpr_{rate}"] <= 100
        assert abs(v[f"ch02_tpr_{rate}_ratio"] - v[f"ch02_tpr_{rate}"] / v[f"ch02_fpr_{rate}"]) < 1e-9
    assert v["ch02_tpr_low"] <= v["ch02_tpr_high"]  # allowing more false positives never flags fewer members
    assert 0 <= v["ch02_members_above"] <= 100


def test_glued_values_are_the_ones_the_prose_uses(executed_chapter):
    """Every {glue:text} role in chapters 1 and 2 names a value the notebook glued."""
    for stem in ("01_threat_models", "02_ml_with_mlsec_kit"):
        nb = executed_chapter(stem)
        used = set(re.findall(r"\{glue:(?:text|md)\}`(\w+)", "\n".join(c.source for c in nb.cells)))
        used |= set(re.findall(r"```\{glue:md\} (\w+)", "\n".join(c.source for c in nb.cells)))
        assert used and used <= set(glued_values(nb)), used - set(glued_values(nb))
