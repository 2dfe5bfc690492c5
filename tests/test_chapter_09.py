"""Chapter 9 (model inversion, model extraction and gradient leakage) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence they
appear in; the comments quote the claim. That two runs agree is checked for every chapter in
tests/test_notebooks.py."""
import pytest
from chapter_checks import (assert_every_glued_name_in_the_prose_exists,
                            assert_figures_numbered_captioned_and_referenced, prose, slider_cell)

pytestmark = pytest.mark.notebooks

STEM = "09_model_attacks"


def test_every_glued_name_in_the_prose_exists(executed):
    assert_every_glued_name_in_the_prose_exists(executed)


def test_the_victims_and_the_split(v):
    for name in ("softmax", "mlp", "judge"):
        assert v[f"ch09_{name}_acc"] > 90
    assert v["ch09_d"] == 64 and v["ch09_k"] == 10                      # the small profile: 8x8 digits


def test_white_box_inversion_recovers_every_class_and_no_record(v):
    lowest = min(v["ch09_inv_softmax_confidence"], v["ch09_inv_mlp_confidence"])
    assert lowest - 0.1 < v["ch09_inv_min_confidence"] <= lowest        # "at least", rounded down
    assert v["ch09_inv_min_confidence"] >= 95                           # "at least ... confident"
    for name in ("softmax", "mlp"):
        assert v[f"ch09_inv_{name}_judged"] == 10                       # "a recognisable pattern of every class"
        assert v[f"ch09_inv_{name}_nearest_mean"] == 10                 # "nearer its own class's mean"
        # "about the same as to the nearest digit ... that the victim never saw"
        assert abs(v[f"ch09_inv_{name}_member"] / v[f"ch09_inv_{name}_non_member"] - 1) < 0.05
        # "several times what separates a real unseen digit from its nearest training digit"
        assert v[f"ch09_inv_{name}_member"] > 2.5 * v["ch09_inv_heldout_nearest"]
        assert v[f"ch09_inv_{name}_mean_mse"] > v["ch09_inv_spread"]     # "farther than a typical digit does"
    # the baselines: the same attack on an untrained network recovers (almost) nothing; the class means pass
    assert v["ch09_inv_untrained_judged"] <= 2 and v["ch09_inv_untrained_nearest_mean"] <= 3
    assert v["ch09_inv_means_judged"] == 10
    # "nor is the judge neutral on inputs unlike digits": one class takes far more than a tenth of noise images
    assert v["ch09_judge_noise_top_share"] > 30 and 0 <= v["ch09_judge_noise_top_class"] < v["ch09_k"]


def test_black_box_inversion_and_the_output_defences(v):
    assert v["ch09_bb_queries_per_step"] == 2 * v["ch09_d"]               # counted by an Oracle over one step
    assert v["ch09_bb_queries"] == v["ch09_inv_steps"] * v["ch09_bb_queries_per_step"]
    assert v["ch09_fd_adaptive"] > v["ch09_fd_default"]
    assert v["ch09_bb_default_round_exact_judged"] == 10                 # "does what the white-box one does"
    # rounding to 2 decimals "looks like a defence" against the default step, and the confidence falls
    assert v["ch09_bb_default_round_2_judged"] <= 3
    assert v["ch09_bb_default_round_2_conf"] < v["ch09_bb_default_round_exact_conf"] - 50
    # "because a step of h changes the confidences by less than the rounding hides"
    assert v["ch09_fd_zero_default"] >= 80 and v["ch09_fd_zero_adaptive"] < v["ch09_fd_zero_default"] - 30
    # "at 3 decimals it stops neither"; at 1 or 2 decimals only the default attacker is stopped
    assert v["ch09_bb_default_round_3_judged"] >= 9 and v["ch09_bb_adaptive_round_3_judged"] >= 9
    for dec in (1, 2):
        assert v[f"ch09_bb_default_round_{dec}_judged"] <= 3
        assert v[f"ch09_bb_adaptive_round_{dec}_judged"] >= 9
    assert v["ch09_bb_default_noise_0_01_judged"] <= 3 and v["ch09_bb_adaptive_noise_0_01_judged"] >= 9
    # whole numbers: "both attackers are back at chance, the level of inverting the untrained network"
    for who in ("default", "adaptive"):
        assert v[f"ch09_bb_{who}_round_0_judged"] <= 2 and v[f"ch09_bb_{who}_round_0_nearest"] <= 2
        assert v[f"ch09_bb_{who}_round_0_nearest"] <= v["ch09_inv_untrained_nearest_mean"] + 1
    # the model-free criterion agrees where the judge says the attack worked
    assert v["ch09_bb_adaptive_round_2_nearest"] >= 9 and v["ch09_bb_default_round_exact_nearest"] == 10
    assert v["ch09_api_acc_0"] < v["ch09_api_acc_exact"]
    for dec in (1, 2, 3):                                               # "costs nothing measurable"
        assert abs(v[f"ch09_api_acc_{dec}"] - v["ch09_api_acc_exact"]) <= 0.5


