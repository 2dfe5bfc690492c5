"""Chapter 8 (membership and attribute inference) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence they
appear in. That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import re

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
def words(executed):
    from mlsec_kit.notebook import glued_values
    return glued_values(executed)


def test_every_glued_name_in_the_prose_exists(executed):
    assert_every_glued_name_in_the_prose_exists(executed)


def test_two_targets_differ_in_their_generalisation_gap(v):
    assert v["ch08_overfit_train_acc"] == 100                          # long training fits every member
    assert v["ch08_overfit_gap"] > 2 * v["ch08_regularised_gap"] > 0
    assert v["ch08_overfit_loss_gap"] > 2 * v["ch08_regularised_loss_gap"] > 0   # "more sharply"
    assert v["ch08_regularised_test_acc"] < v["ch08_overfit_test_acc"]  # "stopping early cost accuracy here"
    assert v["ch08_regularised_train_acc"] < v["ch08_overfit_test_acc"]  # under-trained: the overfit one is more useful
    assert v["ch08_reg_epochs"] < v["ch08_overfit_epochs"] and v["ch08_reg_wd"] > 0


def test_the_evaluation_resolves_only_the_fprs_it_reports(v):
    assert v["ch08_n_members"] + v["ch08_n_non"] == v["ch08_pool"] and v["ch08_n_members"] == v["ch08_n_non"]
    assert v["ch08_num_models"] == v["ch08_num_shadows"] + 1 and v["ch08_per_side"] == v["ch08_num_shadows"] / 2
    # the small profile: 0.1% would need 1000 non-members, so the ROC is read at 1%, at most 5 false positives
    assert v["ch08_fpr_lowest"] == 0.1 and v["ch08_n_non_needed"] == 1000 > v["ch08_n_non"]
    assert v["ch08_fpr"] == 1 and v["ch08_fp_allowed"] == int(v["ch08_fpr"] / 100 * v["ch08_n_non"]) >= 1


def test_the_prose_reads_right_in_the_full_profile_too(executed, words):
    """Every FPR in the prose keeps a decimal (full reads 0.1%, which ':.0f' would print as 0%), and the
    profile's dataset and record words are glued, not typed."""
    text = prose(executed)
    refs = re.findall(r"\{glue:text\}`(ch08_\w*fpr\w*):([^`]*)`", text)
    assert refs
    for name, fmt in refs:
        assert format(0.1, fmt) != "0", (name, fmt)
    assert words["ch08_data_name"] == "8x8 digits" and words["ch08_model_name"] == "an MLP"
    assert words["ch08_attr_records"] == "patients" and words["ch08_attr_data_name"] == "the diabetes data"
    for typed in ("training patients", "MLP on 8x8 digits", "on diabetes the attack", "two well-generalising"):
        assert typed not in text, typed


def test_every_ordering_the_prose_states_holds_in_this_run(v):
    assert v["ch08_unsupported_claims"] == 0


def test_the_transferred_loss_threshold_is_weak_and_misses_its_fpr(v):
    for name in ("overfit", "regularised"):
        assert 50 < v[f"ch08_{name}_loss_bacc"] < 60                    # above chance, barely
    assert v["ch08_overfit_loss_cut_fpr"] > v["ch08_fpr"]               # "does not keep its false-positive rate"
    assert v["ch08_overfit_loss_threshold_tpr"] <= v["ch08_fpr"]        # "no better than a coin" at low FPR


def test_lira_finds_the_records_that_training_moves(v):
    assert v["ch08_in_out_gap_max"] > 10 * v["ch08_in_out_gap_median"] > 0
    assert v["ch08_in_out_gap_median"] < 1 and v["ch08_in_out_gap_min"] < 0.05
    assert 0 < v["ch08_in_out_gap_top"] < 20                            # "only ... move by more than 2"
    # "membership changes the confidence less than the record's difficulty does"
    assert v["ch08_difficulty_sd"] > 3 * v["ch08_in_out_gap_median"]
    assert v["ch08_difficulty_sd"] > v["ch08_out_sd_median"] > v["ch08_in_out_gap_median"]


