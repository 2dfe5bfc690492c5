"""Chapter 14 (memorisation and privacy in language models) executes and says what it claims.

Each test reads the numbers the chapter glued into its prose and checks that they support the sentence they
appear in; that two runs agree is checked for every chapter in tests/test_notebooks.py."""
import math
import re

import pytest
from chapter_checks import (assert_every_glued_name_in_the_prose_exists,
                            assert_figures_numbered_captioned_and_referenced, prose, slider_cell)

from mlsec_kit.notebook import glued_values

pytestmark = pytest.mark.notebooks

STEM = "14_language_models"
INSERTIONS = (0, 1, 2, 4, 8, 16)


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


def test_corpus(v):
    assert v["ch14_canaries"] == len(INSERTIONS) * v["ch14_per_count"]
    assert v["ch14_insertion_lines"] == v["ch14_per_count"] * sum(INSERTIONS)
    assert v["ch14_lines"] == v["ch14_records"] + v["ch14_insertion_lines"]
    assert v["ch14_space"] == 10 ** v["ch14_digits"] and v["ch14_log2_space"] == pytest.approx(
        math.log2(v["ch14_space"]))
    assert v["ch14_held_out"] > 0.9 * 1000                                 # few collide with training records


def test_memorisation_is_not_overfitting(executed, v):
    # "the gap is modest"; the target spends more than the generator's entropy even on its training records
    assert 0 < v["ch14_gap_bits"] < 0.5 * v["ch14_train_bits"]
    assert 0.5 < v["ch14_bayes_bits"] < v["ch14_train_bits"] < v["ch14_held_bits"]
    # greedy decoding completes every 16-times canary verbatim; its secret costs far fewer bits than an unseen one
    assert v["ch14_greedy_verbatim"] == v["ch14_per_count"]
    text = glued_values(executed)["ch14_greedy_text"].strip("'\"")
    assert re.fullmatch(r"\w+'s \w+ is \d{%d}" % v["ch14_digits"], text)
    assert v["ch14_hit_bits"] < v["ch14_digits"] < v["ch14_log2_space"] < v["ch14_unseen_bits"]
    assert v["ch14_digit_gap_bits"] == pytest.approx((v["ch14_unseen_bits"] - v["ch14_hit_bits"]) / v["ch14_digits"])
    assert v["ch14_digit_gap_bits"] > 10 * v["ch14_gap_bits"]
    assert "= the canary" in outputs(executed)


def test_exposure_curve(v):
    log2_r = v["ch14_log2_space"]
    mean = {r: v[f"ch14_exp_mean_{r}"] for r in INSERTIONS}
    # a never-inserted canary: about 1 bit (1/ln 2 in expectation), not log2|R| - 1
    assert 0.3 < mean[0] < 2.5 and mean[0] < log2_r - 6
    # grows with every doubling; all 16-times canaries at the maximum; min <= mean <= max <= log2|R|
    assert mean[0] < mean[1] < mean[2] < mean[4] < mean[8] < mean[16] == pytest.approx(log2_r)
    assert v["ch14_at_max_16"] == v["ch14_per_count"]
    for r in INSERTIONS:
        assert 0 <= v[f"ch14_exp_min_{r}"] <= mean[r] <= v[f"ch14_exp_max_{r}"] <= log2_r + 1e-9
    assert v["ch14_exp_max_4"] - v["ch14_exp_min_4"] > 3                      # "the spread is wide"
    # one insertion: detectable on average, not always individually (5% level: log2 20 bits)
    assert mean[1] > mean[0] + 2 and 0 < v["ch14_once_significant"] < v["ch14_per_count"]
    assert v["ch14_exp_max_1"] > math.log2(20) > v["ch14_exp_min_1"]


def test_estimate_against_exact(v):
    assert v["ch14_est_max_err_body"] < 1.5 and v["ch14_est_mean_err"] < 1.5
    assert v["ch14_est_max_err_tail"] > v["ch14_est_max_err_body"]            # "errs by up to ... near the top"
    assert 0 < v["ch14_est_tail_count"] < v["ch14_canaries"]
    assert abs(v["ch14_demo_estimate"] - v["ch14_demo_exact"]) < 1.0
    assert v["ch14_estimate_samples"] < v["ch14_space"]