def test_equation_solving_needs_d_plus_one_queries(v):
    # both profiles: Tramèr et al.'s 64-feature digits, 10 classes
    d, k = v["ch09_eq_d"], v["ch09_eq_k"]
    assert d == 64 and k == 10
    assert v["ch09_eq_min"] == d + 1
    # "one per unknown": the Oracle's count equals the victim's parameter count (650, Tramèr et al.'s budget)
    assert v["ch09_eq_big_spent"] == v["ch09_eq_unknowns"] == 650
    # "only (K - 1)(d + 1) are identifiable": the measured Jacobian rank is d + 1 short of the parameter count
    assert v["ch09_eq_unknowns"] - v["ch09_eq_identifiable"] == d + 1
    # the headline: d + 1 queries, and Tramèr et al.'s 650, give full agreement
    for key in ("x1", "unk"):
        assert v[f"ch09_eq_{key}_test"] == 100 and v[f"ch09_eq_{key}_uniform"] == 100
    assert v["ch09_eq_x0_5_test"] < 90                                  # "half as many is not enough"


def test_the_shift_invariance_in_numbers(v):
    assert v["ch09_eq_raw"] > 0.1                                       # "the stolen weights are not the victim's"
    assert v["ch09_eq_unk_spread"] < 1e-4 and v["ch09_eq_x1_spread"] < 1e-3   # "one common row"
    assert v["ch09_eq_common_norm"] > 0.1
    assert v["ch09_shift_prob_equal"] == 1 and v["ch09_fp_tol"] <= 1e-10  # a common shift changes no probability
    # one query short: agreement stays high while the rows are far from a common shift
    assert v["ch09_eq_d_test"] >= 99 and v["ch09_eq_d_spread"] > 1e3 * v["ch09_eq_x1_spread"]
    # regressing each log p_k separately lands in the same class of solutions
    assert v["ch09_naive_common_row"] == 1 and v["ch09_naive_raw"] > 0.1 and v["ch09_naive_test"] == 100
    # a wrong copy still agrees: agreement cannot tell
    assert v["ch09_wrong_test"] >= 99 and v["ch09_wrong_spread"] > 100 * v["ch09_eq_unk_spread"]


def test_rounding_breaks_the_equations_more_queries_repair_part(v):
    assert v["ch09_round_min_exact_test"] == 100
    assert v["ch09_round_min_3_test"] < 95                              # "already cuts agreement"
    assert v["ch09_round_min_2_test"] < v["ch09_round_min_3_test"]
    assert v["ch09_round_big_2_test"] > v["ch09_round_min_2_test"] + 10   # "average much of the error away"
    assert v["ch09_round_big_1_test"] < v["ch09_round_big_2_test"]
    assert v["ch09_round_big_2_error"] > 1e3 * v["ch09_round_big_exact_error"]
    assert v["ch09_round_big_1_error"] > v["ch09_round_big_2_error"]


def test_learning_based_extraction_curves(v):
    assert v["ch09_budget_b4"] == v["ch09_n_pool"]
    scores = [v[f"ch09_learn_scores_b{j}"] for j in range(5)]
    assert scores[0] < scores[2] < scores[4]
    # 1 decimal "lands between the two"; 0 decimals "about where a label-only API leaves it" (a few test digits)
    assert v["ch09_learn_labels_b4"] < v["ch09_learn_1_b4"] <= v["ch09_learn_scores_b4"]
    assert abs(v["ch09_learn_0_b4"] - v["ch09_learn_labels_b4"]) <= 1.5
    # uniform queries (Tramèr et al.'s retraining): far below in-distribution queries at every budget
    assert all(v[f"ch09_learn_uniform_b{j}"] < v[f"ch09_learn_labels_b{j}"] - 15 for j in range(5))
    # "with n of them the probability substitute already agrees more than the label-only one with all"
    n = v["ch09_learn_match_budget"]
    assert v["ch09_learn_match_agreement"] > v["ch09_learn_labels_b4"] and n <= v["ch09_budget_b4"] / 2
    j = [v[f"ch09_budget_b{i}"] for i in range(5)].index(n)
    assert v["ch09_learn_match_agreement"] == pytest.approx(v[f"ch09_learn_scores_b{j}"])
    assert all(v[f"ch09_learn_scores_b{i}"] <= v["ch09_learn_labels_b4"] for i in range(j))   # the smallest such
    # the baseline: true labels give "about as much as the label-only substitute"; probabilities "add the rest"
    assert abs(v["ch09_learn_honest"] - v["ch09_learn_labels_b4"]) <= 2
    assert v["ch09_learn_scores_b4"] > v["ch09_learn_honest"] + 2
    # "leaving out the confidences ... cost agreement at every budget above b0 queries"
    assert all(v[f"ch09_learn_labels_b{j}"] < v[f"ch09_learn_scores_b{j}"] for j in range(1, 5))


