"""Chapter 7 (backdoors and their defences) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence they
appear in. That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import pytest
from chapter_checks import (assert_every_glued_name_in_the_prose_exists,
                            assert_figures_numbered_captioned_and_referenced, prose, slider_cell)

pytestmark = pytest.mark.notebooks

STEM = "07_backdoors"
RATES = ("0_5", "1", "3", "5")


def test_every_glued_name_in_the_prose_exists(executed):
    assert_every_glued_name_in_the_prose_exists(executed)


def test_the_issue_bar_patch_backdoor_on_digits(v):
    # ASR >= 90% at a poison rate <= 5%, clean accuracy within 3 points of the clean model (issue 13)
    assert v["ch07_bar_rate"] <= 5 and v["ch07_bar_asr"] >= 90
    assert abs(v["ch07_bar_acc"] - v["ch07_clean_acc"]) <= 3 and v["ch07_bar_gap"] <= 3
    assert v["ch07_asr_at_1"] >= 90                                     # the bar is met already at 1%
    assert v["ch07_clean_asr"] <= 5                                     # the baseline: the trigger alone does not send to t
    assert v["ch07_clean_acc"] > 90


def test_asr_grows_with_the_rate_and_clean_accuracy_stays(v):
    asr = [v[f"ch07_asr_at_{t}"] for t in RATES]
    assert asr[0] > v["ch07_clean_asr"] + 20                            # "already" at the lowest rate
    assert 30 <= asr[0] <= 70                                           # "half learned" at the lowest rate
    assert v["ch07_clean_trig_acc"] < 90                                # the patch alone confuses the clean model
    assert v["ch07_clean_trig_top"] != v["ch07_target"] and v["ch07_clean_trig_top_share"] > v["ch07_clean_asr"]
    assert asr[-1] >= asr[0] + 20 and asr[-1] >= 99
    assert v["ch07_max_gap"] == pytest.approx(max(abs(v[f"ch07_acc_at_{t}"] - v["ch07_clean_acc"]) for t in RATES),
                                              abs=1e-6)
    assert v["ch07_max_gap"] <= 3                                       # "within ... points of the clean model's"
    assert [v[f"ch07_poisons_at_{t}"] for t in RATES] == [round(r * v["ch07_n_train"] / 100) for r in (0.5, 1, 3, 5)]


def test_the_blended_trigger_is_faint_and_needs_more_poisons(v):
    assert v["ch07_blend_change"] <= v["ch07_blend_alpha"] + 1e-6
    assert v["ch07_blend_asr"] >= 80 and v["ch07_blend_baseline"] <= 5
    assert v["ch07_blend_asr"] < v["ch07_asr_at_5"]                    # the patch at the same rate is stronger
    assert v["ch07_blend_asr"] <= v["ch07_asr_at_1"] + 1 and v["ch07_poisons_at_1"] < v["ch07_blend_poisons"] / 3
    assert abs(v["ch07_blend_acc"] - v["ch07_clean_acc"]) <= 3


def test_the_clean_label_trade_off(v):
    assert v["ch07_cl_eps_0"] == 0 and v["ch07_cl_eps_1"] > 0
    assert v["ch07_cl_asr_0"] <= 30                                     # "barely takes"
    assert v["ch07_cl_consistent_0"] >= 80
    assert v["ch07_cl_asr_1"] >= v["ch07_cl_asr_0"] + 40                # a strong backdoor at the large budget...
    assert v["ch07_cl_consistent_1"] <= 25                              # ...whose labels a clean model rejects
    # the checker is an independently trained clean model, as accurate as the attacker's; the attacker's own model
    # (the one PGD ran against) rejects the poisons' labels at least as often: "by construction"
    assert abs(v["ch07_checker_acc"] - v["ch07_clean_acc"]) <= 3
    assert v["ch07_cl_surrogate_1"] <= v["ch07_cl_consistent_1"]
    assert abs(v["ch07_cl_acc_1"] - v["ch07_clean_acc"]) <= 3


def test_spectral_signatures_under_and_over_their_bound(v):
    assert v["ch07_def_share"] <= 100 * v["ch07_spec_bound"]            # "under the bound"
    assert v["ch07_spec_recall"] >= 80 and v["ch07_spec_precision_t"] >= 50
    assert v["ch07_spec_precision"] < 20                                # "only ... of the removed rows are poisons"
    assert abs(v["ch07_spec_clean_fpr"] - v["ch07_spec_flag_share"]) <= 1   # 1.5 eps "by construction"
    assert v["ch07_dist_auc"] >= v["ch07_spec_auc"] - 0.01              # "separate as well"
    assert v["ch07_spec5_share"] > 100 * v["ch07_spec_bound"] and v["ch07_spec5_recall"] < 60


def test_activation_clustering_paper_setting_fails_pca_variant_works(v):
    assert v["ch07_ac_ica_recall"] < 70 and v["ch07_ac_pca_recall"] >= 80
    assert 1 <= v["ch07_ac_ica_unconverged"] <= v["ch07_n_classes"] and v["ch07_ac_pca_unconverged"] == 0
    for name in ("ica", "pca"):
        assert 0 < v[f"ch07_ac_{name}_clean_fpr"] <= 20                  # false alarms on a clean set, stated


def test_strip_detects_the_patch_and_misses_the_blend(v):
    assert v["ch07_strip_detect"] > 50                                  # "most triggered inputs"
    assert v["ch07_strip_detect"] < 100                                 # "not all"
    assert v["ch07_strip_realised_frr"] <= 3 * v["ch07_strip_frr"]
    assert v["ch07_strip_missed"] == pytest.approx(100 - v["ch07_strip_detect"])
    # "not every triggered input it lets through is a danger": some missed ones are inputs the backdoor did not
    # fire on, but STRIP misses part of those it does fire on too
    assert v["ch07_def_asr"] < 100 and 0 < v["ch07_strip_missed_unfired"] < 100
    assert 50 < v["ch07_strip_detect_fired"] < 100
    # the literature row: the stronger backdoor at the blended rate, missed far less often
    assert v["ch07_strip_patch5_missed"] == pytest.approx(100 - v["ch07_strip_patch5_detect"])
    assert v["ch07_strip_patch5_missed"] < v["ch07_strip_missed"]
    # the arms race, both backdoors at the same rate: the blended trigger evades STRIP while its backdoor works
    assert v["ch07_strip_patch5_detect"] >= 90 and v["ch07_patch5_asr_eval"] >= 90
    assert v["ch07_strip_blend_detect"] <= v["ch07_strip_patch5_detect"] - 50
    assert v["ch07_strip_blend_detect"] <= 20 and v["ch07_strip_blend_detect_emp"] <= 10
    assert v["ch07_strip_blend_asr"] >= 80
    # "lower on average, but the two overlap": better than chance over all thresholds, worse than the patch
    assert v["ch07_strip_blend_threshold"] < v["ch07_strip_blend_trig_median"] < v["ch07_strip_blend_clean_median"]
    # the clean entropies reach below the threshold, which rejects more clean inputs than the FRR it was set for
    assert v["ch07_strip_blend_clean_min"] < v["ch07_strip_blend_threshold"]
    assert v["ch07_strip_blend_frr"] > v["ch07_strip_frr"]
    assert 0.6 < v["ch07_strip_blend_auc"] < v["ch07_strip_patch5_auc"] - 0.05 and v["ch07_strip_patch5_auc"] > 0.99


def test_neural_cleanse_flags_the_infected_label_and_states_its_false_alarm(v):
    assert v["ch07_nc_index"] > 2 and v["ch07_nc_flagged_target"] == 1
    assert v["ch07_nc_norm_target"] < v["ch07_nc_norm_median"]
    # the reversed mask concentrates on the real trigger: a larger share of its mass than of the image's area
    assert v["ch07_trigger_area"] == pytest.approx(100 * v["ch07_patch_pixels"] / v["ch07_n_pixels"])
    assert v["ch07_nc_on_trigger"] > 2 * v["ch07_trigger_area"]
    assert v["ch07_nc_success_min"] >= 90
    assert v["ch07_nc_clean_index"] < 2
    # the prose: the clean model's top label is flagged, a false alarm
    assert v["ch07_nc_clean_max_index"] > 2 and v["ch07_nc_clean_top_flagged"] == 1
    assert v["ch07_nc_clean_n_flagged"] >= 1 and v["ch07_nc_clean_top"] != v["ch07_target"]
    # evading STRIP did not evade Neural Cleanse
    assert v["ch07_nc_blend_index"] > 2 and v["ch07_nc_blend_flagged"] == 1


def test_fine_pruning_works_through_fine_tuning(v):
    assert v["ch07_def_asr"] >= 90
    assert v["ch07_fp_prune_asr"] >= v["ch07_def_asr"] - 5              # pruning alone leaves the backdoor
    assert v["ch07_fp_lr_high"] > v["ch07_fp_lr_low"]
    assert v["ch07_fp_tune_high_asr"] < v["ch07_fp_tune_low_asr"] - 10   # the rate matters
    assert v["ch07_fp_both_high_asr"] <= 10
    # "pruning before fine-tuning did not consistently help": at one of the two rates it left more ASR
    assert max(v[f"ch07_fp_both_{r}_asr"] - v[f"ch07_fp_tune_{r}_asr"] for r in ("low", "high")) > 0
    assert 0 < v["ch07_fp_acc_lost"] <= 5                              # "costs clean accuracy"
    assert v["ch07_fp_acc_lost"] == pytest.approx(v["ch07_def_acc"] - v["ch07_fp_both_high_acc"], abs=1e-6)


def test_the_defence_table_and_the_literature_table_are_on_the_page(executed):
    text = prose(executed)
    table = text[text.index("| defence | acts on |"):]
    for name in ("spectral signatures", "activation clustering", "STRIP", "Neural Cleanse", "fine-pruning"):
        assert name in table.split("\n\n")[0], name
    for key in ("gao2019strip", "wang2019neural", "liu2018fine", "chen2017targeted"):
        assert key in text[text.index("## Our numbers beside the literature"):]
    assert "exercises/07_backdoors.ipynb" in text


def test_figures_and_the_slider(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch07-", at_least=5)
    slider_cell(executed, min_frames=5)
