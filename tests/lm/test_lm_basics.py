"""mlsec_kit.lm: tokenizer, corpus, model, training (plain and DP), log-perplexity, generation, bad input."""
import math

import pytest
import torch

from mlsec_kit import lm
from mlsec_kit.dp.accounting import rdp_epsilon


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ tokenizer

def test_tokenizer_roundtrip_and_batch():
    tok = lm.ByteTokenizer()
    assert tok.vocab_size == 259 and (tok.bos, tok.eos, tok.pad) == (256, 257, 258)
    ids = tok.encode("pin é 42")
    assert ids.dtype == torch.long and ids.tolist() == list("pin é 42".encode())
    assert tok.decode(ids) == "pin é 42"
    assert tok.decode([256, 104, 105, 257, 120]) == "hi"  # BOS skipped, stops at EOS
    b = tok.batch(["ab", "abcdef"], length=5)
    assert b.tolist() == [[256, 97, 98, 257, 258], [256, 97, 98, 99, 100]]
    with pytest.raises(ValueError, match="length"):
        tok.batch(["a"], length=1)
    with pytest.raises(TypeError, match="texts"):
        tok.batch("abc", length=4)


# ---------------------------------------------------------------------------------------------------- corpus

def test_canary_and_template_validation():
    c = lm.Canary(template="my pin is {secret}!", secret="0042", repeats=3)
    assert (c.prefix, c.suffix, c.text) == ("my pin is ", "!", "my pin is 0042!")
    for bad in ("my pin is", "{secret} and {secret}"):
        with pytest.raises(ValueError, match="template"):
            lm.Canary(template=bad, secret="1")
        with pytest.raises(ValueError, match="template"):
            lm.random_canaries(2, template=bad, generator=gen())
    with pytest.raises(ValueError, match="repeats"):
        lm.Canary(template="x {secret}", secret="1", repeats=-1)
    with pytest.raises(ValueError, match="repeats"):
        lm.random_canaries(2, template="x {secret}", repeats=[1, 2, 3], generator=gen())
    with pytest.raises(ValueError, match="k must be at most"):
        lm.random_canaries(11, template="x {secret}", digits=1, generator=gen())


def test_secret_space():
    s = lm.secret_space(3)
    assert len(s) == 1000 and s[0] == "000" and s[42] == "042" and s[-1] == "999"
    assert "042" in s and "42" not in s and "04a" not in s
    assert list(s)[:3] == ["000", "001", "002"] and s.index("917") == 917


def test_random_canaries_distinct_and_seeded():
    a = lm.random_canaries(50, template="pin {secret}", digits=2, repeats=2, generator=gen(1))
    b = lm.random_canaries(50, template="pin {secret}", digits=2, repeats=2, generator=gen(1))
    assert a == b
    secrets = [c.secret for c in a]
    assert len(set(secrets)) == 50 and all(len(x) == 2 and x.isdigit() for x in secrets)
    assert lm.random_canaries(50, template="pin {secret}", digits=2, generator=gen(2)) != a


def test_make_corpus_inserts_each_canary_repeats_times():
    cans = lm.random_canaries(3, template="my pin is {secret}", digits=4, repeats=[0, 2, 5], generator=gen())
    c = lm.make_corpus(100, canaries=cans, generator=gen(3))
    assert len(c.records) == 100 and len(c.texts) == 107
    for k in cans:
        assert c.texts.count(k.text) == k.repeats
    assert sorted(c.texts) == sorted(c.records + [k.text for k in cans for _ in range(k.repeats)])
    assert c.texts != c.records + [k.text for k in cans for _ in range(k.repeats)]  # shuffled
    assert lm.make_corpus(100, canaries=cans, generator=gen(3)) == c
    assert len(set(c.records)) > 90  # records vary
    own = lm.make_corpus(["a b", "c d"], canaries=cans[1:2], generator=gen())
    assert sorted(own.texts) == sorted(["a b", "c d", cans[1].text, cans[1].text])
    with pytest.raises(ValueError, match="empty"):
        lm.make_corpus(0, generator=gen())
    with pytest.raises(TypeError, match="records"):
        lm.make_corpus("abc", generator=gen())


# ----------------------------------------------------------------------------------------------------- model