def test_every_interval_is_a_bootstrap_interval_around_its_tpr(v):
    for name in ("overfit", "regularised"):
        for attack in ALL_ATTACKS:
            tag = f"ch08_{name}_{attack}"
            assert 0 <= v[f"{tag}_lo"] <= v[f"{tag}_hi"] <= 100 and 0 < v[f"{tag}_p"] < 1, tag
    # a bootstrap interval that re-picks the threshold is wider than the members-only Clopper-Pearson one
    # (about [6.1, 11.2] for the strongest attack's 42 of 500 members)
    tag = "ch08_overfit_lira_online_fixed_variance"
    assert v[f"{tag}_hi"] - v[f"{tag}_lo"] > 6
    # the gap attack's one bit: no cut between FPR 0 and its corner, so its TPR at a low FPR is 0
    for name in ("overfit", "regularised"):
        assert v[f"ch08_{name}_gap_attack_tpr"] == 0


def test_calibration_and_lira_beat_the_loss_threshold_on_the_overfit_target(v):
    loss = v["ch08_overfit_loss_threshold_tpr"]
    assert v["ch08_overfit_calibrated_loss_lo"] > loss
    best = max(ALL_ATTACKS, key=lambda a: v[f"ch08_overfit_{a}_tpr"])
    assert best == "lira_online_fixed_variance"                         # "the strongest attack"
    assert v["ch08_overfit_lira_online_fixed_variance_lo"] > v["ch08_overfit_calibrated_loss_tpr"]
    # same AUC, lower TPR; the paired difference leans to the fixed variance without excluding zero
    assert abs(v["ch08_overfit_lira_online_auc"] - v["ch08_overfit_lira_online_fixed_variance_auc"]) < 0.01
    assert v["ch08_overfit_lira_online_tpr"] < v["ch08_overfit_lira_online_fixed_variance_tpr"]
    assert v["ch08_diff_fixed_vs_per_record_lo"] <= 0 < v["ch08_diff_fixed_vs_per_record_hi"]
    assert v["ch08_diff_fixed_vs_per_record_hi"] > -v["ch08_diff_fixed_vs_per_record_lo"]   # "leans towards"


def test_regularisation_shrinks_the_leak_but_not_to_zero(v):
    for attack in SHADOW_ATTACKS:                                       # "every attack that uses shadow models"
        assert v[f"ch08_regularised_{attack}_tpr"] < v[f"ch08_overfit_{attack}_tpr"], attack
    # the paired drop of the strongest attack is away from zero...
    assert v["ch08_diff_overfit_vs_regularised_lo"] > 0
    # ...its TPR interval reaches down to chance, so "not none" rests on the AUC, outside the chance range
    tag = "ch08_regularised_lira_online_fixed_variance"
    assert v[f"{tag}_lo"] <= v["ch08_fpr"]
    assert v[f"{tag}_auc"] > v["ch08_auc_chance_hi"] and v[f"{tag}_p"] < 1e-3
    # "several AUCs hardly moved"
    for attack in ("calibrated_loss", "lira_offline_fixed_variance"):
        assert abs(v[f"ch08_overfit_{attack}_auc"] - v[f"ch08_regularised_{attack}_auc"]) < 0.015, attack


def test_label_only_attacks_are_weak_but_real_once_ties_are_allowed_for(v):
    lo, hi = v["ch08_auc_chance_lo"], v["ch08_auc_chance_hi"]
    assert 0.4 < lo < 0.5 < hi < 0.6 and v["ch08_chance_confidence"] == 99.9 and v["ch08_confidence"] == 95
    # the gap attack: inside the no-ties chance range, outside the range of a score with its ties
    assert v["ch08_gap_chance_hi"] < v["ch08_overfit_gap_attack_auc"] < hi
    assert v["ch08_overfit_gap_fisher_p"] < 1e-4 and v["ch08_overfit_gap_attack_p"] < 1e-3
    assert v["ch08_overfit_members_wrong"] == 0 < v["ch08_overfit_non_wrong"]   # "every misclassified ... non-member"
    # a one-bit score: its AUC is one half plus half the generalisation gap, exactly
    for name in ("overfit", "regularised"):
        assert v[f"ch08_{name}_gap_attack_auc"] == pytest.approx(0.5 + v[f"ch08_{name}_gap"] / 200, abs=1e-6)
    # the noise score: evidence at the 5% level, inside the 99.9% range, a TPR interval that contains chance
    for name in ("overfit", "regularised"):
        assert v[f"ch08_{name}_label_only_p"] < 0.05 and v[f"ch08_{name}_label_only_auc"] < hi, name
        assert v[f"ch08_{name}_label_sigma"] in (0.1, 0.2, 0.3, 0.5)
    assert v["ch08_overfit_label_only_lo"] <= v["ch08_fpr"]
    assert v["ch08_overfit_label_saturated"] < 5                        # "only ... keep their label"
    # sigma is chosen on shadow 1, not on the target: its AUC there is not the target's
    assert v["ch08_overfit_label_sigma_auc"] != v["ch08_overfit_label_only_auc"]
    assert v["ch08_sigma_records"] == v["ch08_pool"]
    # every record: the clean query, the noisy copies, and one more for the gap attack
    assert v["ch08_label_total_queries"] == v["ch08_pool"] * (v["ch08_label_queries"] + 2)


