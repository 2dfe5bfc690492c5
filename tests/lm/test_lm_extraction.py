"""Training-data extraction from samples (Carlini et al. 2021): the three metrics, the ranking, the counts."""
import math
import zlib
from itertools import combinations

import pytest
import torch

from lm_attack_models import REPEATS, UniformLM, trained
from mlsec_kit import lm
from mlsec_kit.lm.extraction import _chance, contains, extract, extraction_scores, zlib_entropy


def test_zlib_entropy_is_the_bits_of_the_compressed_utf8_bytes():
    for t in ["", "my pin is 381925", "é" * 30, "abcabcabcabcabcabcabcabc"]:
        assert zlib_entropy(t) == 8 * len(zlib.compress(t.encode("utf-8")))
    assert zlib_entropy("ab" * 20) < zlib_entropy("the account of bob in oslo is 881203")


def test_metrics_are_the_ratios_they_claim():
    target, reference, corpus, _ = trained()
    texts = corpus.records[:5] + [c.text for c in corpus.canaries]
    bits = lm.log_perplexity(target, texts)
    ref_bits = lm.log_perplexity(reference, texts)
    nbytes = torch.tensor([len(t.encode()) for t in texts], dtype=torch.float64)
    zbits = torch.tensor([zlib_entropy(t) for t in texts], dtype=torch.float64)
    assert torch.allclose(extraction_scores(target, texts, metric="perplexity"), bits / nbytes)
    assert torch.allclose(extraction_scores(target, texts, metric="zlib"), bits / zbits)
    assert torch.allclose(extraction_scores(target, texts, metric="reference", reference=reference), bits / ref_bits)


def test_perplexity_is_per_token_so_length_does_not_matter_to_a_model_that_knows_nothing():
    s = extraction_scores(UniformLM(), ["ab", "abcdefghij" * 3], metric="perplexity")
    assert torch.allclose(s, torch.full((2,), math.log2(259), dtype=torch.float64))


def test_zlib_ratio_discounts_repetitive_text_that_the_model_has_not_memorised():
    # To a model that knows nothing every byte costs log2(259) bits, so perplexity cannot tell the two apart, but
    # zlib compresses the repetitive one well: its ratio is high (not suspicious); an inverted ratio would rank it
    # first.
    texts = ["0101010101010101010101010101010101010101", "flight 4410 from oslo to lima is late ok"]
    assert len(texts[0]) == len(texts[1])
    ppl = extraction_scores(UniformLM(), texts, metric="perplexity")
    z = extraction_scores(UniformLM(), texts, metric="zlib")
    assert ppl[0] == ppl[1] and z[0] > 1.5 * z[1]


def test_reference_ratio_flags_the_memorised_canary_and_not_the_records_both_models_know():
    target, reference, corpus, _ = trained()
    canary = [c for c in corpus.canaries if c.repeats == max(REPEATS)][0].text
    s = extraction_scores(target, corpus.records[:100] + [canary], metric="reference", reference=reference)
    assert s[-1] < 0.5 * s[:-1].median()
    # the reference model alone does not know the secret: the canary's ratio to itself is 1
    assert extraction_scores(reference, [canary], metric="reference", reference=reference).item() == pytest.approx(1)


def test_contains_matches_canary_text_and_strings_verbatim():
    c = lm.Canary(template="my pin is {secret}", secret="123456", repeats=3)
    hit = contains(["xx my pin is 123456 yy", "my pin is 12345", "bob"], [c, "bob"])
    assert hit.tolist() == [[True, False], [False, False], [False, True]]
    assert contains([], [c]).shape == (0, 1)


def test_chance_is_the_expected_count_of_k_random_samples():
    hit = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=torch.bool)
    for k in range(1, 6):
        subsets = list(combinations(range(5), k))
        exact = sum(int(hit[list(s)].any(0).sum()) for s in subsets) / len(subsets)
        assert _chance(hit, k) == pytest.approx(exact)


def test_extract_recovers_the_canaries_inserted_many_times_and_ranks_ascending():
    target, reference, corpus, _ = trained()
    res = extract(target, n=200, length=40, k=20, targets=corpus.canaries, reference=reference,
                  generator=torch.Generator().manual_seed(1))
    assert res.num_generated == 200 and len(res.samples) == len(set(res.samples)) <= 200
    often = [i for i, c in enumerate(corpus.canaries) if c.repeats >= 16]
    never = [i for i, c in enumerate(corpus.canaries) if c.repeats == 0]
    for m in ("perplexity", "zlib", "reference"):
        s = res.scores[m]
        assert [s[i].item() for i in res.ranking[m]] == sorted(s.tolist())      # lowest score first
        assert res.top[m] == [res.samples[i] for i in res.ranking[m][:20]]
        assert set(often) <= set(res.found[m]) and not set(never) & set(res.found[m])
        assert res.recovered[m] == len(res.found[m]) <= res.ceiling
        assert res.recovered[m] > res.chance + 1                                 # far better than k random samples
    assert res.chance == pytest.approx(_chance(res.hits, 20))


