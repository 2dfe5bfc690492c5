"""Chapter 10 (differential privacy) executes and says what it claims.

That two runs agree is checked for every chapter in tests/test_notebooks.py."""
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


def test_mechanisms_behave_as_the_prose_says(values):
    v = values
    assert abs(v["ch10_rr_mean"] - v["ch10_rr_true"]) < v["ch10_rr_std"] / 5   # unbiased over 2000 surveys
    assert abs(v["ch10_rr_raw"] - v["ch10_rr_true"]) > 10                    # the raw fraction is not
    assert 10 < v["ch10_analytic_saving"] < 50             # analytic Gaussian needs less noise
    assert v["ch10_rmse_large"] < v["ch10_rmse_small"] / 50  # 100x the data, 100x less error
    assert v["ch10_crossover"] > 1


def test_the_empirical_check_passes_the_kit_and_catches_the_broken_mechanism(values):
    v = values
    assert 0.8 < v["ch10_audit_lower"] <= v["ch10_audit_eps"]
    assert v["ch10_audit_broken"] > 3 * v["ch10_audit_eps"]
    assert v["ch10_fp_success"] > 99 > v["ch10_fp_bound"]  # the naive float sampler gives the input away
    assert v["ch10_snap_shared"] > 95
    assert v["ch10_min_pvalue"] > 0.001                     # the kit agrees with diffprivlib


def test_private_models_trade_accuracy_for_epsilon(values):
    v = values
    assert v["ch10_lr_eps1"] < v["ch10_lr_eps10"] <= v["ch10_lr_base"] + 1
    assert v["ch10_nb_eps01"] < v["ch10_nb_eps1"] < v["ch10_nb_base"]
    assert v["ch10_rf_eps1"] < v["ch10_rf_base"]
    assert (v["ch10_lit_lr_base"], v["ch10_lit_lr_eps1"]) == (81.28, 79.5)
