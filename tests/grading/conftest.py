"""Fixtures for the grading tests."""
from __future__ import annotations

import os

import pytest

from grading_helpers import ROOT


@pytest.fixture
def repo_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Processes and kernels started by the test import this checkout's mlsec_kit."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYTHONPATH", path)
    return dict(os.environ)
