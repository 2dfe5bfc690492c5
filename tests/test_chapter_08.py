"""Chapter 8 (membership and attribute inference) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence they
appear in. That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import pytest
from chapter_checks import (assert_every_glued_name_in_the_prose_exists,
                            assert_figures_numbered_captioned_and_referenced, prose, slider_cell)

pytestmark = pytest.mark.notebooks

STEM = "08_membership_inference"
SHADOW_ATTACKS = ("calibrated_loss", "shokri", "lira_online", "lira_online_fixed_variance", "lira_offline",
                  "lira_offline_fixed_variance")
ALL_ATTACKS = ("loss_threshold", *SHADOW_ATTACKS, "label_only", "gap_attack")
LIRA_TABLE = ("lira_online", "lira_online_fixed_variance", "lira_offline", "lira_offline_fixed_variance",
              "loss_threshold")


@pytest.fixture(scope="module")
def executed(executed_chapter):
    return executed_chapter(STEM)


@pytest.fixture(scope="module")
def v(chapter_values):
    return chapter_values(STEM)


def test_every_glued_name_in_the_prose_exists(executed):
    assert_every_glued_name_in_the_prose_exists(executed)


def test_two_targets_differ_in_their_generalisation_gap(v):
    assert v["ch08_overfit_train_acc"] == 100                          # long training fits every member
    assert v["ch08_overfit_gap"] > 2 * v["ch08_regularised_gap"] > 0
    assert v["ch08_overfit_loss_gap"] > 2 * v["ch08_regularised_loss_gap"] > 0   # "more sharply"
    assert v["ch08_regularised_test_acc"] < v["ch08_overfit_test_acc"]  # "stopping early cost accuracy here"
    assert v["ch08_overfit_gap"] == pytest.approx(v["ch08_overfit_train_acc"] - v["ch08_overfit_test_acc"])
    assert v["ch08_reg_epochs"] < v["ch08_overfit_epochs"] and v["ch08_reg_wd"] > 0


def test_the_evaluation_resolves_only_the_fprs_it_reports(v):
    assert v["ch08_n_members"] + v["ch08_n_non"] == v["ch08_pool"] and v["ch08_n_members"] == v["ch08_n_non"]
    assert v["ch08_num_models"] == v["ch08_num_shadows"] + 1 and v["ch08_per_side"] == v["ch08_num_shadows"] / 2
    # the small profile: 0.1% would need 1000 non-members, so the ROC is read at 1%, at most 5 false positives
    assert v["ch08_fpr_lowest"] == 0.1 and v["ch08_n_non_needed"] == 1000 > v["ch08_n_non"]
    assert v["ch08_fpr"] == 1 and v["ch08_fp_allowed"] == int(v["ch08_fpr"] / 100 * v["ch08_n_non"]) >= 1


def test_the_transferred_loss_threshold_is_weak_and_misses_its_fpr(v):
    for name in ("overfit", "regularised"):
        assert 50 < v[f"ch08_{name}_loss_bacc"] < 60                    # above chance, barely
    assert v["ch08_overfit_loss_cut_fpr"] > v["ch08_fpr"]               # "does not keep its false-positive rate"
    assert v["ch08_overfit_loss_threshold_tpr"] <= v["ch08_fpr"]        # "no better than a coin" at low FPR


def test_lira_finds_the_records_that_training_moves(v):
    assert v["ch08_in_out_gap_max"] > 10 * v["ch08_in_out_gap_median"] > 0
    assert v["ch08_in_out_gap_median"] < 1 and v["ch08_in_out_gap_min"] < 0.05
    assert 0 < v["ch08_in_out_gap_top"] < 20                            # "only ... move by more than 2"


def test_every_attack_row_is_consistent(v):
    for name in ("overfit", "regularised"):
        for attack in ALL_ATTACKS:
            tag = f"ch08_{name}_{attack}"
            assert v[f"{tag}_lo"] <= v[f"{tag}_tpr"] <= v[f"{tag}_hi"], tag
            assert v[f"{tag}_ratio"] == pytest.approx(v[f"{tag}_tpr"] / v["ch08_fpr"]), tag
            assert 0 <= v[f"{tag}_auc"] <= 1


def test_calibration_and_lira_beat_the_loss_threshold_on_the_overfit_target(v):
    loss = v["ch08_overfit_loss_threshold_tpr"]
    assert v["ch08_overfit_calibrated_loss_lo"] > loss
    best = max(ALL_ATTACKS, key=lambda a: v[f"ch08_overfit_{a}_tpr"])
    assert best == "lira_online_fixed_variance"                         # "the strongest attack"
    assert v["ch08_overfit_lira_online_fixed_variance_lo"] > v["ch08_overfit_calibrated_loss_tpr"]
    # same AUC, about half the TPR: the AUC does not see the low end of the curve
    assert abs(v["ch08_overfit_lira_online_auc"] - v["ch08_overfit_lira_online_fixed_variance_auc"]) < 0.01
    ratio = v["ch08_overfit_lira_online_tpr"] / v["ch08_overfit_lira_online_fixed_variance_tpr"]
    assert 0.35 <= ratio <= 0.65                                        # "about half the TPR"


def test_regularisation_shrinks_the_leak_but_not_to_zero(v):
    for attack in SHADOW_ATTACKS:                                       # "every attack that uses shadow models"
        assert v[f"ch08_regularised_{attack}_tpr"] < v[f"ch08_overfit_{attack}_tpr"], attack
    # the intervals of the strongest attack do not overlap, and the regularised one stays above chance
    assert v["ch08_regularised_lira_online_fixed_variance_hi"] < v["ch08_overfit_lira_online_fixed_variance_lo"]
    assert v["ch08_regularised_lira_online_fixed_variance_lo"] > v["ch08_fpr"]


def test_label_only_is_within_the_chance_interval(v):
    lo, hi = v["ch08_auc_chance_lo"], v["ch08_auc_chance_hi"]
    assert 0.4 < lo < 0.5 < hi < 0.6 and v["ch08_chance_confidence"] == 99.9 and v["ch08_confidence"] == 95
    for name in ("overfit", "regularised"):
        for attack in ("label_only", "gap_attack"):
            assert lo <= v[f"ch08_{name}_{attack}_auc"] <= hi, (name, attack)
    assert v["ch08_overfit_label_saturated"] < 5                        # "only ... keep their label"
    # a one-bit score: its AUC is one half plus half the generalisation gap, exactly
    for name in ("overfit", "regularised"):
        assert v[f"ch08_{name}_gap_attack_auc"] == pytest.approx(0.5 + v[f"ch08_{name}_gap"] / 200, abs=1e-6)
    # every record: the clean query, the noisy copies, and one more for the gap attack
    assert v["ch08_label_total_queries"] == v["ch08_pool"] * (v["ch08_label_queries"] + 2)


def test_more_shadows_help_lira(v):
    assert v["ch08_count_first"] == 4 and v["ch08_count_last"] == v["ch08_num_shadows"]
    assert v["ch08_lira_tpr_first"] > v["ch08_fpr"]                     # "already reaches"
    assert v["ch08_lira_tpr_last"] > v["ch08_lira_tpr_first"]
    # the last frame is the attack of the results table
    assert v["ch08_lira_tpr_last"] == pytest.approx(v["ch08_overfit_lira_online_fixed_variance_tpr"])


@pytest.mark.parametrize("source", ["ch08_overfit", "ch08_lit"])
def test_our_ordering_and_the_literature_s_agree(v, source):
    tpr = {a: v[f"{source}_{a}_tpr"] for a in LIRA_TABLE}
    assert tpr["lira_online_fixed_variance"] > tpr["lira_online"]
    assert tpr["lira_offline_fixed_variance"] > tpr["lira_offline"]
    assert tpr["lira_online"] > tpr["lira_offline"]
    assert tpr["lira_online_fixed_variance"] > tpr["lira_offline_fixed_variance"]
    assert min(tpr, key=tpr.get) == "loss_threshold"
    aucs = [v[f"{source}_{a}_auc"] for a in LIRA_TABLE]
    assert max(aucs) - min(aucs) < 0.15                                 # "close together in both columns"


def test_only_the_loss_threshold_is_apart_beyond_sampling_error(v):
    lira = [a for a in LIRA_TABLE if a != "loss_threshold"]
    assert all(v["ch08_overfit_loss_threshold_hi"] < v[f"ch08_overfit_{a}_lo"] for a in lira)
    # "the intervals of the four LiRA variants overlap except those of the strongest and the weakest"
    apart = {(a, b) for a in lira for b in lira if v[f"ch08_overfit_{a}_lo"] > v[f"ch08_overfit_{b}_hi"]}
    tpr = {a: v[f"ch08_overfit_{a}_tpr"] for a in lira}
    assert apart == {(max(tpr, key=tpr.get), min(tpr, key=tpr.get))}


def test_the_literature_row_that_ranks_attacks_differently(v):
    assert (v["ch08_lit_models"], v["ch08_lit_shadows"], v["ch08_lit_fpr"]) == (16, 15, 0.1)
    assert v["ch08_lit_lira_offline_auc"] < v["ch08_lit_loss_threshold_auc"]
    assert v["ch08_lit_lira_offline_tpr"] > 10 * v["ch08_lit_loss_threshold_tpr"]


def test_attribute_inference_against_its_baseline(v):
    assert v["ch08_attr_train_acc"] >= 99                               # the target memorises its patients
    assert v["ch08_attr_attack"] > 55                                   # would look like a leak on its own...
    assert v["ch08_attr_attack"] < min(v["ch08_attr_baseline"], v["ch08_attr_baseline_label"])   # ...but loses
    assert v["ch08_attr_unseen"] < v["ch08_attr_attack"] and abs(v["ch08_attr_unseen"] - 50) <= 10
    assert v["ch08_attr_combined"] >= v["ch08_attr_baseline_label"] + 3  # the combined attack shows the leak
    assert v["ch08_attr_n_train"] == 331 and v["ch08_attr_n_aux"] == 111
    assert v["ch08_attr_n_records"] == 442 and v["ch08_attr_n_features"] == 10


def test_the_tables_citations_and_pointers_are_on_the_page(executed):
    text = prose(executed)
    threats = text[text.index("| source | what it sees |"):].split("\n\n")[0]
    for source in ("service provider", "information silos", "users"):
        assert source in threats
    for chapter in ("chapter 9", "chapter 10", "chapter 11", "chapter 12", "chapter 13"):
        assert chapter in threats
    literature = text[text.index("## Our numbers beside the literature"):]
    assert "carlini2022membership" in literature and "ch08_lit_fpr" in literature
    for key in ("yeom2018privacy", "watson2022importance", "shokri2017membership", "choquettechoo2021label",
                "jayaraman2022attribute", "fredrikson2014privacy", "rigaki2020survey", "efron2004least"):
        assert key in text, key
    assert "does *not* beat the baseline" in text
    assert "{doc}`../exercises/08_membership_inference`" in text


def test_figures_and_the_slider(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch08-", at_least=3)
    slider_cell(executed, min_frames=5)