def test_more_shadows_help_lira(v):
    assert v["ch08_count_first"] == 4 and v["ch08_count_last"] == v["ch08_num_shadows"]
    assert v["ch08_lira_tpr_first"] > v["ch08_fpr"]                     # "already reaches"
    assert v["ch08_lira_tpr_last"] > v["ch08_lira_tpr_first"]
    # the last frame is the attack of the results table
    assert v["ch08_lira_tpr_last"] == pytest.approx(v["ch08_overfit_lira_online_fixed_variance_tpr"])


def test_our_ordering_is_the_literature_s(v):
    tpr = {a: v[f"ch08_overfit_{a}_tpr"] for a in LIRA_TABLE}
    lit = {a: v[f"ch08_lit_{a}_tpr"] for a in LIRA_TABLE}
    assert sorted(tpr, key=tpr.get) == sorted(lit, key=lit.get)         # "the two columns order the attacks alike"
    aucs = [v[f"ch08_overfit_{a}_auc"] for a in LIRA_TABLE]
    assert max(aucs) - min(aucs) < 0.15                                 # "close together in both columns"


def test_only_the_loss_threshold_is_apart_beyond_sampling_error(v):
    lira = [a for a in LIRA_TABLE if a != "loss_threshold"]
    for a in lira:                                                      # paired: every variant beats the loss
        assert v[f"ch08_diff_{a}_vs_loss_lo"] > 0, a
    assert v["ch08_lira_vs_loss_min_lo"] == min(v[f"ch08_diff_{a}_vs_loss_lo"] for a in lira) > 0
    # "the bootstrap intervals of the four LiRA variants overlap pairwise"
    apart = [(a, b) for a in lira for b in lira if v[f"ch08_overfit_{a}_lo"] > v[f"ch08_overfit_{b}_hi"]]
    assert v["ch08_lira_intervals_apart"] == len(apart) == 0


def test_the_literature_row_that_ranks_attacks_differently(v):
    assert (v["ch08_lit_models"], v["ch08_lit_shadows"], v["ch08_lit_fpr"]) == (16, 15, 0.1)
    assert v["ch08_lit_lira_offline_auc"] < v["ch08_lit_loss_threshold_auc"]
    assert v["ch08_lit_lira_offline_tpr"] > 10 * v["ch08_lit_loss_threshold_tpr"]


def test_attribute_inference_against_its_baseline(v, words):
    assert v["ch08_attr_train_acc"] >= 99                               # the target memorises its records
    assert v["ch08_attr_attack"] > 55                                   # would look like a leak on its own...
    assert v["ch08_attr_attack"] < min(v["ch08_attr_baseline"], v["ch08_attr_baseline_label"])   # ...but loses
    assert words["ch08_attr_attack_verdict"] == "does *not*"
    # the combined attack (label-free prior) against the label-aware imputation, paired, on training records
    assert v["ch08_attr_combined"] > v["ch08_attr_baseline_label"]
    assert v["ch08_attr_only_combined_train"] > 2 * v["ch08_attr_only_imputation_train"]
    assert v["ch08_attr_mcnemar_p_train"] < 1e-3 and v["ch08_attr_diff_lo_train"] > 0
    assert words["ch08_attr_train_verdict"] == "beats"
    # the control on unseen records: no gain beyond sampling error, so the gain on training records is a leak
    assert v["ch08_attr_mcnemar_p_unseen"] > 0.05 and v["ch08_attr_diff_lo_unseen"] < 0 < v["ch08_attr_diff_hi_unseen"]
    assert words["ch08_attr_unseen_verdict"] == "does not"
    assert words["ch08_attr_conclusion"].startswith("the gain is significant on the records the model trained on and not")
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
    assert "{glue:text}`ch08_attr_attack_verdict` beat the baseline" in text
    assert "McNemar" in text and "cross-fitted" in text
    assert "{doc}`../exercises/08_membership_inference`" in text


def test_figures_and_the_slider(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch08-", at_least=3)
    slider_cell(executed, min_frames=5)
