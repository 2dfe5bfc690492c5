"""Chapter 13 (secure multiparty computation and federated learning) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence they
appear in; that two runs agree is checked for every chapter in tests/test_notebooks.py."""
import math
import re

import pytest
from chapter_checks import (assert_every_glued_name_in_the_prose_exists,
                            assert_figures_numbered_captioned_and_referenced, prose, slider_cell)

pytestmark = pytest.mark.notebooks

STEM = "13_secure_computation"
AGGREGATORS = ("FedAvg (mean)", "median", "trimmed mean", "Krum")


def outputs(executed) -> str:
    return "\n".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)


def tables(executed):
    return [o["data"]["text/markdown"] for c in executed.cells if c.cell_type == "code" for o in c.outputs
            if "text/markdown" in o.get("data", {})]


def table_rows(table: str) -> dict[str, list[str]]:
    """A markdown table's body rows by their first cell."""
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_every_glued_name_in_the_prose_exists(executed):
    assert_every_glued_name_in_the_prose_exists(executed)


def test_fixed_point_encoding(executed, v):
    assert v["ch13_ulp"] == 2.0 ** -v["ch13_frac_bits"] and v["ch13_frac_bits"] == 16
    assert 0 < v["ch13_encode_err"] <= v["ch13_ulp"] / 2                     # "at most half of it"
    assert v["ch13_minus_one"] == -(2 ** 16)                                # the residue 2^64 - 2^16
    assert v["ch13_max_abs"] == 2.0 ** (63 - 16 - v["ch13_headroom"])
    out = outputs(executed)
    assert "ValueError: x is beyond the fixed-point range" in out
    assert f"{2 ** 64 - 2 ** 16 * 5 // 2}" in out                           # -2.5 read as an unsigned residue


def test_one_share_reveals_nothing_and_the_broken_sharing_fails(v):
    assert v["ch13_kit_min_p"] > v["ch13_p_min"] >= 1e-3                     # every test passes for the kit
    assert v["ch13_broken_min_chi2"] > 100 * v["ch13_chi2_critical"]          # fails "at once"
    assert 300 < v["ch13_chi2_critical"] < 350                                # 255 dof at p = 0.001
    assert v["ch13_broken_low_p"] > 0.01                                     # "its low byte looks uniform"
    # the broken share read as a number is the secret within 2^20 ulp = 16
    assert 0 < v["ch13_broken_guess_err"] <= 2 ** 20 * v["ch13_ulp"]
    assert v["ch13_share_samples"] >= 256 * 100


def test_beaver_multiplication_view_and_cost(executed, v):
    wire = next(t for t in tables(executed) if "received by" in t)
    body = wire.splitlines()[2:]
    # each party receives exactly: one input share, the triple (offline), e, f and the output
    for party in ("party 0", "party 1"):
        tags = sorted(line.split("|")[3].strip().strip("`") for line in body if line.startswith(f"| {party} "))
        assert tags == sorted(["input", "triple.a", "triple.b", "triple.c", "beaver.e", "beaver.f", "output"])
    assert v["ch13_beaver_rounds"] == 4
    assert v["ch13_mul2_ulp"] <= 1 and v["ch13_mul3_ulp"] <= 2             # local: 1 ulp, dealer: 2 ulp
    assert v["ch13_mul2_ulp"] > 0.5 and v["ch13_mul3_ulp"] > 1             # the bounds are nearly attained
    assert v["ch13_mul2_err"] < 1e-2 and v["ch13_e_uniform_p"] > 1e-3
    assert v["ch13_mul2_rounds"] == 1 and v["ch13_mul3_rounds"] == 2
    # 2 parties: each sends 8-byte shares of e and f to the other; the dealer 3 elements to each party
    assert v["ch13_mul2_online_bytes"] == 2 * 2 * 8 and v["ch13_mul2_offline_bytes"] == 3 * 2 * 8
    assert v["ch13_mul3_online_bytes"] > v["ch13_mul2_online_bytes"]
    assert v["ch13_mul3_offline_bytes"] > v["ch13_mul2_offline_bytes"]
    assert v["ch13_trunc_fail_p"] < 1e-4 and v["ch13_trunc_fail_expected"] < 0.5   # "none happened" is likely
    # inputs the kit accepts, whose products fail often (both truncations), as |z| / 2^64 predicts
    assert v["ch13_risky"] < v["ch13_max_abs"]
    for parties in (2, 3):
        assert v[f"ch13_risky_fail{parties}"] > 10
        assert v[f"ch13_risky_fail{parties}"] == pytest.approx(v["ch13_risky_pred"], abs=5)
    assert "e = x - a opened" in outputs(executed)


