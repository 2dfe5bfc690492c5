"""mlsec_kit.lm: every public function rejects bad input with a ValueError/TypeError that names the argument and
the accepted range, before torch, zlib or scipy fail somewhere deep (round-2 review of the kit)."""
import math

import pytest
import torch

from lm_attack_models import UniformLM
from mlsec_kit import lm


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def model():
    """An untrained tiny model with a short context: bad input must be caught whatever the weights."""
    return lm.tiny_lm(d_model=16, layers=1, heads=2, context=32, generator=gen())


CANARY = lm.Canary("my pin is {secret}", "12345", 1)


def test_corpus_arguments():
    for bad in (1.5, None, "ab", {"a": 1}):
        with pytest.raises(TypeError, match="repeats must be an int >= 0 or a sequence of k = 2"):
            lm.random_canaries(2, template="a {secret}", repeats=bad, generator=gen())
    # a tensor of counts is a sequence of counts
    cs = lm.random_canaries(2, template="a {secret}", repeats=torch.tensor([0, 3]), generator=gen())
    assert [c.repeats for c in cs] == [0, 3]
    with pytest.raises(ValueError, match="repeats must be an int >= 0"):
        lm.random_canaries(2, template="a {secret}", repeats=[1, -1], generator=gen())
    with pytest.raises(ValueError, match="digits must be an int >= 1"):
        lm.random_canaries(1, template="a {secret}", digits=0)
    with pytest.raises(TypeError, match="canaries must be a list of Canary objects"):
        lm.make_corpus(3, canaries=CANARY, generator=gen())
    with pytest.raises(ValueError, match="corpus is empty"):
        lm.make_corpus(0)


def test_tokenizer_decode_rejects_non_integer_ids():
    tok = lm.ByteTokenizer()
    with pytest.raises(TypeError, match="ids must be an integer tensor"):
        tok.decode(torch.tensor([65.7, 66.0]))   # was silently truncated to "AB"
    with pytest.raises(TypeError, match="ids must be a 1-D integer tensor or a list of ints"):
        tok.decode("ab")
    with pytest.raises(TypeError, match="ids must contain ints"):
        tok.decode([65, 1.5])
    with pytest.raises(ValueError, match=r"ids must be token ids in \[0, 259\)"):
        tok.decode([259])
    assert tok.decode(torch.tensor([256, 104, 105], dtype=torch.int32)) == "hi"


def test_training_helpers():
    with pytest.raises(ValueError, match="context must be an int >= 1, got 0"):
        lm.lm_rows(["ab"], context=0)
    with pytest.raises(ValueError, match="context must be an int >= 1"):
        lm.lm_rows(["ab"], context=1.5)
    with pytest.raises(ValueError, match=r"targets must be a LongTensor of shape \(N, L\) = \(2, 3\)"):
        lm.sequence_loss(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="logits must be a float tensor"):
        lm.sequence_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))


