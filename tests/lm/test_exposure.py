"""Exposure (Carlini et al. 2019) on a tiny LM trained with canaries inserted 0 to 16 times."""
import math

import pytest
import torch

from mlsec_kit import lm

DIGITS = 4
LOG2_R = math.log2(10 ** DIGITS)
REPEATS = [0] * 8 + [1, 1, 2, 2, 4, 16]


@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(0)
    cans = lm.random_canaries(len(REPEATS), template="my pin is {secret}", digits=DIGITS, repeats=REPEATS,
                              generator=g)
    corpus = lm.make_corpus(400, canaries=cans, generator=g)
    model = lm.tiny_lm(generator=g)
    lm.train_lm(model, corpus.texts, epochs=6, lr=1e-2, generator=g)
    exact = [lm.exposure(model, c) for c in cans]
    return model, cans, exact


def test_exposure_from_rank_counts_from_one():
    assert lm.exposure_from_rank(1, 1024) == 10.0
    assert lm.exposure_from_rank(512, 1024) == 1.0
    assert lm.exposure_from_rank(1024, 1024) == 0.0
    with pytest.raises(ValueError, match="rank"):
        lm.exposure_from_rank(0, 1024)
    with pytest.raises(ValueError, match="rank"):
        lm.exposure_from_rank(1025, 1024)
    assert lm.rank_of(torch.tensor([3.0, 1.0, 2.0]), 1) == 1 and lm.rank_of(torch.tensor([3.0, 1.0, 2.0]), 0) == 3


def test_a_canary_inserted_many_times_has_maximal_exposure(trained):
    model, cans, exact = trained
    top = cans[REPEATS.index(16)]
    assert exact[REPEATS.index(16)] == LOG2_R
    # the model's likeliest continuation of the prefix is the secret (what maximal exposure means)
    out = lm.generate(model, n=1, length=DIGITS, prompt=top.prefix, top_k=1, generator=torch.Generator())
    assert out[0] == top.text


def test_never_inserted_canaries_have_exposure_near_one(trained):
    # a secret the model never saw ranks uniformly at random: exposure = log2|R| - log2 rank averages ~1
    _, _, exact = trained
    unseen = [e for e, r in zip(exact, REPEATS) if r == 0]
    assert 0.3 < sum(unseen) / len(unseen) < 2.5
    assert max(unseen) < LOG2_R - 6


def test_exposure_grows_with_insertions(trained):
    _, _, exact = trained
    mean = {r: sum(e for e, q in zip(exact, REPEATS) if q == r) / REPEATS.count(r) for r in set(REPEATS)}
    assert mean[0] < mean[4] - 4 and mean[1] < mean[16] - 6 and mean[4] > 7


def test_estimate_agrees_with_exact_below_the_tail(trained):
    model, cans, exact = trained
    g = torch.Generator().manual_seed(5)
    diffs = []
    for c, e in zip(cans, exact):
        est = lm.exposure(model, c, method="estimate", generator=g)
        assert est >= 0
        if e <= LOG2_R - 4:  # ranks >= 16: the fitted distribution's body, where 2000 samples pin it down
            diffs.append(abs(est - e))
        elif e < LOG2_R:  # the tail: a normal fit (no skew) is 4 bits off here
            assert abs(est - e) < 2.0
        else:  # the top rank: exact saturates at log2|R|, the estimate reads further into the tail
            assert est > LOG2_R - 1
    # measured on this model: skew-normal fit within 0.12 bits (mean 0.04), a normal fit 0.51 (mean 0.16)
    assert len(diffs) >= 10 and max(diffs) < 0.35 and sum(diffs) / len(diffs) < 0.1


def test_digit_tree_scores_equal_direct_log_perplexity(trained):
    model, cans, _ = trained
    c = cans[0]
    tree = lm.candidate_scores(model, c, lm.secret_space(DIGITS))
    assert tree.shape == (10 ** DIGITS,)
    idx = torch.randperm(10 ** DIGITS, generator=torch.Generator().manual_seed(1))[:300].tolist()
    direct = lm.log_perplexity(model, [c.prefix + f"{i:04d}" for i in idx], start=len(c.prefix))
    assert torch.allclose(tree[idx], direct, atol=1e-6, rtol=1e-6)
    # the exact exposure is the rank within those scores
    own = int(c.secret)
    assert lm.exposure(model, c) == pytest.approx(LOG2_R - math.log2(1 + int((tree < tree[own]).sum())))


