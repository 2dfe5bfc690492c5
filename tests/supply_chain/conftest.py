"""Files the chapter-15 tests share: every demonstration payload in every format, written once per session."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from mlsec_kit import supply_chain as sc  # noqa: E402


@pytest.fixture(scope="session")
def evil_dir(tmp_path_factory):
    """Every TECHNIQUE x MALICIOUS_FORMAT, with its (not yet existing) marker: {(fmt, technique): (path, marker)}."""
    d = tmp_path_factory.mktemp("evil").resolve()
    out = {}
    for fmt in sc.MALICIOUS_FORMATS:
        for t in sc.TECHNIQUES:
            marker = d / f"{fmt}-{t}.marker"
            out[fmt, t] = (sc.make_malicious(d / f"{fmt}-{t}.bin", fmt=fmt, technique=t, marker=marker), marker)
    return d, out


@pytest.fixture(scope="session")
def benign_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("benign").resolve()
    g = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(3, 4, generator=g), "b": torch.zeros(3)}
    files = {
        "torch": sc.make_benign(d / "state.pt", fmt="torch", obj=state),
        "safetensors": sc.make_benign(d / "state.safetensors", fmt="safetensors", obj=state),
        "npy": sc.make_benign(d / "w.npy", fmt="npy", obj=np.arange(12.0).reshape(3, 4)),
        "joblib": sc.make_benign(d / "arrays.joblib", fmt="joblib",
                                 obj={"w": np.arange(6.0), "i": np.arange(3),
                                      "o": np.array(["a", None], dtype=object)}),
        "pickle": sc.make_benign(d / "plain.pkl", fmt="pickle", obj={"lr": 0.1, "layers": [3, 4]}),
    }
    return d, files
