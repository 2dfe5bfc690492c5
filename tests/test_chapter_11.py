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


def test_every_glued_name_in_the_prose_exists(executed):
    assert_every_glued_name_in_the_prose_exists(executed)


def test_the_step_from_scratch_equals_the_kit_and_opacus(v):
    assert v["ch11_scratch_gap"] < 1e-5                                   # "equals the kit's"
    assert v["ch11_opacus_gap"] <= 1e-5 * v["ch11_opacus_scale"]          # "the clipped sums agree"
    # Poisson sampling: the realised sizes vary around the expected one, which is q n
    assert v["ch11_expected_batch"] == pytest.approx(v["ch11_q"] * v["ch11_n_train"])
    assert v["ch11_sizes_min"] < v["ch11_expected_batch"] < v["ch11_sizes_max"]
    # the sizes vary: over an epoch they span at least two binomial standard deviations of q n
    q, n = v["ch11_q"], v["ch11_n_train"]
    assert v["ch11_sizes_max"] - v["ch11_sizes_min"] >= 2 * math.sqrt(q * n * (1 - q))
    assert v["ch11_sizes_min"] <= v["ch11_batch_size"] <= v["ch11_sizes_max"]   # the same seed: the first of them
    assert v["ch11_steps_per_epoch"] == round(1 / v["ch11_q"])
    # "the median example's gradient has norm ... and ...% are clipped": consistent with each other
    assert (v["ch11_norm_median"] > v["ch11_clip"]) == (v["ch11_clipped_share"] >= 50)
    # the speed, read from benchmarks/results/dpsgd_step.md, compared like with like: the kit's ghost path "on par
    # with" Opacus's ghost clipping (within 15% of each other), and the two materialising paths (kit vmap, Opacus
    # hooks) within 15% of each other and "about twice as long" (1.5x to 3x) as the ghost paths
    ghost, opacus_ghost = v["ch11_bench_ghost_time_ratio"], v["ch11_bench_opacus_ghost_time_ratio"]
    vmap, hooks = v["ch11_bench_vmap_time_ratio"], v["ch11_bench_opacus_time_ratio"]
    assert abs(math.log(ghost / opacus_ghost)) < math.log(1.15)
    assert abs(math.log(vmap / hooks)) < math.log(1.15)
    for slow in (vmap, hooks):
        for fast in (ghost, opacus_ghost):
            assert 1.5 <= slow / fast <= 3
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
        assert target * 0.999 <= e <= target           # "never more, and within a tenth of a percent"
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
    # the resolution: the binomial standard error of one run's accuracy near acc_2, and 1.96 SE of a difference
    p, n_test = v["ch11_acc_2"] / 100, v["ch11_n_test"]
    assert v["ch11_acc_se"] == pytest.approx(100 * math.sqrt(p * (1 - p) / n_test))
    assert v["ch11_acc_diff95"] == pytest.approx(1.96 * math.sqrt(2) * v["ch11_acc_se"])
    # "at that resolution, at generous budgets the noise costs no more than the clipping; at small ones the noise
    # dominates" (beyond the resolution)
    resolution = v["ch11_acc_diff95"]
    for i in (2, 3, 4):
        assert v[f"ch11_noise_cost_{i}"] <= v["ch11_clip_cost"] + resolution
    for i in (0, 1):
        assert v[f"ch11_noise_cost_{i}"] > v["ch11_clip_cost"] + resolution
    assert v["ch11_acc_0"] < 75                                            # "only ..." at epsilon 0.5
    # what the budget buys: the hypothesis-testing bound on any membership test, and the tighter PRV epsilon
    fpr, e, d = v["ch11_mia_fpr"] / 100, v["ch11_eps_2"], v["ch11_delta"]
    assert v["ch11_mia_tpr_bound"] == pytest.approx(100 * min(math.exp(e) * fpr + d, 1 - math.exp(-e) * (1 - fpr - d)))
    assert 100 * fpr < v["ch11_mia_tpr_bound"] < 50                       # "a real bound, but not a small one"
    assert v["ch11_eps_mid_prv"] < v["ch11_eps_2"]
    e = v["ch11_eps_mid_prv"]                                             # "which caps the rate at ..."
    assert v["ch11_mia_tpr_bound_prv"] == pytest.approx(100 * min(math.exp(e) * fpr + d,
                                                                  1 - math.exp(-e) * (1 - fpr - d)))
    assert v["ch11_mia_tpr_bound_prv"] < v["ch11_mia_tpr_bound"]


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
    # "while every example is clipped at both norms ... the small C's step is the larger one's, scaled": at
    # initialisation every example is (in this profile), so the sentence's premise holds
    assert v["ch11_clipped_share_small"] == 100 and v["ch11_clipped_share"] == 100
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
    # PyVacy: refuted against the claim its own accountant makes; consistent with its effective noise sigma / sqrt(B)
    assert v["ch11_audit_pyvacy"] > v["ch11_audit_pyvacy_claim"] + 0.5
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
    # the 2018 paper's MNIST aggregator, Confident-GNMax (LITERATURE_FIGURES.md): threshold 200, sigma1 150, sigma2 40
    assert (v["ch11_lit_pate_threshold"], v["ch11_lit_pate_sigma1"], v["ch11_lit_pate_sigma"]) == (200, 150, 40)
    assert v["ch11_pate_median_gap"] > 0


