"""Privacy of language models: a tiny byte-level LM, canaries and exposure (Carlini et al. 2019), DP-SGD training.

Everything runs offline on a CPU: :func:`make_corpus` writes a synthetic corpus with canaries inserted a chosen
number of times, :func:`tiny_lm` builds a small transformer (or LSTM), :func:`train_lm` / :func:`train_lm_dp`
train it, :func:`log_perplexity` and :func:`generate` score and sample, :func:`exposure` measures how much a canary
was memorised.
"""
from .corpus import (CITIES, NAMES, RECORD_TEMPLATES, SLOT, Canary, Corpus, SecretSpace, make_corpus, make_records,
                     random_canaries, secret_space)
from .exposure import EXACT_LIMIT, candidate_scores, exposure, exposure_from_rank, rank_of
from .model import KINDS, TinyLSTM, TinyTransformer, tiny_lm
from .scoring import generate, log_perplexity, next_token_logprobs
from .tokenizer import BOS, EOS, PAD, VOCAB_SIZE, ByteTokenizer
from .training import lm_rows, sequence_loss, train_lm, train_lm_dp

__all__ = [
    "ByteTokenizer", "BOS", "EOS", "PAD", "VOCAB_SIZE",
    "Canary", "Corpus", "SecretSpace", "SLOT", "make_corpus", "make_records", "random_canaries", "secret_space",
    "NAMES", "CITIES", "RECORD_TEMPLATES",
    "tiny_lm", "TinyTransformer", "TinyLSTM", "KINDS",
    "train_lm", "train_lm_dp", "lm_rows", "sequence_loss",
    "log_perplexity", "generate", "next_token_logprobs",
    "exposure", "candidate_scores", "exposure_from_rank", "rank_of", "EXACT_LIMIT",
]
