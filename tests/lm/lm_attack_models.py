"""Models shared by the LM attack tests: a tiny byte-level LM trained on a synthetic corpus with canaries inserted
0, 1, 16 and 32 times, a reference LM trained on held-out records only, and a model that knows nothing (uniform
next-byte distribution), built once per test process."""
from functools import lru_cache

import torch
from torch import nn

from mlsec_kit import lm

REPEATS = (0, 1, 16, 32)


class UniformLM(nn.Module):
    """Every next byte equally likely: log-perplexity is exactly ``len(bytes) * log2(259)`` bits."""

    context = 64

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.zeros(*x.shape, lm.ByteTokenizer.vocab_size) + 0 * self.dummy


@lru_cache(maxsize=1)
def _data():
    g = torch.Generator().manual_seed(0)
    canaries = lm.random_canaries(len(REPEATS), template="my pin is {secret}", repeats=list(REPEATS), generator=g)
    corpus = lm.make_corpus(200, canaries=canaries, generator=g)
    held = lm.make_corpus(350, generator=g).records
    return corpus, held


def _train(texts, seed):
    g = torch.Generator().manual_seed(seed)
    model = lm.tiny_lm(context=48, generator=g)
    lm.train_lm(model, texts, epochs=8, lr=6e-3, batch_size=16, generator=g, progress=False)
    return model


@lru_cache(maxsize=1)
def target_and_corpus():
    """``(target, corpus)``: the target trained on ``corpus.texts``; ~3 s on one idle core."""
    corpus, _ = _data()
    return _train(corpus.texts, 1), corpus


@lru_cache(maxsize=1)
def trained():
    """``(target, reference, corpus, held_out_records)``: the reference is trained on 200 other records."""
    target, corpus = target_and_corpus()
    _, held = _data()
    return target, _train(held[:200], 2), corpus, held[200:]
