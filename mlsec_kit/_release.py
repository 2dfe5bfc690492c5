"""The one place that says where the kit is released from and which version the book was built with.

Every install line (the notebooks' first cell, the README, the teaching guide, the Gradescope autograder)
derives from these two values; ``scripts``/tests check that nothing else names an install source. A fork
changes ``REPOSITORY`` (the publishing tooling rewrites it everywhere); a release bumps ``VERSION`` and tags
the repository ``v{VERSION}``.
"""
from __future__ import annotations

from typing import Sequence

REPOSITORY = "https://github.com/mlsec-book/mlsec-book"
VERSION = "0.1.0"

__all__ = ["REPOSITORY", "VERSION", "install_requirement"]


def install_requirement(extras: Sequence[str] = ()) -> str:
    """The pip requirement that installs this book's kit, pinned to its release tag (never a bare name).

    >>> install_requirement(["art"])
    'mlsec-kit[art] @ git+https://github.com/mlsec-book/mlsec-book@v0.1.0'
    """
    extra = f"[{','.join(extras)}]" if extras else ""
    return f"mlsec-kit{extra} @ git+{REPOSITORY}@v{VERSION}"
