"""Sphinx extension: memoize pybtex's plugin lookup for the build.

``pybtex.plugin.find_plugin`` scans every installed package's entry points on each call, and
sphinxcontrib-bibtex calls it once per citation it resolves (about 480 in the book): 6-10 s of every build
spent finding the same plain-text backend. What it returns cannot change while Sphinx runs, so the lookup is
cached; the plugins themselves are untouched.
"""
from __future__ import annotations

import functools


def setup(app):
    import pybtex.plugin

    if not hasattr(pybtex.plugin.find_plugin, "cache_info"):
        pybtex.plugin.find_plugin = functools.lru_cache(maxsize=None)(pybtex.plugin.find_plugin)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
