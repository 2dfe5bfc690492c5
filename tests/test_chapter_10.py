"""Chapter 10 (differential privacy) executes and says what it claims.

That two runs agree is checked for every chapter in tests/test_notebooks.py."""
import math

import pytest

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def values(chapter_values):
    return chapter_values("10_differential_privacy")


def test_anonymisation_and_reconstruction_fail(values):
    v = values
    assert v["ch10_unique_pct"] > 50                       # most patients are unique on three columns
    assert v["ch10_recon_exact"] == 100                    # exact aggregates give the table away
    assert v["ch10_recon_sqrt"] < v["ch10_recon_exact"]
    assert 45 <= v["ch10_recon_trivial"] <= 55             # balanced secrets: the trivial guess is near chance
    assert v["ch10_recon_sqrt"] > v["ch10_recon_trivial"] + 5   # "still" above the baseline at sqrt(n) noise
    assert v["ch10_recon_large"] < v["ch10_recon_sqrt"]


def test_what_epsilon_and_delta_mean(values):
    v = values
    assert v["ch10_odds_eps1"] == pytest.approx(math.e)
    assert v["ch10_nameshame"] == pytest.approx(v["ch10_n_patients"] * v["ch10_delta_bad"]) and v["ch10_nameshame"] >= 1
    # the Gaussian's privacy loss exceeds epsilon more often than delta, yet the excess mass is exactly delta
    assert v["ch10_gauss_tail"] > 5 * 1e-5 and v["ch10_gauss_tail_ratio"] > 5
    assert v["ch10_gauss_hockey"] == pytest.approx(1e-5, rel=1e-4)


def test_neighbouring_relation_and_group_privacy(values):
    v = values
    assert v["ch10_em_add"] <= v["ch10_eps_nb"] + 1e-9     # monotone EM is eps-DP under add/remove
    assert v["ch10_em_replace"] > 1.5 * v["ch10_eps_nb"]   # but reaches ~2 eps under replace-one
    assert v["ch10_em_replace"] <= 2 * v["ch10_eps_nb"] + 1e-9
    assert v["ch10_group_total"] == v["ch10_group_k"] * v["ch10_group_eps"]
    assert v["ch10_group_odds"] == pytest.approx(math.exp(v["ch10_group_total"]))


def test_local_privacy_costs_a_factor_of_order_sqrt_n(values):
    v = values
    assert v["ch10_ldp_local"] > 10 * v["ch10_ldp_central"]
    growth = v["ch10_ldp_ratio"] / v["ch10_ldp_ratio_small"]           # the gap grows like sqrt(n)
    expected = math.sqrt(v["ch10_ldp_n"] / v["ch10_ldp_n_small"])
    assert expected / 2 < growth < expected * 2


def test_mechanisms_behave_as_the_prose_says(values):
    v = values
    assert abs(v["ch10_rr_mean"] - v["ch10_rr_true"]) < v["ch10_rr_std"] / 5   # unbiased over 2000 surveys
    assert abs(v["ch10_rr_raw"] - v["ch10_rr_true"]) > 10                    # the raw fraction is not
    assert 10 < v["ch10_analytic_saving"] < 50             # analytic Gaussian needs less noise
    assert v["ch10_saving_min_5"] <= v["ch10_analytic_saving"] + 1e-9 <= v["ch10_saving_max_5"] + 2e-9
    assert v["ch10_saving_max_10"] < v["ch10_saving_min_5"] + 5 and v["ch10_saving_min_10"] < v["ch10_saving_min_5"]
    # towards epsilon -> 0 the analytic sigma stays finite: the saving exceeds the plotted range's
    assert v["ch10_saving_tiny"] > v["ch10_saving_max_5"] and v["ch10_eps_tiny"] < v["ch10_saving_eps_lo"]
    # the Gaussian does not catch up with the Laplace mechanism for one scalar above a tiny epsilon: the ratio
    # grows, and crosses 1 below the smallest epsilon the prose quotes
    assert 1 < v["ch10_gauss_lap_ratio_001"] < v["ch10_gauss_lap_ratio_1"] < v["ch10_gauss_lap_ratio_10"]
    assert 1e-5 < v["ch10_gauss_lap_cross"] < 0.01
    assert v["ch10_rmse_large"] < v["ch10_rmse_small"] / 50  # 100x the data, 100x less error
    assert v["ch10_crossover"] > 1
    # the exact first k where advanced composition wins, not the first grid point of the plot past it
    from mlsec_kit import dp
    k, step = int(v["ch10_crossover"]), v["ch10_eps_step"]
    adv = lambda k: dp.advanced_composition(epsilon=step, delta=0.0, k=k, delta_prime=1e-5)[0]
    assert adv(k) < k * step and adv(k - 1) >= (k - 1) * step
    assert v["ch10_median_err"] < 5                          # the private median is useful at eps 0.1
    assert v["ch10_eps_median"] == 0.1


