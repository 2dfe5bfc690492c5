"""Privacy of language models: a tiny byte-level LM, canaries and exposure (Carlini et al. 2019), DP-SGD training.

Everything runs offline on a CPU: :func:`make_corpus` writes a synthetic corpus with canaries inserted a chosen
number of times, :func:`tiny_lm` builds a small transformer (or LSTM), :func:`train_lm` / :func:`train_lm_dp`
train it, :func:`log_perplexity` and :func:`generate` score and sample, :func:`exposure` measures how much a canary
was memorised. :func:`extract` samples and ranks candidates as Carlini et al. (2021) do (perplexity, zlib and
reference ratios), :func:`membership_report` runs loss and reference-model membership inference on sequences, and
:func:`deduplicate` removes exact, normalised or near (n-gram) duplicates from a corpus.
"""
from .corpus import (CITIES, NAMES, RECORD_TEMPLATES, SLOT, Canary, Corpus, SecretSpace, make_corpus, make_records,
                     random_canaries, secret_space)
from .dedup import METHODS as DEDUP_METHODS
from .dedup import DedupResult, deduplicate, jaccard, ngrams, normalize
from .exposure import EXACT_LIMIT, candidate_scores, exposure, exposure_from_rank, exposures, rank_of
from .exposure import TIES as EXPOSURE_TIES
from .extraction import METRICS as EXTRACTION_METRICS
from .extraction import ExtractionResult, contains, extract, extraction_scores, zlib_entropy
from .membership import VARIANCES as MEMBERSHIP_VARIANCES
from .membership import MembershipReport, bits_per_token, loss_scores, membership_report, reference_scores
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
    "exposure", "exposures", "candidate_scores", "exposure_from_rank", "rank_of", "EXACT_LIMIT", "EXPOSURE_TIES",
    "extract", "extraction_scores", "contains", "zlib_entropy", "ExtractionResult", "EXTRACTION_METRICS",
    "membership_report", "reference_scores", "loss_scores", "bits_per_token", "MembershipReport",
    "MEMBERSHIP_VARIANCES",
    "deduplicate", "normalize", "ngrams", "jaccard", "DedupResult", "DEDUP_METHODS",
]