def test_extraction_table(executed, v):
    k, inserted = v["ch14_top_k"], v["ch14_inserted"]
    assert inserted == 5 * v["ch14_per_count"] and v["ch14_distinct"] <= v["ch14_samples"]
    for m in ("perplexity", "zlib", "reference"):
        assert v[f"ch14_ext_{m}_canaries"] <= v["ch14_ext_ceiling_canaries"] <= inserted
        assert v[f"ch14_ext_{m}_precision"] > 5 * v["ch14_ext_base_precision"]   # far above a random guess
    # perplexity and zlib reach the ceiling, far above chance; the reference ratio finds fewer
    for m in ("perplexity", "zlib"):
        assert v[f"ch14_ext_{m}_canaries"] == v["ch14_ext_ceiling_canaries"] >= 4
    assert v["ch14_ext_zlib_canaries"] > 4 * v["ch14_ext_chance_canaries"]
    assert v["ch14_ext_reference_canaries"] < v["ch14_ext_ceiling_canaries"]
    assert v["ch14_ext_min_found_repeats"] >= 8
    assert v["ch14_ext_zlib_records"] <= v["ch14_ext_ceiling_records"] <= 2          # records do not come out
    # near misses: canary prefixes with a secret not their own, some another canary's
    assert 0 < v["ch14_ext_swapped"] <= v["ch14_ext_zlib_near_misses"] <= k - v["ch14_ext_zlib_canaries"]
    assert "canary-like but wrong" in outputs(executed)
    assert v["ch14_zlib_compressible"] == 0                                          # zlib shortens none
    assert (v["ch14_lit_memorised"], v["ch14_lit_checked"], v["ch14_lit_precision"],
            v["ch14_lit_best_precision"]) == (604, 1800, 33.5, 67)                  # LITERATURE_FIGURES.md
    table = next(t for t in tables(executed) if "canaries recovered" in t)
    rows = table_rows(table)
    assert set(rows) >= {"perplexity", "zlib", "reference"} and any(r.startswith("chance") for r in rows)
    lit = next(r for r in rows if r.startswith("Carlini et al. 2021"))
    assert "604 memorised" in rows[lit][0] and "33.5% of 1,800 checked (67% best)" in rows[lit][-1]
    assert int(rows["zlib"][0]) == v["ch14_ext_zlib_canaries"] and "16x" in rows["zlib"][1]


def test_membership(executed, v):
    assert v["ch14_held_out"] == 1000                                         # 0.1% FPR allows one false positive
    assert "UserWarning" not in outputs(executed)
    for name in ("loss", "reference"):
        assert 0.55 < v[f"ch14_mia_{name}_auc"] < 0.8                             # "weak but real"
        assert v[f"ch14_mia_{name}_tpr_0_001"] <= v[f"ch14_mia_{name}_tpr_0_01"] < 10
    # "the calibration does not help here"
    assert abs(v["ch14_mia_reference_auc"] - v["ch14_mia_loss_auc"]) < 0.05
    assert v["ch14_mia_reference_tpr_0_01"] <= v["ch14_mia_loss_tpr_0_01"]
    # the loss attack flags lines repeated 16 and 8 times, some at 4, none below; no never-inserted canary is
    # flagged by either attack (the reference model saw canary lines of the same format)
    assert v["ch14_mia_loss_flagged_16"] >= 3 and v["ch14_mia_loss_flagged_8"] >= 2
    assert v["ch14_mia_loss_flagged_0"] == v["ch14_mia_loss_flagged_1"] == v["ch14_mia_loss_flagged_2"] == 0
    assert v["ch14_mia_reference_flagged_0"] == 0 and v["ch14_mia_reference_flagged_8"] >= 2
    assert "TPR at 0.1% FPR" in next(t for t in tables(executed) if "AUC" in t)