def test_the_literature_table(executed, v):
    assert (v["ch11_lit_opacus_1_16"], v["ch11_lit_opacus_2_91"], v["ch11_lit_opacus_non_private"]) == (
        94.63, 96.78, 98.94)
    assert v["ch11_lit_scatternet_3"] == 98.7 and v["ch11_lit_end_to_end_cnn_3"] == 98.1
    assert v["ch11_lit_tf_privacy_3_01"] == 96.6
    assert v["ch11_ours_116"] == pytest.approx(v["ch11_acc_1"]) and v["ch11_ours_291"] == pytest.approx(v["ch11_acc_2"])
    assert v["ch11_gap_291"] == pytest.approx(v["ch11_acc_nonprivate"] - v["ch11_acc_2"])
    assert v["ch11_lit_gap_291"] == pytest.approx(98.94 - 96.78)
    if v["ch11_n_train"] < v["ch11_tut_n"]:                               # the small dataset loses more
        assert v["ch11_gap_291"] > v["ch11_lit_gap_291"]
    tables = [o["data"]["text/markdown"] for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if "text/markdown" in o.get("data", {})]
    assert any("Opacus example (MNIST)" in t and "| 2.91 |" in t for t in tables)
    # each implementation judged against its own claim: PyVacy's row carries its own (Mironov) figure and "yes"
    audit_table = next(t for t in tables if "PyVacy 0.0.32" in t and "refutes its claim" in t)
    pyvacy_row = next(line for line in audit_table.splitlines() if line.startswith("| PyVacy"))
    assert f"{v['ch11_audit_pyvacy_claim']:.2f}" in pyvacy_row and pyvacy_row.rstrip(" |").endswith("yes")
    kit_row = next(line for line in audit_table.splitlines() if line.startswith("| kit (correct)"))
    assert f"{v['ch11_audit_claim']:.2f}" in kit_row and kit_row.rstrip(" |").endswith("no")
    text = prose(executed)
    for key in ("tramer2021differentially", "yousefpour2021opacus", "abadi2016deep", "gopi2021numerical",
                "balle2020hypothesis", "nasr2021adversary", "papernot2018scalable", "kairouz2015composition",
                "lebeda2024avoiding", "chua2024private", "papernot2022hyperparameter", "mironov2019sampled"):
        assert key in text
    assert "exercises/11_dp_sgd.ipynb" in text
    assert "pyvacy/optim/dp_optimizer.py" in text                         # the code the claim about PyVacy cites
    assert "ChrisWaites/pyvacy" in text and "microbatch_step" in text      # and the repository's later code
    assert "expected_batch_size" in text and "Confident" in text


def test_figures_and_the_slider(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch11-", at_least=5)
    slider_cell(executed, min_frames=len(TARGETS))
