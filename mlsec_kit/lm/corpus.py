"""A synthetic training corpus with canaries (Carlini et al. 2019, "The Secret Sharer: evaluating and testing
unintended memorization in neural networks", USENIX Security).

The corpus is made of *records*, one line each, drawn from a few templates that mix names, places and numbers
(so the model learns that digits follow certain words, and how digits are distributed), plus *canaries*: lines
``template`` with a random ``secret`` filled in, inserted ``repeats`` times each. A canary's secret is uniformly
random in a known space (:func:`secret_space`), so how strongly the model prefers it over the other members of that
space measures memorisation of that one line and nothing else (:func:`mlsec_kit.lm.exposure`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Union

import torch

from ..dp._validate import check_generator, check_int

__all__ = ["Canary", "Corpus", "SecretSpace", "make_corpus", "random_canaries", "secret_space", "SLOT",
           "NAMES", "CITIES", "RECORD_TEMPLATES"]

#: the slot a canary template must contain exactly once
SLOT = "{secret}"

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
         "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara")
CITIES = ("paris", "lagos", "lima", "oslo", "delhi", "quito", "cairo", "seoul", "perth", "turin")
#: record templates: ``{name}``, ``{city}``, ``{n2}`` (two digits), ``{n4}`` (four digits), ``{n6}`` (six digits)
RECORD_TEMPLATES = (
    "{name} lives in {city} and was born in 19{n2}",
    "{name} called {name2} at {n6} yesterday",
    "the account of {name} in {city} is {n6}",
    "{name} paid {n4} euros to {name2}",
    "{name} met {name2} in {city} on day {n2}",
    "flight {n4} from {city} to {city2} is late",
)


def _check_template(template: object, name: str = "template") -> str:
    if not isinstance(template, str):
        raise TypeError(f"{name} must be a str, got {type(template).__name__}")
    if template.count(SLOT) != 1:
        raise ValueError(f"{name} must contain the slot {SLOT!r} exactly once, got {template!r}")
    if "\n" in template:
        raise ValueError(f"{name} must be one line (no newline), got {template!r}")
    return template


@dataclass(frozen=True)
class Canary:
    """A line ``template`` with ``secret`` in its slot, inserted ``repeats`` times (0: a held-out canary, never
    trained on, the reference for exposure)."""

    template: str
    secret: str
    repeats: int = 1

    def __post_init__(self) -> None:
        _check_template(self.template, "template")
        if not isinstance(self.secret, str) or not self.secret:
            raise ValueError(f"secret must be a non-empty str, got {self.secret!r}")
        if "\n" in self.secret:
            raise ValueError(f"secret must be one line, got {self.secret!r}")
        check_int("repeats", self.repeats, minimum=0)

    @property
    def prefix(self) -> str:
        """The text before the secret."""
        return self.template.split(SLOT)[0]

    @property
    def suffix(self) -> str:
        """The text after the secret."""
        return self.template.split(SLOT)[1]

    @property
    def text(self) -> str:
        """The canary line as inserted."""
        return self.fill(self.secret)

    def fill(self, secret: str) -> str:
        """The template with ``secret`` in its slot."""
        return self.prefix + secret + self.suffix


class SecretSpace(Sequence):
    """All ``digits``-digit strings ``"00…0"`` to ``"99…9"`` in order, without storing them: ``len`` is
    ``10**digits``, ``space[i]`` is ``i`` written with ``digits`` digits, ``s in space`` checks the form."""

    def __init__(self, digits: int):
        self.digits = check_int("digits", digits, minimum=1)

    def __len__(self) -> int:
        return 10 ** self.digits

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a space of {len(self)} secrets")
        return f"{i:0{self.digits}d}"

    def __contains__(self, s: object) -> bool:
        return isinstance(s, str) and len(s) == self.digits and s.isascii() and s.isdigit()

    def __iter__(self) -> Iterator[str]:
        return (f"{i:0{self.digits}d}" for i in range(len(self)))

    def index(self, s: object, *args) -> int:  # type: ignore[override]
        if s not in self:
            raise ValueError(f"{s!r} is not a {self.digits}-digit string")
        return int(s)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"SecretSpace(digits={self.digits})"


def secret_space(digits: int) -> SecretSpace:
    """The randomness space R of a ``digits``-digit secret: all ``10**digits`` digit strings (a lazy sequence)."""
    return SecretSpace(digits)


def _digits(n: int, k: int, generator: Optional[torch.Generator]) -> list[str]:
    d = torch.randint(0, 10, (n, k), generator=generator).tolist()
    return ["".join(map(str, row)) for row in d]


def random_canaries(k: int, *, template: Union[str, Sequence[str]], digits: int = 6,
                    repeats: Union[int, Sequence[int]] = 1,
                    generator: Optional[torch.Generator] = None) -> list[Canary]:
    """``k`` canaries with distinct secrets drawn uniformly from :func:`secret_space` ``(digits)``.

    Canaries that share a template share its prefix, so the model scores all their secrets after the same text:
    the exposure of one is measured against the others' inserted secrets too (a canary inserted 16 times takes
    probability mass from one inserted 4 times: the latter ranks at best 2nd whenever the former scores better),
    and their digits bias each other. For an exposure-versus-insertions curve give each inserted canary its own
    template (a list), e.g. ``[f"{n}'s pin is {{secret}}" for n in NAMES[:k]]``; Carlini et al. (2019) measure one
    canary per training run.

    Args:
        k: number of canaries, >= 1 (at most ``10**digits``).
        template: a line with ``{secret}`` exactly once, e.g. ``"my pin is {secret}"``, shared by all k canaries;
            or a list of k such lines, one per canary (in order).
        digits: length of each secret, >= 1.
        repeats: insertions of each canary: one int for all, or one per canary (e.g. ``[0, 1, 4, 16]`` for the
            exposure-versus-insertions curve).
        generator: a CPU generator.

    Returns:
        list of :class:`Canary`.
    """
    k = check_int("k", k, minimum=1)
    if isinstance(template, str):
        templates = [_check_template(template)] * k
    elif isinstance(template, Sequence):
        templates = [_check_template(t, f"template[{i}]") for i, t in enumerate(template)]
        if len(templates) != k:
            raise ValueError(f"template must be a str or a list of k = {k} templates, got {len(templates)}")
    else:
        raise TypeError(f"template must be a str or a list of k = {k} strings, got {type(template).__name__}")
    digits = check_int("digits", digits, minimum=1)
    check_generator(generator)
    if k > 10 ** digits:
        raise ValueError(f"k must be at most 10**digits = {10 ** digits} (distinct secrets), got {k}")
    if isinstance(repeats, int) and not isinstance(repeats, bool):
        reps = [repeats] * k
    elif isinstance(repeats, Sequence) and not isinstance(repeats, str):
        reps = list(repeats)
    elif isinstance(repeats, torch.Tensor) and repeats.dim() == 1:
        reps = repeats.tolist()
    else:
        raise TypeError(f"repeats must be an int >= 0 or a sequence of k = {k} ints >= 0, got "
                        f"{type(repeats).__name__}")
    if len(reps) != k:
        raise ValueError(f"repeats must be an int or a sequence of k = {k} ints, got {len(reps)} values")
    for r in reps:
        check_int("repeats", r, minimum=0)
    secrets: list[str] = []
    seen: set[str] = set()
    while len(secrets) < k:
        for s in _digits(k, digits, generator):
            if s not in seen and len(secrets) < k:
                seen.add(s)
                secrets.append(s)
    return [Canary(template=t, secret=s, repeats=r) for t, s, r in zip(templates, secrets, reps)]


@dataclass(frozen=True)
class Corpus:
    """The training lines (records and canary insertions, shuffled), the canaries, and the records alone."""

    texts: list[str]
    canaries: list[Canary]
    records: list[str]


def make_records(n: int, *, generator: Optional[torch.Generator] = None) -> list[str]:
    """``n`` synthetic record lines from :data:`RECORD_TEMPLATES` with random names, cities and numbers."""
    n = check_int("records", n, minimum=0)
    out = []
    for _ in range(n):
        t = RECORD_TEMPLATES[int(torch.randint(len(RECORD_TEMPLATES), (1,), generator=generator))]
        i, j = torch.randperm(len(NAMES), generator=generator)[:2].tolist()
        c, c2 = torch.randperm(len(CITIES), generator=generator)[:2].tolist()
        n2, n4, n6 = (_digits(1, k, generator)[0] for k in (2, 4, 6))
        out.append(t.format(name=NAMES[i], name2=NAMES[j], city=CITIES[c], city2=CITIES[c2], n2=n2, n4=n4, n6=n6))
    return out


def make_corpus(records: Union[int, Sequence[str]] = 400, *, canaries: Sequence[Canary] = (),
                generator: Optional[torch.Generator] = None) -> Corpus:
    """Records plus each canary line ``repeats`` times, shuffled (Carlini et al. 2019's insertion experiment).

    Args:
        records: the number of synthetic records to draw (:func:`make_records`), or the record lines themselves.
        canaries: :class:`Canary` objects; each is inserted ``canary.repeats`` times (0: not at all).
        generator: a CPU generator for the records and the shuffle.

    Returns:
        :class:`Corpus` with ``texts`` (records and insertions in random order), ``canaries``, ``records``.
    """
    check_generator(generator)
    if isinstance(records, int) and not isinstance(records, bool):
        recs = make_records(records, generator=generator)
    elif isinstance(records, Sequence) and not isinstance(records, str):
        recs = list(records)
        for r in recs:
            if not isinstance(r, str):
                raise TypeError(f"records must be an int or a list of strings, got an element of type "
                                f"{type(r).__name__}")
    else:
        raise TypeError(f"records must be an int or a list of strings, got {type(records).__name__}")
    if isinstance(canaries, Canary) or not isinstance(canaries, Sequence) or isinstance(canaries, str):
        raise TypeError(f"canaries must be a list of Canary objects (wrap a single one in a list), got "
                        f"{type(canaries).__name__}")
    canaries = list(canaries)
    for c in canaries:
        if not isinstance(c, Canary):
            raise TypeError(f"canaries must contain Canary objects, got {type(c).__name__}")
    texts = recs + [c.text for c in canaries for _ in range(c.repeats)]
    if not texts:
        raise ValueError("the corpus is empty: give records > 0 or a canary with repeats > 0")
    order = torch.randperm(len(texts), generator=generator).tolist()
    return Corpus(texts=[texts[i] for i in order], canaries=canaries, records=recs)
