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

__all__ = ["REPOSITORY", "VERSION", "install_requirement", "repository_slug", "book_url", "colab_url"]


def install_requirement(extras: Sequence[str] = ()) -> str:
    """The pip requirement that installs this book's kit, pinned to its release tag (never a bare name).

    >>> install_requirement(["art"])
    'mlsec-kit[art] @ git+https://github.com/mlsec-book/mlsec-book@v0.1.0'
    """
    extra = f"[{','.join(extras)}]" if extras else ""
    return f"mlsec-kit{extra} @ git+{REPOSITORY}@v{VERSION}"


def repository_slug() -> tuple[str, str]:
    """``(owner, name)`` of the GitHub repository in :data:`REPOSITORY`."""
    parts = REPOSITORY.rstrip("/").removeprefix("https://github.com/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"REPOSITORY must be https://github.com/<owner>/<name>, got {REPOSITORY!r}")
    return parts[0], parts[1]


def book_url() -> str:
    """The published book (GitHub Pages of :data:`REPOSITORY`), with a trailing slash.

    >>> book_url()
    'https://mlsec-book.github.io/mlsec-book/'
    """
    owner, name = repository_slug()
    return f"https://{owner}.github.io/{name}/"


def colab_url(path: str) -> str:
    """The Colab link that opens the plain-Jupyter edition of ``chapters/<stem>.ipynb`` or
    ``exercises/<stem>.ipynb`` (``colab/<path>`` on the main branch).

    >>> colab_url("chapters/01_threat_models.ipynb")
    'https://colab.research.google.com/github/mlsec-book/mlsec-book/blob/main/colab/chapters/01_threat_models.ipynb'
    """
    owner, name = repository_slug()
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/main/colab/{path.lstrip('/')}"
