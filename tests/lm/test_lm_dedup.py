"""Corpus deduplication (Kandpal et al. 2022; Lee et al. 2022): exact, normalised and n-gram near-duplicates."""
import pytest
import torch

from lm_attack_models import _train, target_and_corpus
from mlsec_kit.lm.dedup import deduplicate, jaccard, ngrams, normalize
from mlsec_kit.lm.extraction import extract


def _corpus(seed):
    """Distinct random records, and a canary line repeated a random number of times at random places."""
    g = torch.Generator().manual_seed(seed)
    names = ["ada", "bob", "cyd", "dee", "eve", "fay", "gus", "hal"]
    records = []
    for i in range(30):
        name = names[int(torch.randint(len(names), (1,), generator=g))]
        num = int(torch.randint(10 ** 5, 10 ** 6, (1,), generator=g))
        records.append(f"{name} {i} lives at {num} park road")
    repeats = int(torch.randint(2, 9, (1,), generator=g))
    canary = f"my pin is {int(torch.randint(10 ** 5, 10 ** 6, (1,), generator=g))}"
    texts = list(records)
    for _ in range(repeats):
        texts.insert(int(torch.randint(len(texts) + 1, (1,), generator=g)), canary)
    return texts, canary, repeats


@pytest.mark.parametrize("seed", range(5))
def test_exact_keeps_one_copy_of_a_repeated_canary_and_every_distinct_record(seed):
    texts, canary, repeats = _corpus(seed)
    before = list(texts)
    out = deduplicate(texts, method="exact")
    assert texts == before                                   # input not modified
    assert out.removed == repeats - 1
    assert out.texts.count(canary) == 1
    assert len(out.texts) == len(set(texts)) == len(texts) - out.removed
    first = texts.index(canary)
    assert out.copies(first) == repeats
    # kept lines are in their original order, and every removed line points at a kept, earlier, equal line
    assert out.kept == sorted(out.kept) and [texts[k] for k in out.kept] == out.texts
    for j, i in enumerate(out.duplicate_of):
        assert i <= j and i in out.kept and texts[i] == texts[j]


def test_normalized_merges_case_space_and_punctuation_variants_that_exact_keeps():
    texts = ["My PIN is 381925.", "my pin is  381925", "my pin is 381925!", "my pin is 381926"]
    assert deduplicate(texts, method="exact").removed == 0
    out = deduplicate(texts, method="normalized")
    assert out.removed == 2 and out.texts == ["My PIN is 381925.", "my pin is 381926"]
    assert out.duplicate_of == [0, 0, 0, 3]
    assert normalize("  A\tB,  c!! ") == "a b c"


def test_ngram_merges_near_duplicates_by_jaccard_threshold():
    a = "alice smith lives at 12 park road in springfield"
    b = "alice smith lives at 12 park road in springfeld"      # one typo
    c = "bob jones works at the bakery on market street"
    s = jaccard(a, b, n=5)
    assert 0.7 < s < 1.0 and jaccard(a, c, n=5) < 0.2
    assert deduplicate([a, b, c], method="normalized").removed == 0
    assert deduplicate([a, b, c], method="ngram", threshold=s - 1e-9).texts == [a, c]
    assert deduplicate([a, b, c], method="ngram", threshold=s + 1e-9).removed == 0   # the cut is the threshold


def test_ngram_jaccard_matches_the_set_definition_on_random_lines():
    g = torch.Generator().manual_seed(1)
    alphabet = "abc "
    texts = ["".join(alphabet[int(i)] for i in torch.randint(4, (12,), generator=g)) for _ in range(40)]
    out = deduplicate(texts, method="ngram", n=3, threshold=0.5)
    # brute force the same greedy rule with the pure-Python Jaccard
    kept = []
    for j, t in enumerate(texts):
        if not any(jaccard(texts[i], t, n=3) >= 0.5 for i in kept):
            kept.append(j)
    assert out.kept == kept and out.removed == len(texts) - len(kept) > 0


def test_ngram_removes_a_later_line_only_through_a_kept_line():
    # b is similar to a and c, a and c are not similar: b goes (copy of a), c stays although similar to b
    a, b, c = "aaaaabbbbb", "aaabbbbbcc", "abbbbbcccc"
    t = 0.5
    assert jaccard(a, b, n=2) >= t and jaccard(b, c, n=2) >= t and jaccard(a, c, n=2) < t
    out = deduplicate([a, b, c], method="ngram", n=2, threshold=t)
    assert out.texts == [a, c] and out.duplicate_of == [0, 0, 2]


def test_short_and_empty_lines():
    assert ngrams("ab", n=5) == {"ab"} and ngrams("?!", n=5) == set()
    out = deduplicate(["ab", "AB", "", "...", "abc"], method="ngram", n=5, threshold=1.0)
    assert out.texts == ["ab", "", "abc"]
    assert deduplicate([], method="ngram").removed == 0


@pytest.mark.parametrize("kwargs, name", [
    (dict(method="minhash"), "method"), (dict(n=0), "n"), (dict(n=2.0), "n"),
    (dict(threshold=0.0), "threshold"), (dict(threshold=1.5), "threshold"),
])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        deduplicate(["a", "b"], **kwargs)


def test_texts_must_be_a_list_of_strings():
    with pytest.raises(TypeError, match="texts"):
        deduplicate("one string")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        deduplicate(["a", 3])


def test_deduplication_defends_a_trained_lm_against_extraction_of_repeated_canaries():
    target, corpus = target_and_corpus()
    out = deduplicate(corpus.texts)
    assert out.removed == sum(c.repeats - 1 for c in corpus.canaries if c.repeats > 0)
    assert all(out.texts.count(c.text) == (c.repeats > 0) for c in corpus.canaries)
    deduped = _train(out.texts, 1)                      # the target's recipe and seed, on the deduplicated lines
    for seed in range(3):
        kw = dict(n=30, length=10, k=2, prompt="my pin is ", targets=corpus.canaries)
        before = extract(target, generator=torch.Generator().manual_seed(seed), **kw)
        after = extract(deduped, generator=torch.Generator().manual_seed(seed), **kw)
        assert before.recovered["zlib"] == 2 and after.ceiling == after.recovered["zlib"] == 0


def test_what_deduplication_does_not_do():
    """The module docstring's two caveats (review-kit14 #8): whole lines only (no ExactSubstr), and near-dup
    merges distinct records of one template."""
    a, b = "dave lives in lagos and was born in 1966", "dave lives in lagos and was born in 1978"
    assert jaccard(a, b) > 0.8
    assert deduplicate([a, b], method="ngram").removed == 1 and deduplicate([a, b], method="exact").removed == 0
    inside = ["call me, my pin is 123456", "my pin is 123456, thanks"]
    for method in ("exact", "normalized", "ngram"):
        assert deduplicate(inside, method=method).removed == 0