def test_secure_inference_table(executed, v):
    n = v["ch13_mpc_settings"]
    assert 0 < v["ch13_mpc_fail_max"] < 1e-6                                  # the kit's truncation failure bound
    assert n == 6 and v["ch13_mpc_within"] == n and v["ch13_mpc_same"] == n
    for model in ("lr", "sq", "relu"):
        for parties in (2, 3):
            key = f"ch13_{model}{parties}"
            assert v[f"{key}_mpc_acc"] == v[f"{key}_plain_acc"] > 85
            assert 0 < v[f"{key}_err"] <= v[f"{key}_bound"] < 0.01
            assert v[f"{key}_time_ratio"] > 1
        assert v[f"ch13_{model}3_rounds"] > v[f"ch13_{model}2_rounds"]       # a third party adds rounds
        assert v[f"ch13_{model}3_online_mb"] > v[f"ch13_{model}2_online_mb"]  # ... and bytes
    # the ReLU network costs far more than the square one ("so much cheaper")
    assert v["ch13_relu2_rounds"] > 2 * v["ch13_sq2_rounds"]
    assert v["ch13_relu2_online_mb"] > 20 * v["ch13_sq2_online_mb"]
    assert v["ch13_relu2_time_ratio"] > v["ch13_lr2_time_ratio"]
    assert v["ch13_lr2_rounds"] == 3                                          # share, (local) layer, open
    lit = (v["ch13_lit_crypten_mpc_s"], v["ch13_lit_crypten_plain_s"], v["ch13_lit_crypten_mpc_acc"],
           v["ch13_lit_crypten_plain_acc"])
    assert lit == (0.061, 0.00011, 81.28, 81.20)                              # LITERATURE_FIGURES.md
    assert (v["ch13_stat_bits"], v["ch13_compare_bits"]) == (26, 36)          # 26 + 36 = 62: nothing wraps
    assert v["ch13_compare_rounds"] == 2 + math.ceil(math.log2(35))
    assert v["ch13_relu_leak_bound"] == pytest.approx(v["ch13_relu_openings"] * 2.0 ** -26) and \
        1e-5 < v["ch13_relu_leak_bound"] < 1e-2
    assert v["ch13_relu2_net_ms"] > 10 * v["ch13_lr2_net_ms"] > 0             # "where its real cost lies"
    assert v["ch13_lit_crypten_ratio"] == pytest.approx(0.061 / 0.00011)
    table = next(t for t in tables(executed) if "stated bound" in t)
    assert "CrypTen" in table and len(table.splitlines()) == 2 + 7


def test_fedavg_and_partitions(v):
    assert v["ch13_iid_acc"] > 85
    # "small alpha: fewer classes per client, a slower start, behind IID; large alpha behaves like IID"
    assert v["ch13_small_alpha_classes"] <= 4
    assert v["ch13_small_alpha_first"] < v["ch13_iid_first"] - 10
    assert v["ch13_small_alpha_acc"] < v["ch13_iid_acc"]
    assert abs(v["ch13_large_alpha_acc"] - v["ch13_iid_acc"]) < 5
    assert v["ch13_small_alpha_max_size"] > 10 * max(1, v["ch13_small_alpha_min_size"])   # "very unequal"
    assert v["ch13_fedavg_seconds"] > 0


