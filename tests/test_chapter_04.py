"""Chapter 4 (black-box evasion) executes and says what it claims.

That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import pytest

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def executed(executed_chapter):
    return executed_chapter("04_evasion_blackbox")


@pytest.fixture(scope="module")
def values(chapter_values):
    return chapter_values("04_evasion_blackbox")


def test_score_based_attacks_fool_almost_everything_with_few_queries(values):
    v = values
    assert v["ch04_clean_acc"] > 90 and v["ch04_n_attack"] >= 50
    assert v["ch04_simba_success"] >= 90 and v["ch04_square_success"] >= 90
    assert v["ch04_simba_median_q"] < v["ch04_max_queries"] / 5
    assert v["ch04_square_median_q"] < v["ch04_max_queries"] / 5
    assert v["ch04_noise_success"] < 20                                # noise of the same size does not


def test_labels_cost_queries_and_rounding_hurts_score_based_attacks(values):
    v = values
    assert v["ch04_hsj_success"] > 70
    assert v["ch04_label_cost_ratio"] > 2                              # labels only: more queries per success
    assert v["ch04_simba_rounded_success"] < v["ch04_simba_success"] - 30
    assert v["ch04_square_rounded_success"] <= v["ch04_square_success"]


def test_transfer_sits_between_noise_and_white_box(values):
    v = values
    assert v["ch04_noise_success"] + 30 < v["ch04_transfer_success"] <= v["ch04_whitebox_success"]


def test_art_agreement(values):
    v = values
    assert abs(v["ch04_kit_simba"] - v["ch04_art_simba"]) <= 20
    assert abs(v["ch04_kit_square"] - v["ch04_art_square"]) <= 20


def test_the_curve_figure_is_on_the_page(executed):
    cell = next(c for c in executed.cells if c.cell_type == "code" and "budgets = " in c.source)
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)
