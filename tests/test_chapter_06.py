"""Chapter 6 (poisoning) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence
they appear in. That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import re

import pytest
from chapter_checks import (assert_every_glued_name_in_the_prose_exists,
                            assert_figures_numbered_captioned_and_referenced, prose, slider_cell)

pytestmark = pytest.mark.notebooks

STEM = "06_poisoning"
ATTACKS = ("random", "targeted", "white", "black")


def test_every_glued_name_in_the_prose_exists(executed):
    assert_every_glued_name_in_the_prose_exists(executed)


def test_the_chapter_opens_and_closes_as_the_book_does(executed):
    first = executed.cells[0].source
    assert first.startswith("(ch-poisoning)=\n# 6. Poisoning")
    assert "Learning objectives" in first and "Threat model" in first
    text = prose(executed)
    assert ":label: def-bilevel-poisoning" in text and "{prf:ref}`def-bilevel-poisoning`" in text
    assert "exercises/06_poisoning.ipynb" in text and "chapter 7" in text
    for term in ("poisoning", "backdoor", "clean-label", "white-box", "black-box", "data sanitisation"):
        assert re.search(r"\{term\}`[^`]*" + re.escape(term), text), term
    assert "mlsec-book@v0.1.0" in next(c.source for c in executed.cells if c.cell_type == "code")


def test_the_clean_learner_and_the_gradient_through_training(v):
    assert v["ch06_clean_acc"] > 90
    assert v["ch06_fd_rel_error"] < 1e-2           # the implicit gradient is exact (a relative difference)
    assert v["ch06_learner_gap"] < 1e-4            # the learner agrees with scikit-learn's liblinear
    assert v["ch06_k_poisons"] == round(v["ch06_rate_pct"] / 100 * v["ch06_n_victim"])
    assert v["ch06_n_seeds"] >= 3


def test_every_attack_degrades_and_the_ordering_the_prose_states(v):
    for a in ATTACKS:
        assert v[f"ch06_acc_{a}"] < v["ch06_clean_acc"], a
    assert v["ch06_random_cost"] == pytest.approx(v["ch06_clean_acc"] - v["ch06_acc_random"])
    # gradient poisoning below the random flip with the same starting labels, by the glued margins
    assert v["ch06_white_below_random"] == pytest.approx(v["ch06_acc_random"] - v["ch06_acc_white"])
    assert v["ch06_black_below_random"] == pytest.approx(v["ch06_acc_random"] - v["ch06_acc_black"])
    assert v["ch06_white_below_random"] > 3 and v["ch06_black_below_random"] > 3
    # "lower on N of the M seeds": the paired comparison the prose states holds on every seed
    assert v["ch06_white_below_random_seeds"] == v["ch06_n_seeds"]
    # "the targeted flip ... is the strongest of the four here"
    assert v["ch06_acc_targeted"] < min(v[f"ch06_acc_{a}"] for a in ("random", "white", "black"))
    # over all rates: targeted lowest, the gradient attacks close, the random flip highest
    assert v["ch06_auc_targeted"] < min(v["ch06_auc_white"], v["ch06_auc_black"])
    assert abs(v["ch06_auc_white"] - v["ch06_auc_black"]) < 2
    assert v["ch06_auc_random"] > max(v["ch06_auc_white"], v["ch06_auc_black"]) + 3


def test_the_knowledge_gap_is_within_the_seed_spread(v):
    assert v["ch06_gap_white_black"] == pytest.approx(abs(v["ch06_acc_white"] - v["ch06_acc_black"]))
    assert v["ch06_gap_white_black"] < min(v["ch06_spread_white"], v["ch06_spread_black"])
    assert v["ch06_spread_white"] > 0 and v["ch06_spread_black"] > 0     # one seed alone would mislead
    # "we cannot tell the two apart": neither is lower on every seed, and the curves' means are close
    assert 0 < v["ch06_white_below_black_seeds"] < v["ch06_n_seeds"]
    assert v["ch06_auc_gap_white_black"] == pytest.approx(abs(v["ch06_auc_white"] - v["ch06_auc_black"]))
    assert v["ch06_auc_gap_white_black"] < min(v["ch06_spread_white"], v["ch06_spread_black"])


def test_feature_collision_flips_targets_but_its_poisons_are_not_clean_label(v):
    assert v["ch06_beta"] == pytest.approx(16.0)                     # 0.25 * (512 / 64) ** 2 on the digits
    assert v["ch06_frogs_flipped"] >= 3 and v["ch06_n_targets"] >= 10
    assert v["ch06_frogs_success"] == pytest.approx(100 * v["ch06_frogs_flipped"] / v["ch06_n_targets"])
    assert abs(v["ch06_victim_poisoned_acc"] - v["ch06_victim_clean_acc"]) <= 1    # "hardly moves"
    assert v["ch06_victim_clean_acc"] > 90
    # the labeller calls (almost) none of them the base class and most of them the target's class
    assert v["ch06_poisons_base_label"] <= 1
    assert v["ch06_poisons_target_label"] >= 0.8 * v["ch06_n_targets"]
    # ... and so does the pixel-space labeller, which shares no features with the victim
    assert v["ch06_pixel_labeller_acc"] > 90
    assert v["ch06_pixel_base_label"] <= 1
    assert v["ch06_pixel_target_label"] >= 0.8 * v["ch06_n_targets"]
    # the baseline: the unmodified bases flip (almost) nothing, far fewer than the poisons
    assert v["ch06_base_only_flipped"] <= 1 < v["ch06_frogs_flipped"]
    # the interval the prose gives contains the measured rate and is as wide as ten targets make it
    assert v["ch06_frogs_ci_low"] < v["ch06_frogs_success"] < v["ch06_frogs_ci_high"]
    assert v["ch06_frogs_ci_high"] - v["ch06_frogs_ci_low"] > 30


def test_a_more_regularised_victim_is_flipped_less(v):
    assert v["ch06_strong_weight_decay"] > v["ch06_weight_decay"]
    assert abs(v["ch06_strong_clean_acc"] - v["ch06_victim_clean_acc"]) <= 2      # "about as accurate"
    assert v["ch06_strong_baseline"] == 0
    assert v["ch06_strong_success"] < v["ch06_frogs_success"]                       # "only X%"
    assert v["ch06_strong_success"] == pytest.approx(100 * v["ch06_strong_flipped"] / v["ch06_n_targets"])
    # "a hint, not a measurement: the two 95% intervals overlap"
    assert v["ch06_strong_ci_high"] > v["ch06_frogs_ci_low"]


def test_the_clean_label_trade_off(v):
    assert v["ch06_top_distance"] < v["ch06_paper_distance"] < v["ch06_base_distance"]
    assert v["ch06_top_accepted"] >= 70                              # the labeller accepts most of them
    assert v["ch06_top_collision"] > v["ch06_paper_collision"] + 30  # but the features no longer collide
    assert v["ch06_max_checked"] <= 10                               # 0-1 targets of 10 at the best beta
    assert v["ch06_max_checked"] < v["ch06_frogs_success"]
    # the pixel-space labeller accepts most poisons at the largest beta too
    assert v["ch06_top_pixel_accepted"] >= 70
    # "the label check is not what stops the attack": above the paper's beta no poison flips its target
    assert v["ch06_next_factor"] > 1
    assert v["ch06_max_unchecked_above_paper"] <= 10 < v["ch06_frogs_success"]


def test_sanitisation_costs_and_what_each_score_catches(v):
    assert 0 <= v["ch06_max_clean_cost"] <= 2
    assert v["ch06_max_clean_cost"] == pytest.approx(max(v["ch06_clean_cost_loss"], v["ch06_clean_cost_outlier"]))
    assert v["ch06_sanitize_pct"] > v["ch06_rate_pct"]              # "a little more than the poison rate"
    # chance recall is the share removed: "little better than chance" for the loss score on targeted flips,
    # well above it for the scores the prose says work
    chance = v["ch06_sanitize_pct"]
    assert chance <= v["ch06_loss_recall_targeted"] < chance + 15
    assert chance <= v["ch06_loss_recall_white"] < chance + 15          # "again not far above chance"
    assert v["ch06_loss_recall_random"] > 2 * chance and v["ch06_outlier_recall_targeted"] > 2 * chance
    # the loss score: the random flips yes (and repairs), the targeted flips no (and makes it worse)
    assert v["ch06_loss_recall_random"] > 70 and v["ch06_loss_acc_random"] > v["ch06_acc_random"]
    assert v["ch06_loss_recall_targeted"] < v["ch06_loss_recall_random"] - 20
    assert v["ch06_loss_acc_targeted"] < v["ch06_acc_targeted"]
    # the distance score: the targeted flips, and more gradient poisons than the loss score
    assert v["ch06_outlier_recall_targeted"] > v["ch06_loss_recall_targeted"] + 20
    assert v["ch06_outlier_acc_targeted"] > v["ch06_acc_targeted"] + 10
    assert v["ch06_outlier_recall_white"] > v["ch06_loss_recall_white"]
    assert v["ch06_outlier_acc_white"] > v["ch06_acc_white"]


def test_figures_and_the_slider(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch06-", at_least=3)
    cell = slider_cell(executed, min_frames=7)
    assert "poison rate" in cell.source


def test_the_sanitisation_table_is_shown(executed):
    out = [o["data"]["text/markdown"] for c in executed.cells if c.cell_type == "code" for o in c.outputs
           if "text/markdown" in o.get("data", {})]
    table = next(t for t in out if "precision / recall" in t)
    assert table.count("\n|") >= 6          # header rule, the clean row and the four attacks