@pytest.mark.parametrize("kind", lm.KINDS)
def test_tiny_lm_shapes_causality_and_seed(kind):
    m = lm.tiny_lm(kind=kind, d_model=32, layers=1, heads=2, context=16, generator=gen())
    x = torch.randint(0, 256, (3, 10), generator=gen())
    out = m(x)
    assert out.shape == (3, 10, lm.VOCAB_SIZE)
    y = x.clone()
    y[:, 6:] = 7  # changing later tokens leaves earlier outputs unchanged
    assert torch.allclose(m(y)[:, :6], out[:, :6], atol=1e-5)
    assert not torch.allclose(m(y)[:, 6:], out[:, 6:])
    same = lm.tiny_lm(kind=kind, d_model=32, layers=1, heads=2, context=16, generator=gen())
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), same.parameters()))
    with pytest.raises(ValueError, match="context"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_tiny_lm_bad_input():
    with pytest.raises(ValueError, match="kind"):
        lm.tiny_lm(kind="gru")
    with pytest.raises(ValueError, match="d_model"):
        lm.tiny_lm(d_model=30, heads=4)
    with pytest.raises(ValueError, match="context"):
        lm.tiny_lm(context=1)


# ------------------------------------------------------------------------------------------- log-perplexity

def test_log_perplexity_matches_manual_sum_and_start():
    m = lm.tiny_lm(d_model=32, layers=1, heads=2, context=32, generator=gen())
    texts = ["my pin is 1234", "hello", "ab"]
    full = lm.log_perplexity(m, texts)
    with torch.no_grad():
        for i, t in enumerate(texts):
            ids = [lm.BOS] + list(t.encode())
            lp = torch.log_softmax(m(torch.tensor([ids[:-1]])).double(), -1)[0]
            manual = -sum(float(lp[j, ids[j + 1]]) for j in range(len(ids) - 1)) / math.log(2)
            assert full[i].item() == pytest.approx(manual, rel=1e-6)
    # the secret's part: the whole minus the prefix's (start counts only the tokens from there on)
    secret = lm.log_perplexity(m, ["my pin is 1234"], start=10)
    prefix = lm.log_perplexity(m, ["my pin is "])
    assert secret.item() == pytest.approx(full[0].item() - prefix.item(), rel=1e-6)
    assert 0 < secret.item() < full[0].item()
    per = lm.log_perplexity(m, texts, start=[10, 0, 2])
    assert per[2].item() == 0 and per[1].item() == pytest.approx(full[1].item())
    with pytest.raises(ValueError, match="start"):
        lm.log_perplexity(m, texts, start=3)  # beyond "ab"
    with pytest.raises(ValueError, match="texts"):
        lm.log_perplexity(m, ["x" * 33])
    with pytest.raises(ValueError, match="texts"):
        lm.log_perplexity(m, [])


# ---------------------------------------------------------------------------------------------- training

def test_train_lm_lowers_the_loss_of_training_lines_and_is_seeded():
    texts = lm.make_corpus(60, generator=gen()).texts
    m1 = lm.tiny_lm(d_model=32, layers=1, heads=2, context=48, generator=gen(1))
    before = lm.log_perplexity(m1, texts).mean()
    h = lm.train_lm(m1, texts, epochs=6, batch_size=16, lr=1e-2, generator=gen(2))
    after = lm.log_perplexity(m1, texts).mean()
    assert h.epochs == 6 and h.train_loss[-1] < h.train_loss[0] and after < 0.7 * before
    m2 = lm.tiny_lm(d_model=32, layers=1, heads=2, context=48, generator=gen(1))
    lm.train_lm(m2, texts, epochs=6, batch_size=16, lr=1e-2, generator=gen(2))
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    with pytest.raises(ValueError, match="epochs"):
        lm.train_lm(m2, texts, epochs=0)
    with pytest.raises(ValueError, match="lr"):
        lm.train_lm(m2, texts, lr=-1.0)
    with pytest.raises(ValueError, match="context"):
        lm.train_lm(m2, texts, context=49)


def test_sequence_loss_ignores_padding():
    logits = torch.randn(2, 5, lm.VOCAB_SIZE, generator=gen())
    y = torch.tensor([[1, 2, 3, lm.PAD, lm.PAD], [4, 5, 6, 7, 8]])
    loss = lm.sequence_loss(logits, y)
    ref = torch.nn.functional.cross_entropy(logits[0, :3], y[0, :3])
    assert loss.shape == (2,) and loss[0].item() == pytest.approx(ref.item(), rel=1e-6)


def test_train_lm_dp_reports_the_accountants_epsilon_and_learns():
    texts = lm.make_corpus(80, generator=gen()).texts
    m = lm.tiny_lm(d_model=16, layers=1, heads=2, context=48, generator=gen(1))
    before = lm.log_perplexity(m, texts).mean()
    h = lm.train_lm_dp(m, texts, epochs=2, sample_rate=0.25, max_grad_norm=1.0, noise_multiplier=0.8,
                       delta=1e-3, lr=1e-2, generator=gen(2))
    assert h.steps == [4, 8]
    assert h.epsilon[-1] == pytest.approx(rdp_epsilon(noise_multiplier=0.8, sample_rate=0.25, steps=8, delta=1e-3))
    assert lm.log_perplexity(m, texts).mean() < before
    with pytest.raises(ValueError, match="noise_multiplier"):
        lm.train_lm_dp(m, texts, epochs=1, noise_multiplier=0.0, generator=gen())


# ---------------------------------------------------------------------------------------------- generation

def test_generate_greedy_follows_argmax_and_respects_arguments():
    m = lm.tiny_lm(d_model=32, layers=1, heads=2, context=24, generator=gen())
    out = lm.generate(m, n=3, length=8, prompt="ab", top_k=1, generator=gen())
    assert len(out) == 3 and len(set(out)) == 1 and out[0].startswith("ab")
    # greedy by hand
    ids = [lm.BOS] + list(b"ab")
    with torch.no_grad():
        for _ in range(8):
            logits = m(torch.tensor([ids]))[0, -1]
            logits[[lm.BOS, lm.PAD]] = -math.inf
            nxt = int(logits.argmax())
            ids.append(nxt)
            if nxt == lm.EOS:
                break
    assert out[0] == lm.ByteTokenizer().decode(ids)
    cold = lm.generate(m, n=3, length=8, prompt="ab", temperature=1e-4, generator=gen(3))
    assert cold == out  # temperature -> 0 is greedy decoding
    samples = lm.generate(m, n=20, length=5, generator=gen(1))
    assert len(set(samples)) > 10  # sampling at temperature 1 varies
    assert samples == lm.generate(m, n=20, length=5, generator=gen(1))
    long = lm.generate(m, n=2, length=40, generator=gen(2))  # past the context of 24
    assert all(isinstance(s, str) for s in long)
    for kw, name in (({"temperature": 0}, "temperature"), ({"top_k": 0}, "top_k"), ({"n": 0}, "n"),
                     ({"length": 0}, "length")):
        args = {"n": 1, "length": 2, **kw}
        with pytest.raises(ValueError, match=name):
            lm.generate(m, **args)
