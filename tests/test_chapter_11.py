"""Chapter 11 (differentially private deep learning) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence they
appear in. That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import math

import pytest
from chapter_checks import (assert_every_glued_name_in_the_prose_exists,
                            assert_figures_numbered_captioned_and_referenced, prose, slider_cell)

pytestmark = pytest.mark.notebooks

STEM = "11_dp_sgd"
TARGETS = (0.5, 1.16, 2.91, 6.86, 16.0)     # EPS_TARGETS of the parameters cell


@pytest.fixture(scope="module")
def executed(executed_chapter):
    return executed_chapter(STEM)


@pytest.fixture(scope="module")
def v(chapter_values):
    return chapter_values(STEM)


def test_every_glued_name_in_the_prose_exists(executed):
    assert_every_glued_name_in_the_prose_exists(executed)


def test_the_step_from_scratch_equals_the_kit_and_opacus(v):
    assert v["ch11_scratch_gap"] < 1e-5                                   # "equals the kit's"
    assert v["ch11_opacus_gap"] <= 1e-5 * v["ch11_opacus_scale"]          # "the clipped sums agree"
    # Poisson sampling: the realised sizes vary around the expected one, which is q n
    assert v["ch11_expected_batch"] == pytest.approx(v["ch11_q"] * v["ch11_n_train"])
    assert v["ch11_sizes_min"] < v["ch11_expected_batch"] < v["ch11_sizes_max"]
    assert v["ch11_batch_size"] != v["ch11_expected_batch"]
    assert v["ch11_steps_per_epoch"] == round(1 / v["ch11_q"])
    # "the median example's gradient has norm ... and ...% are clipped": consistent with each other
    assert (v["ch11_norm_median"] > v["ch11_clip"]) == (v["ch11_clipped_share"] >= 50)
    # the speed of the ghost path, read from benchmarks/results/dpsgd_step.md: faster than vmap and Opacus's hooks
    assert v["ch11_bench_ghost_time_ratio"] < min(v["ch11_bench_vmap_time_ratio"], v["ch11_bench_opacus_time_ratio"])
    assert v["ch11_bench_batch"] == 256


def test_tf_privacy_opacus_pyvacy_and_prv_numbers(v):
    assert v["ch11_tut_steps"] == math.ceil(60 * 60_000 / 256)
    assert round(v["ch11_eps_mironov"], 2) == v["ch11_lit_tf_eps"] == 3.01 and v["ch11_order_mironov"] == 8.8
    assert round(v["ch11_eps_balle"], 2) == 2.60 and v["ch11_order_balle"] == pytest.approx(8.1)
    assert v["ch11_eps_opacus"] == pytest.approx(v["ch11_eps_balle"], rel=1e-6)    # "exactly what Opacus reports"
    assert v["ch11_eps_pyvacy"] == pytest.approx(v["ch11_eps_mironov"], abs=1e-3)  # "what TF Privacy does"
    # the grid is "a smaller matter": integer orders move the Opacus figure in the third decimal only
    assert v["ch11_eps_balle"] <= v["ch11_eps_integer"] < v["ch11_eps_balle"] + 0.01
    assert v["ch11_eps_mironov"] - v["ch11_eps_balle"] > 0.3
    # the PRV accountant is tighter, by the share stated
    assert v["ch11_eps_prv"] < v["ch11_eps_balle"]
    assert v["ch11_prv_saving"] == pytest.approx(100 * (1 - v["ch11_eps_prv"] / v["ch11_eps_balle"]))
    assert v["ch11_prv_saving"] >= 1


def test_accuracy_against_epsilon(v):
    eps = [v[f"ch11_eps_{i}"] for i in range(len(TARGETS))]
    acc = [v[f"ch11_acc_{i}"] for i in range(len(TARGETS))]
    for e, target in zip(eps, TARGETS):                 # each run spends its target, and no more
        assert target * 0.99 <= e <= target
    sigma = [v[f"ch11_sigma_{i}"] for i in range(len(TARGETS))]
    assert sigma == sorted(sigma, reverse=True)
    assert v["ch11_steps"] == v["ch11_epochs"] * round(1 / v["ch11_q"])
    assert acc[0] < acc[1] < acc[2] and acc[4] >= acc[2] - 2
    assert max(acc) < v["ch11_acc_nonprivate"]
    assert v["ch11_acc_nonprivate"] > 90
    assert v["ch11_clip_cost"] == pytest.approx(v["ch11_acc_nonprivate"] - v["ch11_acc_clip_only"])
    assert 0 < v["ch11_clip_cost"] < 5
    for i in range(len(TARGETS)):
        assert v[f"ch11_noise_cost_{i}"] == pytest.approx(v["ch11_acc_clip_only"] - acc[i])
    # "at generous budgets the clipping and the noise cost about as much; at small ones the noise dominates"
    for i in (2, 3, 4):
        assert v[f"ch11_noise_cost_{i}"] <= 2 * v["ch11_clip_cost"] + 1
    assert v["ch11_noise_cost_0"] > 5 * v["ch11_clip_cost"] and v["ch11_noise_cost_1"] > v["ch11_clip_cost"]
    assert v["ch11_acc_0"] < 75                                            # "only ..." at epsilon 0.5
    # what the budget buys: the hypothesis-testing bound on any membership test, and the tighter PRV epsilon
    fpr, e, d = v["ch11_mia_fpr"] / 100, v["ch11_eps_2"], v["ch11_delta"]
    assert v["ch11_mia_tpr_bound"] == pytest.approx(100 * min(math.exp(e) * fpr + d, 1 - math.exp(-e) * (1 - fpr - d)))
    assert 100 * fpr < v["ch11_mia_tpr_bound"] < 50                       # "a real bound, but not a small one"
    assert v["ch11_eps_mid_prv"] < v["ch11_eps_2"]


def test_clipping_norm_and_sampling_rate(v):
    assert v["ch11_knob_sigma"] == pytest.approx(v["ch11_sigma_2"]) and v["ch11_eps_knobs"] == 2.91
    assert v["ch11_clip_1"] == v["ch11_clip"] and v["ch11_clip_0"] < v["ch11_clip_1"] < v["ch11_clip_2"]
    assert v["ch11_clip_acc_1"] == pytest.approx(v["ch11_acc_2"])
    # both extremes of C are worse than the middle one, each for its own reason
    assert v["ch11_clip_acc_0"] < v["ch11_clip_acc_1"] - 5 and v["ch11_clip_acc_2"] < v["ch11_clip_acc_1"] - 5
    # "larger batches need more noise per step"
    assert v["ch11_rate_sigma_0"] < v["ch11_rate_sigma_1"] < v["ch11_rate_sigma_2"]
    # "... but the noise on the averaged gradient shrinks": sigma C / (q n) falls as q grows
    per_average = [v[f"ch11_rate_sigma_{i}"] / v[f"ch11_rate_batch_{i}"] for i in range(3)]
    assert per_average[0] > per_average[1] > per_average[2]
    # "a small C clips every gradient ..., a large one rarely clips"
    assert v["ch11_clipped_share_small"] >= 95 and v["ch11_clipped_share_large"] <= 10
    assert v["ch11_rate_1"] == v["ch11_q"] and v["ch11_rate_acc_1"] == pytest.approx(v["ch11_acc_2"])
    for i in range(3):
        assert v[f"ch11_rate_batch_{i}"] == pytest.approx(v[f"ch11_rate_{i}"] * v["ch11_n_train"])


def test_the_audit_separates_the_correct_step_from_the_broken_ones(v):
    claim, exact, ceiling = v["ch11_audit_claim"], v["ch11_audit_exact"], v["ch11_audit_ceiling"]
    assert exact < claim < 2                                              # RDP's claim is an upper bound
    assert v["ch11_audit_pyvacy_claim"] > claim                           # Mironov's conversion is looser
    assert v["ch11_audit_correct"] < exact                                # "below the claim, as it must be"
    for name in ("clip_avg", "noise_twice"):                              # "both refute ... at the ceiling"
        assert claim < v[f"ch11_audit_{name}"] <= ceiling + 1e-9
        assert v[f"ch11_audit_{name}"] >= ceiling - 0.1
    # PyVacy: refuted, above its own claim; consistent with its effective noise multiplier sigma / sqrt(B)
    assert v["ch11_audit_pyvacy"] > max(claim, v["ch11_audit_pyvacy_claim"]) + 0.5
    assert v["ch11_pyvacy_effective_sigma"] == pytest.approx(v["ch11_audit_sigma"] / math.sqrt(v["ch11_audit_b"] + 1))
    assert v["ch11_audit_pyvacy"] <= v["ch11_pyvacy_effective_eps"]
    assert v["ch11_pyvacy_effective_eps"] > 3 * v["ch11_audit_pyvacy_claim"]   # "far above its claim"
    assert v["ch11_canary_norm"] > 1 and v["ch11_audit_runs"] >= 1000


def test_the_slider_audits_stay_below_the_exact_epsilon(v):
    assert 0 <= v["ch11_slider_max_ratio"] < 0.5                          # "never exceeds ... far below it"
    assert v["ch11_slider_ceiling"] < v["ch11_audit_ceiling"]             # fewer runs, lower ceiling
    assert v["ch11_slider_runs"] == v["ch11_audit_runs"] // 4


def test_pate(v):
    assert v["ch11_pate_part"] == v["ch11_n_train"] // v["ch11_pate_teachers"]
    assert v["ch11_pate_teacher_acc"] < v["ch11_pate_plurality_acc"] - 10   # the vote beats its voters
    assert v["ch11_pate_student_acc"] < v["ch11_nonprivate_eval"]
    assert v["ch11_pate_student_acc"] > 80
    assert v["ch11_pate_eps_dd"] < v["ch11_pate_eps_di"]                  # the data-dependent analysis is smaller
    assert v["ch11_pate_eps_dd"] > 3                                      # "both are large"
    assert v["ch11_pate_median_gap"] > 0


def test_the_literature_table(executed, v):
    assert (v["ch11_lit_opacus_1_16"], v["ch11_lit_opacus_2_91"], v["ch11_lit_opacus_non_private"]) == (
        94.63, 96.78, 98.94)
    assert v["ch11_lit_scatternet_3"] == 98.7 and v["ch11_lit_end_to_end_cnn_3"] == 98.1
    assert v["ch11_lit_tf_privacy_3_01"] == 96.6
    assert v["ch11_ours_116"] == pytest.approx(v["ch11_acc_1"]) and v["ch11_ours_291"] == pytest.approx(v["ch11_acc_2"])
    assert v["ch11_gap_291"] == pytest.approx(v["ch11_acc_nonprivate"] - v["ch11_acc_2"])
    assert v["ch11_lit_gap_291"] == pytest.approx(98.94 - 96.78)
    assert v["ch11_gap_291"] > v["ch11_lit_gap_291"]                      # the small dataset loses more
    tables = [o["data"]["text/markdown"] for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if "text/markdown" in o.get("data", {})]
    assert any("Opacus example (MNIST)" in t and "| 2.91 |" in t for t in tables)
    assert any("PyVacy 0.0.32" in t and "refutes" in t for t in tables)
    text = prose(executed)
    for key in ("tramer2021differentially", "yousefpour2021opacus", "abadi2016deep", "gopi2021numerical",
                "balle2020hypothesis", "nasr2021adversary", "papernot2018scalable"):
        assert key in text
    assert "exercises/11_dp_sgd.ipynb" in text
    assert "pyvacy/optim/dp_optimizer.py" in text                         # the code the claim about PyVacy cites


def test_figures_and_the_slider(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch11-", at_least=5)
    slider_cell(executed, min_frames=len(TARGETS))