def test_gradient_leakage_through_an_update(v):
    assert v["ch13_leak_gap"] < 1e-4                                          # the update is the gradient
    assert v["ch13_leak_max_mse"] < 1e-3                                      # the digits come back
    assert v["ch13_leak_labels"] == v["ch13_leak_digits"] == 3


def test_defence_table(executed, v):
    mean, secure, dp = ("ch13_def_mean", "ch13_def_secure", "ch13_def_dp")
    robust = ("ch13_def_median", "ch13_def_trimmed", "ch13_def_krum")
    # secure aggregation computes the same mean: the same accuracy, the same poisoning, more bytes
    for k in ("clean", "attacked", "asr", "backdoor_acc"):
        assert v[f"{secure}_{k}"] == pytest.approx(v[f"{mean}_{k}"], abs=0.5)
    assert v[f"{secure}_kb"] > v[f"{mean}_kb"]
    # one boosted sign flip ruins the mean ("chance level"); each robust rule stays near its clean accuracy
    assert v[f"{mean}_attacked"] < 20 and v[f"{mean}_clean"] > 85
    assert v["ch13_robust_attack_drop"] < 5
    for r in robust:
        assert v[f"{r}_clean"] - v[f"{r}_attacked"] <= v["ch13_robust_attack_drop"] + 1e-9
        assert v[f"{r}_asr"] <= v["ch13_robust_max_asr"] < 10
    assert v["ch13_robust_clean_gap"] < 3 and v["ch13_def_krum_clean"] < v[f"{mean}_clean"]
    # model replacement: the backdoor works under the mean, not on a clean federation
    assert v[f"{mean}_asr"] > 90 and v["ch13_clean_model_asr"] < 10
    assert v["ch13_gamma"] == pytest.approx(v["ch13_clients"], abs=0.1)     # "n / eta up to rounding here"
    assert v[f"{mean}_backdoor_acc"] > 75                                    # "a slightly worse round"
    # DP-FedAvg: costs accuracy, blunts but does not stop the boosting, epsilon from chapter 11's accountant
    assert v[f"{dp}_clean"] < v[f"{mean}_clean"]
    assert v[f"{mean}_attacked"] < v[f"{dp}_attacked"] and 10 < v[f"{dp}_asr"] < v[f"{mean}_asr"]
    assert v["ch13_dp_eps"] == v["ch13_dp_eps_check"] > 5                   # "weak"
    # the noise's norm against C: sigma sqrt(d) / qK, and the clients it takes to bring it to a tenth
    assert v["ch13_noise_ratio"] > 1 and v["ch13_update_dim_dp"] == v["ch13_update_dim"]
    assert v["ch13_clients_for_tenth"] == pytest.approx(10 * v["ch13_noise_ratio"] * v["ch13_clients"])
    assert v["ch13_honest_norm"] > v["ch13_dp_clip"]                          # "C is below the honest norms"
    table = next(t for t in tables(executed) if "sign-flip client" in t)
    rows = table_rows(table)
    assert len(rows) == 6 and any(k.startswith("DP-FedAvg (ε = ") for k in rows)
    assert rows["secure aggregation"][-1] == str(int(1 + v["ch13_secure_rounds"])) and rows["median"][-1] == "2"


