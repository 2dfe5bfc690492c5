"""Chapter 3 (white-box evasion) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence
they appear in. That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import math

import pytest
from chapter_checks import assert_figures_numbered_captioned_and_referenced, slider_cell

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
    assert v["ch03_pgd_below_fgsm"] == 1                           # "PGD at or below FGSM at every budget"
    # "a model right on almost every clean input is wrong on almost every adversarial one"
    assert v["ch03_best_acc"] == min(v["ch03_pgd_acc"], v["ch03_pgd_rs_acc"]) <= 3


def test_the_step_size_crosses_the_ball_one_and_a_quarter_times(values):
    # alpha = c eps / T: T steps walk c eps per coordinate over a ball 2 eps wide
    assert values["ch03_ball_crossings"] == pytest.approx(values["ch03_step_factor"] / 2)
    assert values["ch03_ball_crossings"] > 1                       # "from one face to the opposite one"
    steps, factor = values["ch03_pgd_steps"], values["ch03_step_factor"]
    assert values["ch03_spare_steps"] == steps - math.ceil(2 * steps / factor - 1e-9) >= 1   # "... to spare"


def test_sizes_in_the_prose_come_from_the_data(values):
    v = values
    assert v["ch03_height"] * v["ch03_width"] in (64, 784, 1024)
    assert v["ch03_n_train"] > v["ch03_n_eval"] > 0
    assert v["ch03_eps_grey_steps"] == pytest.approx(v["ch03_eps"] * v["ch03_grey_steps"])


def test_linear_explanation_and_targeted_attacks(values):
    # E||w||_1 = n sqrt(2/pi) and E|sum of random signs times w| = sqrt(2 n / pi): the ratio is sqrt(n) = 28
    assert 20 < values["ch03_linear_ratio_784"] < 40
    assert values["ch03_targeted_hits"] > values["ch03_untargeted_hits"] + 30


def test_minimum_norm_attacks_find_small_perturbations(values):
    v = values
    assert v["ch03_cw_success"] > 95 and v["ch03_df_success"] > 95
    assert v["ch03_cw_median_l2"] < v["ch03_eps_l2"] and v["ch03_df_median_l2"] < v["ch03_eps_l2"]
    # "about as small as DeepFool's: its median is x% smaller, but input by input C&W finds the smaller one on
    # y% of the inputs both attacks fool" (the glued numbers are the medians' ratio, and a share, not 100%)
    assert v["ch03_cw_smaller_pct"] == pytest.approx(100 * (1 - v["ch03_cw_median_l2"] / v["ch03_df_median_l2"]))
    assert 0 < v["ch03_cw_smaller_pct"] < 25                                    # "about as small", smaller
    assert 0 < v["ch03_cw_smaller_share"] < 100                                 # not on every input
    # "at a price": the passes C&W spends are its steps times the values of c, and DeepFool's are far fewer
    assert v["ch03_cw_passes"] >= v["ch03_cw_steps"] * v["ch03_cw_search_steps"]
    assert v["ch03_df_passes"] * 10 < v["ch03_cw_passes"]


def test_minimum_norm_curves_sit_close_to_pgd(values):
    # "the minimum-norm curves stay within a few points of PGD's at every budget"
    assert values["ch03_cw_pgd_gap"] <= 10 and values["ch03_df_pgd_gap"] <= 10


def test_transfer_and_art_agreement(values):
    v = values
    assert v["ch03_transfer_mean"] < v["ch03_transfer_clean_min"] - 30   # attacks transfer
    assert v["ch03_transfer_diag_max"] < v["ch03_transfer_mean"]         # weaker than white-box
    assert v["ch03_art_fgsm_diff"] <= 1e-6
    assert abs(v["ch03_art_pgd_acc"] - v["ch03_pgd_acc"]) <= 1
    assert v["ch03_art_pgd_agree"] >= 99 and v["ch03_art_pgd_l2_agree"] >= 99   # "example by example"


def test_figures_are_numbered_captioned_and_referenced(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch03-", at_least=5)


def test_the_slider_works_without_a_kernel_and_a_static_figure_follows(executed):
    cells = [c for c in executed.cells if c.cell_type == "code"]
    slider = slider_cell(executed)
    static = cells[cells.index(slider) + 1]
    assert any("image/png" in o.get("data", {}) for o in static.outputs)