def test_extract_on_given_samples_and_its_determinism():
    target, _, corpus, _ = trained()
    canary = [c for c in corpus.canaries if c.repeats == max(REPEATS)][0]
    samples = ["zq" * 10, "the account of bob", canary.text, "xxxxk lives in", "", canary.text]
    res = extract(target, n=1, length=1, k=1, targets=[canary], samples=samples, metrics="zlib")
    assert res.top["zlib"] == [canary.text] and res.recovered == {"zlib": 1} and res.num_generated == 6
    assert len(res.samples) == 4                                                # duplicate and empty dropped
    kw = dict(n=20, length=30, k=5, targets=corpus.canaries)
    a = extract(target, generator=torch.Generator().manual_seed(3), **kw)
    b = extract(target, generator=torch.Generator().manual_seed(3), **kw)
    assert a.samples == b.samples and a.ranking == b.ranking and set(a.scores) == {"perplexity", "zlib"}


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0), "n"), (dict(length=0), "length"), (dict(k=0), "k"), (dict(k=1.5), "k"),
    (dict(metrics=["entropy"]), "metrics"), (dict(metrics=[]), "metrics"),
    (dict(metrics="reference"), "reference"),
])
def test_extract_bad_arguments_are_named(kwargs, name):
    args = dict(n=2, length=4, k=1) | kwargs
    with pytest.raises(ValueError, match=name):
        extract(UniformLM(), **args)


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="model"):
        extraction_scores("gpt", ["a"])
    with pytest.raises(ValueError, match="metric"):
        extraction_scores(UniformLM(), ["a"], metric="lowercase")
    with pytest.raises(ValueError, match="reference"):
        extraction_scores(UniformLM(), ["a"], metric="reference")
    with pytest.raises(ValueError, match="texts"):
        extraction_scores(UniformLM(), [])
    with pytest.raises(TypeError, match=r"targets\[0\]"):
        extract(UniformLM(), n=2, length=4, k=1, targets=[3])
    with pytest.raises(TypeError, match="targets"):
        contains(["a"], "a")
    with pytest.raises(ValueError, match="samples"):
        extract(UniformLM(), n=1, length=1, k=1, samples=["", ""])
    with pytest.raises(TypeError, match="text"):
        zlib_entropy(b"bytes")


@pytest.mark.parametrize("seed", range(3))
def test_a_prompt_with_the_canary_prefix_puts_the_memorised_secrets_on_top(seed):
    target, reference, corpus, _ = trained()
    res = extract(target, n=30, length=10, k=2, prompt="my pin is ", targets=corpus.canaries, reference=reference,
                  generator=torch.Generator().manual_seed(seed))
    assert all(s.startswith("my pin is ") for s in res.samples)
    often = sorted(i for i, c in enumerate(corpus.canaries) if c.repeats >= 16)
    for m in ("perplexity", "zlib", "reference"):
        assert res.found[m] == often and res.recovered[m] > res.chance


def test_near_duplicates_keeps_one_variant_of_a_memorised_string_in_the_top_k():
    """Carlini et al. 2021 drop near-duplicates from their top lists; without it the k guesses can be k one-digit
    variants of one canary (review-kit14 #5)."""
    target, _, corpus, _ = trained()
    canary = [c for c in corpus.canaries if c.repeats == max(REPEATS)][0]
    variants = [canary.prefix + canary.secret[:-1] + d for d in "0123456789" if d != canary.secret[-1]]
    other = "flight 1234 from oslo to lima is late"
    samples = [canary.text] + variants[:3] + [other]
    plain = extract(target, n=1, length=1, k=2, targets=[canary, other], samples=samples, metrics="perplexity")
    assert plain.top["perplexity"][0] == canary.text and plain.top["perplexity"][1] in variants
    assert plain.recovered["perplexity"] == 1
    spread = extract(target, n=1, length=1, k=2, targets=[canary, other], samples=samples, metrics="perplexity",
                     near_duplicates=0.8)
    assert spread.top["perplexity"] == [canary.text, other] and spread.found["perplexity"] == [0, 1]
    assert spread.ranking == plain.ranking                     # the ranking itself is unchanged
    # fewer than k when every remaining sample is a near-duplicate
    few = extract(target, n=1, length=1, k=3, samples=[canary.text] + variants[:3], metrics="zlib",
                  near_duplicates=0.8)
    assert few.top["zlib"] == [few.samples[few.ranking["zlib"][0]]]
    # two DIFFERENT canaries after one template: 0.8 keeps both, 0.5 (the paper's value, for long web text and word
    # trigrams) merges them and loses one — what the docstring warns about
    two = [c for c in corpus.canaries if c.repeats >= 16]
    kw = dict(n=1, length=1, k=2, targets=two, samples=[c.text for c in two] + [other], metrics="zlib")
    assert extract(target, near_duplicates=0.8, **kw).recovered["zlib"] == 2
    assert extract(target, near_duplicates=0.5, **kw).recovered["zlib"] == 1
    for bad in (0, 1.5, True, "half"):
        with pytest.raises(ValueError, match=r"near_duplicates must be None or a fraction in \(0, 1\]"):
            extract(target, n=1, length=1, k=1, samples=samples, near_duplicates=bad)


def test_zlib_ratio_ranks_like_the_papers_form_only_for_equal_lengths():
    """What the module docstring states: the paper's score (nats per token / zlib bytes) is the kit's (bits /
    zlib bits) times 8 ln2 / T, so the two orders agree on samples of one length and may not otherwise."""
    target, _, corpus, _ = trained()

    def paper(model, texts):
        nats_per_token = lm.log_perplexity(model, texts) * math.log(2) / torch.tensor([len(t) for t in texts])
        return nats_per_token / torch.tensor([len(zlib.compress(t.encode())) for t in texts])

    same = sorted({r[:24] for r in corpus.records if len(r) >= 24})[:40]
    assert len({len(t) for t in same}) == 1
    assert torch.equal(extraction_scores(target, same, metric="zlib").argsort(), paper(target, same).argsort())
    mixed = ["ab", "abcdefghijklmnopqrstuvwxyz"]
    kit, pap = extraction_scores(UniformLM(), mixed, metric="zlib"), paper(UniformLM(), mixed)
    assert kit[0] < kit[1] and pap[0] > pap[1]