def test_defences(executed, v):
    # exact dedup removes exactly the extra canary copies, and trains for about as many steps
    assert v["ch14_dedup_removed"] == v["ch14_dedup_expected"] == v["ch14_per_count"] * sum(r - 1 for r in INSERTIONS
                                                                                             if r > 1)
    assert abs(v["ch14_steps_dedup"] - v["ch14_steps_target"]) <= 0.1 * v["ch14_steps_target"]
    assert v["ch14_dedup_normalized_removed"] == v["ch14_dedup_removed"]
    assert v["ch14_dedup_ngram_extra"] == v["ch14_dedup_ngram_removed"] - v["ch14_dedup_removed"] > 0
    assert "a near-duplicate pair:" in outputs(executed)
    # dedup: 16x canaries fall into the one-insertion range; none reproduced; held-out loss nearly unchanged
    assert v["ch14_exp_min_1"] <= v["ch14_def_dedup_exp_16"] <= v["ch14_exp_max_1"]
    assert v["ch14_def_dedup_exp_16"] < v["ch14_def_none_exp_16"] - 5
    assert v["ch14_def_dedup_recovered"] < v["ch14_def_none_recovered"]
    assert v["ch14_def_dedup_ceiling"] < v["ch14_def_none_ceiling"]
    assert v["ch14_def_none_recovered"] >= v["ch14_per_count"]                  # at least the 16-times ones
    assert abs(v["ch14_def_dedup_held_bits"] - v["ch14_def_none_held_bits"]) < 0.15
    # DP-SGD: epsilon from chapter 11's accountant, recomputed; much worse model; rare canaries low, 16x high
    assert v["ch14_dp_eps"] == pytest.approx(v["ch14_dp_eps_check"], rel=1e-9) and 1 < v["ch14_dp_eps"] < 10
    assert v["ch14_dp_steps"] == round(6 / v["ch14_dp_q"])
    assert v["ch14_dp_delta"] == pytest.approx(1 / (10 * v["ch14_lines"]))
    assert v["ch14_def_dp_held_bits"] > 2 * v["ch14_def_none_held_bits"]
    assert v["ch14_def_dp_max_low"] == pytest.approx(max(v[f"ch14_def_dp_exp_{r}"] for r in (0, 1, 2, 4)))
    assert v["ch14_def_dp_max_low"] < v["ch14_def_none_exp_4"]
    assert v["ch14_def_dp_exp_16"] > v["ch14_def_dp_max_low"] + 3
    assert v["ch14_def_dp_rank_16"] == pytest.approx(v["ch14_space"] * 2 ** -v["ch14_def_dp_exp_16"])
    assert v["ch14_def_dp_recovered"] == v["ch14_def_dp_ceiling"] == 0        # "neither greedy nor samples"
    # what the guarantee allows: Pr[exposure >= e] <= e^eps 2^-e + delta
    eps, delta = v["ch14_dp_eps"], v["ch14_dp_delta"]
    assert v["ch14_dp_exposure_allowed"] == pytest.approx(eps * math.log2(math.e))
    assert v["ch14_dp_rank1_bound"] == pytest.approx(math.exp(eps) / v["ch14_space"] + delta)
    assert v["ch14_exp_max_1"] < v["ch14_dp_exposure_allowed"]                 # "within that"
    # group privacy (k eps, sum_{j<k} e^{j eps} delta): two copies cost 2 eps; vacuous (delta_k >= 1) from kv on
    assert v["ch14_group_eps"] == pytest.approx(16 * eps) and v["ch14_group_k"] == 16
    assert v["ch14_group2_eps"] == pytest.approx(2 * eps)
    assert v["ch14_group2_delta"] == pytest.approx(delta * (1 + math.exp(eps)), rel=1e-3)
    assert v["ch14_group2_delta"] < 1
    kv = int(v["ch14_group_vacuous_k"])
    assert sum(math.exp(j * eps) for j in range(kv)) * delta >= 1 > sum(math.exp(j * eps) for j in range(kv - 1)) * delta
    assert 2 < kv <= 16
    assert v["ch14_def_none_exp_16"] == v["ch14_exp_mean_16"]
    table = next(t for t in tables(executed) if "held-out bits/byte" in t)
    rows = table_rows(table.split("\n\n")[0])
    assert len(rows) == 3 and any(r.startswith("DP-SGD, ε = ") for r in rows)
    assert "greedy completion = canary" in table and "after deduplication each is present once" in table


def test_the_slider(executed):
    cell = slider_cell(executed, min_frames=len(INSERTIONS))
    assert "frame_slider(frames" in cell.source and 'label="insertions"' in cell.source


def test_prose_links_citations_and_exercises(executed):
    text = prose(executed)
    keys = ("carlini2019secret", "carlini2021extracting", "kandpal2022deduplicating", "lee2022deduplicating",
            "abadi2016deep", "mcmahan2018learning", "yeom2018privacy", "watson2022importance",
            "carlini2022membership", "greshake2023not", "wei2023jailbroken", "zou2023universal",
            "carlini2024poisoning", "nasr2023scalable")
    for key in keys:
        assert key in text, key
    for ref in ("ch-membership-inference", "ch-model-attacks", "ch-dp-sgd"):
        assert f"{{ref}}`{ref}`" in text
    assert "{prf:ref}`def-exposure`" in text and ":label: def-exposure" in text
    assert "(ch-language-models)=" in text and "# 14. Memorisation and privacy in language models" in text
    assert "exercises/14_language_models.ipynb" in text
    for term in ("canary", "exposure", "memorisation", "training-data extraction", "deduplication",
                 "prompt injection", "jailbreak", "membership inference", "DP-SGD"):
        assert re.search(r"\{term\}`" + term, text), term
    assert "Threat model" in text and "Beyond the survey" in text
    # the never-inserted canary's exposure is stated correctly: about 1 bit; log2 rank near log2|R| - 1
    assert "**exposure is about 1 bit**" in text and "the $\\log_2$ rank, not the exposure" in text
    assert "my pin is" not in text                                            # one prefix per canary now


def test_figures(executed):
    assert_figures_numbered_captioned_and_referenced(executed, prefix="fig-ch14-", at_least=3)
