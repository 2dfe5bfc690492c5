"""Deduplicating a training corpus: the defence of Kandpal, Wallace & Raffel (2022, "Deduplicating training data
mitigates privacy risks in language models") and Lee et al. (2022, "Deduplicating training data makes language
models better").

Kandpal et al. find that the chance a language model regenerates a training sequence grows roughly
super-linearly with the number of times the sequence occurs in its training set, and that most of what extraction
attacks recover are sequences repeated many times; removing the copies removes most of the risk. A canary
inserted ``r`` times as a whole line is exactly such a sequence: after :func:`deduplicate` it is left once.

Three ways of deciding that two lines are copies, from strict to loose:

* ``"exact"``: identical strings;
* ``"normalized"``: identical after :func:`normalize` (case folded, punctuation dropped, runs of white space
  collapsed), so ``"My PIN is 381925."`` and ``"my pin is  381925"`` are one line;
* ``"ngram"``: near-duplicates (Lee et al.'s NearDup): the Jaccard similarity of the two lines' sets of character
  ``n``-grams (after :func:`normalize`) is at least ``threshold``. Lee et al. approximate the Jaccard similarity
  with MinHash to scale to billions of documents; a course-sized corpus affords the exact value, computed for all
  pairs at once as one sparse matrix product.

What it does not do, and costs:

* every mode compares whole lines. Lee et al.'s other method, ExactSubstr (a suffix array finds every substring of
  at least 50 tokens that occurs twice, in any documents), is not implemented: a secret repeated inside different
  lines ("call me, my pin is 123456" and "my pin is 123456, thanks") survives all three modes;
* ``"ngram"`` on templated text merges *distinct* records that differ only in a name or a number (at the default
  threshold 0.8, "dave lives in lagos and was born in 1966" and "... 1978" have Jaccard 0.89): near-duplicate
  removal throws away different private facts along with the copies, so it is not free on a corpus of records.

In every mode the first line of each group of copies is kept (in the corpus order) and every later line that is a
copy of a kept line is removed: the result is the same whatever the order in which pairs are examined.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["normalize", "ngrams", "jaccard", "deduplicate", "DedupResult", "METHODS"]

METHODS = ("exact", "normalized", "ngram")

_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)
_SPACE = re.compile(r"\s+", flags=re.UNICODE)


def _check_texts(texts: object, name: str = "texts") -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of strings, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(t).__name__}")
    return list(texts)


def normalize(text: str) -> str:
    """``text`` case folded, Unicode-normalised (NFKC), with punctuation removed and every run of white space
    replaced by one space, stripped at both ends: the form in which ``"normalized"`` and ``"ngram"`` compare lines.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _PUNCT.sub("", t)
    return _SPACE.sub(" ", t).strip()


def ngrams(text: str, *, n: int = 5) -> set[str]:
    """The set of character ``n``-grams (shingles) of ``normalize(text)``; a line shorter than ``n`` is one shingle,
    itself (so short lines still compare), and the empty line has none.

    Args:
        text: a string.
        n: the shingle length, an int >= 1.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    t = normalize(text)
    if not t:
        return set()
    if len(t) <= n:
        return {t}
    return {t[i:i + n] for i in range(len(t) - n + 1)}


def jaccard(a: str, b: str, *, n: int = 5) -> float:
    """The Jaccard similarity ``|A ∩ B| / |A ∪ B|`` of the character ``n``-gram sets of two strings, in [0, 1]
    (1.0 when both are empty after normalisation)."""
    sa, sb = ngrams(a, n=n), ngrams(b, n=n)
    union = len(sa | sb)
    return 1.0 if union == 0 else len(sa & sb) / union


@dataclass(frozen=True)
class DedupResult:
    """What :func:`deduplicate` kept and removed.

    Attributes:
        texts: the kept lines, in their original order.
        kept: their indices in the input.
        duplicate_of: for each input index, the index of the kept line it is a copy of (itself when kept).
        removed: how many lines were removed, ``len(input) - len(texts)``.
        method: the rule used.
    """

    texts: list[str]
    kept: list[int]
    duplicate_of: list[int]
    removed: int
    method: str

    def copies(self, index: int) -> int:
        """How many input lines (itself included) were merged into the kept line ``index`` (an input index in
        ``[0, len(duplicate_of))``; 0 for a removed line)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.duplicate_of):
            raise ValueError(f"index must be an input index, an int in [0, {len(self.duplicate_of)}), got {index!r}")
        return sum(1 for d in self.duplicate_of if d == index)


def _ngram_matrix(texts: list[str], n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """A sparse 0/1 matrix, one row per line, one column per distinct shingle, and the row sizes ``|A_i|``."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, t in enumerate(texts):
        for g in ngrams(t, n=n):
            rows.append(i)
            cols.append(vocab.setdefault(g, len(vocab)))
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(texts), max(len(vocab), 1)))
    return m, np.asarray(m.sum(axis=1)).ravel()


def deduplicate(texts: Sequence[str], *, method: str = "exact", n: int = 5, threshold: float = 0.8) -> DedupResult:
    """Remove the copies from a corpus of lines, keeping the first of each.

    Args:
        texts: the corpus, one training sequence per string (e.g. ``lm.make_corpus(...).texts``); not modified.
        method: ``"exact"``, ``"normalized"`` or ``"ngram"`` (see the module docstring).
        n: the character n-gram length of ``"ngram"``, an int >= 1 (Lee et al. use 5-grams of words on web
            documents; characters suit one-line records).
        threshold: the Jaccard similarity from which ``"ngram"`` calls two lines copies, in (0, 1]; 1.0 merges only
            lines with the same n-gram set.

    Returns:
        A :class:`DedupResult`. Line ``j`` is removed when it is a copy of an earlier *kept* line ``i < j``; it is
        then recorded as ``duplicate_of[j] = i`` (the earliest such ``i``).

    Shape:
        ``N`` lines in, ``N - removed`` out; ``"ngram"`` builds an ``N × N`` sparse similarity matrix (fine for
        tens of thousands of short lines).
    """
    texts = _check_texts(texts)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")

    owner = list(range(len(texts)))
    if method in ("exact", "normalized"):
        first: dict[str, int] = {}
        for j, t in enumerate(texts):
            key = t if method == "exact" else normalize(t)
            owner[j] = first.setdefault(key, j)
    elif texts:
        m, sizes = _ngram_matrix(texts, n)
        inter = (m @ m.T).tocoo()
        union = sizes[inter.row] + sizes[inter.col] - inter.data
        sim = np.where(union > 0, inter.data / np.maximum(union, 1), 1.0)
        similar: list[list[int]] = [[] for _ in texts]   # for each j, the earlier lines i it is similar to
        for i, j in zip(inter.row[(sim >= threshold) & (inter.row < inter.col)],
                        inter.col[(sim >= threshold) & (inter.row < inter.col)]):
            similar[int(j)].append(int(i))
        # lines with no shingles at all (empty after normalisation) are copies of each other
        empty = [j for j in range(len(texts)) if sizes[j] == 0]
        for j in empty[1:]:
            similar[j].append(empty[0])
        for j in range(len(texts)):
            earlier_kept = sorted(i for i in similar[j] if owner[i] == i)
            if earlier_kept:
                owner[j] = earlier_kept[0]
    kept = [j for j in range(len(texts)) if owner[j] == j]
    return DedupResult(texts=[texts[j] for j in kept], kept=kept, duplicate_of=owner,
                       removed=len(texts) - len(kept), method=method)