def test_secure_aggregation_with_dropouts(executed, v):
    assert v["ch13_n_dropped"] == 2 and v["ch13_threshold"] == 6 and v["ch13_max_dropouts"] == 4
    assert v["ch13_secure_sum_err"] < 1e-3
    assert v["ch13_masked_p"] > 1e-3                                          # the masked update looks uniform
    # a late client, its pairwise masks stripped by the server, is still hidden by its self-mask
    assert v["ch13_late"] == 5 and v["ch13_late_p"] > 1e-3 and v["ch13_late_corr"] < 0.2
    assert v["ch13_secure_bytes_ratio"] > 1.5                                 # 6 bytes vs 4 per coordinate, at least
    assert 1 < v["ch13_secure_fl_ratio"] < v["ch13_secure_bytes_ratio"]     # diluted by the model download
    assert v["ch13_lit_bonawitz_ratio"] == 1.73
    assert v["ch13_ring_bytes"] == 6 and v["ch13_encoding_ratio"] == 1.5 < v["ch13_secure_bytes_ratio"]
    out = outputs(executed)
    assert "rebuilt: {" in out and "2: 'sk', 7: 'sk'" in out and "0: 'b'" in out
    assert "late client 5: the server rebuilt its 'sk'" in out
    assert "ValueError: dropped leaves 5 of 10 clients, fewer than threshold = 6" in out


def test_flower_matches_the_kit_loop(v):
    assert v["ch13_flower_diff"] <= v["ch13_flower_tol"] == 1e-6          # runs with Flower installed
    assert v["ch13_flower_weight_diff"] <= v["ch13_flower_tol"]
    assert not math.isnan(v["ch13_flower_seconds"])
    assert v["ch13_flower_rounds_seconds"] < v["ch13_flower_seconds"]      # "the rest is starting Ray"
    assert v["ch13_kit_loop_seconds"] < v["ch13_flower_seconds"]
    assert v["ch13_flower_clients"] == 4 and v["ch13_flower_rounds"] == 2 and v["ch13_flower_acc"] > 50


def test_the_slider_and_the_robust_rules_limits(executed, v):
    cell = slider_cell(executed, min_frames=v["ch13_max_poisoned"] + 1)
    assert "frame_slider(frames" in cell.source
    assert v["ch13_trim_count"] == 2 and v["ch13_trimmed_holds"] >= v["ch13_trim_count"]
    assert v["ch13_trimmed_holds"] < v["ch13_max_poisoned"] and v["ch13_median_holds"] < v["ch13_max_poisoned"]
    assert v["ch13_median_at_max"] < 30 and v["ch13_trimmed_at_max"] < 30    # "both have failed"
    assert v["ch13_krum_at_max"] > 60                                        # "still reaches"
    # colluders win, beyond Krum's f (the sentence says so), at a count where non-colluders did not
    assert v["ch13_byzantine"] < v["ch13_krum_collude"] <= v["ch13_max_poisoned"]
    assert v["ch13_krum_collude"] == v["ch13_max_poisoned"] and v["ch13_krum_at_max"] > 60


def test_prose_links_citations_and_exercises(executed):
    text = prose(executed)
    keys = ("beaver1991efficient", "mohassel2017secureml", "mohassel2018aby3", "knott2021crypten",
            "catrina2010fixedpoint", "catrina2010improved", "kim2018secure", "hsu2019measuring",
            "yurochkin2019bayesian", "wang2020federated", "mcmahan2018learning", "yin2018byzantine",
            "blanchard2017machine", "bagdasaryan2020backdoor", "bell2020secure", "beutel2020flower",
            "moritz2018ray", "mcmahan2017communication", "bonawitz2017practical", "shamir1979share",
            "zhao2020idlg", "yao1986generate")
    for key in keys:
        assert key in text, key
    for ref in ("ch-model-attacks", "ch-backdoors", "ch-dp-sgd", "ch-homomorphic-encryption"):
        assert f"{{ref}}`{ref}`" in text
    assert "{prf:ref}`def-additive-sharing`" in text and "{prf:ref}`def-fedavg`" in text
    assert "(ch-secure-computation)=" in text and "# 13. Secure multiparty computation and federated learning" in text
    assert "exercises/13_secure_computation.ipynb" in text
    for term in ("secret sharing", "Beaver triple", "federated learning", "secure aggregation",
                 "Byzantine-robust aggregation", "secure multiparty computation"):
        assert re.search(r"\{term\}`" + term, text), term
    assert "Threat model" in text and "semi-honest" in text and "malicious" in text


def test_figures(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch13-", at_least=4)