def test_next_token_logprobs_checks_prefixes(model):
    ok = torch.tensor([[lm.BOS, 65]])
    assert lm.next_token_logprobs(model, ok).shape == (1, lm.VOCAB_SIZE)
    with pytest.raises(ValueError, match=r"prefixes must have shape \(B, T\) with T >= 1"):
        lm.next_token_logprobs(model, torch.tensor([lm.BOS, 65]))
    with pytest.raises(ValueError, match=r"prefixes must have shape \(B, T\) with T >= 1"):
        lm.next_token_logprobs(model, torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(TypeError, match="prefixes must be an integer tensor"):
        lm.next_token_logprobs(model, torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"token ids in \[0, 259\)"):
        lm.next_token_logprobs(model, torch.tensor([[999]]))
    with pytest.raises(ValueError, match="at most the model's context of 32"):
        lm.next_token_logprobs(model, torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(TypeError, match="model must be a torch nn.Module"):
        lm.next_token_logprobs(None, ok)


def test_exposure_canary_longer_than_context_is_named(model):
    long = lm.Canary("a" * 30 + " {secret}", "12345", 1)
    for kw in ({}, {"candidates": ["12345", "54321"]}, {"method": "estimate", "samples": 10}):
        with pytest.raises(ValueError, match="canary: its prefix and a 5-byte secret take 36 tokens, more than "
                                             "the model's context of 32"):
            lm.exposure(model, long, generator=gen(), **kw)
    with pytest.raises(TypeError, match="candidates must be a sequence of strings"):
        lm.candidate_scores(model, CANARY, 5)
    with pytest.raises(ValueError, match="candidates is empty"):
        lm.candidate_scores(model, CANARY, [])
    with pytest.raises(TypeError, match="candidates must contain strings"):
        lm.candidate_scores(model, CANARY, ["12345", 12345])


def test_rank_of_checks_scores_and_index():
    s = torch.tensor([3.0, 1.0, 2.0])
    assert lm.rank_of(s, 0) == 3 and lm.rank_of(s, -1) == 2 and lm.rank_of(s, 1) == 1
    with pytest.raises(ValueError, match=r"index must be an int in \[-3, 3\)"):
        lm.rank_of(s, 3)
    with pytest.raises(ValueError, match="index must be an int"):
        lm.rank_of(s, 1.0)
    with pytest.raises(TypeError, match="scores must be a 1-D real tensor"):
        lm.rank_of([3.0, 1.0], 0)
    with pytest.raises(TypeError, match="scores must be a 1-D real tensor"):
        lm.rank_of(torch.zeros(2, 2), 0)
    with pytest.raises(ValueError, match="scores is empty"):
        lm.rank_of(torch.zeros(0), 0)
    # a NaN compares False with everything: the secret would get rank 1 (maximal exposure) by accident
    with pytest.raises(ValueError, match="NaN"):
        lm.rank_of(torch.tensor([float("nan"), 1.0]), 0)


def test_scoring_an_empty_or_too_long_text_is_named(model):
    # the empty text has log-perplexity 0 and would rank first as "memorised" under every metric
    with pytest.raises(ValueError, match=r"texts\[1\] is the empty string"):
        lm.extraction_scores(model, ["ab", ""], metric="zlib")
    with pytest.raises(ValueError, match=r"texts\[0\] is the empty string"):
        lm.bits_per_token(model, [""])
    with pytest.raises(ValueError, match=r"non_members\[0\] is the empty string"):
        lm.membership_report(model, ["ab"], [""])
    with pytest.raises(ValueError, match=r"texts\[0\] has 40 bytes, more than the model's context of 32"):
        lm.extraction_scores(model, ["x" * 40], metric="perplexity")
    with pytest.raises(ValueError, match=r"members\[1\] has 40 bytes, more than the model's context of 32"):
        lm.membership_report(model, ["ab", "x" * 40], ["cd"])
    with pytest.raises(ValueError, match=r"texts\[0\] has 40 bytes"):
        lm.reference_scores(model, [model, model], ["x" * 40])


def test_dedup_copies_index_is_checked():
    r = lm.deduplicate(["a", "b", "a"])
    assert r.copies(0) == 2 and r.copies(2) == 0
    with pytest.raises(ValueError, match=r"index must be an input index, an int in \[0, 3\)"):
        r.copies(3)


# ------------------------------------------------------------------------------ review-kit14 finding 1 and 7

def test_a_model_that_ties_every_candidate_gets_about_one_bit_not_the_maximum():
    """A uniform model ranks nothing: with 'ties count for the secret' it got exposure log2|R| (maximal)."""
    u = UniformLM()
    c = lm.Canary("my pin is {secret}", "1234", 1)
    size = 10 ** 4
    e = lm.exposure(u, c)
    assert e == pytest.approx(math.log2(size) - math.log2((size + 1) / 2), abs=1e-12)   # ≈ 1 bit
    assert lm.exposure(u, c, candidates=["1234", "0000", "9999"]) == pytest.approx(math.log2(3) - 1)
    # the estimate does not die in scipy's fit on constant scores: the secret ties with all of them
    assert lm.exposure(u, c, method="estimate", samples=50, generator=gen()) == 1.0


def test_rank_of_ties_rule():
    s = torch.tensor([2.0, 1.0, 2.0, 2.0, 3.0])
    assert lm.rank_of(s, 0) == 2                                  # default: 1 + #strictly lower (as before)
    assert lm.rank_of(s, 0, ties="average") == 2 + 2 / 2          # two other candidates tie with it
    assert lm.rank_of(s, 4, ties="average") == 5 and lm.rank_of(s, 1, ties="average") == 1
    with pytest.raises(ValueError, match="ties must be one of"):
        lm.rank_of(s, 0, ties="max")


def test_exposure_needs_two_candidates_and_the_estimate_ten(model):
    with pytest.raises(ValueError, match="at least 2 secrets"):
        lm.exposure(model, CANARY, candidates=["12345"])
    with pytest.raises(ValueError, match="at least 2 secrets"):
        lm.exposure(model, CANARY, candidates=1, generator=gen())
    with pytest.raises(ValueError, match=r"method='estimate' fits a distribution to at least 10 candidates, "
                                         r"got \|R\| = 3"):
        lm.exposure(model, CANARY, candidates=["12345", "00000", "99999"], method="estimate")
    one = lm.Canary("pin {secret}", "7", 1)
    assert 0 <= lm.exposure(model, one, method="estimate", generator=gen()) < 10   # |R| = 10 is enough


# ------------------------------------------------------------------------------------ review-kit14 finding 2

def test_the_per_line_epsilon_says_little_about_a_canary_repeated_r_times():
    """What training.py's docstring states about group privacy, computed: at train_lm_dp's defaults (σ = 1,
    q = 0.1, 60 steps, δ = 1/(10 n), n = 431 lines) ε ≈ 5; the group bound is (10, > 0.03) for r = 2 and has
    δ_r > 1 (no promise) for r = 3 and r = 16."""
    from mlsec_kit.dp import group_privacy
    from mlsec_kit.dp.accounting import rdp_epsilon
    n = 431
    delta = 1 / (10 * n)
    eps = rdp_epsilon(noise_multiplier=1.0, sample_rate=0.1, steps=60, delta=delta)
    assert 4.5 < eps < 5.5
    e2, d2 = group_privacy(epsilon=eps, delta=delta, k=2)
    assert e2 == pytest.approx(2 * eps) and d2 > 0.03 > 100 * delta
    assert group_privacy(epsilon=eps, delta=delta, k=3)[1] > 1
    assert group_privacy(epsilon=eps, delta=delta, k=16)[1] > 1


# ------------------------------------------------------------------------------------ review-kit14 finding 6

def test_random_canaries_take_one_template_per_canary():
    names = lm.NAMES[:4]
    templates = [f"{n}'s pin is {{secret}}" for n in names]
    cs = lm.random_canaries(4, template=templates, digits=4, repeats=[0, 1, 4, 16], generator=gen(2))
    assert [c.prefix for c in cs] == [f"{n}'s pin is " for n in names]
    assert [c.repeats for c in cs] == [0, 1, 4, 16] and len({c.secret for c in cs}) == 4
    # the same draws as with one shared template: only the templates differ
    shared = lm.random_canaries(4, template="pin {secret}", digits=4, repeats=[0, 1, 4, 16], generator=gen(2))
    assert [c.secret for c in cs] == [c.secret for c in shared]
    with pytest.raises(ValueError, match="template must be a str or a list of k = 4 templates, got 3"):
        lm.random_canaries(4, template=templates[:3], generator=gen())
    with pytest.raises(ValueError, match=r"template\[1\] must contain the slot"):
        lm.random_canaries(2, template=["a {secret}", "b"], generator=gen())
    with pytest.raises(TypeError, match="template must be a str or a list"):
        lm.random_canaries(2, template=None, generator=gen())


# ------------------------------------------------------------------------------------ review-kit14 finding 9

def test_log_perplexity_start_accepts_numpy_and_tensor_ints_and_names_start(model):
    import numpy as np
    texts = ["my pin is 12345", "my pin is 54321"]
    want = lm.log_perplexity(model, texts, start=10)
    for s in (np.int64(10), torch.tensor(10), [10, np.int32(10)], torch.tensor([10, 10]), np.array([10, 10])):
        assert torch.equal(lm.log_perplexity(model, texts, start=s), want)
    for bad in (10.0, "10", torch.tensor(1.5)):
        with pytest.raises((TypeError, ValueError), match="start must be"):
            lm.log_perplexity(model, texts, start=bad)


def test_training_lines_longer_than_the_context_are_cut_with_a_warning_naming_texts():
    with pytest.warns(UserWarning, match="texts: 1 of 2 lines are longer than the context of 8 tokens"):
        x, y = lm.lm_rows(["short", "a line of forty bytes, too long for 8 b"], context=8)
    assert x.shape == (2, 8)
    m = lm.tiny_lm(d_model=8, layers=1, heads=2, context=8, generator=gen())
    with pytest.warns(UserWarning, match="texts: 1 of 2 lines"):
        lm.train_lm(m, ["short", "x" * 9], epochs=1, generator=gen())
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm.lm_rows(["12345678", "ab"], context=8)      # 8 bytes fit 8 tokens (only the EOS is lost): no warning


def test_a_tiny_temperature_is_greedy_decoding_not_a_torch_error(model):
    """logits / 1e-300 overflowed float32 and torch.multinomial failed on inf/nan (review-kit14 #9)."""
    greedy = lm.generate(model, n=2, length=6, prompt="my pin is ", top_k=1, generator=gen(1))
    for t in (1e-45, 1e-300):
        assert lm.generate(model, n=2, length=6, prompt="my pin is ", temperature=t, generator=gen(1)) == greedy
    # an ordinary temperature draws exactly as before (the shift is only taken when logits / t overflows)
    a = lm.generate(model, n=3, length=5, temperature=0.7, generator=gen(4))
    b = lm.generate(model, n=3, length=5, temperature=0.7, generator=gen(4))
    assert a == b and len(set(a)) > 1