def test_dlg_and_idlg_rebuild_the_digit_and_its_label(v):
    for name in ("dlg_lenet", "dlg_mlp", "idlg_mlp"):
        assert v[f"ch09_{name}_max_mse"] < 1e-5 and v[f"ch09_{name}_min_psnr"] > 50
        assert v[f"ch09_{name}_labels"] == 100 and v[f"ch09_{name}_good"] == 100   # "on every digit"
    assert v["ch09_start_mse"] > 0.5
    # the label-only guess is worse "by many orders of magnitude"
    assert v["ch09_mean_guess_mse"] > 1e3 * max(v["ch09_dlg_lenet_max_mse"], v["ch09_dlg_mlp_max_mse"])
    assert v["ch09_label_rule_hits"] == v["ch09_label_rule_trials"] == 2 * v["ch09_n_private"] * v["ch09_k"]
    assert v["ch09_dlg_min_psnr"] == min(v[f"ch09_{n}_min_psnr"] for n in ("dlg_lenet", "dlg_mlp", "idlg_mlp"))
    assert v["ch09_bias_negative"] == 1
    assert v["ch09_analytic_ok"] == 1 and v["ch09_analytic_tol"] <= 1e-5   # the first layer's gradient holds x
    assert v["ch09_idlg_mlp_evals"] < v["ch09_dlg_mlp_evals"]           # "fewer evaluations"
    # a ReLU MLP: "the activation does not protect the network"
    assert v["ch09_relu_min_mse"] <= v["ch09_relu_max_mse"] < 1e-5


def test_gradient_defences(v):
    noise = [v[f"ch09_noise_{t}_mse"] for t in ("0", "0_0001", "0_001", "0_01", "0_1")]
    prune = [v[f"ch09_prune_{t}_mse"] for t in ("0", "0_1", "0_3", "0_6", "0_9")]
    adapted = [v[f"ch09_adapted_{t}_mse"] for t in ("0_1", "0_3", "0_6", "0_9")]
    assert all(a < b for a, b in zip(noise, noise[1:]))                 # "grows steadily with the noise"
    assert all(a < b for a, b in zip(prune, prune[1:]))                 # plain DLG's error rises with pruning
    guess = v["ch09_mean_guess_mse"]
    assert noise[-1] > guess and noise[-2] < guess                      # "only the last is worse than the guess"
    assert v["ch09_noise_worse_than_guess"] == 0.1
    assert 0.3 <= v["ch09_noise_worse_than_guess"] / v["ch09_grad_scale_max"] <= 3   # "comparable with the largest"
    assert v["ch09_noise_worse_than_guess"] > 10 * v["ch09_grad_scale_min"]
    # identification: every digit up to sigma = 0.01, some but not all at 0.1 ("no level stops it outright")
    assert v["ch09_noise_0_01_identified"] == 100 and 0 < v["ch09_noise_0_1_identified"] < 100
    # the adapted attacker: "at most ... at every level up to 90%", far below plain DLG at 90%
    assert max(adapted) == v["ch09_adapted_max_mse"] < 1e-5 and v["ch09_adapted_max_mse"] < prune[-1] / 1e3
    assert v["ch09_adapted_min_identified"] == 100
    assert v["ch09_prune_min_identified"] > 0 and prune[1] > 100 * prune[0]   # plain DLG hindered, not stopped
    assert v["ch09_defence_labels"] == 100                              # "the label survives every defence"
    assert v["ch09_grad_largest_is_last"] == 1                          # "the layer with the largest entries"


def test_the_literature_table_and_the_pointers_are_on_the_page(executed):
    text = prose(executed)
    table = text[text.index("## Our numbers beside the literature"):]
    for key in ("tramer2016stealing", "fredrikson2015model", "zhao2020idlg"):
        assert key in table, key
    # the learning-based attacker's threat model is Papernot et al.'s, and Geiping et al. answer the ReLU question
    for key in ("papernot2017practical", "geiping2020inverting"):
        assert key in text, key
    assert "exercises/09_model_attacks.ipynb" in text
    for label in ("def-model-inversion", "def-model-extraction", "def-dlg"):
        assert f":label: {label}" in text and f"{{prf:ref}}`{label}`" in text


def test_figures_and_the_slider(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch09-", at_least=7)
    cell = slider_cell(executed, min_frames=5)
    assert "GRAD_NOISE" in cell.source
