"""Chapter 3 (white-box evasion) executes and says what it claims.

That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import pytest

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def executed(executed_chapter):
    return executed_chapter("03_evasion_whitebox")


@pytest.fixture(scope="module")
def values(chapter_values):
    return chapter_values("03_evasion_whitebox")


def test_the_attacks_break_a_naturally_trained_model(values):
    v = values
    assert v["ch03_clean_acc"] > 90
    assert v["ch03_pgd_acc"] <= 3                                  # the headline: PGD takes it to about 0%
    assert v["ch03_pgd_acc"] <= v["ch03_fgsm_acc"] < v["ch03_clean_acc"] - 50
    assert v["ch03_noise_acc"] > v["ch03_clean_acc"] - 10          # noise of the same size does not
    assert v["ch03_pgd_l2_acc"] < 10 and v["ch03_noise_l2_acc"] > v["ch03_clean_acc"] - 10
    assert v["ch03_pgd_acc_half"] <= v["ch03_fgsm_acc_half"]


def test_linear_explanation_and_targeted_attacks(values):
    assert 20 < values["ch03_linear_ratio_784"] < 40               # about sqrt(2 n / pi) = 22 for Gaussian w
    assert values["ch03_targeted_hits"] > values["ch03_untargeted_hits"] + 30


def test_minimum_norm_attacks_find_small_perturbations(values):
    v = values
    assert v["ch03_cw_success"] > 95 and v["ch03_df_success"] > 95
    assert v["ch03_cw_median_l2"] < v["ch03_eps_l2"] and v["ch03_df_median_l2"] < v["ch03_eps_l2"]
    assert v["ch03_cw_median_l2"] <= v["ch03_df_median_l2"] * 1.05


def test_transfer_and_art_agreement(values):
    v = values
    assert v["ch03_transfer_mean"] < v["ch03_transfer_clean_min"] - 30   # attacks transfer
    assert v["ch03_art_fgsm_diff"] <= 1e-6
    assert abs(v["ch03_art_pgd_acc"] - v["ch03_pgd_acc"]) <= 3


def test_the_slider_leaves_a_static_figure(executed):
    cells = [c for c in executed.cells if c.cell_type == "code"]
    slider = next(c for c in cells if "eps_slider(" in c.source)
    static = cells[cells.index(slider) + 1]
    assert "remove-output" in slider.metadata.get("tags", [])
    assert any("image/png" in o.get("data", {}) for o in static.outputs)