def test_renyi_accounting_favours_the_gaussian_under_composition(values):
    v = values
    assert v["ch10_comp_gau_1"] > v["ch10_comp_lap_1"]      # one release: the Gaussian costs more
    assert v["ch10_comp_gau_rdp"] < v["ch10_comp_lap_adv"]  # many releases: it costs less
    assert v["ch10_comp_gau_rdp"] <= v["ch10_comp_gau_zcdp"]
    assert v["ch10_comp_lap_rdp"] < v["ch10_comp_lap_adv"]
    assert 1 < v["ch10_comp_gain_k"] <= v["ch10_comp_k"]
    assert v["ch10_amp_001"] < v["ch10_amp_01"] < 1.0 and v["ch10_amp_001"] < 0.02
    assert v["ch10_sgd_eps"] < v["ch10_sgd_eps_full"] / 10
    assert 1 < v["ch10_sgd_full_order"] < 2                  # the best order without subsampling is fractional


def test_clipping_bounds_trade_bias_for_noise(values):
    v = values
    assert v["ch10_clip_small_bias"] < -0.5 * v["ch10_clip_true"]   # a small bound: most of the mean is lost
    assert v["ch10_clip_best_bias"] < 0                              # the best bound still underestimates
    assert v["ch10_clip_best_rmse"] < min(abs(v["ch10_clip_small_bias"]), v["ch10_clip_large_rmse"])
    assert v["ch10_clip_private_rmse"] < v["ch10_clip_large_rmse"]
    assert v["ch10_clip_small_u"] < v["ch10_clip_private_u"] < v["ch10_clip_large_u"]
    assert v["ch10_clip_small_u"] < v["ch10_clip_best_u"] < v["ch10_clip_large_u"]
    assert v["ch10_clip_private_bias_pct"] > 5                       # the private 95th percentile clips: biased low
    assert v["ch10_clip_total_eps"] > 1


def test_the_empirical_check_passes_the_kit_and_catches_the_broken_mechanisms(values):
    v = values
    assert 0.8 < v["ch10_audit_lower"] <= v["ch10_audit_eps"]
    assert v["ch10_audit_broken"] > 3 * v["ch10_audit_eps"]
    assert v["ch10_svt_correct"] <= v["ch10_audit_eps"]      # correct AboveThreshold passes
    assert v["ch10_svt_alg5"] > 3 * v["ch10_audit_eps"]      # the broken variants are flagged
    assert v["ch10_svt_alg6"] > 2 * v["ch10_audit_eps"]
    assert v["ch10_slider_audit_max_gap"] <= 1.0             # no epsilon of the slider is refuted
    assert v["ch10_fp_success"] > 99                         # the naive float sampler gives the input away
    assert v["ch10_snap_shared"] > 95
    assert v["ch10_discrete_pvalue"] > 0.001                 # the exact discrete Gaussian fits its pmf
    assert v["ch10_min_pvalue"] > v["ch10_alpha_cmp"]        # the kit agrees with diffprivlib (Bonferroni)
    assert v["ch10_alpha_cmp"] == pytest.approx(v["ch10_alpha_family"] / v["ch10_n_cmp"])


def test_private_models_trade_accuracy_for_epsilon(values):
    v = values
    assert v["ch10_lr_eps1"] < v["ch10_lr_eps10"] <= v["ch10_lr_base"] + 1
    assert v["ch10_nb_eps01"] < v["ch10_nb_eps1"] < v["ch10_nb_base"]
    assert v["ch10_rf_eps1"] < v["ch10_rf_base"]
    assert (v["ch10_lit_lr_base"], v["ch10_lit_lr_eps1"]) == (81.28, 79.5)
    assert v["ch10_lit_nb01_diff"] < 0                       # the reported private GaussianNB at eps 0.1 is lower
