import numpy as np
import pytest
import torch

import mlsec_kit as mk


def test_globals_exposed():
    assert callable(mk.device) and callable(mk.seed_everything) and callable(mk.profile)


def test_device_is_cuda_iff_available(monkeypatch):
    monkeypatch.delenv("MLSEC_DEVICE", raising=False)
    assert mk.device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_device_override(monkeypatch):
    monkeypatch.setenv("MLSEC_DEVICE", "cpu")
    assert mk.device() == torch.device("cpu")
    monkeypatch.setenv("MLSEC_DEVICE", "toaster")
    with pytest.raises(ValueError, match="MLSEC_DEVICE"):
        mk.device()


def test_seed_everything_makes_draws_repeat():
    g = mk.seed_everything(123)
    a = (torch.rand(3), np.random.rand(3), torch.rand(3, generator=g))
    g = mk.seed_everything(123)
    b = (torch.rand(3), np.random.rand(3), torch.rand(3, generator=g))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])
    mk.seed_everything(124)
    assert not torch.equal(a[0], torch.rand(3))


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "1", True])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises((ValueError, TypeError), match="seed"):
        mk.seed_everything(bad)


def test_profile(monkeypatch):
    monkeypatch.delenv("MLSEC_PROFILE", raising=False)
    assert mk.profile() == "small"
    assert mk.by_profile(small=1, full=2) == 1
    monkeypatch.setenv("MLSEC_PROFILE", "FULL")
    assert mk.profile() == "full"
    assert mk.by_profile(small=1, full=2) == 2
    monkeypatch.setenv("MLSEC_PROFILE", "medium")
    with pytest.raises(ValueError, match="MLSEC_PROFILE.*small"):
        mk.profile()


def test_glue_checks_name():
    assert mk.glue("some_value", 3.5) is None
    with pytest.raises(ValueError, match="identifier"):
        mk.glue("not a name", 1)