def test_explicit_and_sampled_candidate_sets(trained):
    model, cans, exact = trained
    top = cans[REPEATS.index(16)]
    assert lm.exposure(model, top, candidates=256, generator=torch.Generator().manual_seed(2)) == 8.0
    others = [s for s in lm.secret_space(DIGITS)[:101] if s != top.secret][:100]
    assert lm.exposure(model, top, candidates=others + [top.secret]) == pytest.approx(math.log2(101))
    with pytest.raises(ValueError, match="candidates"):  # a shorter candidate would win on fewer tokens
        lm.exposure(model, top, candidates=["12", top.secret])
    unseen = cans[0]
    e = lm.exposure(model, unseen, candidates=1000, generator=torch.Generator().manual_seed(3))
    assert 0 <= e <= math.log2(1000)


def test_bad_input_names_the_argument(trained):
    model, cans, _ = trained
    c = cans[0]
    with pytest.raises(ValueError, match="secret"):
        lm.exposure(model, lm.Canary(template="my pin is {secret}", secret="12a4"))
    with pytest.raises(ValueError, match="candidates"):
        lm.exposure(model, c, candidates=[])
    with pytest.raises(ValueError, match="candidates"):
        lm.exposure(model, c, candidates=["0000", "1111"] if c.secret not in ("0000", "1111") else ["2222"])
    with pytest.raises(ValueError, match="candidates"):
        lm.exposure(model, lm.Canary(template="pin {secret}", secret="1234567"))  # 10**7 > EXACT_LIMIT
    with pytest.raises(ValueError, match="method"):
        lm.exposure(model, c, method="approx")
    with pytest.raises(TypeError, match="canary"):
        lm.exposure(model, "my pin is 1234")
    with pytest.raises(ValueError, match="template"):
        lm.Canary(template="my pin is", secret="1234")


def test_cached_candidate_scores_equal_log_perplexity(trained):
    model, cans, _ = trained
    c = cans[-1]
    cands = [c.secret, "0000", "9999", "1234", "4321"]
    fast = lm.candidate_scores(model, c, cands)
    direct = lm.log_perplexity(model, [c.prefix + s for s in cands], start=len(c.prefix))
    assert torch.allclose(fast, direct, atol=1e-6, rtol=1e-6) and fast[0] < fast[1:].min()


def test_uncached_digit_tree_for_other_models():
    # the LSTM has no key/value cache: the tree runs full rows per level, and must give the same scores
    model = lm.tiny_lm(kind="lstm", d_model=16, layers=1, generator=torch.Generator().manual_seed(4))
    c = lm.Canary(template="pin {secret}", secret="042", repeats=0)
    tree = lm.candidate_scores(model, c, lm.secret_space(3))
    direct = lm.log_perplexity(model, [c.prefix + s for s in lm.secret_space(3)], start=len(c.prefix))
    assert torch.allclose(tree, direct, atol=1e-5, rtol=1e-6)


def test_estimate_works_where_exact_cannot(trained):
    model, _, _ = trained
    g = torch.Generator().manual_seed(6)
    unseen = lm.random_canaries(6, template="my pin is {secret}", digits=9, repeats=0, generator=g)
    est = [lm.exposure(model, c, method="estimate", samples=500, generator=g) for c in unseen]
    assert all(0 <= e < 12 for e in est) and sum(est) / len(est) < 4  # |R| = 10**9: log2|R| = 29.9
    with pytest.raises(ValueError, match="EXACT_LIMIT"):
        lm.exposure(model, unseen[0])


def test_exposures_share_one_digit_tree_per_prefix_and_equal_exposure(trained, monkeypatch):
    """review-kit14 #5b: canaries after one template get the same candidate scores; exposures computes them once
    per (prefix, digits) and returns exactly [exposure(model, c) for c in canaries]."""
    model, cans, exact = trained
    other = lm.Canary("bob's pin is {secret}", cans[0].secret, 0)
    import importlib
    mod = importlib.import_module("mlsec_kit.lm.exposure")   # the module (lm.exposure is the function)
    calls = []
    real = mod.candidate_scores
    monkeypatch.setattr(mod, "candidate_scores", lambda *a, **k: calls.append(a[1].prefix) or real(*a, **k))
    got = lm.exposures(model, cans + [other])
    assert got[:-1] == exact and got[-1] == lm.exposure(model, other)
    assert calls.count("my pin is ") == 1 and calls.count("bob's pin is ") == 2   # once here, once by exposure()
    est = lm.exposures(model, cans[:2], method="estimate", samples=200, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    assert est == [lm.exposure(model, c, method="estimate", samples=200, generator=g) for c in cans[:2]]
    with pytest.raises(TypeError, match="canaries must be a list of Canary objects"):
        lm.exposures(model, cans[0])
    with pytest.raises(ValueError, match="canaries is empty"):
        lm.exposures(model, [])
